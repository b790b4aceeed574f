"""Forward kinematics known answers: rest segment lengths, joint directions, analytic axes."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from engines.skel.batch_fk import posed_joints
from engines.skel.dofs import DOF_INDEX, DOF_JOINT, JOINT_NAMES, NUM_DOFS, NUM_JOINTS
from engines.skel.kinematics import (
    WINTER_FRACTIONS, descendants_mask, forward_kinematics, generic_skeleton, keypoints_from_fk,
    load_skel_joints, root_rotation)
from stream.errors import EngineError

H = 1.80
J = {n: i for i, n in enumerate(JOINT_NAMES)}


def _fk(**dofs):
    q = np.zeros(NUM_DOFS)
    for n, v in dofs.items():
        q[DOF_INDEX[n]] = v
    return forward_kinematics(q, generic_skeleton(H)).joints_m


def test_zero_pose_segment_lengths_follow_winter():
    p = _fk()
    for side in "rl":
        assert np.linalg.norm(p[J[f"tibia_{side}"]] - p[J[f"femur_{side}"]]) == pytest.approx(0.245 * H)
        assert np.linalg.norm(p[J[f"talus_{side}"]] - p[J[f"tibia_{side}"]]) == pytest.approx(0.246 * H)
        assert np.linalg.norm(p[J[f"ulna_{side}"]] - p[J[f"humerus_{side}"]]) == pytest.approx(0.186 * H)
    # hip centres straddle the pelvis along z (body right = +z), thigh hangs straight down (-y)
    np.testing.assert_allclose(p[J["femur_r"]] - p[J["femur_l"]], [0, 0, WINTER_FRACTIONS["hip_width"] * H])
    np.testing.assert_allclose(p[J["tibia_r"]] - p[J["femur_r"]], [0, -0.245 * H, 0], atol=1e-12)
    assert p[J["head"]][1] > p[J["thorax"]][1] > p[J["lumbar_body"]][1] > 0


def test_knee_flexion_moves_ankle_backward_by_the_shank_length():
    rest, bent = _fk(), _fk(knee_angle_r=np.pi / 2)
    shank = 0.246 * H
    np.testing.assert_allclose(bent[J["talus_r"]] - bent[J["tibia_r"]], [-shank, 0, 0], atol=1e-12)
    np.testing.assert_allclose(bent[J["talus_l"]], rest[J["talus_l"]])  # other leg untouched
    half = _fk(knee_angle_r=np.pi / 4)
    knee, ankle = half[J["tibia_r"]], half[J["talus_r"]]
    np.testing.assert_allclose(ankle - knee, shank * np.array([-np.sin(np.pi / 4), -np.cos(np.pi / 4), 0]))


def test_hip_and_elbow_flexion_move_forward_and_adduction_medially():
    p = _fk(hip_flexion_r=np.pi / 2, elbow_flexion_l=np.pi / 2)
    assert p[J["tibia_r"]][0] == pytest.approx(0.245 * H)          # knee in front of the hip
    fore = p[J["hand_l"]] - p[J["ulna_l"]]
    assert fore[0] > 0.9 * np.linalg.norm(fore)                     # forearm points anterior
    for side, sign in (("r", -1), ("l", 1)):                        # both adduct toward the midline
        a = _fk(**{f"hip_adduction_{side}": 0.4})
        assert np.sign(a[J[f"tibia_{side}"]][2] - a[J[f"femur_{side}"]][2]) == sign
    abd_r, abd_l = _fk(shoulder_r_x=1.2), _fk(shoulder_l_x=-1.2)    # SKEL limits: abduction r+, l-
    assert abd_r[J["ulna_r"]][2] > abd_r[J["humerus_r"]][2] + 0.1
    assert abd_l[J["ulna_l"]][2] < abd_l[J["humerus_l"]][2] - 0.1


def test_mirror_symmetry_of_left_and_right_legs():
    q = np.zeros(NUM_DOFS)
    for side in "rl":
        q[DOF_INDEX[f"hip_flexion_{side}"]] = 0.5
        q[DOF_INDEX[f"hip_adduction_{side}"]] = 0.2
        q[DOF_INDEX[f"hip_rotation_{side}"]] = 0.3
        q[DOF_INDEX[f"knee_angle_{side}"]] = 0.7
    p = forward_kinematics(q, generic_skeleton(H)).joints_m
    mirror = np.array([1.0, 1.0, -1.0])
    for a, b in (("talus_r", "talus_l"), ("tibia_r", "tibia_l"), ("toes_r", "toes_l")):
        np.testing.assert_allclose(p[J[a]] * mirror, p[J[b]], atol=1e-12)


def test_root_rotation_and_translation_place_the_body():
    rng = np.random.default_rng(3)
    q = rng.uniform(-1, 1, NUM_DOFS)
    root = np.array([0.2, -0.1, 3.0])
    fk = forward_kinematics(q, generic_skeleton(H), root)
    np.testing.assert_allclose(fk.rots[0], root_rotation(q), atol=1e-12)
    np.testing.assert_allclose(fk.joints_m[0], root)
    q0 = q.copy()
    q0[:3] = 0
    local = forward_kinematics(q0, generic_skeleton(H)).joints_m
    np.testing.assert_allclose(fk.joints_m, local @ root_rotation(q).T + root, atol=1e-12)
    # mean-pose tilt pi: upright in the y-down camera frame (head above the pelvis on screen)
    q_up = np.zeros(NUM_DOFS)
    q_up[0] = np.pi
    up = forward_kinematics(q_up, generic_skeleton(H)).joints_m
    assert up[J["head"]][1] < -0.4 and up[J["talus_r"]][1] > 0.7


def test_batched_fk_equals_per_pose_fk_with_shared_or_own_skeletons():
    """posed_joints (compiled, the adapters' one call per frame) gives each pose's
    forward_kinematics, with one skeleton for all poses or one per pose (people of different
    build)."""
    rng = np.random.default_rng(7)
    q = rng.normal(0.0, 0.5, (5, NUM_DOFS))
    root = rng.normal(0.0, 1.0, (5, 3))
    skeletons = [generic_skeleton(h) for h in (1.5, 1.6, 1.7, 1.8, 1.9)]
    own, own_rots = posed_joints(q, np.stack([s.offsets_m for s in skeletons]), root)
    shared, _ = posed_joints(q, skeletons[0].offsets_m)
    for i, sk in enumerate(skeletons):
        fk = forward_kinematics(q[i], sk, root[i])
        np.testing.assert_allclose(own[i], fk.joints_m, atol=1e-12)
        np.testing.assert_allclose(own_rots[i], fk.rots, atol=1e-12)
        np.testing.assert_allclose(shared[i], forward_kinematics(q[i], skeletons[0]).joints_m, atol=1e-12)


def test_dof_axes_match_finite_differences():
    rng = np.random.default_rng(0)
    sk = generic_skeleton(H)
    names = sk.keypoint_names
    kp_joint = np.array([sk.keypoints[n][0] for n in names])
    below = descendants_mask()
    q = rng.uniform(-1.0, 1.0, NUM_DOFS)
    fk = forward_kinematics(q, sk)
    p = keypoints_from_fk(fk, sk, names)
    for d in range(NUM_DOFS):
        qq = q.copy()
        qq[d] += 1e-6
        num = (keypoints_from_fk(forward_kinematics(qq, sk), sk, names) - p) / 1e-6
        j = DOF_JOINT[d]
        ana = np.cross(fk.dof_axes_world[d], p - fk.joints_m[j]) * below[j, kp_joint][:, None]
        np.testing.assert_allclose(num, ana, atol=2e-5, err_msg=f"DoF {d}")


def test_skel_loader_reads_rest_joints_and_rejects_other_files(tmp_path):
    with pytest.raises(EngineError, match="not found"):
        load_skel_joints(tmp_path / "nope.pkl")
    bad = tmp_path / "skel_male.pkl"
    bad.write_bytes(pickle.dumps({"something": 1}))
    with pytest.raises(EngineError, match="not a SKEL model"):
        load_skel_joints(tmp_path)
    # a minimal file with SKEL's two keys: one vertex per joint, identity regressor
    rng = np.random.default_rng(1)
    verts = rng.normal(size=(NUM_JOINTS, 3))
    bad.write_bytes(pickle.dumps({"skin_template_v": verts, "J_regressor_osim": np.eye(NUM_JOINTS)}))
    off = load_skel_joints(tmp_path)
    assert off.shape == (NUM_JOINTS, 3)
    # SMPL frame (y up, z forward) -> x anterior, z right: z_smpl becomes x
    d = verts[1] - verts[0]
    np.testing.assert_allclose(off[1], [d[2], d[1], -d[0]])
