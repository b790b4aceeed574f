"""Settings of the tracker and the pose-crop boxes (owner: tracking).

Every threshold of the ByteTrack-style association lives here (none inline in the tracker). Motion
noise is relative to the box height, so one setting serves near and far people; times are in
seconds because frame intervals vary (dropped frames, variable-rate cameras).
"""
from __future__ import annotations

from pydantic import Field, model_validator

from stream.config_base import StrictModel


class CropConfig(StrictModel):
    """Square crop boxes for the pose engine: steadier than the tracker box, never losing the person."""
    scale: float = Field(1.25, ge=1.0, le=4.0)
    """Crop side = scale * max(box width, box height)."""
    center_time_constant_s: float = Field(0.15, ge=0.0)
    """Low-pass time constant of the crop centre (0 = follow the box exactly)."""
    size_time_constant_s: float = Field(0.4, ge=0.0)
    """Low-pass time constant of the crop side; sizes jitter more than centres with most detectors."""
    keep_box_inside: bool = True
    """Shift/grow the smoothed crop minimally when the tracker box would poke out of it."""
    min_side_px: float = Field(16.0, gt=0.0)


class TrackerConfig(StrictModel):
    high_score: float = Field(0.5, ge=0.0, le=1.0)
    """Detections at or above this score take part in the first association (ByteTrack step 2)."""
    low_score: float = Field(0.1, ge=0.0, le=1.0)
    """Detections in [low_score, high_score) only keep existing tracks alive (ByteTrack step 3)."""
    new_track_score: float = Field(0.6, ge=0.0, le=1.0)
    """An unmatched high detection starts a track only at or above this score."""
    match_iou_high: float = Field(0.2, ge=0.0, le=1.0)
    """Minimum IoU (times the detection score when fuse_score) for a high detection to match a track."""
    match_iou_low: float = Field(0.5, ge=0.0, le=1.0)
    """Minimum IoU for a low detection to match a track (stricter: low scores are often clutter)."""
    match_iou_tentative: float = Field(0.3, ge=0.0, le=1.0)
    """Minimum IoU (times the score when fuse_score) for a detection to confirm a tentative track."""
    fuse_score: bool = True
    """Association similarity = IoU * detection score (ByteTrack's fuse_score)."""
    confirm_max_dist_rel: float = Field(0.5, ge=0.0)
    """A tentative track left unmatched by IoU is confirmed by a high detection whose centre is
    within this many box heights of it (height ratio within refind_max_height_ratio): a walker a
    sixth of vtest.avi's frame tall moves ~0.25 heights between two detector runs (every third
    frame at 10 fps), an IoU of 0.28 with his first box, and was confirmed 7 runs late (0 = IoU only)."""
    confirm_hits: int = Field(2, ge=1)
    """Detector hits before a track is confirmed and goes downstream (the first frame confirms at once)."""
    first_frame_wrap_share: float = Field(0.9, ge=0.0, le=1.0)
    """A first frame's detection that holds this share of a smaller one of similar size (a box
    across two people, one of them found on their own; a body read once more with its arms) is
    not confirmed at once like the others: it must be found again. Confirmed, it took the
    detections of the person inside it, who was posed under the other track, and her id
    (Demo_MultiPerson cam02 stored on its side). 0 = off."""
    tentative_max_misses: int = Field(0, ge=0)
    """Detector runs a tentative track may go unmatched before it is dropped (ByteTrack: 0)."""
    carry_misses: int = Field(3, ge=0)
    """Detector runs without a match during which a confirmed track is still output (box_predicted)."""
    max_lost_s: float = Field(3.0, gt=0.0)
    """A track unmatched for longer than this (seconds since its last match) is removed; until
    then a detection near where it was expected takes its id back (glare, motion blur, a jump)."""
    refind_max_dist_rel: float = Field(1.0, ge=0.0)
    """Re-finding (after the IoU steps): an unmatched high detection takes the id of an unmatched
    coasting or lost track whose predicted centre is within this many box heights, with a height
    ratio within refind_max_height_ratio (0 = IoU only, as ByteTrack)."""
    refind_base_dist_rel: float = Field(0.35, ge=0.0)
    refind_dist_rel_per_s: float = Field(3.0, ge=0.0)
    """...and within refind_base_dist_rel + refind_dist_rel_per_s x the seconds since the track's
    last match (box heights; capped by refind_max_dist_rel): a person cannot be far from where
    the track expects them 50 ms after it last saw them. Unbounded, a man washed out by sunlight,
    missed by the detector for one run at 60 fps, had his track taken 0.66 heights away by a box
    on the glare, and he came back under a new id (Demo_MultiPerson cam03 made bright; issue 14,
    seventeenth pass). The base covers a box that changes shape (legs only, arms out)."""
    refind_max_height_ratio: float = Field(1.6, ge=1.0)
    size_by_longer_side: bool = True
    """The body size that the re-find, the confirmation by distance and re-identification measure
    distances and size ratios in ("box heights" above) is the longer side of the box: its height
    for anyone upright, its width for someone lying, in a flip or crouched with arms out. In
    heights, a man's track in a back flip off a box (Sports2D demo, live: detector results every
    ~6 frames) could not take his next boxes: in the air his track's box 380 px wide and 197
    tall, his detection 1.03 of the larger height away (0.55 of the longer side); on landing
    his upright box 1.9 times as tall as the flying one (1.03 times its longer side). He went
    on under a new id. False = the box height."""
    refind_skip_wrap_share: float = Field(0.9, ge=0.0, le=1.0)
    """Re-finding passes over a detection that holds at least this share of a detection matched
    in the same run (IoU over 0.1): it is the matched person read again with more around them
    (a box over them and the box they stand on, or over them and a neighbour), not the lost
    one. Such a box over the man on the box took the walking woman's track 0.96 of her height
    up onto him, and she went on under another id (Sports2D demo; issue 14, twenty-sixth pass).
    It may still confirm or start a track. 0 = off."""
    appearance_min_similarity: float = Field(0.5, ge=0.0, le=1.0)
    """A confirmed track is not matched with a detection whose clothing colours
    (tracking.appearance: the Bhattacharyya coefficient of the least alike of upper-body and leg
    colour histograms) are less similar to the track's running mean than this (0 = off). On
    vtest.avi's hand-labelled people the same person 2 s later falls under 0.5 in 2.3 % of pairs,
    someone else within two body heights in 49 % (dark jackets and jeans are not told apart)."""
    lost_after_tracked: bool = True
    """Detections go to the tracks followed at the last detector runs first, and only what they
    leave to tracks already lost (DeepSORT's matching cascade). Matched all at once, a lost track
    that never was anyone (a first frame's box across two people, left behind) took a person's
    detection where his box, widened by blur, overlapped its stale guess 0.61 against his own
    track's 0.58, and he went on under its id (Demo_MultiPerson cam02 with motion blur; BENCHMARKS.md,
    issue 14 sixteenth pass)."""
    reid_min_similarity: float = Field(0.8, ge=0.0, le=1.0)
    reid_max_dist_rel: float = Field(2.0, ge=0.0)
    """A new track about to be confirmed takes the id of the one unmatched (lost or coasting)
    confirmed track that looks alike (clothing colours >= reid_min_similarity) within this many
    body heights of where that track was expected (0 = off): a person back from behind a post or
    from a long detector gap under a new track. A positive cue, so stricter than the veto: on
    vtest's labels the same person 2 s later reaches 0.8 in 84 % of pairs, someone else within two
    body heights in 14 %, hence also 'the only such track'."""
    appearance_learning_rate: float = Field(0.2, gt=0.0, le=1.0)
    """Weight of a new detection's colours in the track's running mean."""
    appearance_max_overlap_iou: float = Field(0.2, ge=0.0, le=1.0)
    """A detection overlapping another by more than this IoU teaches its track no colours (it
    shows two people)."""
    duplicate_iou: float = Field(0.7, gt=0.0, le=1.0)
    """ByteTrack's remove_duplicate_stracks: a track matched this run and an unmatched one whose
    boxes overlap by more than this IoU are one person; the one with fewer hits is removed
    (1 = off). Without it a box the detector sometimes puts over two people (Demo_MultiPerson
    cam02) becomes a second track of the man beside him and the two trade his detections: his
    id broke once a run (70% of his frames under one id)."""
    score_decay_per_miss: float = Field(0.8, gt=0.0, le=1.0)
    """Output score multiplier per missed detector run while coasting."""
    accel_std_rel_per_s2: float = Field(1.0, gt=0.0)
    """Kalman white-noise acceleration of centre and height, in box heights per s^2."""
    aspect_accel_std_per_s2: float = Field(0.5, gt=0.0)
    """The same for the aspect ratio w/h (unitless per s^2)."""
    max_height_rate_per_s: float = Field(0.1, gt=0.0)
    """The box height changes by at most this share of itself per second in the motion model (a
    walker 3 m away nearing at 1.5 m/s: 0.5). One short box (a body half hidden) used to give a
    rate that shrank the prediction to a fifth in the two frames before the next detector run,
    and the person, seen whole again, was too tall to be re-found (vtest.avi, frame 189)."""
    meas_std_rel: float = Field(0.1, gt=0.0)
    """Detector box noise of centre and height, in box heights."""
    aspect_meas_std: float = Field(0.05, gt=0.0)
    init_vel_std_rel_per_s: float = Field(1.5, gt=0.0)
    """Initial velocity uncertainty of a new track, in box heights per second."""
    max_dt_s: float = Field(2.0, gt=0.0)
    """Longer frame gaps are treated as this long (a stalled camera should not explode covariances)."""
    shot_cut_distance: float = Field(0.3, gt=0.0, le=2.0)
    """A frame whose colour histogram lies this far (Bhattacharyya) from the last frame's starts a
    new shot: every track ends (REMOVED) and the detector looks at once (tracking/shot_cut.py;
    <= 0.09 between frames of uncut clips, 0.43-0.79 at cuts). More than 1 = never."""
    shot_cut_max_layout_similarity: float = Field(0.4, ge=-1.0, le=1.0)
    """...unless the frame's layout is still the last frame's (per-channel correlation of 32x24
    thumbnails, gain- and offset-free, at or over this): new light, not a new shot. Cuts read
    -0.21-0.19, an exposure change or a flickering lamp 0.58-0.85 (tracking/shot_cut.py). 1 = a
    colour change alone is a cut, as before issue 14's sixteenth pass."""
    max_tracks: int = Field(256, ge=1)
    """Cap on live tracks per stream; extra unmatched detections start no track (a warning says so)."""
    crop: CropConfig = CropConfig()

    @property
    def uses_appearance(self) -> bool:
        """Whether the tracker needs the detections' clothing colours: for the veto, or for
        re-identification (either alone needs them; the tracks learn them for both)."""
        return self.appearance_min_similarity > 0 or self.reid_max_dist_rel > 0

    @model_validator(mode="after")
    def _ordered(self) -> "TrackerConfig":
        if self.low_score > self.high_score:
            raise ValueError(f"tracker.low_score ({self.low_score}) must not exceed tracker.high_score "
                             f"({self.high_score}); lower low_score or raise high_score")
        if self.new_track_score < self.high_score:
            raise ValueError(f"tracker.new_track_score ({self.new_track_score}) must be >= "
                             f"tracker.high_score ({self.high_score}); a track can only start from a high detection")
        return self
