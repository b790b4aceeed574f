"""SKEL forward kinematics for a generic adult skeleton (owner: landmarks helper extends this).

Rotation convention of the root: the pelvis is a CustomJoint with axes (z, x, y), so
R_pelvis = Rz(q[0]) @ Rx(q[1]) @ Ry(q[2]), expressed in the camera frame (x right, y down, z fwd;
the SKEL mean pose has pelvis_tilt = pi, i.e. the body upright in that y-down frame).
"""
from __future__ import annotations

import numpy as np


def axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices about a principal axis ('x', 'y' or 'z'), angle in radians."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    if axis == "x":
        rows = [[o, z, z], [z, c, -s], [z, s, c]]
    elif axis == "y":
        rows = [[c, z, s], [z, o, z], [-s, z, c]]
    elif axis == "z":
        rows = [[c, -s, z], [s, c, z], [z, z, o]]
    else:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def root_rotation(q: np.ndarray) -> np.ndarray:
    """(..., 46) q -> (..., 3, 3) pelvis orientation in the camera frame."""
    q = np.asarray(q, dtype=np.float64)
    return axis_rotation("z", q[..., 0]) @ axis_rotation("x", q[..., 1]) @ axis_rotation("y", q[..., 2])


def rotation_to_wxyz(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0."""
    from scipy.spatial.transform import Rotation

    shape = r.shape[:-2]
    xyzw = Rotation.from_matrix(r.reshape(-1, 3, 3)).as_quat()
    wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    wxyz *= np.where(wxyz[:, :1] < 0, -1.0, 1.0)
    return wxyz.reshape(*shape, 4)


def root_orientation_wxyz(q: np.ndarray) -> np.ndarray:
    """(..., 46) q -> (..., 4) pelvis quaternion (w, x, y, z) in the camera frame."""
    return rotation_to_wxyz(root_rotation(q))
