"""Fast tuning loop for the landmark fit: the cached BlazePose outputs of every view (made by
`bench_accuracy.py`'s reference) replayed through the engine's per-person fill, camera by camera,
against the same four-camera reference. No video decode, no BlazePose, no smoothing: seconds
instead of minutes, so settings can be compared before the full pipeline run judges them.

    .venv/bin/python bench/replay_accuracy.py --demo Demo_SinglePerson \\
        --variant "world:image_weight=0,prior_weight=0.02,max_iterations=8" --variant current
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_accuracy import cached_landmarks, demo_dir, evaluate_camera, mean_over, tracked_person  # noqa: E402
from engines.landmarks.config import LandmarkEngineConfig  # noqa: E402
from engines.reference.pipeline import reference_from_files  # noqa: E402
from engines.reference.views import ViewLandmarks  # noqa: E402


def replay(views: ViewLandmarks, v: int, cfg: LandmarkEngineConfig, width: int = 1088,
           height: int = 1920) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(T, 46) q per source frame of view v (NaN: nobody observed; a DoF the engine did not
    observe holds its last value, as the smoother's prediction would), (T, 46) bool measured,
    and the fit times (s)."""
    from engines.landmarks.engine import LandmarkPoseEngine
    from engines.pose_engine import default_intrinsics

    eng = LandmarkPoseEngine(cfg)
    k = default_intrinsics(width, height)
    t_n = views.pixels.shape[0]
    q = np.full((t_n, 46), np.nan)
    measured = np.zeros((t_n, 46), dtype=bool)
    last = np.full(46, np.nan)
    times = []
    for t in range(t_n):
        found = cached_landmarks(views, t, v, width, height)
        if found is None:
            continue
        lms, box = found
        p = tracked_person(box)
        t0 = time.perf_counter()
        eng._fill(p, ("cam", 1), lms, box, k)
        times.append(time.perf_counter() - t0)
        if p.pose_confidence > 0:
            seen = p.dof_observed if p.dof_observed is not None else np.ones(46, bool)
            last = np.where(seen | ~np.isfinite(last), p.q, last)
            q[t], measured[t] = last, seen
    eng.close()
    return q, measured, times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", action="append")
    ap.add_argument("--variant", action="append", help="NAME or NAME:key=value,... (pose.landmarks settings)")
    ap.add_argument("--cache", default=str(REPO / ".cache" / "reference"))
    ap.add_argument("--person", type=int, action="append")
    args = ap.parse_args()
    for demo in args.demo or ["Demo_SinglePerson"]:
        d = demo_dir(demo)
        videos = sorted((d / "videos").glob("cam*.mp4"))
        people = 2 if "Multi" in demo else 1
        cache = Path(args.cache) / f"{demo}_views"
        refs = reference_from_files(videos, d / "calibration" / "Calib.qca.txt", cache=cache, people=people)
        for i, ref in enumerate(refs):
            if args.person and i not in args.person:
                continue
            views = ViewLandmarks.load(f"{cache}_p{i}.npz")
            for spec in args.variant or ["current"]:
                name, _, sets = spec.partition(":")
                kw = {k: yaml.safe_load(x) for k, x in (s.split("=", 1) for s in sets.split(",") if s)}
                cfg = LandmarkEngineConfig(**kw)
                cams, times = [], []
                for v in range(len(videos)):
                    q, seen, tm = replay(views, v, cfg)
                    times += tm
                    cams.append(evaluate_camera(ref, v, q, seen))
                g = lambda j, f: mean_over(cams, "geometric", j, f)  # noqa: E731
                per_cam = " ".join(f"{c['geometric']['knee']['mae']:.1f}/{c['geometric']['elbow']['mae']:.1f}/"
                                   f"{c['geometric']['hip_flexion']['mae']:.1f}" for c in cams)
                print(f"{demo} p{i} {name:12s} knee {g('knee', 'mae'):5.1f} ({g('knee', 'bias'):+5.1f}) "
                      f"elbow {g('elbow', 'mae'):5.1f} ({g('elbow', 'bias'):+5.1f}) "
                      f"hip {g('hip_flexion', 'mae'):5.1f} ({g('hip_flexion', 'bias'):+5.1f}) "
                      f"swaps {[c['swapped_frames'] for c in cams]} | {per_cam} | "
                      f"fit p50 {1e3 * np.median(times):.2f} p99 {1e3 * np.percentile(times, 99):.2f} ms",
                      flush=True)
                m = lambda j: mean_over(cams, "measured", j, "mae")  # noqa: E731
                f = lambda j: np.mean([c["flagged_share"][j] for c in cams])  # noqa: E731
                print("    measured DoFs only: " + ", ".join(f"{j} {m(j):.1f} ({f(j):.0%} flagged)"
                                                          for j in ("knee", "elbow", "hip_flexion"))
                      + f"; swaps among measured {[c['swapped_measured_frames'] for c in cams]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
