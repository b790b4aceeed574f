"""Sweep of the smoother's tuning at 30 and 60 Hz on seeds the benchmark does not use (11, 12).

    .venv/bin/python bench/sweep_smoothing.py > sweep.jsonl     # ~1 min on 2 cores

Each line: one (responsiveness, motion_models, maneuver_q_ratio, maneuver_switch_rate_hz) and its
(RMSE x raw, |acc| x raw, lag frames) at 30 and 60 Hz, means over the two seeds. Used to place
the presets (BENCHMARKS.md): `vr` the lowest RMSE with lag well under a frame at 30 Hz,
`analysis` the smoothest with RMSE <= 0.6x, `balanced` between.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_smoothing import metrics, run_ours, run_raw  # noqa: E402
from motion_synth import synth_stream  # noqa: E402
from tracking.smoothing_config import SmoothingConfig  # noqa: E402

SEEDS = [11, 12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--responsiveness", type=float, nargs="+", default=[0.1, 0.2, 0.25, 0.3, 0.35, 0.4])
    ap.add_argument("--models", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--q-ratio", type=float, nargs="+", default=[100.0, 300.0, 1000.0])
    ap.add_argument("--switch-rate", type=float, nargs="+", default=[0.1, 0.3])
    args = ap.parse_args()
    data = {fps: [synth_stream(s, 4, fps=fps, duration_s=12.0) for s in SEEDS] for fps in (30.0, 60.0)}
    raw = {fps: [metrics(run_raw(tr), tr) for tr in d] for fps, d in data.items()}

    def evaluate(fps: float, cfg: SmoothingConfig) -> tuple[float, float, float]:
        ms = [metrics(run_ours(tr, cfg), tr) for tr in data[fps]]
        return (round(float(np.mean([m["rmse_deg"] / r["rmse_deg"] for m, r in zip(ms, raw[fps])])), 4),
                round(float(np.mean([m["acc_deg_s2"] / r["acc_deg_s2"] for m, r in zip(ms, raw[fps])])), 4),
                round(float(np.mean([m["lag_frames"] for m in ms])), 3))

    for resp, models, ratio, rate in itertools.product(args.responsiveness, args.models, args.q_ratio,
                                                       args.switch_rate):
        cfg = SmoothingConfig(responsiveness=resp, motion_models=models, maneuver_q_ratio=ratio,
                              maneuver_switch_rate_hz=rate)
        row = dict(responsiveness=resp, motion_models=models, maneuver_q_ratio=ratio,
                   maneuver_switch_rate_hz=rate,
                   hz30=evaluate(30.0, cfg), hz60=evaluate(60.0, cfg))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
