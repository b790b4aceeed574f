"""V4L2 webcams (`webcam:0`, `/dev/video0`) through OpenCV's VideoCapture.

Why OpenCV here and PyAV for files: VideoCapture negotiates MJPEG/YUYV formats and sizes with
V4L2 drivers reliably; PyAV's v4l2 demuxer needs the exact format spelled out per camera.
"""
from __future__ import annotations

import os
import re
import time

import numpy as np

from stream.errors import SourceError
from stream.sources.base import DecodedFrame, FrameSource, SourceStats, capped_size, scaled_down
from stream.sources.config import SourceConfig

_READ_FAILURES_BEFORE_ERROR = 30  # consecutive failed grabs (about 1 s) = the camera is gone


def parse_webcam(uri: str) -> tuple[int | str, str]:
    """`webcam:N` or `/dev/videoN` -> (index or path for VideoCapture, device path)."""
    m = re.fullmatch(r"webcam:(\d+)", uri.strip())
    if m:
        return int(m.group(1)), f"/dev/video{m.group(1)}"
    m = re.fullmatch(r"/dev/video(\d+)", uri.strip())
    if m:
        return int(m.group(1)), uri.strip()
    raise SourceError(f"not a webcam URI: {uri}; use webcam:0 or /dev/video0")


class WebcamSource(FrameSource):
    """Live frames of a V4L2 camera; cfg.width/height/fps are requests the driver may round."""

    def __init__(self, uri: str, stream_id: str, cfg: SourceConfig):
        import cv2

        self.stream_id = stream_id
        self.cfg = cfg
        self.is_live = True if cfg.live is None else cfg.live
        self._stats = SourceStats()
        index, device = parse_webcam(uri)
        if not os.path.exists(device):
            raise SourceError(f"no webcam at {device} (device node missing); plug a camera in, check "
                              f"`ls /dev/video*`, or pass --source with a file or rtsp:// URL")
        self._cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"webcam {device} exists but cannot be opened (busy or no permission); "
                              f"close other apps using it or add yourself to the 'video' group")
        if cfg.width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        if cfg.height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps:
            self._cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a stale queue
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"webcam {device} opened but delivered no frame; check the camera or "
                              f"try another index")
        self._first: np.ndarray | None = first
        self.native_height, self.native_width = first.shape[:2]
        self.width, self.height = capped_size(self.native_width, self.native_height, cfg.max_side_px)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        self.device = device

    def read(self) -> DecodedFrame | None:
        if self.cfg.max_frames and self._stats.frames >= self.cfg.max_frames:
            return None
        image, self._first = self._first, None
        failures = 0
        while image is None:
            ok, image = self._cap.read()
            if not ok:
                image = None
                failures += 1
                self._stats.corrupt_skipped += 1
                if failures >= _READ_FAILURES_BEFORE_ERROR:
                    raise SourceError(f"webcam {self.device} stopped delivering frames (unplugged?); "
                                      f"reconnect it and restart")
                time.sleep(0.03)
        self._stats.frames += 1
        capture_ns, capture_utc_ns = time.monotonic_ns(), time.time_ns()  # before any scaling
        image = scaled_down(image, (self.native_width, self.native_height), (self.width, self.height))
        return DecodedFrame(image=np.ascontiguousarray(image), capture_ns=capture_ns,
                            capture_utc_ns=capture_utc_ns, media_pts_s=None)

    @property
    def stats(self) -> SourceStats:
        return self._stats

    def close(self) -> None:
        cap, self._cap = getattr(self, "_cap", None), None
        if cap is not None:
            cap.release()
