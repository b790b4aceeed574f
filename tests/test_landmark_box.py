"""What the landmark engine publishes as a person's box, and a person at the frame's edge.

Real footage: Demo_MultiPerson cam02 (pose2sim wheel), frame 30, where the woman (B) stands at the
left edge of the portrait frame, seen from behind, next to the man (A). Boxes: the hand labels of
bench/labels/multiperson_boxes.csv and the tracker boxes the default run had there."""
from __future__ import annotations

import numpy as np
import pytest

from engines.pose_engine import default_intrinsics
from stream.packet import Person, TrackState
from test_landmarks_engine import read_frames
from test_multiperson_e2e import demo_clip
from tracking.bytetrack import iou_matrix
from tracking.crop_boxes import fit_into_frame, square_around

LABEL_A = np.array([290, 410, 680, 1130], np.float32)
LABEL_B = np.array([30, 640, 350, 1450], np.float32)
TRACKER_A = np.array([238, 410, 794, 1221], np.float32)   # the detector's loose box on the man
TRACKER_B = np.array([8, 679, 351, 1474], np.float32)


@pytest.fixture(scope="module")
def frame30() -> np.ndarray:
    path = demo_clip("cam02")
    if path is None:
        pytest.skip("pose2sim demo videos not installed (pip install --no-deps pose2sim==0.10.49)")
    return read_frames(path, 31)[30]


def shifted_crop(box: np.ndarray, w: int, h: int) -> np.ndarray:
    """The tracker's crop box: 1.25 x the box, moved inside the frame (tracking/crop_boxes.py)."""
    cx, cy, side = square_around(box, 1.25, 16.0)
    cx, cy = fit_into_frame(cx, cy, side, w, h)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def _persons(w: int, h: int) -> list[Person]:
    return [Person(track_id=i, track_state=TrackState.TRACKED, box_xyxy=b.copy(), score=0.9,
                   crop_box_xyxy=shifted_crop(b, w, h)) for i, b in ((1, TRACKER_A), (2, TRACKER_B))]


def test_published_box_is_the_landmarks_extent_not_the_loose_tracker_box(frame30):
    from engines.landmarks.engine import LandmarkPoseEngine

    h, w = frame30.shape[:2]
    eng = LandmarkPoseEngine()
    a, b = persons = _persons(w, h)
    eng.estimate(frame30, persons, default_intrinsics(w, h), "cam0")
    for p, label in ((a, LABEL_A), (b, LABEL_B)):
        assert p.dof_observed.any()
        iou = iou_matrix(p.box_xyxy[None].astype(float), label[None].astype(float))[0, 0]
        assert iou >= 0.6, (p.track_id, iou)   # his arm is out to the side: not in the label
        assert 0 <= p.box_xyxy[0] and p.box_xyxy[2] <= w and 0 <= p.box_xyxy[1] and p.box_xyxy[3] <= h
    # the man's box no longer reaches over the woman (the tracker's did: x 238 < her right edge
    # 350) nor far past his hand (794)
    assert a.box_xyxy[0] > LABEL_B[2] - 40 and a.box_xyxy[2] < TRACKER_A[2] - 40


def test_person_at_the_frame_edge_is_posed_as_herself(frame30):
    """Her crop box, shifted into the frame, has the man in its middle: its landmarks are his (a
    duplicate, dropped); the retry on a square centred on her own box finds her."""
    from engines.landmarks.engine import LandmarkPoseEngine

    h, w = frame30.shape[:2]
    eng = LandmarkPoseEngine()
    persons = _persons(w, h)
    eng.estimate(frame30, persons, default_intrinsics(w, h), "cam0")
    b = persons[1]
    assert b.dof_observed.any() and b.pose_confidence > 0.3
    lms = eng.last_landmarks[("cam0", 2)]
    seen = lms.image_px[lms.visibility >= 0.5]
    inside = ((seen[:, 0] >= LABEL_B[0] - 20) & (seen[:, 0] <= LABEL_B[2] + 20)
              & (seen[:, 1] >= LABEL_B[1] - 20) & (seen[:, 1] <= LABEL_B[3] + 20))
    assert inside.mean() > 0.9 and eng.retries >= 1
