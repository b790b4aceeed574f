"""BlazePose's left/right slips on real footage: undone before the fit, never published as measured."""
from __future__ import annotations

import numpy as np
import pytest

from engines.pose_engine import default_intrinsics
from reference_helpers import demo_dir
from stream.packet import Person, TrackState
from test_landmarks_engine import box_from_landmarks, read_frames

DEMO = demo_dir()
R_SHOULDER, L_SHOULDER = 12, 11   # BlazePose indices


@pytest.mark.skipif(DEMO is None, reason="pose2sim demo not installed (pip install --no-deps pose2sim==0.10.49)")
def test_real_left_right_slips_are_relabelled_and_not_published_as_measured():
    """cam02 of Demo_SinglePerson faces the walker (~22 deg): their right shoulder is on the
    image's left. From frame ~35 BlazePose labels the sides the other way round on and off
    (the four-camera reference confirms the slips). Every frame whose raw labels are flipped is
    relabelled once the crop follows the walker, and those frames carry no measured DoF (the smoother publishes its prediction,
    flagged q_predicted), although the fit itself would have called them observed; the person
    is still seen there (`body_seen`: the pose stage's publish hold does not run down)."""
    from engines.landmarks.engine import LandmarkPoseEngine

    frames = read_frames(DEMO / "videos" / "cam02.mp4", 51)
    h, w = frames[0].shape[:2]
    k = default_intrinsics(w, h)
    eng = LandmarkPoseEngine()
    box = np.array([0, 0, w, h], np.float32)
    flipped, relabelled, measured, fit_observed, seen = [], [], [], [], []
    for img in frames:
        p = Person(track_id=1, track_state=TrackState.TRACKED, box_xyxy=box, score=1.0, crop_box_xyxy=box)
        eng.estimate(img, [p], k, "cam02")
        lm, fit = eng.last_landmarks.get(("cam02", 1)), eng.last_fit.get(("cam02", 1))
        assert lm is not None and fit is not None
        flipped.append(lm.image_px[R_SHOULDER, 0] > lm.image_px[L_SHOULDER, 0])
        relabelled.append(fit.relabelled)
        measured.append(bool(p.dof_observed.any()))
        fit_observed.append(bool(fit.observed.any()))
        seen.append(p.body_seen)
        box = box_from_landmarks(lm, w, h)
    eng.close()
    # from frame 5 on: the first frames are posed on the whole 1088x1920 image (the person is
    # small there, their sides nearly overlap, frame 2 flips with no clean frame to compare to)
    flipped, relabelled, measured = (np.array(x)[5:] for x in (flipped, relabelled, measured))
    assert flipped.sum() >= 4, np.flatnonzero(flipped)                 # the slips are there
    assert (relabelled == flipped).all(), (np.flatnonzero(relabelled), np.flatnonzero(flipped))  # each found, nothing else
    assert not measured[relabelled].any()                              # none published as measured
    assert measured[~relabelled].all() and all(fit_observed)           # the rest are
    assert all(seen)
