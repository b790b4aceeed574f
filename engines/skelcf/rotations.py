"""SKEL-CF pose representation: 144 values (24 joints x 6) <-> 46 SKEL Euler DoFs (radians).

The network predicts, per joint, either a 6D rotation (first two rows of the rotation matrix, for
3-DoF joints), (cos q, -sin q) for 1-DoF joints, or the two raw angles for the wrists; 88 of the 144
values are used. The conventions (Euler order reversed w.r.t. the SKEL joint axes, per-axis sign
flips) follow HSMR's `params_rep2q` and are checked against ../shared/skelcf/golden.

Everything here is export-safe: constant index lists, no data-dependent control flow.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

N_JOINTS = 24
N_DOFS = 46

# SKEL joint id -> indices of its DoFs in the 46-vector (skel_dofs.txt order).
JID2QIDS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (3, 4, 5), (6,), (7,), (8,), (9,), (10, 11, 12), (13,), (14,), (15,), (16,),
    (17, 18, 19), (20, 21, 22), (23, 24, 25), (26, 27, 28), (29, 30, 31), (32,), (33,), (34, 35),
    (36, 37, 38), (39, 40, 41), (42,), (43,), (44, 45),
)
DOF1_JIDS = [j for j, q in enumerate(JID2QIDS) if len(q) == 1]
DOF2_JIDS = [j for j, q in enumerate(JID2QIDS) if len(q) == 2]
# 3-DoF joints grouped by the Euler convention that reads them (axes reversed) and their sign flips.
DOF3_GROUPS: dict[str, tuple[tuple[int, ...], tuple[tuple[float, float, float], ...]]] = {
    "YXZ": ((0, 1, 6), ((1, 1, 1), (1, 1, 1), (1, -1, -1))),       # pelvis, femur_r, femur_l
    "YZX": ((11, 12, 13), ((1, 1, 1), (1, 1, 1), (1, 1, 1))),      # lumbar, thorax, head
    "XZY": ((14, 19), ((1, -1, -1), (1, 1, 1))),                   # scapula_r, scapula_l
    "ZYX": ((15, 20), ((1, 1, 1), (1, 1, 1))),                     # humerus_r, humerus_l
}


def _q_order() -> list[int]:
    """The 46 DoF indices in the order rep_to_q computes them (1-DoF, 2-DoF, then groups)."""
    order = [JID2QIDS[j][0] for j in DOF1_JIDS]
    order += [q for j in DOF2_JIDS for q in JID2QIDS[j]]
    order += [q for jids, _ in DOF3_GROUPS.values() for j in jids for q in JID2QIDS[j]]
    return order


_ORDER = _q_order()
_INV_ORDER = [_ORDER.index(i) for i in range(N_DOFS)]
_AXIS = {"X": 0, "Y": 1, "Z": 2}


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross product by slicing (torch.linalg.cross has no ONNX symbolic in every exporter)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return torch.stack((a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0), dim=-1)


def sixd_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt; the 6 values are the first two ROWS of the matrix."""
    b1 = F.normalize(d6[..., :3], dim=-1)
    a2 = d6[..., 3:]
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack((b1, b2, _cross(b1, b2)), dim=-2)


def matrix_to_sixd(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): first two rows."""
    return m[..., :2, :].reshape(*m.shape[:-2], 6)


def _axis_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    """Right-handed rotation about one axis: (...,) rad -> (..., 3, 3)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "X":
        rows = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == "Y":
        rows = (c, zero, s, zero, one, zero, -s, zero, c)
    else:
        rows = (c, -s, zero, s, c, zero, zero, zero, one)
    return torch.stack(rows, -1).reshape(*angle.shape, 3, 3)


def euler_to_matrix(angles: torch.Tensor, convention: str) -> torch.Tensor:
    """Intrinsic Tait-Bryan: R = R_c0(a0) @ R_c1(a1) @ R_c2(a2); angles (..., 3) rad."""
    m = [_axis_rotation(ax, angles[..., i]) for i, ax in enumerate(convention)]
    return m[0] @ m[1] @ m[2]


def _angle_from_tan(axis: str, other: str, data: torch.Tensor, horizontal: bool) -> torch.Tensor:
    i1, i2 = {"X": (2, 1), "Y": (0, 2), "Z": (1, 0)}[axis]
    if horizontal:
        i1, i2 = i2, i1
    even = (axis + other) in ("XY", "YZ", "ZX")
    if horizontal == even:
        return torch.atan2(data[..., i1], data[..., i2])
    return torch.atan2(-data[..., i2], data[..., i1])


def matrix_to_euler(m: torch.Tensor, convention: str) -> torch.Tensor:
    """Inverse of `euler_to_matrix` for Tait-Bryan conventions: (..., 3, 3) -> (..., 3) rad.

    The middle angle uses asin of a clamped entry, so a float32 matrix a hair outside [-1, 1]
    gives +-pi/2 instead of NaN.
    """
    i0, i2 = _AXIS[convention[0]], _AXIS[convention[2]]
    sign = -1.0 if (i0 - i2) in (-1, 2) else 1.0
    central = torch.asin((m[..., i0, i2] * sign).clamp(-1.0, 1.0))
    first = _angle_from_tan(convention[0], convention[1], m[..., :, i2], False)
    last = _angle_from_tan(convention[2], convention[1], m[..., i0, :], True)
    return torch.stack((first, central, last), -1)


def rep_to_q(poses_rep: torch.Tensor) -> torch.Tensor:
    """(B, 144) (or (B, 24, 6)) network pose representation -> (B, 46) SKEL DoFs, radians."""
    r = poses_rep.reshape(poses_rep.shape[0], N_JOINTS, 6)
    b = r.shape[0]
    r1 = r[:, DOF1_JIDS, :2]
    parts = [torch.atan2(-r1[..., 1], r1[..., 0]), r[:, DOF2_JIDS, :2].reshape(b, -1)]
    for conv, (jids, flips) in DOF3_GROUPS.items():
        e = matrix_to_euler(sixd_to_matrix(r[:, list(jids), :]), conv)      # (B, J, 3)
        q = e.flip(-1) * e.new_tensor(flips)                                  # SKEL order reversed
        parts.append(q.reshape(b, -1))
    return torch.cat(parts, -1)[:, _INV_ORDER]


def q_to_rep(q: torch.Tensor) -> torch.Tensor:
    """(B, 46) SKEL DoFs, radians -> (B, 144) representation; unused slots are zero."""
    b = q.shape[0]
    rep = q.new_zeros(b, N_JOINTS, 6)
    for j in DOF1_JIDS:
        a = q[:, JID2QIDS[j][0]]
        rep[:, j, 0], rep[:, j, 1] = torch.cos(a), -torch.sin(a)
    for j in DOF2_JIDS:
        rep[:, j, :2] = q[:, list(JID2QIDS[j])]
    for conv, (jids, flips) in DOF3_GROUPS.items():
        for j, flip in zip(jids, flips):
            e = (q[:, list(JID2QIDS[j])] * q.new_tensor(flip)).flip(-1)
            rep[:, j] = matrix_to_sixd(euler_to_matrix(e, conv))
    return rep.reshape(b, N_JOINTS * 6)
