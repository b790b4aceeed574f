"""Foreshortened limbs: depth from segment lengths (known answers on synthetic limbs) and the
flag that keeps an elbow pointing along the viewing ray from being published as measured."""
from __future__ import annotations

import numpy as np

from engines.landmarks.config import LandmarkEngineConfig
from engines.landmarks.fit import BONE_A, BONE_B, FIT_KEYPOINTS, FIT_LANDMARK_INDEX, PRIOR_Q, SkelFitter
from engines.landmarks.foreshortening import (
    JOINT_BONES, foreshortened_dofs, image_length_ratio, limb_depth_m, segment_length_depth)
from engines.pose_engine import default_intrinsics
from engines.skel.dofs import DOF_INDEX
from engines.skel.kinematics import generic_skeleton
from test_landmarks_fit_image import CAM, DEPTH_M, facing_camera_pose, project

K = len(FIT_KEYPOINTS)


def _triplet_deg(p: np.ndarray, a: str, b: str, c: str) -> float:
    i = FIT_KEYPOINTS.index
    u, v = p[i(a)] - p[i(b)], p[i(c)] - p[i(b)]
    return 180.0 - float(np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v))))


def test_limb_depth_from_segment_length_on_synthetic_limbs():
    """Random limbs 0.25-0.45 m long pointing every way: under a scaled orthographic camera the
    depth step recovered from the image length and the true length is exact; under the real
    pinhole at 3.5 m (limb ends at different depths, back-projected at the limb's mean depth)
    it stays within 3 cm for nine limbs in ten near the optical axis."""
    rng = np.random.default_rng(7)
    n = 400
    length = rng.uniform(0.25, 0.45, n)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    a = rng.uniform([-0.1, -0.1, DEPTH_M - 0.2], [0.1, 0.1, DEPTH_M + 0.2], (n, 3))
    b = a + d * length[:, None]
    true_dz = np.abs(b[:, 2] - a[:, 2])
    ortho = lambda p: CAM.fx * p[:, :2] / DEPTH_M  # noqa: E731
    l_ortho = np.linalg.norm(ortho(b) - ortho(a), axis=1) * DEPTH_M / CAM.fx
    np.testing.assert_allclose(limb_depth_m(l_ortho, length), true_dz, atol=1e-9)
    z = 0.5 * (a[:, 2] + b[:, 2])
    l_2d = np.linalg.norm(project(b) - project(a), axis=1) * z / CAM.fx
    assert np.percentile(np.abs(limb_depth_m(l_2d, length) - true_dz), 90) < 0.03
    assert limb_depth_m(0.5, 0.4) == 0.0 and limb_depth_m(0.0, 0.4) == 0.4


def test_segment_length_depth_rebuilds_a_knee_bent_toward_the_camera():
    """A knee bent 70 deg toward the camera, its depth squeezed to 40 % as BlazePose's world
    landmarks do: the triplet angle reads ~straighter; re-deriving each limb end's depth from
    the bone lengths and the 2D landmarks (signs from the squeezed depth) gives it back."""
    fitter = SkelFitter(generic_skeleton(1.70))
    kp = fitter.keypoints(facing_camera_pose(knee_r_deg=70.0, hip_r_deg=60.0))
    px = project(kp + [0.0, 0.0, DEPTH_M])
    squeezed = kp * [1.0, 1.0, 0.4]
    truth = _triplet_deg(kp, "right_hip", "right_knee", "right_ankle")
    before = _triplet_deg(squeezed, "right_hip", "right_knee", "right_ankle")
    fixed = segment_length_depth(squeezed, px, DEPTH_M, CAM.fx, fitter.bone_lengths_m)
    after = _triplet_deg(fixed, "right_hip", "right_knee", "right_ankle")
    assert abs(before - truth) > 12.0, (before, truth)
    assert abs(after - truth) < 4.0, (after, truth)
    np.testing.assert_allclose(fixed[:, :2], squeezed[:, :2])     # only depths move
    half = segment_length_depth(squeezed, px, DEPTH_M, CAM.fx, fitter.bone_lengths_m, weight=0.5)
    mid = _triplet_deg(half, "right_hip", "right_knee", "right_ankle")
    assert min(before, after) < mid < max(before, after)           # weight 0.5: in between


