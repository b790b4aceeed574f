"""A deterministic moving test pattern (`synthetic:`): needs no file, camera or network.

Frame k depends only on k, so two runs (or a dropped frame) can be checked pixel for pixel: the
top-left strip encodes k in binary (16 white/black cells), a ball and a box move on fixed paths
and a stick figure walks across the frame (person-like shape for detector smoke tests).
"""
from __future__ import annotations

import math
import time

import cv2
import numpy as np

from stream.sources.base import DecodedFrame, FrameSource, SourceStats
from stream.sources.config import SourceConfig

CODE_BITS = 16   # frame index bits in the top-left strip
CODE_CELL_PX = 8  # each bit is a CODE_CELL_PX x CODE_CELL_PX square


def encode_index(image: np.ndarray, k: int) -> None:
    """Write k (mod 2**16) as white/black cells into row 0 of `image` (H, W, 3) uint8 in place."""
    c = CODE_CELL_PX
    for b in range(CODE_BITS):
        image[:c, b * c:(b + 1) * c] = 255 if (k >> b) & 1 else 0


def decode_index(image: np.ndarray) -> int:
    """Inverse of `encode_index` (robust to mild compression: thresholds each cell's mean)."""
    c = CODE_CELL_PX
    return sum(1 << b for b in range(CODE_BITS) if image[1:c - 1, b * c + 1:(b + 1) * c - 1].mean() > 127)


def render(k: int, width: int, height: int, fps: float) -> np.ndarray:
    """Frame k of the pattern: (height, width, 3) uint8 BGR."""
    t = k / fps
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 0.5 + 40).astype(np.uint8)          # blue ramps left to right
    img[..., 1] = (y * 0.5 + 40).astype(np.uint8)          # green ramps top to bottom
    img[..., 2] = np.uint8(60)
    s = min(width, height)
    # ball on a Lissajous path, box sliding horizontally
    bx = int(width * (0.5 + 0.35 * math.sin(2 * math.pi * 0.25 * t)))
    by = int(height * (0.5 + 0.3 * math.sin(2 * math.pi * 0.4 * t)))
    cv2.circle(img, (bx, by), max(2, s // 12), (0, 200, 255), -1, cv2.LINE_AA)
    rx = int((width * 0.2 * t) % width)
    cv2.rectangle(img, (rx, int(height * 0.7)), (rx + s // 8, int(height * 0.7) + s // 8), (255, 80, 80), -1)
    _stick_figure(img, t, width, height)
    if width >= CODE_BITS * CODE_CELL_PX and height >= CODE_CELL_PX:
        encode_index(img, k)
    return img


def _stick_figure(img: np.ndarray, t: float, width: int, height: int) -> None:
    """A walking stick figure, about 60% of the frame height."""
    h = 0.6 * height
    cx = width * (0.15 + 0.7 * ((0.08 * t) % 1.0))
    top = height * 0.2
    swing = 0.35 * math.sin(2 * math.pi * 1.0 * t)
    head_r = max(2, int(h * 0.08))
    neck = (cx, top + 2 * head_r)
    hip = (cx, top + h * 0.55)
    col, th = (230, 230, 230), max(1, int(h * 0.03))

    def limb(origin, length, angle):
        end = (origin[0] + length * math.sin(angle), origin[1] + length * math.cos(angle))
        cv2.line(img, (int(origin[0]), int(origin[1])), (int(end[0]), int(end[1])), col, th, cv2.LINE_AA)

    cv2.circle(img, (int(cx), int(top + head_r)), head_r, col, -1, cv2.LINE_AA)
    cv2.line(img, (int(neck[0]), int(neck[1])), (int(hip[0]), int(hip[1])), col, th, cv2.LINE_AA)
    for sgn in (1, -1):
        limb(neck, h * 0.3, sgn * swing)   # arms
        limb(hip, h * 0.45, -sgn * swing)  # legs


class SyntheticSource(FrameSource):
    """`synthetic:` pattern at cfg.fps (default 30) and cfg.width x cfg.height (default 640x480).

    Not live (every frame is reproducible); endless unless `max_frames` is set."""

    def __init__(self, stream_id: str, cfg: SourceConfig):
        self.stream_id = stream_id
        self.cfg = cfg
        self.width = cfg.width or 640
        self.height = cfg.height or 480
        self.fps = cfg.fps or 30.0
        self.is_live = bool(cfg.live)
        self._stats = SourceStats()
        self._t0: int | None = None

    def read(self) -> DecodedFrame | None:
        k = self._stats.frames
        if self.cfg.max_frames and k >= self.cfg.max_frames:
            return None
        image = render(k, self.width, self.height, self.fps)
        if self.cfg.pace == "native":
            now = time.monotonic_ns()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + int(k * 1e9 / self.fps)
            if due > now:
                time.sleep((due - now) / 1e9)
        self._stats.frames += 1
        return DecodedFrame(image=image, capture_ns=time.monotonic_ns(), capture_utc_ns=time.time_ns(),
                            media_pts_s=k / self.fps)

    @property
    def stats(self) -> SourceStats:
        return self._stats
