"""Settings of the tracker and the pose-crop boxes (owner: tracking)."""
from __future__ import annotations

from pydantic import Field

from stream.config_base import StrictModel


class TrackerConfig(StrictModel):
    high_score: float = Field(0.5, ge=0.0, le=1.0)
    low_score: float = Field(0.1, ge=0.0, le=1.0)
    max_lost_s: float = Field(1.0, gt=0.0)
