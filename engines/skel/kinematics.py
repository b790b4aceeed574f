"""SKEL forward kinematics: 24-joint tree, per-DoF joint axes, generic adult skeleton.

Rotation convention of the root: the pelvis is a CustomJoint with axes (z, x, y), so
R_pelvis = Rz(q[0]) @ Rx(q[1]) @ Ry(q[2]), expressed in the camera frame (x right, y down, z fwd;
the SKEL mean pose has pelvis_tilt = pi, i.e. the body upright in that y-down frame).

Body frame of every bone at q = 0 (OpenSim's, which SKEL's joint axes are written in): x anterior,
y superior, z to the body's right. Hip flexion about +z moves the thigh forward, the WalkerKnee
rotates about z by -q (the shank swings back), the elbow axis is ~+z for both arms, exactly as in
`skel_dofs.txt`. The generic model keeps each joint's axis order and flips from that file; for
the humerus it uses x as ab-/adduction with the sign that makes the SKEL limits and mean pose read
as abduction (right +, left -), z as flexion, y as axial rotation (mirrored on the left).

Segment lengths: Winter (2009) "Biomechanics and Motor Control of Human Movement", segment lengths
as fractions of body height H, with de Leva (1996) joint-centre corrections for the hip and
shoulder widths. Exact joints from a licensed SKEL model file: `load_skel_joints` (optional).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.skel.dofs import DOF_JOINT, JOINT_PARENTS, NUM_DOFS, NUM_JOINTS


_AXIS_INDEX = {"x": 0, "y": 1, "z": 2}


def axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices about a principal axis ('x', 'y' or 'z'), angle in radians."""
    if axis not in _AXIS_INDEX:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    i = _AXIS_INDEX[axis]
    j, k = (i + 1) % 3, (i + 2) % 3            # the plane it turns: j -> k by +angle
    out = np.zeros(angle.shape + (3, 3))        # (filled in place: nine stacked arrays took
    out[..., i, i] = 1.0                        #   ~8x as long, and the fitter calls it per pose)
    out[..., j, j] = c
    out[..., j, k] = -s
    out[..., k, j] = s
    out[..., k, k] = c
    return out


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


# --- joint types --------------------------------------------------------------------------------
_X, _Y, _Z = np.eye(3)
# Per DoF (q order): rotation axis in the joint's own frame (unit) and sign applied to q.
# Within a joint, DoFs compose left to right: R_joint = A1(s1 q1) @ A2(s2 q2) @ A3(s3 q3).
_DOF_AXES: tuple[tuple[np.ndarray, float], ...] = (
    (_Z, 1.0), (_X, 1.0), (_Y, 1.0),                  # pelvis CustomJoint (z, x, y)
    (_Z, 1.0), (_X, 1.0), (_Y, 1.0),                  # femur_r CustomJoint (z, x, y) flip (1, 1, 1)
    (_Z, -1.0),                                       # tibia_r WalkerKnee: about z by -q
    (_Z, 1.0),                                        # talus_r ankle: dorsiflexion +
    (_X, 1.0),                                        # calcn_r subtalar
    (_Z, 1.0),                                        # toes_r mtp
    (_Z, 1.0), (_X, -1.0), (_Y, -1.0),                # femur_l flip (1, -1, -1)
    (_Z, -1.0),                                       # tibia_l
    (_Z, 1.0),                                        # talus_l
    (_X, -1.0),                                       # calcn_l (mirrored)
    (_Z, 1.0),                                        # toes_l
    (_X, 1.0), (_Z, 1.0), (_Y, 1.0),                  # lumbar ConstantCurvature (x, z, y)
    (_X, 1.0), (_Z, 1.0), (_Y, 1.0),                  # thorax
    (_X, 1.0), (_Z, 1.0), (_Y, 1.0),                  # head
    (_Y, 1.0), (_Z, -1.0), (_X, -1.0),                # scapula_r Ellipsoid (y, z, x) flip (1, -1, -1)
    (_X, -1.0), (_Y, 1.0), (_Z, 1.0),                 # humerus_r: abduction +, axial, flexion +
    (_Z, 1.0),                                        # ulna_r elbow flexion (SKEL axis ~ +z)
    (_Y, 1.0),                                        # radius_r pro/sup (SKEL axis ~ +y)
    (_X, 1.0), (_Z, -1.0),                            # hand_r (x, -z)
    (_Y, 1.0), (_Z, 1.0), (_X, 1.0),                  # scapula_l flip (1, 1, 1)
    (_X, -1.0), (_Y, -1.0), (_Z, 1.0),                # humerus_l: abduction -, axial mirrored
    (_Z, 1.0),                                        # ulna_l (SKEL axis ~ +z)
    (_Y, -1.0),                                       # radius_l (SKEL axis ~ -y)
    (_X, -1.0), (_Z, -1.0),                           # hand_l (-x, -z)
)
DOF_AXIS: np.ndarray = np.stack([a for a, _ in _DOF_AXES])
"""(46, 3) float64: rotation axis of each DoF in its joint's frame (body frame at q = 0)."""
DOF_SIGN: np.ndarray = np.array([s for _, s in _DOF_AXES])
"""(46,) float64: +1/-1 applied to q before rotating (the flips of skel_dofs.txt)."""
if len(_DOF_AXES) != NUM_DOFS:
    raise RuntimeError("kinematics: one axis per DoF expected")
