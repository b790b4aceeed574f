"""Settings of the person detector (owner: detection)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from stream.config_base import StrictModel


class DetectorConfig(StrictModel):
    kind: Literal["blazepose", "hog", "yolo"] = "hog"
    every_n_frames: int = Field(1, ge=1)
    score_threshold: float = Field(0.3, ge=0.0, le=1.0)
