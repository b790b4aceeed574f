"""Clothing colours as a veto in the tracker (tracking/appearance.py, ByteTracker): the cue
itself on drawn figures and on vtest.avi's hand-labelled people, a track that does not take a
detection that clearly looks like someone else, and a person whose colours change at once
(turned round, out of the shade) who keeps the id."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from conftest import VTEST, needs_shared
from stream.packet import TrackEventKind
from tracking.appearance import DIM, appearance_features, appearance_similarity
from tracking.bytetrack import ByteTracker
from tracking.config import TrackerConfig

LABELS = Path(__file__).resolve().parents[1] / "bench" / "labels" / "multiperson_boxes.csv"

RED, BLACK, JEANS = (40, 40, 200), (35, 30, 30), (140, 90, 50)   # BGR
BOX = np.array([100.0, 60.0, 160.0, 240.0])


def figure(top_bgr, legs_bgr=JEANS, exposure: float = 1.0) -> np.ndarray:
    """A grey street with one figure in BOX: a jacket of `top_bgr` above jeans."""
    img = np.full((300, 400, 3), 128, np.uint8)
    x0, y0, x1, y1 = BOX.astype(int)
    mid = y0 + (y1 - y0) // 2
    cv2.rectangle(img, (x0 + 10, y0), (x1 - 10, y0 + 25), (60, 80, 120), -1)     # head
    cv2.rectangle(img, (x0, y0 + 25), (x1, mid), top_bgr, -1)
    cv2.rectangle(img, (x0 + 5, mid), (x1 - 5, y1), legs_bgr, -1)
    return np.clip(img.astype(np.float32) * exposure, 0, 255).astype(np.uint8)


def look(img: np.ndarray) -> np.ndarray:
    return appearance_features(img, BOX[None])


def test_colours_tell_two_jackets_apart_and_do_not_mind_the_exposure():
    red, black = look(figure(RED)), look(figure(BLACK))
    assert appearance_similarity(red, look(figure(RED, exposure=0.6)))[0, 0] > 0.9
    assert appearance_similarity(red, black)[0, 0] < 0.5
    # a box wholly outside the frame is unknown, and unknown never vetoes
    off = appearance_features(figure(RED), np.array([[500.0, 10.0, 560.0, 100.0]]))
    assert not off.any() and appearance_similarity(off, red)[0, 0] == 1.0


@needs_shared(VTEST)
def test_on_vtest_the_same_person_looks_alike_and_half_the_people_nearby_do_not():
    """The hand-labelled people of vtest.avi (every 20th frame): the same person 2 s later is
    under the veto's 0.5 in under 5 % of pairs (measured 2.3 %), someone else within two body
    heights in the same frame in over 40 % (measured 49 %: its actors mostly wear dark jackets
    and jeans, which the cue cannot tell apart). Glare (the frame twice as bright, clipped)
    takes nobody under it (measured: 0.60 at worst)."""
    labels: dict[int, list[tuple[str, list[float]]]] = {}
    for row in csv.reader(line for line in LABELS.open() if not line.startswith("#")):
        if row and row[0] == "vtest":
            labels.setdefault(int(row[1]), []).append((row[2].split("/")[0], [float(v) for v in row[3:7]]))
    cap = cv2.VideoCapture(str(VTEST))
    looks: dict[int, dict[str, np.ndarray]] = {}
    glare = []
    for f in range(max(labels) + 1):
        ok, img = cap.read()
        assert ok
        if f in labels:
            boxes = np.array([b for _, b in labels[f]])
            looks[f] = dict(zip([p for p, _ in labels[f]], appearance_features(img, boxes)))
            bright = appearance_features(np.clip(img.astype(np.float32) * 2.0, 0, 255).astype(np.uint8), boxes)
            glare += [appearance_similarity(a[None], b[None])[0, 0] for a, b in zip(looks[f].values(), bright)]
    thr = TrackerConfig().appearance_min_similarity
    assert len(glare) == sum(map(len, labels.values())) and min(glare) >= thr
    same, near = [], []
    for f, people in looks.items():
        later = looks.get(f + 20, {})
        same += [appearance_similarity(x[None], later[p][None])[0, 0] for p, x in people.items() if p in later]
        boxes = dict(labels[f])
        for p, x in people.items():
            for q, y in people.items():
                a, b = np.array(boxes[p]), np.array(boxes[q])
                h = max(a[3] - a[1], b[3] - b[1])
                if p < q and np.hypot(*((a[:2] + a[2:] - b[:2] - b[2:]) / 2)) < 2 * h:
                    near.append(appearance_similarity(x[None], y[None])[0, 0])
    same, near = np.array(same), np.array(near)
    assert len(same) > 200 and len(near) > 200
    assert (same < thr).mean() < 0.05
    assert (near < thr).mean() > 0.40


def _tracker(veto: bool) -> ByteTracker:
    return ByteTracker(TrackerConfig(appearance_min_similarity=0.5 if veto else 0.0,
                                     refind_max_dist_rel=1.0, carry_misses=3))


def _walk(tr: ByteTracker, looks_of_run: list[np.ndarray], dx: float = 4.0) -> list:
    """One person walking right, a detection per run (0.1 s apart) with the given look."""
    frames = []
    for k, lk in enumerate(looks_of_run):
        box = BOX + np.array([dx * k, 0, dx * k, 0])
        frames.append(tr.update(box[None], np.array([0.9]), 0.1 * k, lk))
    return frames


def test_a_track_does_not_take_a_detection_that_looks_like_someone_else():
    """A track followed in a red jacket; the next detection where it is expected is a man in
    black (the red one stepped behind him): with the veto he starts a track of his own, without
    it he takes the red one's id. The same place in red is taken."""
    red, black = look(figure(RED)), look(figure(BLACK))
    for veto, expect_same in ((True, False), (False, True)):
        tr = _tracker(veto)
        first = _walk(tr, [red] * 5)
        red_id = int(first[-1].track_ids[0])
        nxt = tr.update((BOX + np.array([20.0, 0, 20.0, 0]))[None], np.array([0.9]), 0.5, black)
        assert (red_id in nxt.track_ids.tolist() and not nxt.predicted[nxt.track_ids.tolist().index(red_id)]) \
            == expect_same, veto
    tr = _tracker(True)
    _walk(tr, [red] * 5)
    nxt = tr.update((BOX + np.array([20.0, 0, 20.0, 0]))[None], np.array([0.9]), 0.5, red)
    assert len(nxt.track_ids) == 1 and not nxt.predicted[0]


