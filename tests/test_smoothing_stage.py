"""The `smooth` stage: events, coasting, resets, state freed, shape/root filters, fixed lag, config."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from pydantic import ValidationError

from engines.skel.dofs import DOF_INDEX, DOF_LOWER, DOF_UPPER, NUM_DOFS
from engines.skel.kinematics import root_orientation_wxyz
from stream.config import PipelineConfig
from stream.packet import FrameInfo, Packet, Person, TrackEvent, TrackEventKind, TrackState
from tracking.shape_root import root_quaternions
from tracking.smoothing_config import SmoothingConfig
from tracking.smoothing_stage import SmoothingStage

FPS = 30.0
Q0 = np.clip(np.full(NUM_DOFS, 0.3), DOF_LOWER, DOF_UPPER).astype(np.float32)


def _stage(**kw) -> SmoothingStage:
    st = SmoothingStage(PipelineConfig(smoothing=SmoothingConfig(**kw)))
    st.setup()
    return st


def _person(tid: int, q=Q0, trans=(0.0, 0.0, 3.0), betas=None, conf=1.0) -> Person:
    return Person(track_id=tid, track_state=TrackState.TRACKED, box_xyxy=np.zeros(4, np.float32),
                  score=0.9, pose_confidence=conf,
                  q=None if q is None else np.asarray(q, np.float32),
                  trans_m=None if trans is None else np.asarray(trans, np.float32),
                  betas=None if betas is None else np.asarray(betas, np.float32))


def _packet(k: int, persons, events=(), sid="cam0", pts=True) -> Packet:
    t_ns = int(k / FPS * 1e9)
    return Packet(FrameInfo(sid, k, t_ns, t_ns, 640, 480, media_pts_s=k / FPS if pts else None),
                  persons=list(persons), events=list(events))


def test_outputs_filled_with_shapes_units_and_dtypes():
    st = _stage()
    p = _person(1, q=np.full(NUM_DOFS, 0.3), betas=np.ones(10))
    st.process(_packet(0, [p], [TrackEvent(1, TrackEventKind.BORN)]))
    assert p.q.shape == (46,) and p.q.dtype == np.float32
    assert p.q_vel.shape == (46,) and p.limit_active.dtype == bool
    assert p.trans_m.shape == (3,) and p.trans_vel_mps.shape == (3,) and p.betas.shape == (10,)
    np.testing.assert_allclose(np.linalg.norm(p.root_orient_wxyz), 1.0, atol=1e-6)
    assert not p.predicted
    # scapula_elevation is limited to [-0.4, -0.1]: 0.3 was clamped and flagged
    assert p.limit_active[DOF_INDEX["scapula_elevation_r"]]
    assert not p.limit_active[DOF_INDEX["hip_flexion_r"]]


def test_root_quaternion_matches_kinematics():
    q = np.random.default_rng(0).uniform(-4, 4, (50, NUM_DOFS))
    ref = root_orientation_wxyz(q)
    np.testing.assert_allclose(root_quaternions(q), ref, atol=1e-6)


def test_coasting_through_dropout_then_pass_through():
    st = _stage(max_coast_s=0.2)
    for k in range(10):
        st.process(_packet(k, [_person(1)]))
    outs = []
    for k in range(10, 20):  # the pose engine skipped the person
        p = _person(1, q=None, trans=None)
        st.process(_packet(k, [p]))
        outs.append(p)
    coasted = [p for p in outs if p.predicted]
    assert len(coasted) == 6  # 0.2 s at 30 Hz: frames 10..15
    assert all(p.q is not None for p in coasted)
    assert all(p.q is None and not p.predicted for p in outs[6:])
    # back after more than max_coast_s: restarts from the measurement
    q_new = Q0.copy()
    q_new[DOF_INDEX["hip_flexion_r"]] = 1.2
    p = _person(1, q=q_new)
    st.process(_packet(20, [p]))
    np.testing.assert_allclose(p.q[DOF_INDEX["hip_flexion_r"]], 1.2, atol=1e-6)


def _blank(tid: int, held=Q0) -> Person:
    """What the landmark engine sends when it finds nobody in the crop: its last pose held,
    nothing observed, confidence 0."""
    p = _person(tid, q=held, conf=0.0)
    p.dof_observed = np.zeros(NUM_DOFS, dtype=bool)
    return p


def test_unobserved_frame_is_flagged_predicted_and_ends_when_coasting_does():
    """A pose with nothing observed is no measurement: predicted (per person and per DoF),
    coasted for max_coast_s, then passed on without pose; it never restarts the track from the
    held pose. A partly observed pose flags only its unobserved DoFs."""
    st = _stage(max_coast_s=0.2)
    d = DOF_INDEX["hip_flexion_r"]
    for k in range(10):
        p = _person(1)
        st.process(_packet(k, [p]))
        assert not p.predicted and not p.q_predicted.any()
    partly = _person(1)
    partly.dof_observed = np.ones(NUM_DOFS, dtype=bool)
    partly.dof_observed[d] = False
    st.process(_packet(10, [partly]))
    assert not partly.predicted and partly.q_predicted[d] and partly.q_predicted.sum() == 1
    held = Q0.copy()
    held[d] = 1.4                      # a stale value the engine holds: must not be taken
    outs = []
    for k in range(11, 30):
        p = _blank(1, held)
        st.process(_packet(k, [p]))
        outs.append(p)
    coasted = [p for p in outs if p.predicted]
    assert len(coasted) == 6           # 0.2 s after the last measurement (frame 10) at 30 Hz
    assert all(p.q_predicted.all() and abs(p.q[d] - 0.3) < 1e-3 for p in coasted)
    rest = outs[6:]
    assert all(p.q is None and p.q_predicted is None and not p.predicted for p in rest)
    assert all(p.trans_m is None for p in rest)
    # a new track whose first pose has nothing observed is never published with a pose
    p = _blank(2)
    st.process(_packet(30, [p]))
    assert p.q is None and (2, "cam0") not in {(t, s) for s, t in st.smoother.tracks}


def test_refound_resets_and_removed_frees():
    st = _stage()
    for k in range(10):
        st.process(_packet(k, [_person(1)]))
    q_new = Q0.copy()
    q_new[DOF_INDEX["hip_flexion_r"]] = 1.5  # far away: would be gated as an outlier
    p = _person(1, q=q_new)
    st.process(_packet(10, [p], [TrackEvent(1, TrackEventKind.REFOUND)]))
    np.testing.assert_allclose(p.q[DOF_INDEX["hip_flexion_r"]], 1.5, atol=1e-6)
    st.process(_packet(11, [], [TrackEvent(1, TrackEventKind.REMOVED)]))
    assert st.smoother.tracks == {}


def test_no_state_leak_over_many_tracks_and_streams():
    st = _stage()
    live: dict[str, list[int]] = {"a": [], "b": []}
    tid = 0
    for k in range(300):
        for sid in ("a", "b"):
            events = []
            if k % 3 == 0:  # a new track every 3 frames ...
                tid += 1
                live[sid].append(tid)
                events.append(TrackEvent(tid, TrackEventKind.BORN))
            if len(live[sid]) > 5:  # ... and at most 5 alive per stream
                gone = live[sid].pop(0)
                events.append(TrackEvent(gone, TrackEventKind.REMOVED))
            st.process(_packet(k, [_person(t) for t in live[sid]], events, sid=sid))
    sm = st.smoother
    assert len(sm.tracks) == 10
    assert sm._capacity <= 16  # slots reused, arrays did not grow
    st.flush("a")
    assert {k[0] for k in sm.tracks} == {"b"}
    st.flush("b")
    assert sm.tracks == {} and len(sm._free) == sm._capacity


def test_betas_converge_within_a_second_and_translation_filtered():
    rng = np.random.default_rng(4)
    st = _stage()
    b_true = rng.normal(0, 1, 10)
    t_true = np.array([0.2, -0.1, 3.0])
    errs, trans = [], []
    for k in range(60):
        b = b_true + rng.normal(0, 0.15, 10)
        if k == 5:
            b += 3.0  # one wild estimate: Huber-limited
        tr = t_true + rng.normal(0, 1, 3) * [0.02, 0.02, 0.1]
        p = _person(1, betas=b, trans=tr)
        st.process(_packet(k, [p]))
        errs.append(np.abs(p.betas - b_true).max())
        trans.append(p.trans_m)
    assert max(errs[30:]) < 0.15   # within a second at 30 Hz, and it stays there
    depth = np.array(trans)[30:, 2]
    assert np.std(depth) < 0.6 * 0.1  # depth noise reduced
    assert abs(depth.mean() - 3.0) < 0.05


def test_low_detection_score_and_unobserved_dofs():
    st = _stage(preset="balanced")
    d = DOF_INDEX["elbow_flexion_r"]
    for k in range(20):
        st.process(_packet(k, [_person(1)]))
    q = Q0.copy()
    q[d] = 1.0
    p = _person(1, q=q)
    p.dof_observed = np.ones(NUM_DOFS, bool)
    p.dof_observed[d] = False  # the engine could not see the elbow: keep the estimate (its
    st.process(_packet(20, [p]))  # guess pulls, weakly: unobserved_guess_std_rad)
    assert abs(p.q[d] - Q0[d]) < 0.01 * abs(1.0 - Q0[d]) and p.q_predicted[d]


def test_an_angle_unseen_for_long_drifts_to_the_engines_guess_still_flagged():
    """An angle the engine does not observe for a second (an elbow out of sight) while it guesses
    a new value: the held estimate is pulled toward the guess (real footage: the guess is off the
    four-camera reference by 27-40 deg RMSE, a held estimate by more where the arm moved;
    BENCHMARKS.md issue 15 eighteenth pass), flagged predicted throughout. With the pull off
    (unobserved_guess_std_rad 0) the estimate is held. A person with nothing observed takes no
    pull (the held pose of a frame where nobody was found: test above)."""
    d = DOF_INDEX["elbow_flexion_r"]
    guess = Q0.copy()
    guess[d] = 1.5
    finals = {}
    for std in (0.8, 0.0):
        st = _stage(preset="balanced", unobserved_guess_std_rad=std)
        for k in range(20):
            st.process(_packet(k, [_person(1)]))
        path = []
        for k in range(20, 50):
            p = _person(1, q=guess)
            p.dof_observed = np.ones(NUM_DOFS, bool)
            p.dof_observed[d] = False
            st.process(_packet(k, [p]))
            assert p.q_predicted[d] and p.q_predicted.sum() == 1 and not p.predicted
            path.append(float(p.q[d]))
        assert np.all(np.diff(path) >= -1e-6)           # no overshoot back and forth
        finals[std] = path[-1]
    assert finals[0.0] == pytest.approx(Q0[d], abs=1e-3)
    assert Q0[d] + 0.3 * (1.5 - Q0[d]) < finals[0.8] < 1.5


def test_fixed_lag_delays_and_flush_returns_the_rest():
    lag = 4
    st = _stage(fixed_lag_frames=lag)
    rng = np.random.default_rng(5)
    sent, got, inputs = [], [], []
    d = DOF_INDEX["hip_flexion_r"]
    for k in range(20):
        q = Q0.copy()
        q[d] = 0.5 + 0.3 * np.sin(k / 5) + rng.normal(0, 0.05)
        inputs.append(q)
        pk = _packet(k, [_person(1, q=q)])
        sent.append(pk)
        out = st.process(pk)
        if out is not None:
            got.append(out)
    assert len(got) == 20 - lag and got[0] is sent[0]
    rest = st.flush("cam0")
    assert [p.frame.seq for p in rest] == list(range(20 - lag, 20))
    assert st.smoother.tracks == {}
    qs = np.array([p.persons[0].q for p in got + rest])
    assert np.all(qs >= DOF_LOWER.astype(np.float32)) and np.all(qs <= DOF_UPPER.astype(np.float32))
    # smoother than the causal filter on the same noisy input
    causal = _stage()
    cq = []
    for k, qin in enumerate(inputs):
        p = _person(1, q=qin)
        causal.process(_packet(k, [p]))
        cq.append(p.q[d])
    jitter = lambda a: np.std(np.diff(np.asarray(a)[5:], 2))  # noqa: E731
    assert jitter(qs[:, d]) < 0.7 * jitter(cq)
    # a removed track's history is kept only while held packets need it
    for k in range(20, 20 + lag + 2):
        ev = [TrackEvent(1, TrackEventKind.REMOVED)] if k == 20 else []
        st.process(_packet(k, [], ev))
    assert st._retired.get("cam0", []) == [] and st.smoother.tracks == {}


def test_disabled_passes_through_and_stage_pickles():
    st = SmoothingStage(PipelineConfig(smoothing=SmoothingConfig(enabled=False)))
    st2 = pickle.loads(pickle.dumps(st))  # __init__ holds settings only
    p = _person(1)
    out = st2.process(_packet(0, [p]))
    assert out.persons[0].q_vel is None


def test_config_presets_overrides_and_errors():
    vr, an = SmoothingConfig(preset="vr"), SmoothingConfig(preset="analysis")
    assert np.all(vr.joint_process_noise() > an.joint_process_noise())
    c = SmoothingConfig(preset="analysis", responsiveness=0.9,
                        per_dof={"knee_angle_r": {"responsiveness": 0.0, "meas_noise_rad": 0.1}})
    q, r = c.joint_process_noise(), c.joint_meas_noise()
    i = DOF_INDEX["knee_angle_r"]
    assert q[i] < q[i - 1] and r[i] == 0.1 and r[i - 1] == c.meas_noise_rad
    with pytest.raises(ValidationError, match="unknown DoF name"):
        SmoothingConfig(per_dof={"knee_r": {"responsiveness": 0.5}})
    with pytest.raises(ValidationError):
        SmoothingConfig(responsiveness=1.5)
    with pytest.raises(ValidationError):
        SmoothingConfig(presets="vr")  # unknown key


def test_nan_inputs_and_clock_jump_back():
    st = _stage()
    for k in range(30):
        st.process(_packet(k, [_person(1)]))
    q = Q0.copy()
    q[5:9] = np.nan  # an engine glitch: treated as unobserved, never propagated
    p = _person(1, q=q, trans=(np.nan, 0.0, 3.0))
    st.process(_packet(30, [p]))
    assert np.all(np.isfinite(p.q)) and np.all(np.isfinite(p.trans_m))
    # a looped file: media time restarts at 0; the track restarts instead of coasting forever
    q2 = Q0.copy()
    q2[DOF_INDEX["hip_flexion_r"]] = 1.4
    p = _person(1, q=q2)
    st.process(_packet(0, [p]))
    np.testing.assert_allclose(p.q[DOF_INDEX["hip_flexion_r"]], 1.4, atol=1e-6)
