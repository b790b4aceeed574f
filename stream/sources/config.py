"""Settings of one video source (owner: sources)."""
from __future__ import annotations

from typing import Literal

from stream.config_base import StrictModel


class SourceConfig(StrictModel):
    uri: str = "sample"  # file path, rtsp://..., webcam:0, /dev/video0, folder/, synthetic:, sample
    stream_id: str | None = None  # default: cam0, cam1, ... in config order
    mode: Literal["live", "lossless"] = "live"
    pace: Literal["native", "fast"] = "native"  # files: simulate a live camera or go flat out
