"""FLNet: focal length (vertical field of view) from the whole image, for SKEL-CF's bbox cue.

An HRNet-W48 (the PARE/SPEC variant with `downsample=True, use_conv=True`: all four branch outputs
brought to 1/32 resolution by strided convs and concatenated, 15*width channels) -> global average
pool -> fc1 -> dropout -> fc3 -> (2,), out[:, 1] = vfov in radians. `fc2` is in the weights but the
forward never uses it. Module names match the checkpoint's `cam_model.*` keys (HRNet
`final_layer`, the unused 24-joint heatmap head, included for strict loading).
Input: `letterbox_for_flnet(image)` = full RGB image letterboxed to 256x256, ImageNet-normalized.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engines.skelcf.geometry import focal_from_vfov

BN_MOMENTUM = 0.1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLNET_INPUT_PX = 256


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def _conv_bn(cin: int, cout: int, stride: int, relu: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [_conv3x3(cin, cout, stride), nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + res)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + res)


def _make_layer(block: type, cin: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    downsample = None
    if stride != 1 or cin != planes * block.expansion:
        downsample = nn.Sequential(nn.Conv2d(cin, planes * block.expansion, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM))
    layers = [block(cin, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output fuses all branches (sum, ReLU)."""

    def __init__(self, channels: list[int], num_blocks: int = 4):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(_make_layer(BasicBlock, c, c, num_blocks) for c in channels)
        self.fuse_layers = nn.ModuleList()
        for i in range(n):
            row: list[nn.Module | None] = []
            for j in range(n):
                if j > i:  # lower resolution -> 1x1 conv, BN, nearest upsample
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False),
                                             nn.BatchNorm2d(channels[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:  # higher resolution -> (i - j) stride-2 convs, ReLU between, none after the last
                    steps = [nn.Sequential(*_conv_bn(channels[j], channels[j], 2, relu=True))
                             for _ in range(i - j - 1)]
                    steps.append(nn.Sequential(*_conv_bn(channels[j], channels[i], 2, relu=False)))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(nn.ModuleList(row))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, len(xs)):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """HRNet (stages of 1/1/4/3 modules, 4 BasicBlocks per branch), fused at 1/32 resolution.

    (B,3,256,256) -> (B, 15*width, 8, 8).
    """

    def __init__(self, width: int = 48, num_joints: int = 24):
        super().__init__()
        c = [width, width * 2, width * 4, width * 8]
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_layer(Bottleneck, 64, 64, 4)
        self.transition1 = nn.ModuleList([nn.Sequential(*_conv_bn(256, c[0], 1, relu=True)),
                                          nn.Sequential(nn.Sequential(*_conv_bn(256, c[1], 2, relu=True)))])
        self.stage2 = nn.Sequential(HighResolutionModule(c[:2]))
        self.transition2 = nn.ModuleList([None, None, nn.Sequential(nn.Sequential(*_conv_bn(c[1], c[2], 2, True)))])
        self.stage3 = nn.Sequential(*[HighResolutionModule(c[:3]) for _ in range(4)])
        self.transition3 = nn.ModuleList([None, None, None,
                                          nn.Sequential(nn.Sequential(*_conv_bn(c[2], c[3], 2, True)))])
        self.stage4 = nn.Sequential(*[HighResolutionModule(c) for _ in range(3)])
        self.final_layer = nn.Conv2d(c[0], num_joints, 1)  # heatmap head of the pose HRNet; unused
        self.downsample_stage_1 = self._downsample(c[0], 3)
        self.downsample_stage_2 = self._downsample(c[1], 2)
        self.downsample_stage_3 = self._downsample(c[2], 1)
        self.out_channels = sum(c)

    @staticmethod
    def _downsample(ch: int, n: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for _ in range(n):
            layers += _conv_bn(ch, ch, 2, relu=True)
        return nn.Sequential(*layers)

    @staticmethod
    def _transition(trans: nn.ModuleList, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [xs[i] if t is None else t(xs[-1]) for i, t in enumerate(trans)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = self.stage2([t(x) for t in self.transition1])
        xs = self.stage3(self._transition(self.transition2, xs))
        xs = self.stage4(self._transition(self.transition3, xs))
        return torch.cat([self.downsample_stage_1(xs[0]), self.downsample_stage_2(xs[1]),
                          self.downsample_stage_3(xs[2]), xs[3]], dim=1)


class FLNet(nn.Module):
    """Vertical field of view from a letterboxed image. forward: (B,3,256,256) -> (B,2); vfov = out[:,1] rad."""

    def __init__(self, width: int = 48):
        super().__init__()
        self.backbone = HRNet(width)
        fused = self.backbone.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(fused, 1024)
        self.fc2 = nn.Linear(1024, 1024)  # trained but never used by the official forward
        self.fc3 = nn.Linear(1024, 2)
        self.drop = nn.Dropout(0.5)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, 8, 8) fused features -> (B, C)."""
        return self.avgpool(features).flatten(1)

    def forward_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, C) -> (B, 2); fc2 deliberately skipped, no activation (as trained)."""
        return self.fc3(self.drop(self.fc1(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.pool(self.backbone(x)))

    @torch.no_grad()
    def vfov(self, image_rgb: np.ndarray, device: torch.device | str = "cpu") -> float:
        """Vertical field of view (rad) of one (H,W,3) uint8 RGB image."""
        x = letterbox_for_flnet(image_rgb).to(device=device, dtype=next(self.parameters()).dtype)
        return float(self(x)[0, 1])

    def focal_px(self, image_rgb: np.ndarray, device: torch.device | str = "cpu") -> float:
        """Focal length in px for this image: H / (2 tan(vfov/2))."""
        return float(focal_from_vfov(self.vfov(image_rgb, device), image_rgb.shape[0]))


def letterbox_uint8(image_rgb: np.ndarray, size_px: int = FLNET_INPUT_PX) -> tuple[np.ndarray, tuple[int, int]]:
    """Keep aspect, INTER_AREA resize with int()-truncated sizes, centre on white.

    Returns the (size,size,3) uint8 image and the (top, left) offset of the resized image.
    """
    import cv2

    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"FLNet needs an (H,W,3) uint8 RGB image, got {image_rgb.shape} {image_rgb.dtype}")
    h, w = image_rgb.shape[:2]
    scale = size_px / max(h, w)
    nh, nw = int(h * scale), int(w * scale)  # truncation, as the official resize_image
    resized = cv2.resize(image_rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((size_px, size_px, 3), 255, np.uint8)
    top, left = (size_px - nh) // 2, (size_px - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out, (top, left)


def letterbox_for_flnet(image_rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 RGB -> (1,3,256,256) float32: letterboxed, /255, ImageNet-normalized."""
    box, _ = letterbox_uint8(image_rgb)
    x = torch.from_numpy(box).permute(2, 0, 1).float().div(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std)[None]


def build_flnet(width: int = 48) -> FLNet:
    """FLNet with HRNet width 48 (official, 720 fused channels) or smaller for tests."""
    return FLNet(width)