_JOINT_DOFS: tuple[tuple[int, ...], ...] = tuple(
    tuple(int(i) for i in np.flatnonzero(DOF_JOINT == j)) for j in range(NUM_JOINTS))

# Winter (2009) fractions of body height H (x anterior, y superior, z right; left side mirrored)
WINTER_FRACTIONS: dict[str, float] = {
    "thigh": 0.245,          # hip joint -> knee
    "shank": 0.246,          # knee -> ankle
    "ankle_height": 0.039,   # ankle -> floor
    "foot": 0.152,           # heel -> toe tip
    "hip_width": 0.100,      # between hip joint centres (de Leva)
    "lumbar": 0.060,         # hip centre -> L5/S1 (lumbar joint)
    "thorax": 0.120,         # lumbar -> thorax joint (T12/L1)
    "neck": 0.130,           # thorax joint -> C7 / head joint (shoulder height 0.818, chin 0.870)
    "shoulder_width": 0.220,  # between glenohumeral centres (biacromial 0.259 minus joint offsets)
    "upper_arm": 0.186,      # shoulder -> elbow
    "forearm": 0.146,        # elbow -> wrist
    "hand": 0.108,           # wrist -> fingertip
    "head": 0.130,           # head joint -> crown
    "trunk": 0.279,          # hip joint centre -> same side's shoulder joint centre (what the above give)
}
MEASURED_SEGMENTS: tuple[str, ...] = (
    "thigh", "shank", "upper_arm", "forearm", "hip_width", "shoulder_width", "trunk")
"""The WINTER_FRACTIONS segments the landmark engine measures per person; the order of the
published `segments_m` (sinks/schema.py)."""


@dataclass(frozen=True)
class Skeleton:
    """Rest geometry: joint offsets from the parent joint (body frame at q = 0) and keypoints.

    offsets_m: (24, 3) float64 metres, joint origin relative to its parent's origin (pelvis: 0).
    keypoints: name -> (joint id, (3,) offset in that joint's frame, metres).
    """
    offsets_m: np.ndarray
    keypoints: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return tuple(self.keypoints)


