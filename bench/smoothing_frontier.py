"""What any causal linear smoother can reach on issue 15's walking case, before tuning ours.

    .venv/bin/python bench/smoothing_frontier.py        # ~15 s

For a prior on the motion (random-phase sines spread evenly over a band of frequencies, plus an
unknown offset) and 3 deg white noise, the causal FIR filter h (40 taps, 1.3 s) minimising
E(y - s)^2 + lam E(d2 y)^2 is a linear solve (Wiener-Hopf with a second-difference penalty).
Each lam is applied to the walking case of bench/bench_smoothing.py (1 Hz swing, 30 Hz, seeds
1-3; outliers replaced by fresh noise, i.e. an oracle outlier rejector) and to the same swing
without outliers, and scored with the bench's own metrics as ratios to raw. The trade-off it
traces is the frontier for that prior: a filter that assumes nothing above 3 Hz cannot beat it
on average, ours included (BENCHMARKS.md, issue 15).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_smoothing as B  # noqa: E402

TAPS = 40
NOISE_RAD = np.deg2rad(3.0)


def band_prior_acf(dt: float, f0_hz: float, f1_hz: float, amp_rad: float = 0.4,
                   offset_var: float = 10.0) -> np.ndarray:
    """(2 TAPS + 1,) autocorrelation r(m), m = -TAPS..TAPS frames, of sines of amplitude amp_rad
    spread over [f0, f1] Hz with random phase, plus an offset of variance offset_var (large: the
    filter must pass a constant, sum h = 1)."""
    m = np.arange(-TAPS, TAPS + 1) * dt
    fs = np.linspace(f0_hz, f1_hz, 200)
    return 0.5 * amp_rad ** 2 * np.mean(np.cos(2 * np.pi * fs[:, None] * m[None]), axis=0) + offset_var


def design(acf: np.ndarray, lam: float) -> np.ndarray:
    """Causal h (TAPS,) minimising E(y_k - s_k)^2 + lam E(y_k - 2 y_{k-1} + y_{k-2})^2,
    y = h * (s + n): (R_z + lam D' R_z2 D) h = r_zs."""
    i = np.arange(TAPS)
    Rz = acf[TAPS + i[:, None] - i[None, :]] + NOISE_RAD ** 2 * np.eye(TAPS)   # E z_{k-i} z_{k-j}
    rzs = acf[TAPS + i]                                                        # E z_{k-i} s_k
    D = np.zeros((TAPS + 2, TAPS))                                             # second difference of h
    D[i, i], D[i + 1, i], D[i + 2, i] = 1.0, -2.0, 1.0
    j = np.arange(TAPS + 2)
    Rz2 = acf[np.clip(TAPS + j[:, None] - j[None, :], 0, 2 * TAPS)] + NOISE_RAD ** 2 * np.eye(TAPS + 2)
    return np.linalg.solve(Rz + lam * D.T @ Rz2 @ D, rzs)


def score(h: np.ndarray, trajs, sel: np.ndarray) -> tuple[float, float, float]:
    """(RMSE x raw, jitter x raw, lag frames) of h on the trajectories' swinging DoFs, outliers
    replaced by fresh noise (an oracle rejector); raw keeps them, as in the bench."""
    rng = np.random.default_rng(0)
    outs = []
    for tr in trajs:
        z = tr.meas[:, sel].copy()
        junk = np.abs(z - tr.truth[:, sel]) > np.deg2rad(15.0)
        z[junk] = tr.truth[:, sel][junk] + rng.normal(0.0, NOISE_RAD, junk.sum())
        padded = np.vstack([np.repeat(z[:1], TAPS, axis=0), z])
        o = tr.truth.copy()
        o[:, sel] = np.stack([np.convolve(padded[:, c], h)[TAPS:TAPS + len(z)] for c in range(z.shape[1])], 1)
        outs.append(o)
    raw = B.metrics(B.run_raw(trajs), trajs, dofs=sel)
    r = B.metrics(np.stack(outs), trajs, dofs=sel, skip=TAPS)
    return r["rmse_deg"] / raw["rmse_deg"], r["acc_deg_s2"] / raw["acc_deg_s2"], r["lag_frames"]


def main() -> None:
    swing = dict(drop_rate=0.0, blank_rate=0.0, duration_s=10.0)
    walk = B.swing_set(30.0, 1.0, "sine", (0.02, 30.0), (1, 2, 3), **swing)
    clean = B.swing_set(30.0, 1.0, "sine", (0.0, 0.0), (1, 2, 3), **swing)
    print("| prior | lam | walking RMSE x raw | walking jitter x raw | lag frames | no outliers: RMSE x raw |")
    print("|---|---|---|---|---|---|")
    for f0, f1 in ((0.25, 3.0), (0.5, 2.0)):
        acf = band_prior_acf(1.0 / 30.0, f0, f1)
        for lam in (0.0, 0.1, 0.3, 1.0, 3.0):
            h = design(acf, lam)
            w, c = score(h, *walk), score(h, *clean)
            print(f"| sines {f0:g}-{f1:g} Hz | {lam:g} | {w[0]:.3f} | {w[1]:.3f} | {w[2]:+.2f} | {c[0]:.3f} |")


if __name__ == "__main__":
    main()
