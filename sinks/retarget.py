"""SKEL pose -> Unity humanoid bones (`HumanBodyBones` names), the frame VMC and VRM avatars use.

Pure math, no sockets (the VMC sender is `sinks/vmc.py`). Conventions of the target:
- Unity space: X right, Y up, Z forward, left-handed; quaternions (x, y, z, w), the usual algebra
  (Unity's `Quaternion * Vector3` is the standard rotation of coordinates).
- A VRM-normalised avatar in T-pose has every bone's rotation = identity, facing +Z, so a bone's
  local rotation is its parent-relative rotation away from the T-pose.

How SKEL maps onto it. SKEL body frames are x anterior, y superior, z right (`kinematics.py`), so
a vector in a SKEL body frame is `M @ v` in Unity's axes (M swaps x and z: a reflection, which is
exactly the right- to left-handed change). Camera frame (x right, y down, z forward) -> Unity world
is `F = diag(1, -1, 1)` (another reflection). SKEL's rest pose has the arms hanging down, the
T-pose has them sideways: `C_b` rotates a bone's T-pose frame into its SKEL rest frame (identity
except the arms). A bone's Unity world rotation is then `W_b = F R_b C_b M^T` (R_b: SKEL joint
frame in the camera frame, from forward kinematics) and its local rotation
`L_b = W_parent^T W_b = M (C_p^T R_p^T R_b C_b) M^T`, which no longer depends on the camera.

Unity has fewer bones than SKEL has joints: Foot carries talus and subtalar (calcn frame),
LowerArm carries elbow flexion and pronation (radius frame), Neck carries SKEL's head joint and
Head stays at identity (SKEL has no separate neck DoFs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.skel.dofs import DOF_INDEX, JOINT_NAMES, NUM_DOFS
from engines.skel.batch_fk import posed_joints
from engines.skel.kinematics import Skeleton, axis_rotation, forward_kinematics, generic_skeleton

_J = {n: i for i, n in enumerate(JOINT_NAMES)}

# (Unity HumanBodyBones name, parent bone, SKEL joint whose frame it takes, SKEL joint at its origin)
BONE_TABLE: tuple[tuple[str, str | None, str, str], ...] = (
    ("Hips", None, "pelvis", "pelvis"),
    ("LeftUpperLeg", "Hips", "femur_l", "femur_l"),
    ("LeftLowerLeg", "LeftUpperLeg", "tibia_l", "tibia_l"),
    ("LeftFoot", "LeftLowerLeg", "calcn_l", "talus_l"),
    ("LeftToes", "LeftFoot", "toes_l", "toes_l"),
    ("RightUpperLeg", "Hips", "femur_r", "femur_r"),
    ("RightLowerLeg", "RightUpperLeg", "tibia_r", "tibia_r"),
    ("RightFoot", "RightLowerLeg", "calcn_r", "talus_r"),
    ("RightToes", "RightFoot", "toes_r", "toes_r"),
    ("Spine", "Hips", "lumbar_body", "lumbar_body"),
    ("Chest", "Spine", "thorax", "thorax"),
    ("Neck", "Chest", "head", "head"),
    ("Head", "Neck", "head", "head"),
    ("LeftShoulder", "Chest", "scapula_l", "scapula_l"),
    ("LeftUpperArm", "LeftShoulder", "humerus_l", "humerus_l"),
    ("LeftLowerArm", "LeftUpperArm", "radius_l", "ulna_l"),
    ("LeftHand", "LeftLowerArm", "hand_l", "hand_l"),
    ("RightShoulder", "Chest", "scapula_r", "scapula_r"),
    ("RightUpperArm", "RightShoulder", "humerus_r", "humerus_r"),
    ("RightLowerArm", "RightUpperArm", "radius_r", "ulna_r"),
    ("RightHand", "RightLowerArm", "hand_r", "hand_r"),
)
BONE_NAMES: tuple[str, ...] = tuple(b[0] for b in BONE_TABLE)
BONE_PARENTS: np.ndarray = np.array(
    [-1 if b[1] is None else BONE_NAMES.index(b[1]) for b in BONE_TABLE], dtype=np.int64)
"""(B,) int64: parent bone index, -1 for Hips; parents come before children."""
_FRAME_JOINT = np.array([_J[b[2]] for b in BONE_TABLE], dtype=np.int64)
_ORIGIN_JOINT = np.array([_J[b[3]] for b in BONE_TABLE], dtype=np.int64)
HEAD_RISE_FRACTION = 0.05
"""Head bone origin above SKEL's head joint (neck base), fraction of body height: geometry only."""

