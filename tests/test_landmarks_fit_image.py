"""The fit's image term: 2D landmarks fix what compressed world depth gets wrong; left/right
label slips of the 2D detector are undone frame to frame."""
from __future__ import annotations

import numpy as np

from engines.landmarks.fit import FIT_KEYPOINTS, FIT_SWAP, PRIOR_Q, SkelFitter
from engines.pose_engine import default_intrinsics
from engines.skel.dofs import DOF_INDEX
from engines.skel.kinematics import generic_skeleton, root_rotation

K = len(FIT_KEYPOINTS)
CAM = default_intrinsics(1088, 1920)
DEPTH_M = 3.5


def facing_camera_pose(knee_r_deg: float, hip_r_deg: float, knee_l_deg: float = 5.0) -> np.ndarray:
    """Mean pose, body upright and facing the camera (anterior axis -z), one leg lifted."""
    q = PRIOR_Q.copy()
    best = min(np.linspace(-np.pi, np.pi, 721),
               key=lambda a: np.linalg.norm(root_rotation(np.r_[np.pi, 0.0, a, q[3:]]) @ [1, 0, 0] - [0, 0, -1]))
    q[:3] = [np.pi, 0.0, best]
    q[DOF_INDEX["knee_angle_r"]] = np.radians(knee_r_deg)
    q[DOF_INDEX["hip_flexion_r"]] = np.radians(hip_r_deg)
    q[DOF_INDEX["knee_angle_l"]] = np.radians(knee_l_deg)
    return q


def project(points_cam: np.ndarray) -> np.ndarray:
    return np.stack([CAM.fx * points_cam[:, 0] / points_cam[:, 2] + CAM.cx,
                     CAM.fy * points_cam[:, 1] / points_cam[:, 2] + CAM.cy], axis=1)


def test_pixels_recover_the_knee_that_compressed_depth_straightens():
    """A knee bent toward the camera: BlazePose-like world landmarks with depth squeezed to 40 %
    read it ~straight; the same fit with the exact 2D landmarks and rigid bones gets it back."""
    sk = generic_skeleton(1.70)
    q_true = facing_camera_pose(knee_r_deg=70.0, hip_r_deg=60.0)
    kp = SkelFitter(sk).keypoints(q_true)
    px = project(kp + [0.0, 0.0, DEPTH_M])
    squeezed = kp * [1.0, 1.0, 0.4]
    knee = DOF_INDEX["knee_angle_r"]
    world_only = SkelFitter(sk).fit(squeezed, np.ones(K), None, max_iterations=80)
    with_image = SkelFitter(sk).fit(squeezed, np.ones(K), None, max_iterations=80, pixels=px,
                                    intrinsics=CAM, image_weight=2.0, depth_trust=0.3)
    err_world = abs(np.degrees(world_only.q[knee]) - 70.0)
    err_image = abs(np.degrees(with_image.q[knee]) - 70.0)
    assert err_world > 12.0, err_world            # the failure the image term is for
    assert err_image < 0.5 * err_world, (err_image, err_world)
    # and it places the person: pelvis ~3.5 m in front of the camera
    assert abs(with_image.trans_m[2] - DEPTH_M) < 0.15


def test_exact_inputs_fit_exactly_with_the_image_term():
    sk = generic_skeleton(1.70)
    q_true = facing_camera_pose(knee_r_deg=40.0, hip_r_deg=30.0)
    kp = SkelFitter(sk).keypoints(q_true)
    res = SkelFitter(sk).fit(kp, np.ones(K), None, max_iterations=80, pixels=project(kp + [0.1, -0.2, DEPTH_M]),
                             intrinsics=CAM)
    for n in ("knee_angle_r", "hip_flexion_r", "knee_angle_l", "elbow_flexion_r"):
        assert abs(np.degrees(res.q[DOF_INDEX[n]] - q_true[DOF_INDEX[n]])) < 3.0, n
    np.testing.assert_allclose(res.trans_m, [0.1, -0.2, DEPTH_M], atol=0.05)


