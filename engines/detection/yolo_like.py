"""A YOLOv8n-sized conv net with YOLOv8's output layout, for benchmarks and backend tests only.

Random weights: it finds nothing, but it costs what a real nano detector costs (about 3 M
parameters, strides 8/16/32, 8400 anchors at 640x640) and its output `[1, 4 + num_classes, N]`
goes through the same decode/NMS path as a user's export.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())


class Block(nn.Module):
    """Residual pair of 3x3 convs (a C2f bottleneck without the split)."""

    def __init__(self, c: int):
        super().__init__()
        self.a, self.b = conv(c, c), conv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class YoloLike(nn.Module):
    def __init__(self, num_classes: int = 80, width: tuple[int, ...] = (16, 32, 64, 128, 256)):
        super().__init__()
        w = width
        self.stem = conv(3, w[0], 2)                                           # /2
        self.s2 = nn.Sequential(conv(w[0], w[1], 2), Block(w[1]))              # /4
        self.s3 = nn.Sequential(conv(w[1], w[2], 2), Block(w[2]), Block(w[2]))  # /8
        self.s4 = nn.Sequential(conv(w[2], w[3], 2), Block(w[3]), Block(w[3]))  # /16
        self.s5 = nn.Sequential(conv(w[3], w[4], 2), Block(w[4]))              # /32
        self.heads = nn.ModuleList([nn.Sequential(conv(c, 64), nn.Conv2d(64, 4 + num_classes, 1))
                                    for c in (w[2], w[3], w[4])])
        self.strides = (8, 16, 32)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.s3(self.s2(self.stem(x)))
        p4 = self.s4(p3)
        return [p3, p4, self.s5(p4)]

    def forward_head(self, feats: list[torch.Tensor]) -> torch.Tensor:
        outs = []
        for f, head, s in zip(feats, self.heads, self.strides):
            y = head(f)
            b, _, h, w = y.shape
            gy, gx = torch.meshgrid(torch.arange(h, device=y.device), torch.arange(w, device=y.device), indexing="ij")
            grid = torch.stack([gx, gy]).to(y.dtype).reshape(1, 2, h * w)
            y = y.reshape(b, y.shape[1], h * w)
            xy = (grid + 0.5 + y[:, 0:2].tanh()) * s               # centre in input px
            wh = torch.exp(y[:, 2:4].clamp(-4, 4)) * s * 4         # size in input px
            outs.append(torch.cat([xy, wh, y[:, 4:].sigmoid()], 1))
        return torch.cat(outs, 2)                                  # (1, 4 + nc, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def export_onnx(path: Path, size_px: int = 640, num_classes: int = 80, seed: int = 0) -> Path:
    """Random-weight YoloLike to ONNX with a fixed (1, 3, size, size) input named 'images'."""
    torch.manual_seed(seed)
    model = YoloLike(num_classes).eval()
    x = torch.zeros(1, 3, size_px, size_px)
    torch.onnx.export(model, (x,), str(path), input_names=["images"], output_names=["output0"],
                      opset_version=17, dynamo=False)
    return Path(path)
