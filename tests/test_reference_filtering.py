"""The reference's trajectory filter (Pose2Sim's demo settings): outliers out, jitter down,
motion kept, no lag, gaps left as gaps."""
from __future__ import annotations

import numpy as np

from engines.reference.filtering import butterworth, filter_points, hampel

FPS = 60.0


def _walk(t_n: int = 240) -> np.ndarray:
    t = np.arange(t_n) / FPS
    return 0.2 * np.sin(2 * np.pi * 1.0 * t)          # a 1 Hz swing, metres


def test_butterworth_removes_jitter_keeps_the_motion_without_lag():
    rng = np.random.default_rng(3)
    clean = _walk()
    noisy = clean + rng.normal(0, 0.01, clean.size)
    out = butterworth(noisy[:, None], FPS)[:, 0]
    mid = slice(30, -30)
    rms = lambda e: float(np.sqrt((e[mid] ** 2).mean()))  # noqa: E731
    assert rms(out - clean) < 0.55 * rms(noisy - clean)  # white noise: 6 of 30 Hz kept, ~0.45
    lags = np.arange(-5, 6)
    best = lags[np.argmin([np.abs(np.roll(out, k) - clean)[mid].mean() for k in lags])]
    assert best == 0                                   # zero lag (forward and back)
    assert abs(np.ptp(out[mid]) - np.ptp(clean[mid])) < 0.02 * np.ptp(clean[mid])


def test_hampel_replaces_a_spike_and_leaves_the_rest():
    x = _walk()[:, None].copy()
    x[100, 0] += 0.3                                    # a triangulation outlier
    out = hampel(x)
    assert abs(out[100, 0] - _walk()[100]) < 0.02
    others = np.r_[0:97, 104:240]
    np.testing.assert_allclose(out[others], x[others])


def test_gaps_stay_gaps_and_each_run_is_filtered_alone():
    pts = np.repeat(_walk()[:, None, None], 3, axis=2).repeat(2, axis=1)   # (T, 2, 3)
    pts[100:110, 0] = np.nan
    pts[:, 1] = np.nan
    pts[0:5, 1] = 1.0                                                      # too short to filter
    out = filter_points(pts, FPS)
    assert np.isnan(out[100:110, 0]).all() and np.isfinite(out[:100, 0]).all() and np.isfinite(out[110:, 0]).all()
    np.testing.assert_allclose(out[0:5, 1], 1.0)
    assert np.isnan(out[5:, 1]).all()
    assert np.abs(out[:, 0] - pts[:, 0])[np.isfinite(pts[:, 0, 0])].max() < 0.02
