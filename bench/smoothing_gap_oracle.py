"""How well can any coast through a dropout do? (issue 15) On the widened benchmark's swings, the
error over dropout frames of raw (its last value held) against an oracle coast: the TRUE angle and
rate at the last measured frame, carried on with the rate decaying at time constant tau (0: hold
the true angle, inf: constant rate). If even the oracle does not beat holding by much, no filter
state will, and a row whose error sits in its gaps cannot reach 0.9x raw.

    .venv/bin/python bench/smoothing_gap_oracle.py      # ~10 s
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_smoothing import run_raw, swing_set  # noqa: E402

TAUS_S = (0.0, 0.02, 0.05, 0.07, 0.1, np.inf)


def coast(theta: float, rate: float, t: float, tau: float) -> float:
    """The angle t seconds on, the rate decaying at time constant tau."""
    if tau == 0.0:
        return theta
    return theta + rate * (t if np.isinf(tau) else tau * (1.0 - np.exp(-t / tau)))


def gap_errors(freq_hz: float, shape: str, seeds=(1, 2)) -> tuple[float, dict[float, float]]:
    """RMS error (rad) over dropout frames (no pose, or any DoF unobserved) of raw and of the oracle per tau."""
    trajs, sel = swing_set(30.0, freq_hz, shape, (0.0, 0.0), seeds)
    se_raw, se = [], {tau: [] for tau in TAUS_S}
    for tr, raw in zip(trajs, run_raw(trajs)):
        gap = (~tr.observed).any(-1) | tr.dropped
        last = None
        for k in range(5, tr.t_s.size):
            if not gap[k]:
                last = k
                continue
            if last is None:
                continue
            rate = (tr.truth[last, sel] - tr.truth[last - 1, sel]) / (tr.t_s[last] - tr.t_s[last - 1])
            t = tr.t_s[k] - tr.t_s[last]
            se_raw.append(np.mean((raw[k, sel] - tr.truth[k, sel]) ** 2))
            for tau in TAUS_S:
                se[tau].append(np.mean((coast(tr.truth[last, sel], rate, t, tau) - tr.truth[k, sel]) ** 2))
    return float(np.sqrt(np.mean(se_raw))), {tau: float(np.sqrt(np.mean(v))) for tau, v in se.items()}


def main() -> None:
    print("| swing | raw (held) gap RMSE deg | " + " | ".join(f"oracle tau {t:g} s" for t in TAUS_S) + " |")
    print("|---|---|" + "---|" * len(TAUS_S))
    for f, shape in [(1.0, "sine"), (2.0, "sine"), (2.0, "reversal"), (3.0, "sine"), (3.0, "hold"), (3.0, "reversal")]:
        raw, oracle = gap_errors(f, shape)
        print(f"| {f:g} Hz {shape} | {np.rad2deg(raw):.1f} | "
              + " | ".join(f"{oracle[t] / raw:.2f}x" for t in TAUS_S) + " |")


if __name__ == "__main__":
    main()
