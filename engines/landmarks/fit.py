"""Joint-limit-bounded least-squares fit of the SKEL chain to 3D body landmarks (SKELify-style).

Minimises sum_k w_k |FK_k(q, t) - L_k|^2 + lambda^2 |q_free - q_prior|^2 over the DoFs the visible
landmarks can observe, plus limb directions and, given the 2D landmarks and intrinsics, their
reprojection with a fitted camera shift (see `SkelFitter`), with q inside the SKEL limit box
(projected Levenberg-Marquardt, analytic Jacobian: dP_k/dq_d = a_d x (P_k - o_d) for keypoints
below DoF d's joint). DoFs the landmarks cannot observe are held at the prior and flagged. Frame:
BlazePose world landmarks (metres, origin between the hips, camera-aligned axes: x right, y down, z
forward), so the fitted pelvis rotation q[0:3] is the body's orientation in the camera frame.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from engines.skel.dofs import DOF_JOINT, DOF_LOWER, DOF_UPPER, NUM_DOFS, clip_to_limits, wrap_angle
from engines.skel.kinematics import (
    MEASURED_SEGMENTS, Skeleton, descendants_mask, forward_kinematics, keypoint_positions, root_rotation)

# SKEL mean pose and shape (from SKEL_mean.npz, HSMR's training mean), so users need no data files.
SKEL_MEAN_Q = np.array([
    3.141593, 0.0, 0.0, 0.258202, -0.007054, -0.087582, 0.473133, 0.179696, -0.088877, 0.168587,
    0.218106, -0.042617, -0.025765, 0.400466, 0.223503, -0.128167, 0.097408, 0.007973, -0.175706,
    0.012776, -0.005013, -0.013977, -0.025101, 0.033428, -0.070455, 0.011787, 0.117108, 0.220404,
    -0.152904, 0.810892, -0.150455, 0.326355, 0.876925, 0.002892, 0.009306, -0.135727, -0.072228,
    -0.209054, -0.201032, -0.791686, 0.084718, 0.390352, 0.903589, -0.023678, -0.029803, -0.188568,
])
"""(46,) float64 radians, SKEL order. Note scapula_elevation_r (0.22) lies outside its limit."""
SKEL_MEAN_BETAS = np.array([
    0.072176, 0.498677, 0.403012, -0.009203, 0.259845, -0.651564, 0.30399, -0.518016, 0.477567,
    0.217723,
])
"""(10,) float64 SKEL shape coefficients (the mean; this engine does not estimate shape)."""
PRIOR_Q = clip_to_limits(SKEL_MEAN_Q)
"""(46,) the mean pose projected into the limit box: the value unobservable DoFs are held at."""

BLAZEPOSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
FIT_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
FIT_LANDMARK_INDEX = np.array([BLAZEPOSE_NAMES.index(n) for n in FIT_KEYPOINTS])
"""(K,) indices into the 33 BlazePose landmarks of the keypoints the fit uses."""

SEGMENT_LANDMARKS: dict[str, tuple[tuple[str, str], ...]] = {
    "thigh": (("left_hip", "left_knee"), ("right_hip", "right_knee")),
    "shank": (("left_knee", "left_ankle"), ("right_knee", "right_ankle")),
    "upper_arm": (("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow")),
    "forearm": (("left_elbow", "left_wrist"), ("right_elbow", "right_wrist")),
    "hip_width": (("left_hip", "right_hip"),),
    "shoulder_width": (("left_shoulder", "right_shoulder"),),
    "trunk": (("left_hip", "left_shoulder"), ("right_hip", "right_shoulder")),
}
"""Skeleton segment (a `generic_skeleton` length name) -> landmark pairs (either side) measuring it."""
if tuple(SEGMENT_LANDMARKS) != MEASURED_SEGMENTS:
    raise RuntimeError("fit: SEGMENT_LANDMARKS must list kinematics.MEASURED_SEGMENTS in order")


def swap_permutation(names: tuple[str, ...]) -> np.ndarray:
    """(len(names),) index map exchanging every left_* name with its right_* twin."""
    idx = {n: i for i, n in enumerate(names)}
    twin = {"left_": "right_", "right_": "left_"}
    return np.array([idx[twin[p] + n[len(p):]] if (p := next((t for t in twin if n.startswith(t)), None))
                     else idx[n] for n in names])


FIT_SWAP = swap_permutation(FIT_KEYPOINTS)
"""(K,) FIT_KEYPOINTS index map that exchanges left and right."""
_MIRROR_Z = np.array([1.0, 1.0, -1.0])   # the detector's 3D belief of a body turned around
FACING_WINDOW = 4
"""Frames over which the fitted body may not turn > 90 deg (67 ms at 60 fps, 133 ms at 30)."""
RESIDUAL_JUMP = 3.0
"""A fit whose residual exceeds this many times the last frame's (+ 2 cm) is retried with the
other left/right labelling."""
LOST_FIT_M = 0.3
"""A fit to pixels whose keypoint residual exceeds this (m) has lost the person's place (its
camera shift diverged): the next frame starts the shift afresh from the 2D/3D spreads."""


def _anterior(q: np.ndarray) -> np.ndarray:
    """(3,) the pelvis's forward axis in the camera frame."""
    return root_rotation(q)[:, 0]
