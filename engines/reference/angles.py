"""Geometric flexion angles straight from 3D keypoints (no skeleton fit in between).

knee = 180 deg minus the hip-knee-ankle angle; elbow = 180 minus shoulder-elbow-wrist; hip
flexion = the thigh's angle from the trunk's downward axis in the pelvis's sagittal plane
(forward positive), the pelvis frame built from hips and shoulders like the fit's orientation.
Keypoints are BlazePose-ordered (33 names); any frame whose points are NaN gives NaN.
"""
from __future__ import annotations

import numpy as np

from engines.landmarks.fit import BLAZEPOSE_NAMES

_I = {n: i for i, n in enumerate(BLAZEPOSE_NAMES)}
GEOMETRIC_ANGLES: dict[str, str] = {
    "knee_r": "knee_angle_r", "knee_l": "knee_angle_l",
    "elbow_r": "elbow_flexion_r", "elbow_l": "elbow_flexion_l",
    "hip_flexion_r": "hip_flexion_r", "hip_flexion_l": "hip_flexion_l",
}
"""geometric angle name -> the SKEL DoF it is compared with."""


def _between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    c = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.arccos(np.clip(c, -1.0, 1.0))


def pelvis_axes(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 33, 3) -> anterior, superior, right unit axes (..., 3) of the pelvis."""
    right = p[..., _I["right_hip"], :] - p[..., _I["left_hip"], :]
    right = right / np.linalg.norm(right, axis=-1, keepdims=True)
    mid_hip = 0.5 * (p[..., _I["right_hip"], :] + p[..., _I["left_hip"], :])
    mid_sh = 0.5 * (p[..., _I["right_shoulder"], :] + p[..., _I["left_shoulder"], :])
    up = mid_sh - mid_hip
    up = up - right * (up * right).sum(-1, keepdims=True)
    up = up / np.linalg.norm(up, axis=-1, keepdims=True)
    return np.cross(up, right), up, right


def geometric_angles(points: np.ndarray) -> dict[str, np.ndarray]:
    """(T, 33, 3) keypoints (any metric frame) -> name -> (T,) radians (see GEOMETRIC_ANGLES)."""
    p = np.asarray(points, np.float64)
    g = lambda n: p[..., _I[n], :]  # noqa: E731
    out = {}
    anterior, superior, _ = pelvis_axes(p)
    for s, side in (("r", "right"), ("l", "left")):
        out[f"knee_{s}"] = np.pi - _between(g(f"{side}_hip") - g(f"{side}_knee"),
                                             g(f"{side}_ankle") - g(f"{side}_knee"))
        out[f"elbow_{s}"] = np.pi - _between(g(f"{side}_shoulder") - g(f"{side}_elbow"),
                                              g(f"{side}_wrist") - g(f"{side}_elbow"))
        thigh = g(f"{side}_knee") - g(f"{side}_hip")
        out[f"hip_flexion_{s}"] = np.arctan2((thigh * anterior).sum(-1), -(thigh * superior).sum(-1))
    return out