def _forearm_at_camera_pose() -> np.ndarray:
    """Facing the camera, right elbow bent with the forearm pointing at the camera, left arm
    hanging straight."""
    q = facing_camera_pose(knee_r_deg=5.0, hip_r_deg=0.0)
    q[DOF_INDEX["elbow_flexion_l"]] = 0.0
    best = None
    fitter = SkelFitter(generic_skeleton(1.70))
    i = FIT_KEYPOINTS.index
    for flex in np.radians(np.arange(60, 130, 2)):
        for sx in np.radians(np.arange(-90, 91, 5)):
            qq = q.copy()
            qq[DOF_INDEX["elbow_flexion_r"]], qq[DOF_INDEX["shoulder_r_x"]] = flex, sx
            kp = fitter.keypoints(qq)
            f = kp[i("right_wrist")] - kp[i("right_elbow")]
            along = -f[2] / np.linalg.norm(f)          # toward the camera (-z)
            if best is None or along > best[0]:
                best = (along, qq)
    return best[1]


def test_elbow_along_the_ray_is_flagged_not_measured():
    """The engine's fill on landmarks of a body whose right forearm points at the camera: the
    ratio of the forearm's image length to its length is small, so right elbow flexion is
    flagged unobserved (published as the smoother's prediction) while the left elbow and the
    knees stay measured; with the flag off (ratio 0) it would be published as measured."""
    from engines.blazepose.landmarks import LandmarkSet
    from engines.landmarks.engine import LandmarkPoseEngine
    from stream.packet import Person, TrackState

    q = _forearm_at_camera_pose()
    k = default_intrinsics(1088, 1920)
    results = {}
    for ratio in (0.7, 0.0):
        eng = LandmarkPoseEngine(LandmarkEngineConfig(foreshortened_elbow_ratio=ratio))
        fitter = SkelFitter(eng._generic)
        kp = fitter.keypoints(q)
        px33 = np.full((33, 2), 500.0)
        w33 = np.zeros((33, 3))
        vis33 = np.zeros(33)
        px33[FIT_LANDMARK_INDEX] = project(kp + [0.0, 0.0, DEPTH_M]) - [CAM.cx - k.cx, CAM.cy - k.cy]
        w33[FIT_LANDMARK_INDEX] = kp
        vis33[FIT_LANDMARK_INDEX] = 1.0
        lms = LandmarkSet(px33, w33, vis33, 1.0, np.zeros((2, 2)), None)
        box = np.array([300.0, 500.0, 800.0, 1400.0], np.float32)
        for _ in range(3):                       # warm: the fit converges, lengths as generic
            p = Person(track_id=1, track_state=TrackState.TRACKED, box_xyxy=box, score=1.0, crop_box_xyxy=box)
            eng._fill(p, ("cam", 1), lms, box, k)
        ratios = eng.last_limb_ratio[("cam", 1)]
        results[ratio] = (p.dof_observed.copy(), ratios)
        eng.close()
    seen, ratios = results[0.7]
    upper, fore = JOINT_BONES["elbow_flexion_r"]
    assert ratios[fore] < 0.5 and ratios[upper] > 0.8, ratios
    assert not seen[DOF_INDEX["elbow_flexion_r"]]
    for n in ("elbow_flexion_l", "knee_angle_r", "knee_angle_l", "hip_flexion_r"):
        assert seen[DOF_INDEX[n]], n
    assert results[0.0][0][DOF_INDEX["elbow_flexion_r"]]          # without the flag: "measured"


def test_image_length_ratio_and_flags_on_a_known_pose():
    fitter = SkelFitter(generic_skeleton(1.70))
    kp = fitter.keypoints(PRIOR_Q) + [0.0, 0.0, DEPTH_M]
    r = image_length_ratio(project(kp), kp[:, 2], CAM.fx, fitter.bone_lengths_m)
    direct = np.linalg.norm((kp[BONE_B] - kp[BONE_A])[:, :2], axis=1) / fitter.bone_lengths_m
    np.testing.assert_allclose(r, direct, atol=0.05)            # perspective: ends at other depths
    flags = foreshortened_dofs(np.where(np.arange(r.size) == JOINT_BONES["knee_angle_l"][1], 0.1, 1.0),
                               {"knee_angle": 0.5, "elbow_flexion": 0.5})
    assert np.flatnonzero(flags).tolist() == [DOF_INDEX["knee_angle_l"]]
    assert not foreshortened_dofs(np.zeros(r.size), {}).any()
