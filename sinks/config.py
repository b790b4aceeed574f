"""Settings of publishing, recording and preview (owner: sinks)."""
from __future__ import annotations

from stream.config_base import StrictModel


class PublisherConfig(StrictModel):
    enabled: bool = True
    endpoint: str = "tcp://127.0.0.1:5555"


class RecorderConfig(StrictModel):
    enabled: bool = False
    directory: str = "sessions"


class PreviewConfig(StrictModel):
    window: bool = False
    video_path: str | None = None
