"""The 46 SKEL pose DoFs and 24 joints: names, order, tree and joint limits.

Shared by engines (outputs are in this order), tracking (limits for the filters) and sinks (the
metadata message). Values follow `skel_dofs.txt`: official SKEL limits, HSMR's where SKEL has none,
each bound ordered (min, max), pelvis unbounded. Units: radians.
"""
from __future__ import annotations

import numpy as np

NUM_DOFS = 46
NUM_JOINTS = 24
NUM_BETAS = 10

# (name, joint id, lower, upper); None = unbounded
_DOF_TABLE: tuple[tuple[str, int, float | None, float | None], ...] = (
    ("pelvis_tilt", 0, None, None),
    ("pelvis_list", 0, None, None),
    ("pelvis_rotation", 0, None, None),
    ("hip_flexion_r", 1, -0.785398, 2.356194),
    ("hip_adduction_r", 1, -0.785398, 0.523599),
    ("hip_rotation_r", 1, -0.785398, 0.785398),
    ("knee_angle_r", 2, 0.0, 2.356194),
    ("ankle_angle_r", 3, -0.785398, 0.785398),
    ("subtalar_angle_r", 4, -0.785398, 0.785398),
    ("mtp_angle_r", 5, -0.785398, 0.785398),
    ("hip_flexion_l", 6, -0.785398, 2.356194),
    ("hip_adduction_l", 6, -0.785398, 0.523599),
    ("hip_rotation_l", 6, -0.785398, 0.785398),
    ("knee_angle_l", 7, 0.0, 2.356194),
    ("ankle_angle_l", 8, -0.785398, 0.785398),
    ("subtalar_angle_l", 9, -0.785398, 0.785398),
    ("mtp_angle_l", 10, -0.785398, 0.785398),
    ("lumbar_bending", 11, -0.523599, 0.523599),
    ("lumbar_extension", 11, -0.785398, 0.785398),
    ("lumbar_twist", 11, -0.785398, 0.785398),
    ("thorax_bending", 12, -0.785398, 0.785398),
    ("thorax_extension", 12, -0.785398, 0.785398),
    ("thorax_twist", 12, -0.785398, 0.785398),
    ("head_bending", 13, -0.785398, 0.785398),
    ("head_extension", 13, -0.785398, 0.785398),
    ("head_twist", 13, -0.785398, 0.785398),
    ("scapula_abduction_r", 14, -0.628, 0.628),
    ("scapula_elevation_r", 14, -0.4, -0.1),
    ("scapula_upward_rot_r", 14, -0.19, 0.319),
    ("shoulder_r_x", 15, -1.570796, 3.070796),
    ("shoulder_r_y", 15, -1.570796, 1.570796),
    ("shoulder_r_z", 15, -1.570796, 1.570796),
    ("elbow_flexion_r", 16, 0.0, 2.356194),
    ("pro_sup_r", 17, -1.178097, 1.178097),
    ("wrist_flexion_r", 18, -1.570796, 1.570796),
    ("wrist_deviation_r", 18, -0.785398, 0.785398),
    ("scapula_abduction_l", 19, -0.628, 0.628),
    ("scapula_elevation_l", 19, -0.4, -0.1),
    ("scapula_upward_rot_l", 19, -0.21, 0.219),
    ("shoulder_l_x", 20, -3.070796, 1.570796),
    ("shoulder_l_y", 20, -1.570796, 1.570796),
    ("shoulder_l_z", 20, -1.570796, 1.570796),
    ("elbow_flexion_l", 21, 0.0, 2.356194),
    ("pro_sup_l", 22, -1.570796, 1.570796),
    ("wrist_flexion_l", 23, -1.570796, 1.570796),
    ("wrist_deviation_l", 23, -0.785398, 0.785398),
)

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "femur_r", "tibia_r", "talus_r", "calcn_r", "toes_r",
    "femur_l", "tibia_l", "talus_l", "calcn_l", "toes_l",
    "lumbar_body", "thorax", "head",
    "scapula_r", "humerus_r", "ulna_r", "radius_r", "hand_r",
    "scapula_l", "humerus_l", "ulna_l", "radius_l", "hand_l",
)
JOINT_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 12, 14, 15, 16, 17, 12, 19, 20, 21, 22,
)

DOF_NAMES: tuple[str, ...] = tuple(row[0] for row in _DOF_TABLE)
DOF_JOINT: np.ndarray = np.array([row[1] for row in _DOF_TABLE], dtype=np.int64)
"""(46,) int64: joint id (index into JOINT_NAMES) that each DoF rotates."""
DOF_LOWER: np.ndarray = np.array(
    [-np.inf if row[2] is None else row[2] for row in _DOF_TABLE], dtype=np.float64)
"""(46,) float64 radians; -inf where unbounded."""
DOF_UPPER: np.ndarray = np.array(
    [np.inf if row[3] is None else row[3] for row in _DOF_TABLE], dtype=np.float64)
"""(46,) float64 radians; +inf where unbounded."""
DOF_BOUNDED: np.ndarray = np.isfinite(DOF_LOWER) & np.isfinite(DOF_UPPER)
"""(46,) bool: True for the 43 limited DoFs; False for the pelvis (angles wrap on the circle)."""
DOF_INDEX: dict[str, int] = {name: i for i, name in enumerate(DOF_NAMES)}
ROOT_DOFS = slice(0, 3)
"""q[0:3]: pelvis tilt/list/rotation = the body's orientation in the camera frame."""

for _i in range(NUM_DOFS):
    if DOF_BOUNDED[_i] and not DOF_LOWER[_i] < DOF_UPPER[_i]:
        raise RuntimeError(f"DoF table: bounds of {DOF_NAMES[_i]} are not ordered")


def joint_dofs(joint_id: int) -> np.ndarray:
    """Indices into q of the DoFs of one joint, in q order."""
    return np.flatnonzero(DOF_JOINT == joint_id)


def clip_to_limits(q: np.ndarray) -> np.ndarray:
    """Project (..., 46) angles onto the joint-limit box (radians); unbounded DoFs pass through."""
    return np.clip(q, DOF_LOWER, DOF_UPPER)


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Wrap radians to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi
