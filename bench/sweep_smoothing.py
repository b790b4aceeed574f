"""Sweep of the smoother's tuning at 30 and 60 Hz on seeds the benchmark does not use (11, 12).

    .venv/bin/python bench/sweep_smoothing.py > sweep.jsonl     # ~1 min on 2 cores

Each line: one (responsiveness, motion_models, maneuver_q_ratio, maneuver_switch_rate_hz) and its
(RMSE x raw, |acc| x raw, lag frames) at 30 and 60 Hz, means over the two seeds. Used to place
the presets (BENCHMARKS.md): `vr` the lowest RMSE with lag well under a frame at 30 Hz,
`analysis` the smoothest with RMSE <= 0.6x, `balanced` between.

    .venv/bin/python bench/sweep_smoothing.py --grid '{"motion_models": 4}' '{"maneuver_q_ratio": 1e5}'

scores whole SmoothingConfig overrides (JSON) on the widened benchmark instead (issue 15; how
the outlier model, model count, q ratio and switch rate were chosen): the worst and the count
over 0.9x of RMSE x raw on the swing grid (30 Hz, 0.25-3 Hz, seed 1), walking RMSE / jitter /
lag for vr and balanced, RMSE x raw of vr / balanced / analysis on the motion-capture tuning
clips (walk, kick) at each outlier rate, and the issue-4 benchmark's RMSE / jitter for vr and
analysis. The held-out clips are for reporting: `bench_smoothing.py --grid`.
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
    ap.add_argument("--grid", type=str, nargs="+", default=None,
                    help="score these SmoothingConfig overrides (JSON objects) on the widened benchmark")
    args = ap.parse_args()
    if args.grid:
        for arg in args.grid:
            print(json.dumps(score_on_grid(json.loads(arg))), flush=True)
        return
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


def score_on_grid(overrides: dict) -> dict:
    """One configuration on the widened benchmark (see the module docstring)."""
    from bench_smoothing import CAUSAL, OUTLIERS, evaluate_grid, recorded_set, swing_set
    from motion_synth import MOCAP_TUNING
    rows = evaluate_grid(fps_list=(30.0,), speeds=(0.25, 1.0, 2.0, 3.0), seeds=(1,), one_euro=False,
                         recorded=False, **overrides)
    out = {"overrides": overrides,
           "worst": {m: round(max(r[m]["rmse"] for r in rows), 3) for m in CAUSAL},
           "rows_over_0.9": {m: sum(r[m]["rmse"] > 0.9 for r in rows) for m in CAUSAL}}
    trajs, sel = swing_set(30.0, 1.0, "sine", (0.02, 30.0), (1, 2, 3), duration_s=10.0,
                           drop_rate=0.0, blank_rate=0.0)
    raw = metrics(run_raw(trajs), trajs, dofs=sel)
    for m in ("vr", "balanced"):
        r = metrics(run_ours(trajs, SmoothingConfig(preset=m, **overrides)), trajs, dofs=sel)
        out[f"walking_{m}"] = (round(r["rmse_deg"] / raw["rmse_deg"], 3),
                               round(r["acc_deg_s2"] / raw["acc_deg_s2"], 3), round(r["lag_frames"], 2))
    for clip in MOCAP_TUNING:                   # real motion capture: the tuning clips only
        for o in OUTLIERS:
            trajs, sel = recorded_set(30.0, o, clip=clip)
            raw = metrics(run_raw(trajs), trajs, dofs=sel)
            out[f"{clip} {o[0]:g}"] = [round(metrics(run_ours(trajs, SmoothingConfig(preset=m, **overrides)),
                                                     trajs, dofs=sel)["rmse_deg"] / raw["rmse_deg"], 3)
                                       for m in CAUSAL]
    full = synth_stream(11, 3, fps=30.0, duration_s=10.0)
    raw = metrics(run_raw(full), full)
    for m in ("vr", "analysis"):
        r = metrics(run_ours(full, SmoothingConfig(preset=m, **overrides)), full)
        out[f"issue4_{m}"] = (round(r["rmse_deg"] / raw["rmse_deg"], 3),
                              round(r["acc_deg_s2"] / raw["acc_deg_s2"], 3))
    return out


if __name__ == "__main__":
    main()
