"""The joint-limited SKEL fit recovers poses made by our own FK, respects limits, flags the unseen."""
from __future__ import annotations

import numpy as np
import pytest

from engines.landmarks.engine import ray_rotation, solve_translation
from engines.landmarks.fit import (
    FIT_KEYPOINTS, PRIOR_Q, SKEL_MEAN_Q, SkelFitter, observable_dofs, orientation_from_landmarks)
from engines.pose_engine import default_intrinsics
from engines.skel.dofs import DOF_INDEX, DOF_LOWER, DOF_NAMES, DOF_UPPER, NUM_DOFS, wrap_angle
from engines.skel.kinematics import generic_skeleton, root_rotation

K = len(FIT_KEYPOINTS)
ALL_SEEN = observable_dofs(np.ones(K, bool))
LIMBS = [DOF_INDEX[n] for n in ("hip_flexion_r", "hip_flexion_l", "hip_adduction_r", "hip_adduction_l",
                                "knee_angle_r", "knee_angle_l", "elbow_flexion_r", "elbow_flexion_l",
                                "shoulder_r_x", "shoulder_l_x", "shoulder_r_z", "shoulder_l_z",
                                "ankle_angle_r", "ankle_angle_l")]


def _random_pose(rng: np.random.Generator) -> np.ndarray:
    q = PRIOR_Q.copy()
    lo, hi = DOF_LOWER[ALL_SEEN], DOF_UPPER[ALL_SEEN]
    q[ALL_SEEN] = np.clip(PRIOR_Q[ALL_SEEN] + rng.normal(0, 0.35, ALL_SEEN.sum()), lo, hi)
    q[:3] = [np.pi + rng.normal(0, 0.2), rng.normal(0, 0.2), rng.uniform(-np.pi, np.pi)]
    return q


def test_mean_pose_copied_from_shared_and_prior_inside_limits():
    from conftest import SHARED

    path = SHARED / "skel" / "SKEL_mean.npz"
    if path.exists():
        ref = np.load(path)
        np.testing.assert_allclose(SKEL_MEAN_Q, ref["poses"], atol=1e-6)
    b = PRIOR_Q[3:]
    assert np.all((b >= DOF_LOWER[3:]) & (b <= DOF_UPPER[3:]))
    assert not ALL_SEEN[[DOF_INDEX[n] for n in ("subtalar_angle_r", "mtp_angle_l", "scapula_elevation_r",
                                                 "pro_sup_r", "wrist_flexion_l")]].any()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fit_recovers_known_pose_cold_start(seed):
    rng = np.random.default_rng(seed)
    fitter = SkelFitter(generic_skeleton(1.75))
    q_true = _random_pose(rng)
    root = rng.normal(0, 0.02, 3)
    lm = fitter.keypoints(q_true, root)
    res = fitter.fit(lm, np.ones(K), None, max_iterations=60)
    assert res.residual_m < 0.01
    assert np.all(res.q[3:] >= DOF_LOWER[3:] - 1e-12) and np.all(res.q[3:] <= DOF_UPPER[3:] + 1e-12)
    err = np.degrees(np.abs(wrap_angle(res.q - q_true)))
    assert err[LIMBS].max() < 6.0, {DOF_NAMES[i]: round(err[i], 1) for i in LIMBS}
    r_err = root_rotation(res.q).T @ root_rotation(q_true)
    assert np.degrees(np.arccos(np.clip((np.trace(r_err) - 1) / 2, -1, 1))) < 5.0
    assert np.abs(res.keypoints_m - lm).max() < 0.03


def test_fit_tracks_a_moving_pose_with_warm_start_and_noise():
    rng = np.random.default_rng(7)
    fitter = SkelFitter(generic_skeleton(1.70))
    q_true = _random_pose(rng)
    q, root, errs = None, None, []
    for _ in range(40):
        q_true = q_true.copy()
        q_true[ALL_SEEN] = np.clip(q_true[ALL_SEEN] + rng.normal(0, 0.03, ALL_SEEN.sum()),
                                   DOF_LOWER[ALL_SEEN], DOF_UPPER[ALL_SEEN])
        lm = fitter.keypoints(q_true) + rng.normal(0, 0.005, (K, 3))
        res = fitter.fit(lm, np.ones(K), q, root, max_iterations=8 if q is not None else 60)
        q, root = res.q, res.root_m
        errs.append(np.degrees(np.abs(res.q - q_true))[[DOF_INDEX["knee_angle_r"], DOF_INDEX["elbow_flexion_l"]]])
        assert np.all(res.q[3:] >= DOF_LOWER[3:]) and np.all(res.q[3:] <= DOF_UPPER[3:])
    assert np.median(errs) < 3.0


def test_limits_hold_when_landmarks_ask_for_hyperextension():
    fitter = SkelFitter(generic_skeleton(1.70))
    q_bad = PRIOR_Q.copy()
    q_bad[DOF_INDEX["knee_angle_r"]] = -0.5       # knee bent backwards: outside [0, 2.36]
    q_bad[DOF_INDEX["elbow_flexion_l"]] = 2.9     # beyond the elbow's 2.36 limit
    lm = fitter.keypoints(q_bad)                  # FK itself does not clip
    res = fitter.fit(lm, np.ones(K), None, max_iterations=60)
    assert res.q[DOF_INDEX["knee_angle_r"]] == pytest.approx(0.0, abs=1e-9)
    assert res.q[DOF_INDEX["elbow_flexion_l"]] == pytest.approx(DOF_UPPER[DOF_INDEX["elbow_flexion_l"]], abs=1e-9)
    assert np.all(res.q[3:] >= DOF_LOWER[3:]) and np.all(res.q[3:] <= DOF_UPPER[3:])


