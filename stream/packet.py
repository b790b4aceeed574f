"""What travels between stages: one `Packet` per captured frame.

Pixels never travel here: the source writes them into a shared-memory ring and the packet names
the slot (`FrameInfo.ring`, `FrameInfo.slot`); the runtime attaches a read-only view as
`Packet.image` for stages that ask for it. Everything else is small and pickles cheaply.

Conventions: pixel boxes are `xyxy` float32 in the frame's pixel grid; angles are radians in SKEL
order (`engines.skel.dofs.DOF_NAMES`); translations are metres in the OpenCV camera frame
(x right, y down, z forward); timestamps are integer nanoseconds.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class TrackState(str, enum.Enum):
    """Lifecycle of a tracked person (ByteTrack's states)."""
    TENTATIVE = "tentative"  # born, not yet confirmed
    TRACKED = "tracked"      # matched to a detection this frame, or coasting within the carry window
    LOST = "lost"            # unmatched, kept in the lost buffer for re-activation
    REMOVED = "removed"      # gone; its per-person state must be freed


class TrackEventKind(str, enum.Enum):
    """What happened to a track on this frame; per-person state downstream follows these."""
    BORN = "born"          # create per-person state
    UPDATED = "updated"    # matched as usual
    LOST = "lost"          # unmatched this frame (state may coast)
    REFOUND = "refound"    # re-activated after being lost: reset per-person state
    REMOVED = "removed"    # free per-person state


@dataclass(slots=True)
class TrackEvent:
    track_id: int
    kind: TrackEventKind


@dataclass(slots=True)
class FrameInfo:
    """Identity and timing of one captured frame."""
    stream_id: str
    seq: int                    # per stream, +1 per frame the source produced (gaps = drops)
    capture_ns: int             # time.monotonic_ns() when the frame was captured/decoded
    capture_utc_ns: int         # time.time_ns() at the same instant (wall clock, UTC)
    width: int
    height: int
    media_pts_s: float | None = None  # presentation time inside a file; None for live cameras
    ring: str = ""              # shared-memory ring name ("" = no pixels)
    slot: int = -1              # slot index in that ring
    last: bool = False          # end of a finite source (file ended): flush per-stream state
    corrupt_skipped: int = 0    # undecodable frames/packets the source skipped so far (this stream)
    px_scale: float = 1.0       # frame pixels per camera pixel: < 1 where the source scaled a large
    #                             frame down (sources.N.max_side_px); width/height are the frame's

    def __reduce__(self):
        return _positional(self)

    @property
    def stream_time_s(self) -> float:
        """Seconds on the stream's own clock: media time for files, monotonic capture time
        otherwise (what the tracker, the smoother and the preview all step by)."""
        return float(self.media_pts_s) if self.media_pts_s is not None else self.capture_ns * 1e-9


@dataclass(slots=True)
class Intrinsics:
    """Pinhole camera in pixels. `source`: 'user', 'flnet' or 'default' (a 60 deg guess)."""
    fx: float
    fy: float
    cx: float
    cy: float
    source: str = "default"


@dataclass(slots=True)
class Person:
    """One tracked person on one frame, filled in stage by stage."""
    # tracker
    track_id: int
    track_state: TrackState
    box_xyxy: np.ndarray                 # (4,) float32 px, tracker box
    score: float                         # detection confidence in [0, 1] (decays while coasting)
    crop_box_xyxy: np.ndarray | None = None  # (4,) float32 px, square, smoothed box for the pose engine
    box_predicted: bool = False          # no detection matched this frame; box from the motion model
    detector_hits: int = 0               # detector results that matched this track so far: a rise
    #                                      says a new result found this person (the pose stage reads
    #                                      it on the first frame it poses after, which in live mode
    #                                      need not be the frame the result came in on)
    # pose engine
    q: np.ndarray | None = None          # (46,) float32 rad, SKEL order
    betas: np.ndarray | None = None      # (10,) float32
    segments_m: np.ndarray | None = None  # (7,) float32 m, MEASURED_SEGMENTS order: the person's
    #                                      estimated segment lengths (None until estimated)
    trans_m: np.ndarray | None = None    # (3,) float32 m, camera frame (x right, y down, z fwd)
    pose_confidence: float = 1.0         # engine's confidence in [0, 1]
    dof_observed: np.ndarray | None = None  # (46,) bool; False = engine could not see it (prior held)
    body_seen: bool = False              # the engine found this person's body this frame, though it
    #                                      may withhold every angle (landmarks whose left and right
    #                                      were exchanged back): seen, for the publish hold
    model_id: str = ""                   # which engine/weights produced q
    fit_residual: float | None = None    # landmark engine: converged fit residual (m)
    # smoothing
    q_vel: np.ndarray | None = None      # (46,) float32 rad/s
    limit_active: np.ndarray | None = None  # (46,) bool; True where a joint limit clamped the state
    predicted: bool = False              # no fresh measurement: pose is the filter's prediction
    q_predicted: np.ndarray | None = None  # (46,) bool; True where q took no measurement this frame
    root_orient_wxyz: np.ndarray | None = None  # (4,) float32 unit quaternion, pelvis in camera frame
    trans_vel_mps: np.ndarray | None = None  # (3,) float32 m/s


@dataclass(slots=True)
class Packet:
    """Everything known about one frame; stages add to it and pass it on."""
    frame: FrameInfo
    persons: list[Person] = field(default_factory=list)
    events: list[TrackEvent] = field(default_factory=list)
    intrinsics: Intrinsics | None = None
    detections_xyxy: np.ndarray | None = None  # (N, 4) float32 px, raw detector output (this frame)
    detection_scores: np.ndarray | None = None  # (N,) float32
    timings_ns: dict[str, int] = field(default_factory=dict)  # stage name -> processing time
    image: np.ndarray | None = None      # (H, W, 3) uint8 BGR view; attached by the runtime, never pickled
    events_only: bool = False            # end-of-stream track events, not a captured frame: stages
                                         # apply the events, sinks neither publish nor record it

    def __reduce__(self):
        return _positional(self, skip="image")  # the pixel view lives in shared memory


def _positional(obj, skip: str = "") -> tuple:
    """Pickle a slots dataclass as its constructor arguments in field order (`skip` as None):
    half the bytes and time of the default state, which names every field."""
    return type(obj), tuple(None if f == skip else getattr(obj, f) for f in obj.__dataclass_fields__)