M_SKEL_TO_UNITY = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
"""SKEL body axes (x anterior, y up, z right) -> Unity (X right, Y up, Z forward); det -1."""
F_CAMERA_TO_UNITY = np.diag([1.0, -1.0, 1.0])
"""OpenCV camera frame (x right, y down, z forward) -> Unity world (X right, Y up, Z forward)."""
WORLD_TO_UNITY = np.diag([1.0, 1.0, -1.0])
"""Gravity-aligned world of `sinks.world_frame` (y up, z toward the camera) -> Unity (Z away)."""


def unity_from_camera(r_wc: np.ndarray | None = None) -> np.ndarray:
    """(3, 3) camera frame -> Unity world: through a gravity-aligned world rotation `r_wc` when
    the camera pose is known (avatar upright on a level floor), else the plain y flip."""
    return F_CAMERA_TO_UNITY if r_wc is None else WORLD_TO_UNITY @ np.asarray(r_wc, np.float64)


def _rest_to_tpose() -> np.ndarray:
    """(B, 3, 3) C_b: T-pose bone frame -> SKEL rest frame (arms: down -> sideways)."""
    c = np.tile(np.eye(3), (len(BONE_TABLE), 1, 1))
    for i, name in enumerate(BONE_NAMES):
        if name.endswith(("UpperArm", "LowerArm", "Hand")):
            # right arm: T-pose +z (right) is SKEL rest -y (down): Rx(+90 deg); left: Rx(-90 deg)
            c[i] = axis_rotation("x", np.pi / 2 if name.startswith("Right") else -np.pi / 2)
    return c


C_BONE: np.ndarray = _rest_to_tpose()
_C_PARENT = C_BONE[np.maximum(BONE_PARENTS, 0)]


def tpose_q() -> np.ndarray:
    """(46,) q of the T-pose in SKEL terms: arms abducted 90 deg, all else 0 (pelvis identity)."""
    q = np.zeros(NUM_DOFS)
    q[DOF_INDEX["shoulder_r_x"]] = np.pi / 2   # abduction: right +, left - (kinematics.py)
    q[DOF_INDEX["shoulder_l_x"]] = -np.pi / 2
    return q


@dataclass(frozen=True)
class HumanoidRig:
    """T-pose geometry of the avatar the bones drive: local offsets (B, 3) metres, Unity axes."""
    local_offsets_m: np.ndarray
    height_m: float


def humanoid_rig(skeleton: Skeleton | None = None, height_m: float = 1.70) -> HumanoidRig:
    """Bone origins in T-pose from a SKEL skeleton, as offsets from each parent (Unity axes, m)."""
    sk = skeleton or generic_skeleton(height_m)
    fk = forward_kinematics(tpose_q(), sk)
    pos = fk.joints_m[_ORIGIN_JOINT].copy()
    head = BONE_NAMES.index("Head")
    pos[head] += fk.rots[_J["head"]] @ np.array([0.0, HEAD_RISE_FRACTION * height_m, 0.0])
    rel = pos - np.where(BONE_PARENTS[:, None] >= 0, pos[np.maximum(BONE_PARENTS, 0)], 0.0)
    return HumanoidRig(local_offsets_m=rel @ M_SKEL_TO_UNITY.T, height_m=height_m)


