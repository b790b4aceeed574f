"""Settings of the pose engine: which engine, and each engine's own block."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from stream.config_base import StrictModel
from engines.landmarks.config import LandmarkEngineConfig
from engines.skelcf.config import SkelCFConfig


class PoseConfig(StrictModel):
    engine: Literal["landmarks", "skelcf"] = "landmarks"
    focal_px: float | None = Field(None, gt=0.0)  # user-given focal length; overrides FLNet/default
    landmarks: LandmarkEngineConfig = LandmarkEngineConfig()
    skelcf: SkelCFConfig = SkelCFConfig()