def test_invisible_leg_is_held_at_prior_and_flagged():
    rng = np.random.default_rng(4)
    fitter = SkelFitter(generic_skeleton(1.70))
    q_true = _random_pose(rng)
    lm = fitter.keypoints(q_true)
    vis = np.ones(K)
    for n in ("left_knee", "left_ankle", "left_heel", "left_foot_index"):
        vis[FIT_KEYPOINTS.index(n)] = 0.1
    lm[vis < 0.5] += 5.0                          # garbage where unseen must not matter
    res = fitter.fit(lm, vis, None, max_iterations=60)
    left = [DOF_INDEX[n] for n in ("hip_flexion_l", "hip_adduction_l", "hip_rotation_l", "knee_angle_l",
                                   "ankle_angle_l", "subtalar_angle_l", "mtp_angle_l")]
    assert not res.observed[left].any()
    np.testing.assert_allclose(res.q[left], PRIOR_Q[left])
    assert res.observed[DOF_INDEX["knee_angle_r"]] and res.observed[DOF_INDEX["elbow_flexion_r"]]
    assert abs(res.q[DOF_INDEX["knee_angle_r"]] - q_true[DOF_INDEX["knee_angle_r"]]) < np.radians(6)
    assert res.residual_m < 0.01


def test_nothing_visible_returns_prior_unobserved():
    fitter = SkelFitter(generic_skeleton(1.70))
    res = fitter.fit(np.zeros((K, 3)), np.zeros(K), None)
    assert not res.observed.any() and np.isnan(res.residual_m)
    np.testing.assert_allclose(res.q, PRIOR_Q)


def test_orientation_from_torso_landmarks():
    rng = np.random.default_rng(5)
    fitter = SkelFitter(generic_skeleton(1.70))
    for _ in range(5):
        q = PRIOR_Q.copy()
        q[:3] = [rng.uniform(-np.pi, np.pi), rng.uniform(-0.6, 0.6), rng.uniform(-np.pi, np.pi)]
        q[[DOF_INDEX[n] for n in ("lumbar_extension", "thorax_extension", "lumbar_bending", "thorax_bending",
                                  "lumbar_twist", "thorax_twist")]] = 0.0
        est = orientation_from_landmarks(fitter.keypoints(q))
        r = root_rotation(np.concatenate([est, np.zeros(NUM_DOFS - 3)])).T @ root_rotation(q)
        assert np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))) < 8.0


def test_translation_from_2d_and_3d_points():
    rng = np.random.default_rng(6)
    k = default_intrinsics(640, 480)
    pts = rng.normal(0, 0.4, (20, 3))
    t = np.array([0.3, -0.2, 3.5])
    cam = pts + t
    uv = np.stack([k.fx * cam[:, 0] / cam[:, 2] + k.cx, k.fy * cam[:, 1] / cam[:, 2] + k.cy], axis=1)
    np.testing.assert_allclose(solve_translation(pts, uv, np.ones(20), k), t, atol=1e-9)
    assert solve_translation(pts, uv, np.zeros(20), k) is None
    r = ray_rotation(600.0, 50.0, k)
    d = r @ [0.0, 0.0, 1.0]
    ray = np.array([(600.0 - k.cx) / k.fx, (50.0 - k.cy) / k.fy, 1.0])
    np.testing.assert_allclose(d, ray / np.linalg.norm(ray), atol=1e-12)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_warm_fit_costs_a_bounded_number_of_fk_calls():
    """Speed target in load-independent units: the fit vs one FK call timed in the same run
    (bench: 18.5 FK ~ 2.1 ms on real footage); 40 FK leaves room for a noisy shared box. Both are
    timed in this thread's CPU time: wall-clock medians measured the box's load (ratios 49-61 seen)."""
    import time

    from engines.skel.kinematics import forward_kinematics

    rng = np.random.default_rng(11)
    sk = generic_skeleton(1.70)
    fitter = SkelFitter(sk)
    q_true = _random_pose(rng)
    res = fitter.fit(fitter.keypoints(q_true), np.ones(K), None, max_iterations=60)
    q, root, fit_s, fk_s = res.q, res.root_m, [], []
    for _ in range(60):
        q_true = q_true.copy()
        q_true[ALL_SEEN] = np.clip(q_true[ALL_SEEN] + rng.normal(0, 0.03, ALL_SEEN.sum()),
                                   DOF_LOWER[ALL_SEEN], DOF_UPPER[ALL_SEEN])
        lm = fitter.keypoints(q_true) + rng.normal(0, 0.01, (K, 3))
        t0 = time.thread_time()
        r = fitter.fit(lm, np.ones(K), q, root, max_iterations=8)
        t1 = time.thread_time()
        forward_kinematics(q_true, sk)
        fk_s.append(time.thread_time() - t1)
        fit_s.append(t1 - t0)
        q, root = r.q, r.root_m
    ratio = np.median(fit_s) / np.median(fk_s)
    assert ratio < 40, ratio