def bone_world_rotations(joint_rots: np.ndarray, to_unity: np.ndarray = F_CAMERA_TO_UNITY
                         ) -> np.ndarray:
    """(..., 24, 3, 3) SKEL joint frames (camera frame) -> (..., B, 3, 3) Unity world rotations
    W_b = F R_b C_b M^T of each bone (identity for every bone of an upright T-pose facing +Z);
    F = `to_unity` (camera -> Unity world, see `unity_from_camera`)."""
    r = joint_rots[..., _FRAME_JOINT, :, :]
    return to_unity @ r @ C_BONE @ M_SKEL_TO_UNITY.T


def bone_local_rotations(joint_rots: np.ndarray, to_unity: np.ndarray = F_CAMERA_TO_UNITY
                         ) -> np.ndarray:
    """(..., 24, 3, 3) SKEL joint frames -> (..., B, 3, 3) Unity local rotations (parent-relative;
    Hips: relative to the Unity world, reached from the camera by `to_unity`)."""
    r = joint_rots[..., _FRAME_JOINT, :, :] @ C_BONE                     # R_b C_b
    rp = joint_rots[..., _FRAME_JOINT[np.maximum(BONE_PARENTS, 0)], :, :] @ _C_PARENT
    rel = np.swapaxes(rp, -1, -2) @ r                                     # (R_p C_p)^T R_b C_b
    m = M_SKEL_TO_UNITY
    local = m @ rel @ m.T
    local[..., 0, :, :] = to_unity @ r[..., 0, :, :] @ m.T                # Hips in the world
    return local


def matrix_to_xyzw(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) quaternions (x, y, z, w), w >= 0 (Unity order)."""
    from scipy.spatial.transform import Rotation

    shape = r.shape[:-2]
    # products of FK rotations and fixed axis changes: orthonormal to rounding, so scipy's
    # orthonormality checks (most of this call's cost) are skipped
    xyzw = Rotation.from_matrix(r.reshape(-1, 3, 3), assume_valid=True).as_quat()
    xyzw *= np.where(xyzw[:, 3:] < 0, -1.0, 1.0)
    return xyzw.reshape(*shape, 4)


def camera_to_unity_position(p_m: np.ndarray, world=None) -> np.ndarray:
    """(..., 3) metres in the camera frame -> Unity world: y flipped up, or, with a
    `sinks.world_frame.WorldFrame`, on its level floor (y = 0) with z away from the camera."""
    p = np.asarray(p_m, dtype=np.float64)
    if world is None:
        return p * np.array([1.0, -1.0, 1.0])
    return world.points(p) @ WORLD_TO_UNITY.T


def retarget(q: np.ndarray, skeleton: Skeleton, to_unity: np.ndarray = F_CAMERA_TO_UNITY
             ) -> np.ndarray:
    """(46,) q radians -> (B, 4) local quaternions (x, y, z, w) of BONE_NAMES in Unity space."""
    _, rots = posed_joints(np.asarray(q, dtype=np.float64)[None], skeleton.offsets_m)  # compiled FK
    return matrix_to_xyzw(bone_local_rotations(rots[0], to_unity))


def compose_bones(local_rots: np.ndarray, rig: HumanoidRig, root_m: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of the Unity rig: (B, 3, 3) local rotations -> (world rotations (B, 3, 3),
    bone origins (B, 3) m), Unity world. What a VMC receiver does with the bones we send."""
    world = np.empty_like(local_rots)
    pos = np.zeros((len(BONE_NAMES), 3))
    for b, p in enumerate(BONE_PARENTS):
        if p < 0:
            world[b] = local_rots[b]
            pos[b] = rig.local_offsets_m[b] + (0.0 if root_m is None else root_m)
        else:
            world[b] = world[p] @ local_rots[b]
            pos[b] = pos[p] + world[p] @ rig.local_offsets_m[b]
    return world, pos