def test_left_right_label_slip_is_undone_frame_to_frame():
    """Frames 6-10 come with left and right exchanged (2D labels, and the world landmarks as the
    detector would see a body turned around): with pixels the fitter relabels exactly those
    frames and keeps each knee on its side; the world-only fit follows the slip."""
    sk = generic_skeleton(1.70)
    rng = np.random.default_rng(4)
    img, world_only = SkelFitter(sk), SkelFitter(sk)
    qi = qw = ri = rw = None
    knee_r, knee_l = DOF_INDEX["knee_angle_r"], DOF_INDEX["knee_angle_l"]
    for t in range(16):
        q_true = facing_camera_pose(knee_r_deg=60.0 + 2 * t, hip_r_deg=40.0, knee_l_deg=8.0)
        kp = img.keypoints(q_true)
        px = project(kp + [0.0, 0.0, DEPTH_M]) + rng.normal(0, 1.0, (K, 2))
        lm = kp + rng.normal(0, 0.01, (K, 3))
        if 6 <= t <= 10:
            px, lm = px[FIT_SWAP], lm[FIT_SWAP] * [1.0, 1.0, -1.0]
        a = img.fit(lm, np.ones(K), qi, ri, max_iterations=8 if qi is not None else 60, pixels=px, intrinsics=CAM)
        b = world_only.fit(lm, np.ones(K), qw, rw, max_iterations=8 if qw is not None else 60)
        qi, ri, qw, rw = a.q, a.root_m, b.q, b.root_m
        assert np.degrees(a.q[knee_r]) > np.degrees(a.q[knee_l]) + 30, t
        if t == 8:
            assert np.degrees(b.q[knee_l]) > np.degrees(b.q[knee_r]) + 30   # without: the slip is published
    assert img.relabelled == 5


def _walk_frames(n: int, slipped, seed: int = 5):
    """n frames of the facing-camera body (right knee bending), (pixels, landmarks) per frame;
    frames in `slipped` come with left/right exchanged as BlazePose slips them."""
    sk = generic_skeleton(1.70)
    rng = np.random.default_rng(seed)
    fk = SkelFitter(sk)
    out = []
    for t in range(n):
        kp = fk.keypoints(facing_camera_pose(knee_r_deg=60.0 + 2 * t, hip_r_deg=40.0, knee_l_deg=8.0))
        px = project(kp + [0.0, 0.0, DEPTH_M]) + rng.normal(0, 1.0, (K, 2))
        lm = kp + rng.normal(0, 0.01, (K, 3))
        if t in slipped:
            px, lm = px[FIT_SWAP], lm[FIT_SWAP] * [1.0, 1.0, -1.0]
        out.append((px, lm))
    return sk, out


def test_a_slip_the_2d_jump_check_cannot_see_is_undone_by_the_facing():
    """The labels slip on frames 6-10 but the frame-to-frame 2D comparison is blinded (as when
    the sides cross gradually in the image): the fit with the slipped labels would turn the
    body round in one frame, so the fitter refits with the other labelling and keeps the knees
    on their sides."""
    sk, frames = _walk_frames(16, range(6, 11))
    f = SkelFitter(sk)
    q = root = None
    knee_r, knee_l = DOF_INDEX["knee_angle_r"], DOF_INDEX["knee_angle_l"]
    flags = []
    for t, (px, lm) in enumerate(frames):
        f._last_px = None                                  # no 2D jump check
        r = f.fit(lm, np.ones(K), q, root, max_iterations=8 if q is not None else 60, pixels=px, intrinsics=CAM)
        q, root = r.q, r.root_m
        flags.append(r.relabelled)
        assert np.degrees(r.q[knee_r]) > np.degrees(r.q[knee_l]) + 30, t
    assert flags == [6 <= t <= 10 for t in range(16)]


def test_a_wrong_first_frame_does_not_hold_the_person_turned_round():
    """The track starts on a slipped frame (its cold start takes the labels as they come) and
    every later frame is right: the fitter relabels them to match the first, but after
    max_relabel_run frames in a row it takes the labels as they come again."""
    sk, frames = _walk_frames(30, {0})
    f = SkelFitter(sk, max_relabel_run=12)
    q = root = None
    flags = []
    for px, lm in frames:
        r = f.fit(lm, np.ones(K), q, root, max_iterations=8 if q is not None else 60, pixels=px, intrinsics=CAM)
        q, root = r.q, r.root_m
        flags.append(r.relabelled)
    assert sum(flags) <= 12 and not any(flags[-10:])
    assert np.degrees(q[DOF_INDEX["knee_angle_r"]]) > np.degrees(q[DOF_INDEX["knee_angle_l"]]) + 30