def test_a_person_whose_colours_change_at_once_keeps_the_id():
    """Red for five runs, then black from the same place on (the jacket came off): vetoed once,
    the newcomer on top of the old track is the same person twice, and the old id takes over its
    match and its colours; the newcomer's id is never given out."""
    red, black = look(figure(RED)), look(figure(BLACK))
    tr = _tracker(True)
    frames = _walk(tr, [red] * 5 + [black] * 6)
    old = int(frames[0].track_ids[0])
    assert all(f.track_ids.tolist() == [old] for f in frames)
    assert not frames[-1].predicted[0] and not frames[-2].predicted[0]
    born = [e.track_id for f in frames for e in f.events if e.kind == TrackEventKind.BORN]
    assert born[0] == old and all(e.track_id != old for f in frames for e in f.events
                                  if e.kind == TrackEventKind.REMOVED)
    assert appearance_similarity(tr.look[:1], black)[0, 0] > 0.9    # learnt the new colours


def test_no_look_given_changes_nothing():
    """A caller that passes no colours (the HOG path in a test, bench_tracker) tracks as before."""
    a, b = _tracker(True), _tracker(False)
    fa = _walk(a, [None] * 8)
    fb = _walk(b, [None] * 8)
    assert [f.track_ids.tolist() for f in fa] == [f.track_ids.tolist() for f in fb]
    assert a.look.shape == (1, DIM) and not a.look.any()


def _behind_a_post(tr: ByteTracker, back_look: np.ndarray, others: list[np.ndarray] = ()) -> list:
    """A person walking right (4 px a run) in red, then unseen for 1 s (behind a post), then
    seen again 60 px further on than the track expects: too far off for the re-find by distance
    (refind_max_dist_rel 0.2 here), so a new track starts there. `others`: looks of people
    standing still nearby (unseen at the same time)."""
    red = look(figure(RED))
    frames = []
    still = [BOX + np.array([300.0 * (k + 1), 0, 300.0 * (k + 1), 0]) for k in range(len(others))]
    for k in range(5):
        box = BOX + np.array([4.0 * k, 0, 4.0 * k, 0])
        boxes = np.array([box, *still])
        frames.append(tr.update(boxes, np.full(len(boxes), 0.9), 0.1 * k, np.concatenate([red, *others])))
    for k in range(5, 15):
        frames.append(tr.update(np.zeros((0, 4)), np.zeros(0), 0.1 * k))
    for k in range(15, 19):
        box = BOX + np.array([4.0 * k + 60, 0, 4.0 * k + 60, 0])
        frames.append(tr.update(box[None], np.array([0.9]), 0.1 * k, back_look))
    return frames


def _reid_tracker(reid: bool) -> ByteTracker:
    return ByteTracker(TrackerConfig(refind_max_dist_rel=0.2, reid_max_dist_rel=2.0 if reid else 0.0))


def test_a_person_back_from_behind_a_post_under_a_new_track_gets_the_old_id():
    """Same colours, near where the old track was expected: the new track takes the old id (a
    REFOUND, no BORN); with re-identification off it is someone new."""
    red = look(figure(RED))
    for reid in (True, False):
        frames = _behind_a_post(_reid_tracker(reid), red)
        old = int(frames[0].track_ids[0])
        assert frames[-1].track_ids.tolist() == ([old] if reid else [old + 1]), reid
        if reid:
            assert not any(e.kind == TrackEventKind.BORN for f in frames[1:] for e in f.events)
            assert any(e.kind == TrackEventKind.REFOUND and e.track_id == old for f in frames for e in f.events)


def test_someone_else_or_an_ambiguous_return_gets_a_new_id():
    """In black where the red one was expected: someone new. In red, but with another red
    person unseen as well nearby: either could be back, so neither id is given."""
    frames = _behind_a_post(_reid_tracker(True), look(figure(BLACK)))
    old = int(frames[0].track_ids[0])
    assert frames[-1].track_ids.tolist() == [old + 1]
    red = look(figure(RED))
    frames = _behind_a_post(_reid_tracker(True), red, others=[red])
    assert len(frames[0].track_ids) == 2
    assert frames[-1].track_ids.tolist() == [max(frames[0].track_ids) + 1]


def test_colours_are_taken_while_either_the_veto_or_re_identification_is_on():
    """Re-identification needs the colours as much as the veto: turning the veto off alone must
    not silently turn re-identification off with it."""
    from stream.config import PipelineConfig
    from tracking.stage import DetectTrackStage

    img = figure(RED)
    for tracker, taken in (({}, True), ({"appearance_min_similarity": 0.0}, True),
                           ({"reid_max_dist_rel": 0.0}, True),
                           ({"appearance_min_similarity": 0.0, "reid_max_dist_rel": 0.0}, False)):
        stage = DetectTrackStage(PipelineConfig(tracker=tracker))
        looks = stage._looks(img, BOX[None])
        assert (looks is not None and looks.any()) == taken, tracker