_FIT_SIDED = np.array([n.startswith(("left_", "right_")) for n in FIT_KEYPOINTS])

_TORSO = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
KEYPOINT_WEIGHTS = np.array([0.3 if n.endswith(("nose", "eye", "ear")) else
                             0.5 if n.endswith(("heel", "foot_index")) else 1.0 for n in FIT_KEYPOINTS])
"""(K,) relative trust: face points sit on a generic head, BlazePose's feet are its noisiest points."""
_BONES = tuple((FIT_KEYPOINTS.index(f"{s}_{a}"), FIT_KEYPOINTS.index(f"{s}_{b}"))
               for s in ("left", "right") for a, b in (("hip", "knee"), ("knee", "ankle"),
                                                        ("shoulder", "elbow"), ("elbow", "wrist")))
BONE_A = np.array([a for a, _ in _BONES])
BONE_B = np.array([b for _, b in _BONES])
"""Limb bones (thigh, shank, upper arm, forearm per side) whose *directions* are also fitted:
BlazePose's limb lengths change from frame to frame (depth errors), so positions alone would trade
joint angle for length; unit directions are length-free and keep knee/elbow angles honest."""


def _needs() -> dict[int, tuple[str, ...]]:
    """DoF index -> keypoints that must all be visible for the DoF to be observable."""
    n: dict[int, tuple[str, ...]] = {0: _TORSO, 1: _TORSO, 2: _TORSO}
    for s, base, side in (("right", 3, "r"), ("left", 10, "l")):
        n[base] = n[base + 1] = (f"{s}_hip", f"{s}_knee")
        n[base + 2] = (f"{s}_hip", f"{s}_knee", f"{s}_ankle")          # axial: needs the shank
        n[base + 3] = (f"{s}_hip", f"{s}_knee", f"{s}_ankle")          # knee
        n[base + 4] = (f"{s}_knee", f"{s}_ankle", f"{s}_foot_index")  # ankle
    for d in range(17, 23):
        n[d] = _TORSO
    for d in (23, 24, 25):
        n[d] = ("nose", "left_ear", "right_ear", "left_shoulder", "right_shoulder")
    for s, base in (("right", 29), ("left", 39)):
        n[base] = n[base + 2] = (f"{s}_shoulder", f"{s}_elbow")
        n[base + 1] = (f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist")  # axial: needs the forearm
        n[base + 3] = (f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist")  # elbow
    return n  # absent: subtalar, mtp, scapula, pro/sup, wrist -> never observable from these landmarks


DOF_NEEDS: dict[int, tuple[str, ...]] = _needs()


def _needs_matrix() -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros((NUM_DOFS, len(FIT_KEYPOINTS)), dtype=bool)
    for d, names in DOF_NEEDS.items():
        m[d, [FIT_KEYPOINTS.index(n) for n in names]] = True
    return m, np.isin(np.arange(NUM_DOFS), list(DOF_NEEDS))


_NEEDS, _CAN_SEE = _needs_matrix()


def observable_dofs(visible: np.ndarray) -> np.ndarray:
    """(K,) bool visible keypoints (FIT_KEYPOINTS order) -> (46,) bool DoFs the fit can observe."""
    return _CAN_SEE & ~(_NEEDS & ~np.asarray(visible, dtype=bool)).any(axis=1)


def orientation_from_landmarks(lm: np.ndarray) -> np.ndarray:
    """(K, 3) keypoints (camera-aligned) -> (3,) pelvis tilt/list/rotation from hips and shoulders."""
    i = {n: k for k, n in enumerate(FIT_KEYPOINTS)}
    right = lm[i["right_hip"]] - lm[i["left_hip"]] + 0.5 * (lm[i["right_shoulder"]] - lm[i["left_shoulder"]])
    up = 0.5 * (lm[i["left_shoulder"]] + lm[i["right_shoulder"]] - lm[i["left_hip"]] - lm[i["right_hip"]])
    z = right / max(np.linalg.norm(right), 1e-9)
    y = up - z * (up @ z)
    y /= max(np.linalg.norm(y), 1e-9)
    x = np.cross(y, z)                       # body frame: x anterior, y superior, z right
    r = np.stack([x, y, z], axis=1)          # columns: body axes in the camera frame
    return Rotation.from_matrix(r).as_euler("ZXY")  # R = Rz(q0) Rx(q1) Ry(q2)


@dataclass
class FitResult:
    """q: (46,) rad within limits; root_m: (3,) pelvis in the landmark frame (m); residual_m: RMS
    visibility-weighted keypoint distance (m); observed: (46,) bool; keypoints_m: (K, 3) fitted;
    trans_m: (3,) camera-frame position of the pelvis (fits to pixels only), metres."""
    q: np.ndarray
    root_m: np.ndarray
    residual_m: float
    observed: np.ndarray
    iterations: int
    keypoints_m: np.ndarray
    trans_m: np.ndarray | None = None
    relabelled: bool = False   # this frame's left/right labels were exchanged back (keep_identity)


def weak_perspective_translation(points_m: np.ndarray, pixels: np.ndarray, weights: np.ndarray,
                                 fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(3,) camera-frame shift T so that (K, 3) points + T project near (K, 2) pixels: depth from
    the ratio of their weighted spreads, x/y from the centroids. The start for the joint fit."""
    w = weights / max(weights.sum(), 1e-9)
    c3 = w @ points_m
    c2 = w @ pixels
    s3 = np.sqrt(w @ ((points_m[:, :2] - c3[:2]) ** 2).sum(1))
    s2 = np.sqrt(w @ ((pixels - c2) ** 2).sum(1))
    z = 0.5 * (fx + fy) * s3 / max(s2, 1e-6)
    z = float(np.clip(z, 0.3, 100.0))
    return np.array([(c2[0] - cx) * z / fx - c3[0], (c2[1] - cy) * z / fy - c3[1], z - c3[2]])


class SkelFitter:
    """Projected Levenberg-Marquardt over the observable DoFs of one skeleton (per person).

    With `pixels` and `intrinsics` the fit also minimises the reprojection of the keypoints
    (image_weight): the 2D landmarks are BlazePose's strong evidence, its world depth the weak
    part (a bent knee seen from the front reads straighter in depth than it is). The depth
    component of the 3D terms is then trusted only `depth_trust` as much as x and y, and the
    rigid bone lengths turn foreshortening in the image into depth.

    Given pixels it also keeps the person's left/right identity from frame to frame: labels that
    jump to the other side (`keep_identity`), or a fit whose body would turn > 90 deg within
    FACING_WINDOW frames or whose residual jumps (then refitted with the other labelling), are exchanged back (`FitResult.relabelled`). After `max_relabel_run` relabelled
    frames in a row the labels are taken as they come, so one wrong decision cannot hold the
    person turned around for good.
    """

    def __init__(self, skeleton: Skeleton, prior_weight: float = 0.02, min_visibility: float = 0.5,
                 direction_weight_m: float = 0.3, max_relabel_run: int = 12, keep_facing: bool = True):
        self.skeleton = skeleton
        self.prior_weight = prior_weight
        self.min_visibility = min_visibility
        self.direction_weight_m = direction_weight_m  # a 0.1 rad bone error costs like 3 cm
        kp_joint = np.array([skeleton.keypoints[n][0] for n in FIT_KEYPOINTS])
        self._kp_joint = kp_joint
        self._kp_off = np.stack([skeleton.keypoints[n][1] for n in FIT_KEYPOINTS])
        self._tile = np.tile(np.eye(3), (len(FIT_KEYPOINTS), 1))
        # (46, K): DoF d moves keypoint k when k hangs below (or on) d's joint
        self._moves = descendants_mask()[DOF_JOINT][:, kp_joint]
        self._trans: np.ndarray | None = None   # camera shift of the landmark frame (fits to pixels)
        self._lost = False                       # the last fit diverged (residual > LOST_FIT_M)
        self._last_px: np.ndarray | None = None  # last frame's pixels, labels as fitted
        self._facing: deque = deque(maxlen=FACING_WINDOW)  # (pelvis forward axis, q) of recent fits
        self._relabel_run = 0                    # consecutive relabelled frames
        self._last_resid = np.inf                # last fit's keypoint residual (m)
        self.max_relabel_run = max_relabel_run if keep_facing else 10 ** 9
        self.keep_facing = keep_facing
        self.relabelled = 0                      # frames whose left/right labels were exchanged
        rest = self.keypoints(PRIOR_Q)
        self._bone_len = np.linalg.norm(rest[BONE_B] - rest[BONE_A], axis=1)  # rigid: pose-free

    @property
    def bone_lengths_m(self) -> np.ndarray:
        """(B,) rigid lengths of the limb bones (BONE_A -> BONE_B), metres."""
        return self._bone_len

    @property
    def camera_shift_m(self) -> np.ndarray | None:
        """(3,) the landmark frame's camera shift of the last fit to pixels (None before one)."""
        return self._trans

    def inherit_identity(self, other: "SkelFitter") -> None:
        """Carry another fitter's left/right state (labels, facing) over, when a person's skeleton
        is replaced by one with measured segment lengths (the camera shift starts afresh)."""
        self._last_px, self._facing, self._last_resid = other._last_px, other._facing, other._last_resid
        self._relabel_run, self.relabelled = other._relabel_run, other.relabelled

    def keypoints(self, q: np.ndarray, root_m: np.ndarray | None = None) -> np.ndarray:
        """(K, 3) fitted keypoints (FIT_KEYPOINTS order), metres, landmark frame."""
        return keypoint_positions(forward_kinematics(q, self.skeleton, root_m), self._kp_joint, self._kp_off)

    def fit(self, landmarks_m: np.ndarray, visibility: np.ndarray, q_init: np.ndarray | None = None,
            root_init_m: np.ndarray | None = None, max_iterations: int = 8,
            q_prior: np.ndarray = PRIOR_Q, pixels: np.ndarray | None = None, intrinsics=None,
            image_weight: float = 2.0, depth_trust: float = 1.0) -> FitResult:
        """Fit q (46,) to (K, 3) landmarks (metres) with (K,) visibility in [0, 1].

        q_init: warm start (previous frame); None = cold start (orientation from the torso).
        pixels: (K, 2) the same keypoints in the image, with `intrinsics` (fx, fy, cx, cy): adds
        the reprojection term (image_weight: 1 px at the person's depth costs image_weight times
        what that distance costs in 3D); the camera shift of the landmark frame is fitted too
        and returned as `FitResult.trans_m`.
        """
        lm = np.asarray(landmarks_m, dtype=np.float64)
        vis = np.asarray(visibility, dtype=np.float64)
        args = (q_init, root_init_m, max_iterations, q_prior, intrinsics, image_weight, depth_trust)
        if pixels is None:
            return self._fit(lm, vis, None, *args)
        px = np.asarray(pixels, dtype=np.float64)
        cold = q_init is None
        if cold:
            self._relabel_run, self._last_resid = 0, np.inf
            self._facing.clear()
        allowed = self._relabel_run < self.max_relabel_run   # else: accept the labels, start afresh
        if not allowed:   # a cold start: warm-started, the body could only turn round slowly
            self._facing.clear()
            args = (None, None, max(4 * max_iterations, 30), q_prior, intrinsics, image_weight, depth_trust)
        px_fit, lm_fit, vis_fit = self.keep_identity(px, lm, vis, cold=cold or not allowed)
        swapped = px_fit is not px
        trans_before = None if self._trans is None else self._trans.copy()
        res = self._fit(lm_fit, vis_fit, px_fit, *args)
        ref = self._facing[0] if self._facing else None      # the facing FACING_WINDOW frames ago
        ant = _anterior(res.q) if res.observed[0] else None      # (once, not per facing kept)
        turned = ref is not None and ant is not None and min(ant @ a for a, _ in self._facing) < 0
        jumped = np.isfinite(res.residual_m) and res.residual_m > RESIDUAL_JUMP * self._last_resid + 0.02
        if self.keep_facing and allowed and not cold and ref is not None and (turned or jumped):
            # the body turned > 90 deg within a few frames, or stopped fitting: the labels may
            # have slipped where the sides were too close in the image for keep_identity to see
            # a jump; the other labelling, fitted from the pose before, must keep facing that way
            trans_first, self._trans = self._trans, trans_before
            alt = (px, lm, vis) if swapped else (px[FIT_SWAP], lm[FIT_SWAP] * _MIRROR_Z, vis[FIT_SWAP])
            res_alt = self._fit(alt[1], alt[2], alt[0], ref[1], *args[1:])
            ant_alt = _anterior(res_alt.q)
            if ant_alt @ ref[0] > 0 and res_alt.residual_m <= res.residual_m:
                res, swapped, self._last_px = res_alt, not swapped, alt[0]
                ant = ant_alt if res.observed[0] else None
            else:
                self._trans = trans_first
        if ant is not None:                                    # (res.observed[0])
            self._facing.append((ant, res.q))
        if np.isfinite(res.residual_m):
            self._last_resid = res.residual_m
        self._relabel_run = self._relabel_run + 1 if swapped else 0
        self.relabelled += int(swapped)
        res.relabelled = swapped
        return res

    def _fit(self, lm: np.ndarray, vis: np.ndarray, pixels: np.ndarray | None, q_init: np.ndarray | None,
             root_init_m: np.ndarray | None, max_iterations: int, q_prior: np.ndarray, intrinsics,
             image_weight: float, depth_trust: float) -> FitResult:
        """One projected-LM fit to these (already relabelled) landmarks; see `fit`."""
        seen = vis >= self.min_visibility
        w = np.where(seen, vis, 0.0) * KEYPOINT_WEIGHTS
        observed = observable_dofs(seen)
        free = np.flatnonzero(observed)
        if not observed[0] and seen.sum() >= 4:
            free = np.union1d(free, [0, 1, 2])  # orientation still needed to place the chain
        q = q_prior.copy()
        if q_init is not None:
            q[free] = np.asarray(q_init, dtype=np.float64)[free]
        elif observed[0]:
            q[:3] = orientation_from_landmarks(lm)
        q = clip_to_limits(q)
        root = np.zeros(3) if root_init_m is None else np.asarray(root_init_m, dtype=np.float64).copy()
        if seen.sum() < 4:  # nothing to fit: hold the prior
            kp = self.keypoints(q, root)
            return FitResult(q, root, float("nan"), np.zeros(NUM_DOFS, bool), 0, kp)
        use_2d = pixels is not None and intrinsics is not None and image_weight > 0
        ax = np.array([1.0, 1.0, depth_trust if use_2d else 1.0])  # per-axis trust of the 3D terms
        sw = np.sqrt(w)[:, None] * ax
        d_lm = lm[BONE_B] - lm[BONE_A]
        d_lm /= np.maximum(np.linalg.norm(d_lm, axis=1, keepdims=True), 1e-9)
        bw = (self.direction_weight_m * np.sqrt(np.minimum(w[BONE_A], w[BONE_B])) / self._bone_len)[:, None] * ax
        limb = free[free >= 3]
        lo, hi = DOF_LOWER[free], DOF_UPPER[free]
        nf = free.size
        lam = self.prior_weight
        n_extra = 3
        cam = None
        if use_2d:
            k = intrinsics
            px = np.asarray(pixels, dtype=np.float64)
            if q_init is None or self._trans is None or self._lost:
                self._trans = weak_perspective_translation(lm, px, w, k.fx, k.fy, k.cx, k.cy)
            # pixels -> metres at the person's depth, so image and 3D residuals share units
            s_px = image_weight * float(self._trans[2]) / (0.5 * (k.fx + k.fy))
            cam = (k.fx, k.fy, k.cx, k.cy, px, np.sqrt(w)[:, None] * max(s_px, 1e-6))
            n_extra = 6
        trans = self._trans if use_2d else np.zeros(3)

        def evaluate(qv: np.ndarray, rv: np.ndarray, tv: np.ndarray):
            fk = forward_kinematics(qv, self.skeleton, rv)
            kp = keypoint_positions(fk, self._kp_joint, self._kp_off)
            parts = [((kp - lm) * sw).ravel(),
                     ((kp[BONE_B] - kp[BONE_A] - d_lm * self._bone_len[:, None]) * bw).ravel(),
                     lam * (qv[limb] - q_prior[limb])]
            if cam is not None:
                fx, fy, cx, cy, px_obs, s2 = cam
                pc = kp + tv
                z = np.maximum(pc[:, 2], 1e-3)
                proj = np.stack([fx * pc[:, 0] / z + cx, fy * pc[:, 1] / z + cy], axis=1)
                parts.append(((proj - px_obs) * s2).ravel())
            return fk, kp, np.concatenate(parts)

        fk, kp, r = evaluate(q, root, trans)
        cost = float(r @ r)
        mu = 1e-3
        it = 0
        jac = None
        for it in range(1, max_iterations + 1):
            if jac is None:
                jac = self._jacobian(fk, kp, free, sw, bw, limb, lam, cam, trans)
                jtj = jac.T @ jac
                g = jac.T @ r
            # active set: a DoF on its bound whose descent direction leaves the box stays put, so
            # the projection below only trims steps instead of bending them (projected Newton)
            qf = q[free]
            act = np.zeros(nf + n_extra, dtype=bool)
            act[:nf] = ((qf <= lo + 1e-9) & (g[:nf] > 0)) | ((qf >= hi - 1e-9) & (g[:nf] < 0))
            a = jtj + mu * np.diag(np.diag(jtj) + 1e-9)      # LM damping (Marquardt scaling)
            a[act, :] = 0.0
            a[:, act] = 0.0
            a[act, act] = 1.0
            # a is symmetric positive definite (damped normal equations); LAPACK's gesv through
            # numpy costs ~15 us here, scipy's checked cho_factor/cho_solve wrappers ~100 us
            step = -np.linalg.solve(a, np.where(act, 0.0, g))
            q_new = q.copy()
            q_new[free] = np.clip(q[free] + step[:nf], lo, hi)  # projection onto the limit box
            root_new = root + step[nf:nf + 3]
            trans_new = trans + step[nf + 3:] if cam is not None else trans
            fk_n, kp_n, r_n = evaluate(q_new, root_new, trans_new)
            cost_n = float(r_n @ r_n)
            if cost_n < cost:
                # converged: an undamped step that gains < 1 % (sub-mm RMS), or sub-0.1 deg steps;
                # a small gain under heavy damping is not convergence, only a short step
                done = (mu < 0.1 and cost - cost_n < 1e-2 * cost + 1e-10) or np.abs(step).max() < 2e-3
                q, root, trans, fk, kp, r, cost = q_new, root_new, trans_new, fk_n, kp_n, r_n, cost_n
                mu = max(mu / 3.0, 1e-7)
                jac = None
                if done:
                    break
            else:
                mu *= 4.0
                if mu > 1e6:
                    break
        q[:3] = wrap_angle(q[:3])
        err = np.linalg.norm(kp - lm, axis=1)
        resid = float(np.sqrt((w * err ** 2).sum() / max(w.sum(), 1e-9)))
        if cam is not None:
            self._trans = trans
            self._lost = resid > LOST_FIT_M   # a diverged camera shift restarts next frame
        return FitResult(q, root, resid, observed, it, kp, trans + root if cam is not None else None)

    def keep_identity(self, pixels: np.ndarray, landmarks_m: np.ndarray, visibility: np.ndarray,
                      cold: bool = False, ratio: float = 0.5, min_gain: float = 0.05
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Undo a left/right label slip of the 2D detector, frame to frame.

        BlazePose sometimes exchanges the sides for a stretch of frames (seen from the back or
        edge-on); the limbs do not move, their labels jump. When the exchanged labels sit much
        closer to last frame's points (by `ratio`, and by `min_gain` of the body's image size),
        the labels are exchanged back, and the world landmarks mirrored in depth (the detector's
        3D belief is the body turned around). Returns (pixels, landmarks_m, visibility).
        """
        prev = self._last_px
        out = (pixels, landmarks_m, visibility)
        ok = _FIT_SIDED & (visibility >= self.min_visibility) & (visibility[FIT_SWAP] >= self.min_visibility)
        if not cold and prev is not None and ok.sum() >= 6:
            keep = np.median(np.linalg.norm(pixels[ok] - prev[ok], axis=1))
            swap = np.median(np.linalg.norm(pixels[FIT_SWAP][ok] - prev[ok], axis=1))
            size = float(np.ptp(pixels[visibility >= self.min_visibility], axis=0).max())
            if swap < ratio * keep and keep - swap > min_gain * size:
                out = (pixels[FIT_SWAP], landmarks_m[FIT_SWAP] * _MIRROR_Z, visibility[FIT_SWAP])
        self._last_px = out[0]
        return out

    def _jacobian(self, fk, kp: np.ndarray, free: np.ndarray, sw: np.ndarray, bw: np.ndarray,
                  limb: np.ndarray, lam: float, cam=None, trans: np.ndarray | None = None) -> np.ndarray:
        """(3K + 3B + len(limb) [+ 2K], len(free) + 3 [+ 3]) Jacobian of the residual vector
        (bracketed: the image term and the camera shift, when fitting to pixels)."""
        pivots = fk.joints_m[DOF_JOINT[free]]                            # (F, 3)
        a = fk.dof_axes_world[free][:, None, :]                            # (F, 1, 3)
        v = kp[None] - pivots[:, None, :]                                  # (F, K, 3)
        cols = np.empty(v.shape)                                           # a x v, written out
        cols[..., 0] = a[..., 1] * v[..., 2] - a[..., 2] * v[..., 1]
        cols[..., 1] = a[..., 2] * v[..., 0] - a[..., 0] * v[..., 2]
        cols[..., 2] = a[..., 0] * v[..., 1] - a[..., 1] * v[..., 0]
        cols *= self._moves[free][:, :, None]
        k = kp.shape[0]
        n_extra = 6 if cam is not None else 3
        j_kp = np.zeros((3 * k, free.size + n_extra))
        j_kp[:, :free.size] = (cols * sw[None]).reshape(free.size, 3 * k).T
        j_kp[:, free.size:free.size + 3] = self._tile * sw.ravel()[:, None]
        # bone residual (p_b - p_a) * bw: translation cancels, rotation columns difference
        j_dir = np.zeros((3 * BONE_A.size, free.size + n_extra))
        j_dir[:, :free.size] = ((cols[:, BONE_B] - cols[:, BONE_A]) * bw[None]).reshape(free.size, -1).T
        j_pr = np.zeros((limb.size, free.size + n_extra))
        j_pr[np.arange(limb.size), np.searchsorted(free, limb)] = lam
        if cam is None:
            return np.concatenate([j_kp, j_dir, j_pr], axis=0)
        fx, fy, _, _, _, s2 = cam
        pc = kp + trans
        z = np.maximum(pc[:, 2], 1e-3)
        # d(u, v)/d(x, y, z) of the pinhole per keypoint: u row (fx/z, 0, -fx x/z^2), v row alike
        s = s2[:, 0]
        ux, uz = s * fx / z, -s * fx * pc[:, 0] / z ** 2
        vy, vz = s * fy / z, -s * fy * pc[:, 1] / z ** 2
        j_img = np.zeros((2 * k, free.size + n_extra))
        j_img[0::2, :free.size] = (ux * cols[..., 0] + uz * cols[..., 2]).T
        j_img[1::2, :free.size] = (vy * cols[..., 1] + vz * cols[..., 2]).T
        for c0 in (free.size, free.size + 3):    # root and camera shift both move every keypoint
            j_img[0::2, c0], j_img[0::2, c0 + 2] = ux, uz
            j_img[1::2, c0 + 1], j_img[1::2, c0 + 2] = vy, vz
        return np.concatenate([j_kp, j_dir, j_pr, j_img], axis=0)
