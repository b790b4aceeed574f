"""Confidence-weighted robust triangulation of keypoints seen by several calibrated cameras.

Per keypoint and frame: a weighted linear DLT on undistorted pixels (weight = the 2D confidence),
then views whose reprojection error exceeds `outlier_px` are dropped one at a time (worst first)
while at least `min_views` remain, so one camera's wrong detection (a limb hidden behind the body,
a left/right slip) does not drag the point. Reprojection error is reported per view and joint.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.reference.calibration import Camera


@dataclass
class Triangulated:
    """points_m: (T, K, 3) world metres (NaN where fewer than `min_views` views agree);
    reproj_px: (T, K, V) reprojection error of each view's detection (NaN: not seen);
    used: (T, K, V) bool, the views that went into the point."""
    points_m: np.ndarray
    reproj_px: np.ndarray
    used: np.ndarray

    def joint_error_px(self) -> np.ndarray:
        """(K,) mean reprojection error of each keypoint over the views used, pixels."""
        e = np.where(self.used, self.reproj_px, np.nan)
        with np.errstate(all="ignore"):
            return np.nanmean(e, axis=(0, 2))


def dlt(P: np.ndarray, uv: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted DLT, batched. P: (V, 3, 4); uv: (N, V, 2) undistorted px; w: (N, V) >= 0.

    Returns (N, 3); rows with fewer than two weighted views come out NaN.
    """
    # each view gives two rows: u P3 - P1, v P3 - P2 (scaled by its weight)
    a = np.concatenate([uv[..., 0:1] * P[None, :, 2] - P[None, :, 0],
                        uv[..., 1:2] * P[None, :, 2] - P[None, :, 1]], axis=1)  # (N, 2V, 4)
    # unit rows, so a view's pull does not grow with its pixel coordinates; then its confidence
    a /= np.maximum(np.linalg.norm(a, axis=2, keepdims=True), 1e-12)
    a *= np.concatenate([w, w], axis=1)[..., None]
    _, _, vt = np.linalg.svd(a)
    x = vt[:, -1]
    pts = x[:, :3] / np.where(np.abs(x[:, 3:]) < 1e-12, np.nan, x[:, 3:])
    pts[(w > 0).sum(axis=1) < 2] = np.nan
    return pts


def reprojection_px(cameras: list[Camera], points_m: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(N, V) distance between each camera's projection of (N, 3) points and (N, V, 2) pixels."""
    proj = np.stack([c.project(points_m) for c in cameras], axis=1)
    return np.linalg.norm(proj - pixels, axis=-1)


def triangulate(cameras: list[Camera], pixels: np.ndarray, confidence: np.ndarray,
                min_confidence: float = 0.3, outlier_px: float = 30.0, min_views: int = 2,
                undistorted: np.ndarray | None = None) -> Triangulated:
    """pixels: (T, K, V, 2) distorted image pixels; confidence: (T, K, V) in [0, 1].

    undistorted: the same pixels already undistorted (saves the per-call undistortion).
    """
    t_n, k_n, v_n = confidence.shape
    px = pixels.reshape(-1, v_n, 2)
    und = undistorted.reshape(-1, v_n, 2) if undistorted is not None else np.stack(
        [cameras[v].undistort(px[:, v]) for v in range(v_n)], axis=1)
    w = np.where((confidence.reshape(-1, v_n) >= min_confidence) & np.isfinite(px).all(-1),
                 confidence.reshape(-1, v_n), 0.0)
    und = np.nan_to_num(und)
    P = np.stack([c.P for c in cameras])
    pts = dlt(P, und, w)
    err = reprojection_px(cameras, np.nan_to_num(pts), np.nan_to_num(px))
    for _ in range(v_n - min_views):
        bad = np.where(w > 0, err, -1.0)
        worst = bad.argmax(axis=1)
        worst_err = bad[np.arange(bad.shape[0]), worst]
        redo = (worst_err > outlier_px) & ((w > 0).sum(axis=1) > min_views)
        if not redo.any():
            break
        w[np.flatnonzero(redo), worst[redo]] = 0.0
        pts[redo] = dlt(P, und[redo], w[redo])
        err[redo] = reprojection_px(cameras, np.nan_to_num(pts[redo]), np.nan_to_num(px[redo]))
    seen = np.isfinite(px).all(-1) & (confidence.reshape(-1, v_n) > 0)
    err = np.where(seen & np.isfinite(pts).all(-1, keepdims=True), err, np.nan)
    return Triangulated(points_m=pts.reshape(t_n, k_n, 3), reproj_px=err.reshape(t_n, k_n, v_n),
                        used=(w > 0).reshape(t_n, k_n, v_n))
