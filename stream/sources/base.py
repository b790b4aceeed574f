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


class FrameSource(ABC):
    stream_id: str
    width: int
    height: int
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
