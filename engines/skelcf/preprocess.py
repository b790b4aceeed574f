"""Batched SKEL-CF crop preprocessing: one frame upload, one sampling op for all persons.

The official demo warps each square box to a 256x256 patch with OpenCV (`gen_trans_from_patch_cv`
affine, bilinear, zero border), flips BGR->RGB and applies ImageNet normalization. Doing that per
person on the CPU and uploading every crop costs more than the network at batch 1 on a GPU, so here
the frame is uploaded once and every crop of the frame is sampled in ONE `grid_sample` call: the
grids of all boxes are stacked along the height axis of a single batch-1 grid, so no frame copy per
person is made. The same code runs on CPU (tests, CPU backends) and CUDA.

A float bilinear sampler differs from OpenCV's 1/32-pixel fixed-point weights by up to ~4 grey
levels (0.07 after normalization); the geometry (which source pixel lands where) is identical.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stream.errors import EngineError

CROP_SIZE_PX = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def square_boxes(boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and side of the square each box is cropped to (side = max(w, h), no expansion).

    boxes_xyxy: (N, 4) px, image frame. Returns centre (N, 2) float64 px and side (N,) float64 px.
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    centre = np.stack([(b[:, 0] + b[:, 2]) * 0.5, (b[:, 1] + b[:, 3]) * 0.5], axis=1)
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    return centre, side


def crop_affine(centre_px: np.ndarray, side_px: np.ndarray, size_px: int = CROP_SIZE_PX) -> np.ndarray:
    """Image -> patch affine of each box, (N, 2, 3) float64; the matrix of the official
    `gen_trans_from_patch_cv` with scale 1 and no rotation (cv2.warpAffine convention)."""
    s = size_px / np.asarray(side_px, dtype=np.float64)
    m = np.zeros((len(s), 2, 3))
    m[:, 0, 0] = s
    m[:, 1, 1] = s
    m[:, 0, 2] = 0.5 * size_px - s * centre_px[:, 0]
    m[:, 1, 2] = 0.5 * size_px - s * centre_px[:, 1]
    return m


def bbox_info(centre_px: np.ndarray, side_px: np.ndarray, image_hw: tuple[int, int],
              focal_px: float) -> np.ndarray:
    """The decoder's box cue: ((cx - W/2)/f, (cy - H/2)/f, side/f), (N, 3) float32, unitless.

    Principal point at the image centre, as the official `get_cam_intrinsic`."""
    if not np.isfinite(focal_px) or focal_px <= 0:
        raise EngineError(f"focal length {focal_px!r} px is not positive; set pose.focal_px > 0 "
                          f"or leave it unset to estimate it with FLNet")
    from engines.skelcf.geometry import bbox_info as _bbox_info
    c = np.asarray(centre_px, dtype=np.float64)
    side = np.asarray(side_px, dtype=np.float64)
    return np.asarray(_bbox_info(c, side, float(focal_px), tuple(image_hw)), dtype=np.float32)


def normalize_uint8(crops: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 (or float 0..255) RGB -> float32 ImageNet-normalized, the same
    arithmetic `CropPreprocessor` applies, so a server normalising uint8 crops agrees with it."""
    mean = (torch.tensor(IMAGENET_MEAN, dtype=torch.float32) * 255.0).view(1, 3, 1, 1)
    inv_std = (1.0 / (torch.tensor(IMAGENET_STD, dtype=torch.float32) * 255.0)).view(1, 3, 1, 1)
    return (crops.float() - mean.to(crops.device)) * inv_std.to(crops.device)


class UInt8Input(nn.Module):
    """A SKEL-CF network taking uint8 crops: normalisation moves to where the network runs
    (a Triton server), so clients send 1 byte per value instead of 4.

    forward(crops (B, 3, 256, 192|256) uint8 RGB, bbox_info (B, 3) float32) -> q, betas, cam."""

    def __init__(self, net: nn.Module, fp16: bool = False):
        super().__init__()
        self.net = net.half() if fp16 else net
        self.fp16 = fp16  # a CUDA server's FP16 PyTorch model: normalise in FP32, then cast

    def forward(self, crops: torch.Tensor, bbox_info: torch.Tensor):
        x = normalize_uint8(crops)
        if not self.fp16:
            return self.net.forward_export(x, bbox_info)
        return tuple(o.float() for o in self.net.forward_export(x.half(), bbox_info.half()))


