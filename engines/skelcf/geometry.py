"""Camera geometry around SKEL-CF: the bbox cue fed to the decoder and cam -> translation.

Pinhole camera with fx = fy = focal (px) and the principal point at the image centre (W/2, H/2),
as the official code assumes. Works on numpy arrays and torch tensors alike (broadcasting over a
leading batch axis); output type follows `cam` / `center_xy`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _stack(parts: list, like: Array) -> Array:
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def _hw(image_hw, like: Array) -> tuple:
    """(H, W) as scalars or per-row arrays matching `like`'s type."""
    if isinstance(image_hw, (tuple, list)) and len(image_hw) == 2 and np.isscalar(image_hw[0]):
        return float(image_hw[0]), float(image_hw[1])
    hw = image_hw
    if isinstance(like, torch.Tensor) and not isinstance(hw, torch.Tensor):
        hw = torch.as_tensor(np.asarray(hw), dtype=like.dtype, device=like.device)
    return hw[..., 0], hw[..., 1]


def bbox_info(center_xy: Array, box_size: Array, focal: Array, image_hw) -> Array:
    """Decoder bbox cue ((cx - W/2)/f, (cy - H/2)/f, b/f): (B,3), same dtype as center_xy.

    center_xy (B,2) px, box_size (B,) px side of the square box, focal (B,) or scalar px,
    image_hw (H, W) px or (B,2).
    """
    h, w = _hw(image_hw, center_xy)
    cx, cy = center_xy[..., 0], center_xy[..., 1]
    return _stack([(cx - w / 2) / focal, (cy - h / 2) / focal, box_size / focal + 0 * cx], center_xy)


def cam_to_translation(cam: Array, center_xy: Array, box_size: Array, focal: Array, image_hw) -> Array:
    """Weak-perspective crop camera (s, tx, ty) -> camera-frame translation (B,3), metres.

    tz = 2 f / (b s); tx' = tx + 2 (cx - W/2) / (s b); ty' = ty + 2 (cy - H/2) / (s b).
    Camera frame: x right, y down, z forward (OpenCV).
    """
    h, w = _hw(image_hw, cam)
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    cx, cy = center_xy[..., 0], center_xy[..., 1]
    sb = s * box_size
    return _stack([tx + 2 * (cx - w / 2) / sb, ty + 2 * (cy - h / 2) / sb, 2 * focal / sb], cam)


def focal_from_vfov(vfov_rad: Array | float, image_height_px: Array | float) -> Array | float:
    """Focal length in px from a vertical field of view: f = H / (2 tan(vfov / 2))."""
    if isinstance(vfov_rad, torch.Tensor):
        return image_height_px / (2 * torch.tan(vfov_rad / 2))
    if isinstance(vfov_rad, np.ndarray):
        return image_height_px / (2 * np.tan(vfov_rad / 2))
    return image_height_px / (2 * math.tan(vfov_rad / 2))
