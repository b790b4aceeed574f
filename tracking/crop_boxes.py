"""Square crop boxes for the pose engine, smoothed more heavily than the tracker box.

A steady crop gives steadier poses: the pose network sees the person at the same place and scale
from frame to frame. Centre and side are low-passed with time constants (real dt, so frame drops do
not change the smoothing), then the crop is shifted or grown just enough to contain the tracker box
(heavy smoothing must never cut a walking person off), and finally moved inside the frame where it
fits. A track that is coasting (detector missed it) keeps its crop moving with the predicted box;
the crop state is freed with the track.
"""
from __future__ import annotations

import math

import numpy as np

from tracking.config import CropConfig


def square_around(box_xyxy: np.ndarray, scale: float, min_side_px: float) -> tuple[float, float, float]:
    """(4,) xyxy -> (centre x, centre y, side) of the square scale * max(w, h) around it."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    side = max(scale * max(x2 - x1, y2 - y1), min_side_px)
    return 0.5 * (x1 + x2), 0.5 * (y1 + y2), side


def fit_into_frame(cx: float, cy: float, side: float, width: int, height: int) -> tuple[float, float]:
    """Shift a square so it lies inside the frame; along an axis where it is larger than the frame,
    centre it on the frame (equal padding both sides). A box inside the frame that the square
    contained stays contained."""
    half = 0.5 * side
    cx = min(max(cx, half), width - half) if side <= width else 0.5 * width
    cy = min(max(cy, half), height - half) if side <= height else 0.5 * height
    return cx, cy


class CropBoxes:
    """Per-track crop state of one stream: (centre x, centre y, side, last time)."""

    def __init__(self, cfg: CropConfig | None = None):
        self.cfg = cfg or CropConfig()
        self._state: dict[int, tuple[float, float, float, float]] = {}

    def __len__(self) -> int:
        return len(self._state)

    def forget(self, track_id: int) -> None:
        """Track removed or re-found: drop its crop so the next one starts from the box."""
        self._state.pop(track_id, None)

    def clear(self) -> None:
        self._state.clear()

    def update(self, track_id: int, box_xyxy: np.ndarray, t_s: float, width: int, height: int) -> np.ndarray:
        """Crop for one track at time `t_s` (seconds): (4,) float32 xyxy px, square."""
        cfg = self.cfg
        bx, by, bside = square_around(box_xyxy, cfg.scale, cfg.min_side_px)
        prev = self._state.get(track_id)
        if prev is None:
            cx, cy, side = bx, by, bside
        else:
            pcx, pcy, pside, pt = prev
            dt = max(t_s - pt, 0.0)
            a_c = 1.0 - math.exp(-dt / cfg.center_time_constant_s) if cfg.center_time_constant_s > 0 else 1.0
            a_s = 1.0 - math.exp(-dt / cfg.size_time_constant_s) if cfg.size_time_constant_s > 0 else 1.0
            cx = pcx + a_c * (bx - pcx)
            cy = pcy + a_c * (by - pcy)
            side = pside + a_s * (bside - pside)
        if cfg.keep_box_inside:
            cx, cy, side = _contain(cx, cy, side, np.asarray(box_xyxy, dtype=float), width, height)
        self._state[track_id] = (cx, cy, side, t_s)
        fx, fy = fit_into_frame(cx, cy, side, width, height)
        h = 0.5 * side
        return np.array([fx - h, fy - h, fx + h, fy + h], dtype=np.float32)


def _contain(cx: float, cy: float, side: float, box: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """Grow, then shift, the square minimally so it contains the (frame-clipped) box."""
    x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
    x2, y2 = min(box[2], float(width)), min(box[3], float(height))
    if x2 <= x1 or y2 <= y1:   # box entirely outside the frame: nothing to contain
        return cx, cy, side
    side = max(side, x2 - x1, y2 - y1)
    h = 0.5 * side
    cx += max(0.0, x2 - (cx + h)) - max(0.0, (cx - h) - x1)
    cy += max(0.0, y2 - (cy + h)) - max(0.0, (cy - h) - y1)
    return cx, cy, side