class CropPreprocessor:
    """Cuts, warps and normalizes all person crops of one frame in one batched op.

    Output crops: (N, 3, 256, 256) on `device`, RGB, ImageNet-normalized, `dtype` (float32, or
    float16 for the FP16 GPU backends; sampling itself always runs in float32). With dtype uint8
    (remote backends) the crops are the rounded RGB values, not normalized, and only the central
    `uint8_cols` columns the network reads (fewer bytes on the wire).
    """

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 size_px: int = CROP_SIZE_PX, uint8_cols: tuple[int, int] = (32, 224)):
        self.device = torch.device(device)
        self.dtype = dtype
        self.size_px = size_px
        self.uint8_cols = uint8_cols
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32) * 255.0
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32) * 255.0
        self._mean = mean.view(1, 3, 1, 1).to(self.device)
        self._inv_std = (1.0 / std).view(1, 3, 1, 1).to(self.device)
        # patch pixel centres 0..size-1, shared by every box
        self._u = torch.arange(size_px, dtype=torch.float64)

    def upload(self, image_bgr: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(H, W, 3) uint8 BGR host frame -> (1, 3, H, W) float32 RGB on the device (one copy)."""
        if isinstance(image_bgr, np.ndarray):
            if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
                raise EngineError(f"frame must be (H, W, 3) uint8 BGR, got {image_bgr.shape} "
                                  f"{image_bgr.dtype}; convert it before the pose stage")
            with warnings.catch_warnings():
                # frames arrive as read-only views of the stage ring; this tensor is only read
                # (the permute/flip/float below make the copy), so torch's not-writable warning is noise
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                t = torch.from_numpy(np.ascontiguousarray(image_bgr))
            if self.device.type == "cuda":
                t = t.pin_memory().to(self.device, non_blocking=True)
        else:
            t = image_bgr.to(self.device)
        # BGR -> RGB on the 3-channel frame is cheaper than on N crops
        return t.permute(2, 0, 1).flip(0).unsqueeze(0).float()

    def grid(self, centre_px: np.ndarray, side_px: np.ndarray, image_hw: tuple[int, int]) -> torch.Tensor:
        """Sampling grid of all boxes stacked on the height axis: (1, N*S, S, 2) float32,
        normalized for grid_sample(align_corners=True) (-1 = first pixel centre)."""
        h, w = image_hw
        s = self.size_px
        # inverse of crop_affine: x_src = (u - S/2) * side/S + cx
        scale = torch.from_numpy(np.asarray(side_px, dtype=np.float64) / s)            # (N,)
        c = torch.from_numpy(np.asarray(centre_px, dtype=np.float64))                  # (N, 2)
        xs = (self._u[None, :] - 0.5 * s) * scale[:, None] + c[:, 0:1]                # (N, S)
        ys = (self._u[None, :] - 0.5 * s) * scale[:, None] + c[:, 1:2]                # (N, S)
        gx = xs * (2.0 / max(w - 1, 1)) - 1.0
        gy = ys * (2.0 / max(h - 1, 1)) - 1.0
        n = len(scale)
        g = torch.empty((n, s, s, 2), dtype=torch.float64)
        g[..., 0] = gx[:, None, :]
        g[..., 1] = gy[:, :, None]
        return g.reshape(1, n * s, s, 2).to(self.device, torch.float32, non_blocking=True)

    def __call__(self, image_bgr: np.ndarray | torch.Tensor, boxes_xyxy: np.ndarray,
                 focal_px: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops (N, 3, S, S) `dtype` and bbox_info (N, 3) float32, both on `device`.

        boxes_xyxy: (N, 4) px in the frame; boxes may leave the frame (zero border)."""
        h, w = (image_bgr.shape[0], image_bgr.shape[1])
        centre, side = square_boxes(boxes_xyxy)
        if np.any(~np.isfinite(side)) or np.any(side <= 0):
            raise EngineError("a person box has zero or negative size; the tracker must give "
                              "boxes with x2 > x1 and y2 > y1")
        info = torch.from_numpy(bbox_info(centre, side, (h, w), focal_px)).to(self.device)
        n = len(side)
        s = self.size_px
        if n == 0:
            return torch.empty((0, 3, s, s), dtype=self.dtype, device=self.device), info
        frame = self.upload(image_bgr)
        grid = self.grid(centre, side, (h, w))
        patches = F.grid_sample(frame, grid, mode="bilinear", padding_mode="zeros",
                                align_corners=True)                                    # (1,3,N*S,S)
        patches = patches.view(3, n, s, s).transpose(0, 1)                              # (N,3,S,S)
        if self.dtype == torch.uint8:
            a, b = self.uint8_cols
            return patches[..., a:b].round().clamp(0, 255).to(torch.uint8).contiguous(), info
        crops = (patches - self._mean) * self._inv_std
        return crops.to(self.dtype).contiguous(), info
