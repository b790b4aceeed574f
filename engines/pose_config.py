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
    first_poses_min_confidence: float = Field(0.2, ge=0.0, le=1.0)
    """A track whose first two poses that found landmarks (`Person.body_seen`; a crop that found
    nothing says nothing) both score below this is published only by the detector's word
    (`min_detection_score_to_publish`), not by a confident pose later: the landmark model shown
    the detector's box saw no body there, and a crop that then follows its own landmarks zooms
    in on whatever it guessed until it poses that (a desk object, 5 % of a 4K frame's height:
    0.07 and 0.06, then up to 0.61 from its sixth pose on, published on 45 of 100 frames).
    People's: at least one >= 0.32 on vtest.avi and the Demo clips, 0.48 for a woman 130 px tall
    whose first crop found nobody (Demo_MultiPerson cam02 at 362x640; counted, that empty pose
    held her back 24 frames). SKEL-CF, which reports no body_seen, is not judged so
    (BENCHMARKS.md, issue 14 fifteenth pass). 0 = off."""
    min_detection_score_to_publish: float = Field(0.8, ge=0.0, le=1.0)
    """Or: once the detector itself found the track with at least this score in a frame where it
    was posed with some observed DoF. A body the frame cuts (head and shoulders before a webcam,
    a video call) poses at 0.13-0.43 (its out-of-view limbs are guessed with low visibility) and
    was never published; the detector keys on faces: such a person scores 0.83-0.95 (p10-max),
    people in view 0.76-0.97, objects posed as bodies 0.28-0.65 (BENCHMARKS.md, issue 14 fifth
    pass). 1.0 (or more than any score) = off."""
    detector_word_min_found_share: float = Field(0.2, ge=0.0, le=1.0)
    """...but the detector's word publishes only a track whose crops found a body (landmarks, or
    some observed DoF) in at least this share of its posed frames since its birth (counting one
    frame found and one empty as a prior, so a young track is not judged on a frame or two). The
    detector scores a yellow cloth lying on vtest.avi's grass 0.77-0.87 on every run, for the
    whole clip; its crops found a body in 10 of 525 frames (confidence <= 0.17), and live, a new
    result on one of those frames sent it out as a person (confidence 0.07). People's tracks on
    vtest.avi: 0.25 and more at any frame the detector's word published them, 0.49 and more over
    a whole track (BENCHMARKS.md, issue 14 twenty-second pass). 0 = off."""
    hold_unseen_s: float = Field(0.3, ge=0.0)
    """A published track whose crop has shown nobody for longer than this (seconds of stream
    time) stops going out until it is seen again (its id is kept by the tracker). Held, its box
    is the tracker's prediction and drifts: on vtest.avi (hand-labelled every 20th frame, tuned
    there) 0.5 s published 11 held boxes on nobody in 200, 0.3 s 5 in 192 with every visible
    person-frame kept, 0.2 s 2 in 185 with one lost (BENCHMARKS.md, issue 14 seventh pass)."""
    hold_max_shift_rel: float = Field(0.5, ge=0.0)
    """...and only while its box stays within this many heights (centre distance) of the box it
    was last seen in: a walker moves ~0.25 heights in the 0.3 s hold; a track re-found on someone
    or something else, where its crop then shows nobody, carried the held pose 1.3 heights away
    (vtest.avi live). 0 = off."""
    landmarks: LandmarkEngineConfig = LandmarkEngineConfig()
    skelcf: SkelCFConfig = SkelCFConfig()
