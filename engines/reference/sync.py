"""Time offsets between unsynchronised views, estimated from the landmarks themselves.

For each view against the first, every candidate lag is scored by the median symmetric epipolar
distance of the confident landmarks (the calibration says where a point seen in one view must
lie in the other); the lag with the smallest median wins. Needs no trigger, no audio, no motion
model, and works on any frame rate; the resolution is one frame.
"""
from __future__ import annotations

import numpy as np

from engines.reference.calibration import Camera


def fundamental(a: Camera, b: Camera) -> np.ndarray:
    """(3, 3) F with x_b^T F x_a = 0 for undistorted pixels of the same world point."""
    r = b.R @ a.R.T
    t = b.t - r @ a.t
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(b.K).T @ tx @ r @ np.linalg.inv(a.K)


def epipolar_px(F: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """(...,) symmetric point-to-epipolar-line distance, pixels; xa, xb: (..., 2) undistorted."""
    ha = np.concatenate([xa, np.ones(xa.shape[:-1] + (1,))], axis=-1)
    hb = np.concatenate([xb, np.ones(xb.shape[:-1] + (1,))], axis=-1)
    lb = ha @ F.T                     # lines in b
    la = hb @ F                       # lines in a
    s = np.abs((hb * lb).sum(-1))
    return 0.5 * (s / np.linalg.norm(lb[..., :2], axis=-1) + s / np.linalg.norm(la[..., :2], axis=-1))


def lag_scores(F: np.ndarray, xa: np.ndarray, ca: np.ndarray, xb: np.ndarray, cb: np.ndarray,
               max_lag: int, min_confidence: float = 0.5) -> dict[int, float]:
    """Median epipolar distance for each lag L in [-max_lag, max_lag]: a[t] against b[t + L].

    xa, xb: (T, K, 2) undistorted pixels; ca, cb: (T, K) confidence.
    """
    t_n = xa.shape[0]
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        ia = np.arange(max(0, -lag), min(t_n, t_n - lag))
        if ia.size < 5:
            continue
        ib = ia + lag
        ok = (ca[ia] >= min_confidence) & (cb[ib] >= min_confidence)
        ok &= np.isfinite(xa[ia]).all(-1) & np.isfinite(xb[ib]).all(-1)
        if ok.sum() < 20:
            continue
        d = epipolar_px(F, xa[ia][ok], xb[ib][ok])
        out[lag] = float(np.median(d))
    return out


def estimate_offsets(cameras: list[Camera], undistorted: np.ndarray, confidence: np.ndarray,
                     max_lag: int = 15, sweeps: int = 6) -> np.ndarray:
    """(V,) int frame offsets o_v: view v's frame t + o_v shows what view 0's frame t shows.

    undistorted: (T, K, V, 2) pixels; confidence: (T, K, V). o_0 = 0. Every pair of views is
    scored at every lag; the offsets then minimise the sum of all pairs' (normalised) scores by
    coordinate descent, so one poor pair (a view that sees the person edge-on, where the score
    is flat) does not decide alone.
    """
    v_n = len(cameras)
    lags = np.arange(-2 * max_lag, 2 * max_lag + 1)
    cost = {}                                                 # (a, b) -> score at o_b - o_a
    for a in range(v_n):
        for b in range(a + 1, v_n):
            sc = lag_scores(fundamental(cameras[a], cameras[b]), undistorted[:, :, a], confidence[:, :, a],
                            undistorted[:, :, b], confidence[:, :, b], 2 * max_lag)
            if sc:
                best = min(sc.values())
                worst = max(sc.values())
                cost[a, b] = np.array([sc.get(int(k), worst) / max(best, 1e-6) for k in lags])
    off = np.zeros(v_n, dtype=int)
    for v in range(1, v_n):                                   # start: each view's best lag to view 0
        if (0, v) in cost:
            off[v] = int(lags[cost[0, v].argmin()])
    cand = np.arange(-max_lag, max_lag + 1)
    for _ in range(sweeps):
        before = off.copy()
        for v in range(1, v_n):
            total = np.zeros(cand.size)
            for (a, b), c in cost.items():
                if v == b:
                    total += c[cand - off[a] + 2 * max_lag]
                elif v == a:
                    total += c[off[b] - cand + 2 * max_lag]
            off[v] = int(cand[total.argmin()])
        if (off == before).all():
            break
    return off


def align(values: np.ndarray, offsets: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Shift per-view series onto view 0's timeline. values: (T, K, V, ...) -> same shape,
    out[t, :, v] = values[t + o_v, :, v] (fill where that frame does not exist)."""
    out = np.full_like(values, fill, dtype=np.float64)
    t_n = values.shape[0]
    for v, o in enumerate(offsets):
        src = np.arange(t_n) + int(o)
        ok = (src >= 0) & (src < t_n)
        out[np.flatnonzero(ok), :, v] = values[src[ok], :, v]
    return out
