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
    max_persons: int | None = Field(None, ge=1)
    """Pose only the N largest people in view (by box area) each frame; the rest stay tracked but
    are neither posed nor published. 1 = single-user setups (a webcam in front of one person, VR):
    a CPU engine's cost grows with every person, bystanders included. None = everyone."""
    min_confidence_to_publish: float = Field(0.4, ge=0.0, le=1.0)
    """A track is published only once the engine has posed it with at least this confidence and
    some observed DoF (a box on a static object, a poster, a coat on a chair never is); from then
    on every frame of it goes out, unobserved frames flagged by their confidence and dof_observed.
    0.4 (was 0.2): objects BlazePose poses as a body reach 0.24-0.38 on some frame (a black
    cylinder on Demo_SinglePerson cam02: 43-75 frames published; desk clutter on cam01), people
    in view 0.5-0.75 (BENCHMARKS.md, issue 14 fourth pass)."""
    hold_unseen_s: float = Field(0.5, ge=0.0)
    """A published track whose crop has shown nobody for longer than this (seconds of stream
    time) stops going out until it is seen again (its id is kept by the tracker)."""
    landmarks: LandmarkEngineConfig = LandmarkEngineConfig()
    skelcf: SkelCFConfig = SkelCFConfig()