def generic_skeleton(height_m: float = 1.70, lengths_m: dict[str, float] | None = None) -> Skeleton:
    """A generic adult skeleton scaled by body height; `lengths_m` overrides named segments (m).

    Segment names are the keys of WINTER_FRACTIONS. A measured `trunk` (hip joint centre to the
    same side's shoulder, what landmarks measure directly) rescales lumbar, thorax and neck
    together; without it the spine keeps Winter's proportions of the height.
    Returns joint offsets in SKEL joint order.
    """
    seg = {k: f * height_m for k, f in WINTER_FRACTIONS.items()}
    if lengths_m:
        seg.update({k: float(v) for k, v in lengths_m.items() if k in seg})
    if lengths_m and "trunk" in lengths_m:
        # rest shoulder relative to the hip: x -0.03 H, z (shoulder - hip half-widths), y the spine
        dx, dz = 0.03 * height_m, (seg["shoulder_width"] - seg["hip_width"]) / 2
        y = np.sqrt(max(seg["trunk"] ** 2 - dx ** 2 - dz ** 2, (0.1 * height_m) ** 2))
        scale = (y + 0.02 * height_m) / (seg["lumbar"] + seg["thorax"] + 0.85 * seg["neck"])
        for k in ("lumbar", "thorax", "neck"):
            seg[k] *= scale
    off = np.zeros((NUM_JOINTS, 3))
    hw, sw = seg["hip_width"] / 2, seg["shoulder_width"] / 2
    for side, s in (("r", 1.0), ("l", -1.0)):
        b = 1 if side == "r" else 6
        off[b] = (0.0, 0.0, s * hw)                           # femur: hip joint centre
        off[b + 1] = (0.0, -seg["thigh"], 0.0)                # tibia: knee
        off[b + 2] = (0.0, -seg["shank"], 0.0)                # talus: ankle
        off[b + 3] = (0.0, -0.25 * seg["ankle_height"], 0.0)                 # calcn (subtalar)
        off[b + 4] = (0.46 * seg["foot"], -0.5 * seg["ankle_height"], 0.0)  # toes (mtp)
        a = 14 if side == "r" else 19
        off[a] = (-0.02 * height_m, 0.85 * seg["neck"], s * 0.02 * height_m)  # scapula (sterno-clav.)
        off[a + 1] = (0.0, -0.02 * height_m, s * (sw - 0.02 * height_m))     # humerus: shoulder
        off[a + 2] = (0.0, -seg["upper_arm"], 0.0)            # ulna: elbow
        off[a + 3] = (0.0, -0.02 * height_m, 0.0)             # radius (proximal radio-ulnar)
        off[a + 4] = (0.0, -(seg["forearm"] - 0.02 * height_m), 0.0)  # hand: wrist
    off[11] = (-0.01 * height_m, seg["lumbar"], 0.0)          # lumbar joint
    off[12] = (0.0, seg["thorax"], 0.0)                       # thorax joint
    off[13] = (0.0, seg["neck"], 0.0)                         # head joint (C7/neck base)
    h = height_m
    kp: dict[str, tuple[int, np.ndarray]] = {
        "nose": (13, np.array([0.055 * h, 0.055 * h, 0.0])),
        "left_eye": (13, np.array([0.045 * h, 0.070 * h, -0.018 * h])),
        "right_eye": (13, np.array([0.045 * h, 0.070 * h, 0.018 * h])),
        "left_ear": (13, np.array([0.0, 0.062 * h, -0.042 * h])),
        "right_ear": (13, np.array([0.0, 0.062 * h, 0.042 * h])),
        "head_top": (13, np.array([0.0, seg["head"], 0.0])),
    }
    for side, s in (("right", 1.0), ("left", -1.0)):
        leg, arm = (1, 15) if side == "right" else (6, 20)
        kp[f"{side}_hip"] = (leg, np.zeros(3))
        kp[f"{side}_knee"] = (leg + 1, np.zeros(3))
        kp[f"{side}_ankle"] = (leg + 2, np.zeros(3))
        # BlazePose heel sits ~4 cm behind/below the ankle, foot_index ~16 cm ahead (its world output)
        kp[f"{side}_heel"] = (leg + 3, np.array([-0.12 * seg["foot"], -0.3 * seg["ankle_height"], 0.0]))
        kp[f"{side}_foot_index"] = (leg + 4, np.array([0.12 * seg["foot"], 0.0, 0.0]))
        kp[f"{side}_shoulder"] = (arm, np.zeros(3))
        kp[f"{side}_elbow"] = (arm + 1, np.zeros(3))
        kp[f"{side}_wrist"] = (arm + 3, np.zeros(3))
        kp[f"{side}_hand_tip"] = (arm + 3, np.array([0.0, -seg["hand"], 0.0]))
    return Skeleton(offsets_m=off, keypoints=kp)


