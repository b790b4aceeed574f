"""Settings of the CPU landmark-fitting engine (owner: landmarks)."""
from __future__ import annotations

from pydantic import Field

from stream.config_base import StrictModel


class LandmarkEngineConfig(StrictModel):
    """BlazePose full (bundled in mediapipe) per person crop, then a joint-limited SKEL fit."""
    body_height_m: float = Field(1.70, gt=0.5, lt=2.5)  # generic skeleton scale before per-person lengths
    crop_size_px: int = Field(256, ge=96, le=1024)     # person crop is resized to this square
    min_detection_confidence: float = Field(0.5, ge=0.0, le=1.0)
    min_tracking_confidence: float = Field(0.5, ge=0.0, le=1.0)
    max_models: int = Field(8, ge=1, le=64)            # landmark graphs kept (one per track, LRU)
    warm_models: int = Field(4, ge=0, le=64)           # graphs initialised at start-up; an ended track's graph is reused
    min_visibility: float = Field(0.5, ge=0.0, le=1.0)  # below: landmark unseen, its DoFs held at the prior
    prior_weight: float = Field(0.1, ge=0.0)           # m per rad: pull of fitted DoFs to the mean pose (0.02 before the image term; bench_accuracy)
    max_iterations: int = Field(6, ge=1, le=100)       # LM iterations per frame (warm-started); 6 (was 8) keeps the image term within the old cost, same accuracy
    first_frame_iterations: int = Field(40, ge=1, le=500)  # cold start of a new person
    segment_frames: int = Field(15, ge=1, le=1000)     # clear views to estimate segment lengths from (p75)
    image_weight: float = Field(2.0, ge=0.0)           # fit the 2D landmarks too (1 px at the person's depth vs 1 m * this in 3D); 0: world landmarks only
    depth_trust: float = Field(1.0, gt=0.0, le=1.0)    # weight of BlazePose's depth relative to x/y when fitting to pixels
    skel_model_path: str | None = None                 # licensed skel_<gender>.pkl: exact rest joints (optional)
    skel_gender: str = Field("male", pattern="^(male|female)$")
