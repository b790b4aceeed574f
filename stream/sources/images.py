"""A folder of images played as a video at a given rate (sorted by file name, natural order).

Unreadable images are skipped and counted like corrupt frames; an image of another size is passed
through (the source stage resizes it to the first frame's size and counts it).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np

from stream.errors import SourceError
from stream.sources.base import DecodedFrame, FrameSource, SourceStats, capped_size, scaled_down
from stream.sources.config import SourceConfig

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _natural_key(path: Path) -> list:
    # img2.png before img10.png, as a person numbering frames expects
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()),
                  key=_natural_key)


class ImageFolderSource(FrameSource):
    """Images of `folder` at cfg.fps (default 30); media_pts_s = index / fps."""

    def __init__(self, folder: str | Path, stream_id: str, cfg: SourceConfig):
        self.folder = Path(folder)
        self.stream_id = stream_id
        self.cfg = cfg
        self.fps = cfg.fps or 30.0
        self.is_live = bool(cfg.live)
        self._stats = SourceStats()
        self._files = list_images(self.folder)
        if not self._files:
            raise SourceError(f"image folder {self.folder} has no images ({', '.join(IMAGE_EXTS[:3])}, ...); "
                              f"add some or pass a video file")
        self._index = 0
        self._t0: int | None = None
        self._first: np.ndarray | None = None
        while self._first is None and self._index < len(self._files):
            self._first = self._load(self._files[self._index])
            if self._first is None:
                self._index += 1
        if self._first is None:
            raise SourceError(f"no image in {self.folder} could be decoded ({len(self._files)} files); "
                              f"check the files")
        self.native_height, self.native_width = self._first.shape[:2]
        self.width, self.height = capped_size(self.native_width, self.native_height, cfg.max_side_px)
        self._position = 0  # frames emitted (drives the pacing clock and media_pts_s)

    def _load(self, path: Path) -> np.ndarray | None:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            self._stats.corrupt_skipped += 1
        return image

    def read(self) -> DecodedFrame | None:
        if self.cfg.max_frames and self._stats.frames >= self.cfg.max_frames:
            return None
        image = None
        if self._first is not None:
            image, self._first = self._first, None
        while image is None:
            self._index += 1
            if self._index >= len(self._files):
                if not self.cfg.loop:
                    return None
                self._index = 0
            image = self._load(self._files[self._index])
        pts = self._position / self.fps
        if self.cfg.pace == "native":
            now = time.monotonic_ns()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + int(pts * 1e9)
            if due > now:
                time.sleep((due - now) / 1e9)
        self._position += 1
        self._stats.frames += 1
        image = scaled_down(image, (self.native_width, self.native_height), (self.width, self.height))
        return DecodedFrame(image=np.ascontiguousarray(image), capture_ns=time.monotonic_ns(),
                            capture_utc_ns=time.time_ns(), media_pts_s=pts)

    @property
    def paced_file(self) -> bool:
        return self.cfg.pace == "native" and not self.is_live

    def restart_clock(self) -> None:
        if self._position:
            self._t0 = time.monotonic_ns() - int((self._position - 1) / self.fps * 1e9)

    @property
    def stats(self) -> SourceStats:
        return self._stats
