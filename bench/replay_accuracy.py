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


def taylor_ceiling(ref, views: ViewLandmarks) -> dict[str, float]:
    """Knee/elbow MAE (deg, mean of cameras and sides) of Taylor's segment-length reconstruction
    from each camera's own BlazePose 2D landmarks, handed what a single view never has: the
    reference's segment lengths, each frame's true pelvis depth, and the true sign of every
    depth step ('oracle'); and with BlazePose's sign instead ('blazepose sign'). What the 2D
    landmarks alone allow, however good the rest of the fit."""
    from engines.landmarks.fit import BLAZEPOSE_NAMES

    i = {n: k for k, n in enumerate(BLAZEPOSE_NAMES)}
    seg = ref.segments_m
    lengths = {"knee": (seg["thigh"], seg["shank"]), "elbow": (seg["upper_arm"], seg["forearm"])}
    t_n = ref.points_m.shape[0]
    errs: dict[str, list[float]] = {}
    for v, cam in enumerate(ref.cameras):
        src = np.arange(t_n) + int(ref.offsets[v])
        ok = (src >= 0) & (src < t_n)
        px = np.full((t_n, 33, 2), np.nan)
        world = np.full((t_n, 33, 3), np.nan)
        px[ok], world[ok] = views.pixels[src[ok], :, v], views.world_m[src[ok], :, v]
        und = cam.undistort(px.reshape(-1, 2)).reshape(px.shape)
        true = cam.to_camera(ref.points_m)
        depth = np.nanmean(true[:, [i["left_hip"], i["right_hip"]], 2], axis=1)[:, None]
        xy = (und - cam.K[:2, 2]) / cam.K[0, 0] * depth[..., None]
        for side, s in (("right", "r"), ("left", "l")):
            for joint, (a, b, c) in (("knee", ("hip", "knee", "ankle")), ("elbow", ("shoulder", "elbow", "wrist"))):
                ia, ib, ic = i[f"{side}_{a}"], i[f"{side}_{b}"], i[f"{side}_{c}"]
                l1, l2 = lengths[joint]
                for mode, zz in (("oracle", true), ("blazepose sign", world)):
                    d1 = np.sign(zz[:, ib, 2] - zz[:, ia, 2]) * np.sqrt(np.maximum(l1 ** 2 - ((xy[:, ib] - xy[:, ia]) ** 2).sum(-1), 0))
                    d2 = np.sign(zz[:, ic, 2] - zz[:, ib, 2]) * np.sqrt(np.maximum(l2 ** 2 - ((xy[:, ic] - xy[:, ib]) ** 2).sum(-1), 0))
                    u = np.concatenate([xy[:, ia] - xy[:, ib], -d1[:, None]], axis=1)
                    w = np.concatenate([xy[:, ic] - xy[:, ib], d2[:, None]], axis=1)
                    cos = (u * w).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1))
                    ang = np.pi - np.arccos(np.clip(cos, -1, 1))
                    errs.setdefault(f"{joint} {mode}", []).append(float(np.nanmean(np.abs(np.degrees(ang - ref.geometric[f"{joint}_{s}"])))))
    return {k: float(np.mean(v)) for k, v in errs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", action="append")
    ap.add_argument("--variant", action="append", help="NAME or NAME:key=value,... (pose.landmarks settings)")
    ap.add_argument("--cache", default=str(REPO / ".cache" / "reference"))
    ap.add_argument("--person", type=int, action="append")
    ap.add_argument("--taylor-ceiling", action="store_true", help="also Taylor's reconstruction with oracle lengths, depth, signs")
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
            if args.taylor_ceiling:
                print(f"{demo} p{i} Taylor from the 2D landmarks, MAE deg: " + ", ".join(
                    f"{k} {x:.1f}" for k, x in taylor_ceiling(ref, views).items()))
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
