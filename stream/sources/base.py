"""What every video source provides to the source stage (owner: sources).

A `FrameSource` hides decoding, pacing, reconnects and corrupt-frame skipping; the source stage
(graph runtime) only calls `read()` in a loop and copies the pixels into the shared-memory ring.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class DecodedFrame:
    image: np.ndarray          # (H, W, 3) uint8 BGR, C-contiguous
    capture_ns: int            # time.monotonic_ns() when decoded/captured
    capture_utc_ns: int        # time.time_ns() at the same instant
    media_pts_s: float | None = None  # timestamp inside a file; None for live cameras


@dataclass(slots=True)
class SourceStats:
    frames: int = 0            # frames returned by read()
    corrupt_skipped: int = 0   # undecodable packets/frames skipped
    reconnects: int = 0        # successful reconnects after a drop
    reconnect_attempts: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def capped_size(width: int, height: int, max_side_px: int) -> tuple[int, int]:
    """The size a `width` x `height` frame is delivered at when its longer side may be at most
    `max_side_px` (0: no cap): divided by the smallest whole factor that fits (4K by 2, 8K by 3),
    both sides even (what YUV 4:2:0 and the swscale fast path need); unchanged when it fits.

    Why whole factors: shrinking by 2 is the mean of 2x2 pixels and cheaper than converting the
    frame (`PyAVSource._shrink`), while 2560 -> 1920 costs more CPU than it saves downstream
    (1440p60 here: 10.2 ms per frame in the source against 6.4 unscaled)."""
    factor = -(-max(width, height) // max_side_px) if max_side_px else 1
    if factor <= 1:
        return width, height
    return max(2, 2 * round(width / factor / 2)), max(2, 2 * round(height / factor / 2))


def shrink_interpolation(src: tuple[int, int], dst: tuple[int, int]) -> int:
    """OpenCV's area mean where `dst` divides `src` by a whole factor (its fast path), else
    bilinear (the area filter's general path is 10x slower)."""
    import cv2

    fx, fy = src[0] / dst[0], src[1] / dst[1]
    whole = fx == fy and fx.is_integer()
    return cv2.INTER_AREA if whole else cv2.INTER_LINEAR


def scaled_down(image: np.ndarray, native: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """`image` at `size` (width, height) when it comes at the source's `native` size and that is
    capped (`capped_size`); any other image as it is (a mixed folder or a renegotiated stream is
    fitted to the ring by the source stage)."""
    if size == native or image.shape[:2] != (native[1], native[0]):
        return image
    import cv2

    return cv2.resize(image, size, interpolation=shrink_interpolation(native, size))


class FrameSource(ABC):
    stream_id: str
    width: int                 # the size frames are delivered at (after `max_side_px`)
    height: int
    native_width: int          # the camera's / file's own size (the same unless scaled down)
    native_height: int
    fps: float | None          # nominal rate, None if unknown
    is_live: bool              # True for cameras/RTSP (drops allowed), False for files/folders

    @abstractmethod
    def read(self) -> DecodedFrame | None:
        """Next frame, or None when a finite source has ended. Raises SourceError when the source
        cannot go on (after reconnects are exhausted)."""

    @property
    @abstractmethod
    def stats(self) -> SourceStats: ...

    @property
    def paced_file(self) -> bool:
        """A finite source replayed at its own rate (not a camera): it may hold its clock while
        the graph warms up (`restart_clock`)."""
        return False

    def restart_clock(self) -> None:
        """Pace the frames after the last one read as if it had been read now."""

    def close(self) -> None:
        """Release the device/file/connection. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
