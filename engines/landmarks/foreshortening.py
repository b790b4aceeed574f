"""Foreshortened limbs: how much of a limb's length the image shows, and what that leaves unknown.

A limb of length L whose image spans l (metres at its depth) leaves |dz| = sqrt(L^2 - l^2) between
its ends along the viewing ray (Taylor 2000, monocular reconstruction from segment lengths), with
the sign unknown to the image. Near l = L the depth is small and its sign does not matter; when
the limb points along the ray (l << L) the joint angle hangs on that sign and on BlazePose's weak
depth, so a single view cannot measure it: such DoFs are flagged unobserved (published as the
smoother's prediction, `q_predicted`), not published confidently wrong.
"""
from __future__ import annotations

import numpy as np

from engines.landmarks.fit import BONE_A, BONE_B, FIT_KEYPOINTS
from engines.skel.dofs import DOF_INDEX, NUM_DOFS

_BONE_NAMES = tuple(f"{FIT_KEYPOINTS[a]}-{FIT_KEYPOINTS[b]}" for a, b in zip(BONE_A, BONE_B))
_BONE = {n: i for i, n in enumerate(_BONE_NAMES)}
JOINT_BONES: dict[str, tuple[int, int]] = {
    f"{dof}_{s}": (_BONE[f"{side}_{a}-{side}_{b}"], _BONE[f"{side}_{b}-{side}_{c}"])
    for s, side in (("r", "right"), ("l", "left"))
    for dof, (a, b, c) in (("knee_angle", ("hip", "knee", "ankle")), ("elbow_flexion", ("shoulder", "elbow", "wrist")))
}
"""Flexion DoF -> (proximal, distal) bone index (fit.BONE_A/BONE_B order) whose angle it is."""


def limb_depth_m(length_2d_m: np.ndarray, length_m: np.ndarray) -> np.ndarray:
    """|dz| (m) between a limb's ends from its image length and its true length (Taylor); 0
    where the image shows the whole length or more (noise)."""
    l2 = np.asarray(length_2d_m, np.float64) ** 2
    return np.sqrt(np.maximum(np.asarray(length_m, np.float64) ** 2 - l2, 0.0))


def image_length_ratio(pixels: np.ndarray, depth_m: np.ndarray, focal_px: float,
                       bone_length_m: np.ndarray) -> np.ndarray:
    """(B,) share of each limb bone's length that the image shows: its 2D length (pixels, K x 2,
    FIT_KEYPOINTS order) back-projected at its ends' mean depth (depth_m: (K,) camera z, metres),
    over its rigid length. 1 = across the view, 0 = along the ray."""
    px = np.asarray(pixels, np.float64)
    z = 0.5 * (depth_m[BONE_A] + depth_m[BONE_B])
    l_2d = np.linalg.norm(px[BONE_B] - px[BONE_A], axis=1) * z / focal_px
    return l_2d / np.maximum(bone_length_m, 1e-9)


def foreshortened_dofs(ratio: np.ndarray, min_ratio: dict[str, float]) -> np.ndarray:
    """(46,) bool: the flexion DoFs whose shorter-looking bone shows less than `min_ratio[kind]`
    of its length (kind: 'knee_angle' or 'elbow_flexion'; a kind left out is never flagged)."""
    out = np.zeros(NUM_DOFS, dtype=bool)
    for dof, (a, b) in JOINT_BONES.items():
        thr = min_ratio.get(dof[:-2], 0.0)
        if thr > 0 and min(ratio[a], ratio[b]) < thr:
            out[DOF_INDEX[dof]] = True
    return out


_CHAINS = tuple((FIT_KEYPOINTS.index(f"{side}_{a}"), FIT_KEYPOINTS.index(f"{side}_{b}"), bone)
                for side in ("left", "right")
                for a, b in (("hip", "knee"), ("knee", "ankle"), ("shoulder", "elbow"), ("elbow", "wrist"))
                for bone in [_BONE[f"{side}_{a}-{side}_{b}"]])
"""(proximal, distal, bone) keypoint/bone indices, proximal first: each distal depth is set from
its (already corrected) proximal joint."""
_CARRIED = {FIT_KEYPOINTS.index(f"{side}_ankle"): [FIT_KEYPOINTS.index(f"{side}_{n}") for n in ("heel", "foot_index")]
            for side in ("left", "right")}


def segment_length_depth(landmarks_m: np.ndarray, pixels: np.ndarray, depth_m: float, focal_px: float,
                         bone_length_m: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """(K, 3) landmarks (camera-aligned, relative to a point `depth_m` in front of the camera)
    with each limb end's depth step re-derived from its bone's image length, back-projected at
    the bone's own depth, and its rigid length (`limb_depth_m`); the sign of the step is the
    landmarks' own. Hips and shoulders keep their depth, heels and toes move with their ankle.
    weight: 1 takes that step, 0 keeps the landmarks' own step, between blends the two."""
    out = np.array(landmarks_m, dtype=np.float64, copy=True)
    px = np.asarray(pixels, np.float64)
    for a, b, bone in _CHAINS:
        l_px = float(np.linalg.norm(px[b] - px[a]))
        own = landmarks_m[b, 2] - landmarks_m[a, 2]
        sign = 1.0 if own >= 0 else -1.0
        z_a = depth_m + out[a, 2]
        dz = float(limb_depth_m(l_px * z_a / focal_px, bone_length_m[bone]))
        dz = float(limb_depth_m(l_px * (z_a + 0.5 * sign * dz) / focal_px, bone_length_m[bone]))  # at its mid-depth
        new_z = out[a, 2] + weight * sign * dz + (1.0 - weight) * own
        shift = new_z - out[b, 2]
        out[b, 2] = new_z
        for c in _CARRIED.get(b, ()):
            out[c, 2] += shift
    return out
