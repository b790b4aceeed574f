"""Settings of the CPU landmark-fitting engine (owner: landmarks)."""
from __future__ import annotations

from pydantic import Field

from stream.config_base import StrictModel


class LandmarkEngineConfig(StrictModel):
    body_height_m: float = Field(1.70, gt=0.5, lt=2.5)
