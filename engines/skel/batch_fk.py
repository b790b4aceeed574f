"""Forward kinematics of many poses at once, compiled: the adapters (ROS 2 TF and markers, the
live viewer) pose every person of every frame, where numpy's per-call overhead made FK the
largest part of their per-frame cost (~100 us for 4 people, vs a few us here).

The same tree and DoF conventions as `engines.skel.kinematics.forward_kinematics` (the reference:
tests check both agree); joint origins and frames only, no DoF axes.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engines.skel.dofs import DOF_JOINT, JOINT_PARENTS, NUM_DOFS, NUM_JOINTS
from engines.skel.kinematics import DOF_AXIS, DOF_SIGN

_PARENTS = np.asarray(JOINT_PARENTS, dtype=np.int64)
if not all(p < j for j, p in enumerate(JOINT_PARENTS) if j):
    raise RuntimeError("batch_fk: joints must come after their parents")
_SLOT = np.full((NUM_JOINTS, 3), -1, dtype=np.int64)   # DoFs of each joint, composition order
for _j in range(NUM_JOINTS):
    _d = np.flatnonzero(DOF_JOINT == _j)
    _SLOT[_j, :len(_d)] = _d
_AXIS = np.argmax(np.abs(DOF_AXIS), axis=1).astype(np.int64)  # principal axis of each DoF
_SIGN = DOF_SIGN * DOF_AXIS[np.arange(NUM_DOFS), _AXIS]      # sign applied to q (axes are +x/+y/+z)


@njit(cache=True)
def _axis_rotate_right(r, axis, angle):
    """r <- r @ R_axis(angle), in place (r: (3, 3))."""
    c, s = np.cos(angle), np.sin(angle)
    a, b = (1, 2) if axis == 0 else ((2, 0) if axis == 1 else (0, 1))
    for i in range(3):   # columns a, b of r turn in their plane
        ra, rb = r[i, a], r[i, b]
        r[i, a] = c * ra + s * rb
        r[i, b] = -s * ra + c * rb


@njit(cache=True)
def _posed_kernel(q, offsets, root, parents, slot, axis, sign, joints, rots):
    local = np.empty((3, 3))
    for p in range(q.shape[0]):
        for j in range(parents.shape[0]):
            local[:] = 0.0
            local[0, 0] = local[1, 1] = local[2, 2] = 1.0
            for k in range(3):
                d = slot[j, k]
                if d < 0:
                    break
                _axis_rotate_right(local, axis[d], sign[d] * q[p, d])
            par = parents[j]
            if par < 0:
                rots[p, j] = local
                joints[p, j] = root[p]
                continue
            for i in range(3):
                acc = 0.0
                for m in range(3):
                    acc += rots[p, par, i, m] * offsets[p, j, m]
                    rots[p, j, i, m] = (rots[p, par, i, 0] * local[0, m] + rots[p, par, i, 1] * local[1, m]
                                        + rots[p, par, i, 2] * local[2, m])
                joints[p, j, i] = joints[p, par, i] + acc


def posed_joints(q: np.ndarray, offsets_m: np.ndarray,
                 root_m: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FK of many poses in one compiled call.

    q: (P, 46) rad; offsets_m: (24, 3) or (P, 24, 3) rest offsets (`Skeleton.offsets_m`, one
    skeleton for all or one per pose); root_m: (P, 3) pelvis positions or None (origin).
    Returns joint origins (P, 24, 3) m and frames (P, 24, 3, 3), equal to `forward_kinematics`
    of each pose (same output frame: the camera frame for an engine's q)."""
    q = np.ascontiguousarray(q, dtype=np.float64).reshape(-1, NUM_DOFS)
    n = q.shape[0]
    off = np.asarray(offsets_m, dtype=np.float64)
    # C-contiguous float64 everywhere: one compiled signature
    off = np.ascontiguousarray(np.broadcast_to(off, (n, NUM_JOINTS, 3)))
    root = np.zeros((n, 3)) if root_m is None else np.ascontiguousarray(root_m, dtype=np.float64).reshape(n, 3)
    joints, rots = np.empty((n, NUM_JOINTS, 3)), np.empty((n, NUM_JOINTS, 3, 3))
    _posed_kernel(q, off, root, _PARENTS, _SLOT, _AXIS, _SIGN, joints, rots)
    return joints, rots


# compile (or load numba's on-disk cache) when imported, in a stage's setup, not on its first frame
posed_joints(np.zeros((1, NUM_DOFS)), np.zeros((NUM_JOINTS, 3)))
