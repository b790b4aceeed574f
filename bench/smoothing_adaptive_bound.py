"""How much could a causal filter that adapts to the motion gain on the real clips, without outliers?

`bench_smoothing.oracle_linear` bounds *fixed* linear causal filters. A filter that changes with
the motion (the IMM switches models) is not bound by it. Two figures per clip, 30 Hz, 3 deg noise,
no outliers, 32 noise draws, RMSE x raw:

- best fixed: the best single member of a family of causal local-polynomial end-point fits
  (degree 0, 1, 2 over 2-12 frames), chosen in hindsight per clip;
- motion oracle: per DoF and frame the member with the least squared error over the 32 draws.
  The choice follows the motion, not one draw's noise: a filter that knew the local motion
  exactly could switch like this. No causal filter knows it, so this is an optimistic bound.
- ICI: a realisable choice of that kind, the intersection-of-confidence-intervals rule
  (Katkovnik): the longest local-linear window whose estimate stays within gamma standard
  deviations of every shorter window's.

Usage: .venv/bin/python bench/smoothing_adaptive_bound.py   (~5 s)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_smoothing as B  # noqa: E402

NOISE_RAD = np.deg2rad(3.0)
START = 12   # frames before the first scored one (every window has its history)


def endpoint_weights(n: int, degree: int) -> np.ndarray:
    """Weights on the n newest values (oldest first) of a least-squares polynomial's value now."""
    t = np.arange(-n + 1, 1, dtype=float)
    return np.linalg.pinv(np.vander(t, degree + 1, increasing=True))[0]


def causal_fits(z: np.ndarray, family: list[tuple[int, int]]) -> np.ndarray:
    """(F, S, T, D) the end-point fit of each (window, degree) at every frame from START."""
    est = np.full((len(family),) + z.shape, np.nan)
    for f, (n, d) in enumerate(family):
        w = endpoint_weights(n, d)
        for k in range(START, z.shape[1]):
            est[f, :, k] = np.tensordot(z[:, k - n + 1:k + 1], w, axes=([1], [0]))
    return est


def ici(z: np.ndarray, gammas: tuple[float, ...]) -> list[np.ndarray]:
    """(S, T, D) per gamma: the ICI rule over local-linear windows 2-12."""
    windows = list(range(2, 13))
    est = causal_fits(z, [(n, 1) for n in windows])
    sd = [NOISE_RAD * np.linalg.norm(endpoint_weights(n, 1)) for n in windows]
    outs = []
    for gamma in gammas:
        lo, hi = np.full(z.shape, -np.inf), np.full(z.shape, np.inf)
        alive, out = np.ones(z.shape, bool), est[0].copy()
        for f in range(len(windows)):
            lo, hi = np.maximum(lo, est[f] - gamma * sd[f]), np.minimum(hi, est[f] + gamma * sd[f])
            alive &= lo <= hi
            out = np.where(alive, est[f], out)
        outs.append(out)
    return outs


def main() -> None:
    family = [(1, 0)] + [(n, d) for d in (0, 1, 2) for n in range(2, 13) if n > d + 1]
    gammas = (1.0, 1.5)
    print(f"| clip | best fixed | motion oracle | ICI gamma {' / '.join(map(str, gammas))} |")
    print("|---|---:|---:|---:|")
    for clip in B.REAL_CLIPS:
        trajs, sel = B.recorded_set(30.0, (0.0, 0.0), seeds=tuple(range(1, 33)), clip=clip)
        z = np.stack([B.run_raw([tr])[0] for tr in trajs])[:, :, sel]
        truth = np.stack([tr.truth for tr in trajs])[:, :, sel]
        raw = np.mean((z[:, START:] - truth[:, START:]) ** 2)
        mse = ((causal_fits(z, family) - truth[None]) ** 2)[:, :, START:].mean(axis=1)   # (F, T, D)
        fixed = min(float(m.mean()) for m in mse)
        oracle = float(mse.min(axis=0).mean())
        ici_r = [float(np.mean((e[:, START:] - truth[:, START:]) ** 2)) for e in ici(z, gammas)]
        print(f"| {clip} | {np.sqrt(fixed / raw):.2f} | {np.sqrt(oracle / raw):.2f} | "
              + " / ".join(f"{np.sqrt(v / raw):.2f}" for v in ici_r) + " |")


if __name__ == "__main__":
    main()
