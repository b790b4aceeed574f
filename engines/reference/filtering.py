"""Filtering of the triangulated trajectories, as Pose2Sim filters its own demos.

Pose2Sim's `Demo_SinglePerson/Config.toml` rejects outliers with a Hampel filter (window 7) and
then low-passes every coordinate with a zero-lag Butterworth filter (6 Hz, order 4), "the most
intuitive and standard filter in biomechanics". Per-frame triangulation of 2D detections jitters
by several degrees from frame to frame; a reference used to judge angles is filtered first.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, filtfilt


def hampel(x: np.ndarray, window: int = 7, n_sigma: float = 3.0) -> np.ndarray:
    """(T, ...) series -> copy with samples farther than n_sigma robust deviations (1.4826 MAD)
    from the median of their centred window replaced by that median. NaN stays NaN."""
    x = np.asarray(x, np.float64)
    half = window // 2
    pad = np.concatenate([np.full((half,) + x.shape[1:], np.nan), x, np.full((half,) + x.shape[1:], np.nan)])
    win = np.lib.stride_tricks.sliding_window_view(pad, window, axis=0)     # (T, ..., window)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(win, axis=-1)
            mad = 1.4826 * np.nanmedian(np.abs(win - med[..., None]), axis=-1)
    out = x.copy()
    bad = np.abs(x - med) > n_sigma * mad
    out[bad] = med[bad]
    return out


def butterworth(x: np.ndarray, fps: float, cutoff_hz: float = 6.0, order: int = 4) -> np.ndarray:
    """(T, ...) series -> zero-lag low-passed copy along axis 0 (Pose2Sim: butter(order / 2) run
    forward and back, so the effective order is `order`). Each finite run of samples is filtered
    on its own; NaN gaps stay NaN; runs too short to filter are left as they are."""
    x = np.asarray(x, np.float64)
    b, a = butter(max(order // 2, 1), cutoff_hz / (0.5 * fps), "low")
    pad = 3 * max(len(a), len(b))
    flat = x.reshape(x.shape[0], -1)
    out = flat.copy()
    for c in range(flat.shape[1]):
        ok = np.isfinite(flat[:, c])
        edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))
        for s, e in zip(edges[::2], edges[1::2]):
            if e - s > pad:
                out[s:e, c] = filtfilt(b, a, flat[s:e, c])
    return out.reshape(x.shape)


def filter_points(points_m: np.ndarray, fps: float, cutoff_hz: float = 6.0, order: int = 4,
                  hampel_window: int = 7) -> np.ndarray:
    """(T, K, 3) triangulated keypoints -> Hampel outlier rejection, then the Butterworth
    low-pass, per coordinate (Pose2Sim's demo settings by default)."""
    return butterworth(hampel(points_m, hampel_window), fps, cutoff_hz, order)
