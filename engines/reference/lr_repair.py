"""Left/right slips of one view, found and undone by reprojection from the other views.

A 2D detector seen from the back or side sometimes labels the left leg as the right one for a
few frames. With three or more calibrated views the other views out-vote it: triangulate every
keypoint without view v, project into v, and compare v's detections under both labellings. A
frame is relabelled when the swapped labels reproject clearly better (by `ratio` and by at least
`min_gain_px`), which a correct labelling never does.
"""
from __future__ import annotations

import numpy as np

from engines.landmarks.fit import BLAZEPOSE_NAMES, swap_permutation
from engines.reference.calibration import Camera
from engines.reference.triangulation import triangulate


SWAP = swap_permutation(BLAZEPOSE_NAMES)
"""(33,) index map that exchanges every left_* landmark with its right_* twin."""
_SIDED = np.array([n.startswith(("left_", "right_")) for n in BLAZEPOSE_NAMES])


def find_swaps(cameras: list[Camera], pixels: np.ndarray, confidence: np.ndarray,
               undistorted: np.ndarray, ratio: float = 0.6, min_gain_px: float = 8.0,
               min_confidence: float = 0.3) -> np.ndarray:
    """(T, V) bool: frames of each view whose left/right labels are swapped.

    pixels, undistorted: (T, 33, V, 2); confidence: (T, 33, V). Needs >= 3 views (else none).
    """
    t_n, _, v_n = confidence.shape
    swapped = np.zeros((t_n, v_n), dtype=bool)
    if v_n < 3:
        return swapped
    for v in range(v_n):
        others = [u for u in range(v_n) if u != v]
        tri = triangulate([cameras[u] for u in others], pixels[:, :, others], confidence[:, :, others],
                          min_confidence=min_confidence, undistorted=undistorted[:, :, others])
        proj = cameras[v].project(np.nan_to_num(tri.points_m))               # (T, 33, 2)
        ok = np.isfinite(tri.points_m).all(-1) & (confidence[:, :, v] >= min_confidence) & _SIDED
        e_keep = np.linalg.norm(proj - pixels[:, :, v], axis=-1)
        e_swap = np.linalg.norm(proj - pixels[:, SWAP, v], axis=-1)
        ok_swap = ok & ok[:, SWAP]
        with np.errstate(all="ignore"):
            keep = np.nanmedian(np.where(ok_swap, e_keep, np.nan), axis=1)
            swap = np.nanmedian(np.where(ok_swap, e_swap, np.nan), axis=1)
        swapped[:, v] = (swap < ratio * keep) & (keep - swap > min_gain_px) & (ok_swap.sum(1) >= 6)
    return swapped


def apply_swaps(values: np.ndarray, swapped: np.ndarray) -> np.ndarray:
    """values (T, 33, V, ...) with the flagged (T, V) frames relabelled (left <-> right)."""
    out = values.copy()
    for t, v in zip(*np.nonzero(swapped)):
        out[t, :, v] = values[t, SWAP, v]
    return out