@dataclass
class FKResult:
    """Posed skeleton. joints_m: (24, 3) origins; rots: (24, 3, 3) joint frames (parent frame ->
    root frame composed); dof_axes_world: (46, 3) each DoF's axis in the root frame (signed);
    all in the frame the root rotation maps into (camera frame for q from an engine), metres."""
    joints_m: np.ndarray
    rots: np.ndarray
    dof_axes_world: np.ndarray


def _build_tables():
    """Constant tables for the batched FK: DoF slots per joint (padded to 3), tree levels."""
    slot = np.full((NUM_JOINTS, 3), -1, dtype=np.int64)
    for j, ds in enumerate(_JOINT_DOFS):
        slot[j, :len(ds)] = ds
    depth = np.zeros(NUM_JOINTS, dtype=np.int64)
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[JOINT_PARENTS[j]] + 1
    levels = tuple(np.flatnonzero(depth == d) for d in range(1, int(depth.max()) + 1))
    k = np.zeros((NUM_DOFS, 3, 3))
    for d, a in enumerate(DOF_AXIS):  # cross-product matrix of each axis (Rodrigues)
        k[d] = [[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]]
    return slot, levels, k, np.einsum("dij,djk->dik", k, k)


_SLOT, _LEVELS, _K, _K2 = _build_tables()
_PARENTS = np.asarray(JOINT_PARENTS, dtype=np.int64)
_AX_J, _AX_K = np.nonzero(_SLOT >= 0)
_AX_D = _SLOT[_AX_J, _AX_K]
_AX_COL = np.argmax(np.abs(DOF_AXIS[_AX_D]), axis=1)
_AX_SIGN = (DOF_SIGN[_AX_D] * DOF_AXIS[_AX_D, _AX_COL])[:, None]
_EYE1 = np.eye(3)[None]
_LEVELS_PAR = tuple((lv, _PARENTS[lv]) for lv in _LEVELS)
_PARENTS_ROOT = np.maximum(_PARENTS, 0)
_ANCESTORS = np.zeros((NUM_JOINTS, NUM_JOINTS))
for _j in range(NUM_JOINTS):
    _p = _j
    while _p >= 0:
        _ANCESTORS[_j, _p] = 1.0
        _p = JOINT_PARENTS[_p]


def dof_rotations(q: np.ndarray) -> np.ndarray:
    """(46,) q -> (46, 3, 3) each DoF's rotation about its own axis (signs applied)."""
    ang = DOF_SIGN * np.asarray(q, dtype=np.float64)
    return (_EYE1 + np.sin(ang)[:, None, None] * _K
            + (1.0 - np.cos(ang))[:, None, None] * _K2)


