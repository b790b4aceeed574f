"""Settings of the joint-angle smoother (owner: smoothing)."""
from __future__ import annotations

from typing import Literal

from stream.config_base import StrictModel


class SmoothingConfig(StrictModel):
    enabled: bool = True
    preset: Literal["vr", "balanced", "analysis"] = "balanced"