def forward_kinematics(q: np.ndarray, skeleton: Skeleton, root_m: np.ndarray | None = None) -> FKResult:
    """(46,) q radians -> joint origins and frames, pelvis at `root_m` (default origin).

    The pelvis rotation q[0:3] maps the body frame into the output frame, so with an engine's q
    the result is in the camera frame (x right, y down, z forward), metres. Batched over the
    tree's levels (a few numpy steps, not 24 joints x 3 DoFs) because the fitter calls it per
    iteration: frames level by level, then positions as one ancestor-sum matmul.
    """
    a = dof_rotations(q)
    a_pad = np.concatenate([a, _EYE1], axis=0)             # slot -1 -> identity
    s = a_pad[_SLOT]                                        # (24, 3, 3, 3)
    p1 = s[:, 0]
    p2 = p1 @ s[:, 1]
    local = p2 @ s[:, 2]                                    # (24, 3, 3) joint rotation
    rots = np.empty((NUM_JOINTS, 3, 3))
    rots[0] = local[0]
    for lv, par in _LEVELS_PAR:
        rots[lv] = rots[par] @ local[lv]
    parent_r = rots[_PARENTS_ROOT]
    parent_r[0] = _EYE1[0]
    w = (parent_r @ skeleton.offsets_m[:, :, None])[:, :, 0]  # offsets in the output frame
    pos = _ANCESTORS @ w                                     # sum of offsets down each path
    if root_m is not None:
        pos += root_m
    # axis of the k-th DoF of joint j: column of R_parent @ A_1..A_{k-1} (principal axes)
    m = np.stack([parent_r, parent_r @ p1, parent_r @ p2])  # (3, 24, 3, 3)
    axes_w = m[_AX_K, _AX_J, :, _AX_COL] * _AX_SIGN
    out = np.empty((NUM_DOFS, 3))
    out[_AX_D] = axes_w
    return FKResult(joints_m=pos, rots=rots, dof_axes_world=out)


def keypoints_from_fk(fk: FKResult, skeleton: Skeleton, names: tuple[str, ...]) -> np.ndarray:
    """(K, 3) metres: named keypoints of a posed skeleton, same frame as `fk`."""
    j = np.array([skeleton.keypoints[n][0] for n in names])
    off = np.stack([skeleton.keypoints[n][1] for n in names])
    return keypoint_positions(fk, j, off)


def keypoint_positions(fk: FKResult, joint_ids: np.ndarray, offsets_m: np.ndarray) -> np.ndarray:
    """(K, 3) metres: points rigidly attached to joints (K,) at offsets (K, 3) in their frames."""
    return fk.joints_m[joint_ids] + (fk.rots[joint_ids] @ offsets_m[:, :, None])[:, :, 0]


def descendants_mask() -> np.ndarray:
    """(24, 24) bool: [a, b] True when joint b is a or below a in the tree."""
    m = np.eye(NUM_JOINTS, dtype=bool)
    for b in range(NUM_JOINTS):
        p = JOINT_PARENTS[b]
        while p >= 0:
            m[p, b] = True
            p = JOINT_PARENTS[p]
    return m


def load_skel_joints(path: str | Path, gender: str = "male") -> np.ndarray:
    """Rest joint offsets (24, 3) metres from a licensed SKEL model file (skel_<gender>.pkl).

    Optional: SKEL's model files need the user's licence, so they are never bundled. Reads
    `J_regressor_osim` and the mean skin template `skin_template_v`, regresses the 24 joint
    centres and returns them relative to their parents (`osim_kintree_table` order is SKEL's).
    Untested here (no model file on this machine).
    """
    import pickle

    from stream.errors import EngineError

    p = Path(path)
    if p.is_dir():
        p = p / f"skel_{gender}.pkl"
    if not p.is_file():
        raise EngineError(f"SKEL model file {p} not found; point pose.landmarks.skel_model_path at "
                          "your licensed skel_<gender>.pkl or leave it unset for the generic skeleton")
    with open(p, "rb") as fh:
        data = pickle.load(fh, encoding="latin1")
    try:
        verts = np.asarray(data["skin_template_v"], dtype=np.float64)
        jreg = data["J_regressor_osim"]
        joints = np.asarray(jreg @ verts, dtype=np.float64)
    except (KeyError, ValueError) as exc:
        raise EngineError(f"{p} is not a SKEL model file ({exc}); use the skel_<gender>.pkl from "
                          "the SKEL download") from None
    if joints.shape != (NUM_JOINTS, 3):
        raise EngineError(f"{p}: expected 24 SKEL joints, got {joints.shape}; use the SKEL model file")
    off = np.zeros_like(joints)
    for j in range(1, NUM_JOINTS):
        off[j] = joints[j] - joints[JOINT_PARENTS[j]]
    # SKEL's template is y up, z forward (SMPL); rotate into this module's x-anterior, z-right frame
    to_osim = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    return off @ to_osim.T
