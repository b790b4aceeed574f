"""Accuracy of the published angles against a four-camera reference (pose2sim demos).

For each demo (`Demo_SinglePerson`, optionally `Demo_MultiPerson`):
  1. the reference (engines/reference): BlazePose in all four calibrated views, time offsets
     estimated from the data, left/right slips repaired, robust triangulation, then reference
     angles two ways: the SKEL fit on the 3D keypoints in each camera's frame (all DoF groups)
     and geometric knee/elbow/hip flexion (no fit);
  2. each camera alone through the normal pipeline (`run_stream.py --lossless`, default config,
     recording on; the four cameras as four independent streams of one run), once per variant (`--variant NAME` or `NAME:key=value,key=value` for --set);
  3. published q (observed persons only) against the reference on the reference's timeline:
     MAE / RMSE / bias (published - reference) in degrees per DoF group and side, pelvis
     orientation as the geodesic angle, by the camera's view angle to the person (0 = facing it),
     coverage (frames with an observed pose), left/right swaps published, and the fit's cost.

    .venv/bin/python bench/bench_accuracy.py --variant before:pose.landmarks.fit_mode=world \\
        --variant after --demo Demo_SinglePerson [--demo Demo_MultiPerson] [--json out.json]
    # SKEL-CF (needs its checkpoint and a GPU):
    .venv/bin/python bench/bench_accuracy.py --variant skelcf:pose.engine=skelcf,pose.skelcf.checkpoint=best.pth
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engines.reference.angles import GEOMETRIC_ANGLES, pelvis_axes  # noqa: E402
from engines.reference.pipeline import Reference, reference_from_files  # noqa: E402
from engines.skel.dofs import DOF_INDEX  # noqa: E402
from engines.skel.kinematics import root_rotation  # noqa: E402
from stream.packaged import packaged_file  # noqa: E402

GROUPS: dict[str, tuple[str, ...]] = {
    "knee flexion": ("knee_angle_r", "knee_angle_l"),
    "hip flexion": ("hip_flexion_r", "hip_flexion_l"),
    "hip adduction": ("hip_adduction_r", "hip_adduction_l"),
    "hip rotation": ("hip_rotation_r", "hip_rotation_l"),
    "ankle": ("ankle_angle_r", "ankle_angle_l"),
    "elbow flexion": ("elbow_flexion_r", "elbow_flexion_l"),
    "shoulder": tuple(f"shoulder_{s}_{a}" for s in "rl" for a in "xyz"),
    "spine": tuple(f"{p}_{a}" for p in ("lumbar", "thorax") for a in ("bending", "extension", "twist")),
}
VIEW_BINS = ((0, 45, "front"), (45, 135, "side"), (135, 181, "back"))


def demo_dir(name: str) -> Path:
    calib = packaged_file("Pose2Sim", name, "calibration", "Calib.qca.txt")
    if calib is None:
        sys.exit("bench_accuracy needs the pose2sim demos: pip install --no-deps pose2sim==0.10.49")
    return calib.parent.parent


def run_pipeline(videos: list[Path], sets: list[str], out_dir: Path) -> Path:
    """All cameras through run_stream.py (default config, --lossless, recorded) -> session dir."""
    cmd = [sys.executable, str(REPO / "run_stream.py"), "--lossless"]
    for v in videos:
        cmd += ["--source", str(v)]
    cmd += ["--set", "publisher.enabled=false", "--set", "recorder.enabled=true",
            "--set", f"recorder.directory={out_dir}",
            "--set", "runtime.status_line=false"]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"run_stream.py failed ({r.returncode}): {r.stderr[-2000:]}")
    sessions = sorted(out_dir.iterdir())
    return sessions[-1]


def published(session: Path, n_streams: int, t_n: int) -> list[list[list]]:
    """[stream][source frame] -> [(bbox_xyxy (4,), q (46,), measured (46,) bool)] of the observed
    persons published (measured: the DoF is not flagged q_predicted).

    An observed person is one with confidence > 0 (a held pose from a frame where nobody was
    found is published with confidence 0).
    """
    from sinks.replay import load_frames

    out = [[[] for _ in range(t_n)] for _ in range(n_streams)]
    for f in load_frames(str(session)):
        v = int(f.stream.removeprefix("cam"))
        if 0 <= f.seq < t_n:
            out[v][f.seq] = [(np.asarray(p.bbox_xyxy, np.float64), np.asarray(p.q, np.float64),
                              np.ones(46, bool) if p.q_predicted is None else ~np.asarray(p.q_predicted, bool))
                             for p in f.persons if p.q is not None and p.confidence > 0]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter, 1e-9)


def matched_index(persons: list[list], ref: Reference, v: int, min_iou: float = 0.3) -> np.ndarray:
    """(T,) per source frame: the index in persons[s] of the published person whose box overlaps
    the reference person's reprojected keypoints best (-1: none does), so with several people
    each is compared with the right reference."""
    t_n = len(persons)
    out = np.full(t_n, -1)
    proj = ref.cameras[v].project(np.nan_to_num(ref.points_m))          # (T_ref, 33, 2)
    ok = np.isfinite(ref.points_m).all(-1)
    for s in range(t_n):
        t = s - int(ref.offsets[v])                                    # reference frame
        if not (0 <= t < proj.shape[0]) or ok[t].sum() < 10 or not persons[s]:
            continue
        p = proj[t][ok[t]]
        box = np.r_[p.min(0), p.max(0)]
        scores = [_iou(p[0], box) for p in persons[s]]
        best = int(np.argmax(scores))
        if scores[best] >= min_iou:
            out[s] = best
    return out


def matched_q(persons: list[list], ref: Reference, v: int, min_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(T, 46) per source frame: the q of the published person `matched_index` picks (NaN: none);
    and (T, 46) bool: that DoF was measured (not flagged predicted)."""
    t_n = len(persons)
    q = np.full((t_n, 46), np.nan)
    measured = np.zeros((t_n, 46), dtype=bool)
    for s, best in enumerate(matched_index(persons, ref, v, min_iou)):
        if best >= 0:
            q[s], measured[s] = persons[s][best][1], persons[s][best][2]
    return q, measured


def on_reference_timeline(q: np.ndarray, offset: int) -> np.ndarray:
    """(T, 46) per source frame -> per reference frame t (source frame t + offset)."""
    out = np.full_like(q, np.nan)
    t = np.arange(q.shape[0])
    src = t + offset
    ok = (src >= 0) & (src < q.shape[0])
    out[t[ok]] = q[src[ok]]
    return out


def stats(err_deg: np.ndarray) -> dict[str, float]:
    e = err_deg[np.isfinite(err_deg)]
    if e.size == 0:
        return {"n": 0, "mae": float("nan"), "rmse": float("nan"), "bias": float("nan")}
    return {"n": int(e.size), "mae": float(np.abs(e).mean()), "rmse": float(np.sqrt((e ** 2).mean())),
            "bias": float(e.mean())}


def view_angle_deg(ref: Reference, cam_index: int) -> np.ndarray:
    """(T,) angle between the body's forward axis and the direction to the camera, degrees."""
    anterior, _, _ = pelvis_axes(ref.points_m)
    mid = 0.5 * (ref.points_m[:, 23] + ref.points_m[:, 24])
    to_cam = ref.cameras[cam_index].centre_m - mid
    to_cam[:, 2] = 0.0                                      # horizontal (world z up)
    fwd = anterior.copy()
    fwd[:, 2] = 0.0
    c = (to_cam * fwd).sum(-1) / (np.linalg.norm(to_cam, axis=-1) * np.linalg.norm(fwd, axis=-1))
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def pelvis_error_deg(q_pub: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
    ok = np.isfinite(q_pub[:, 0]) & np.isfinite(q_ref[:, 0])
    out = np.full(q_pub.shape[0], np.nan)
    if ok.any():
        rel = np.swapaxes(root_rotation(q_pub[ok]), -1, -2) @ root_rotation(q_ref[ok])
        out[ok] = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    return out


def swaps_published(q_pub: np.ndarray, ref: Reference, margin_deg: float = 15.0) -> int:
    """Frames whose knee + hip flexion match the reference clearly better with sides exchanged."""
    names = ("knee", "hip_flexion")
    keep = swap = 0.0
    for n in names:
        r, l_ = ref.geometric[f"{n}_r"], ref.geometric[f"{n}_l"]
        dof = GEOMETRIC_ANGLES[f"{n}_r"]
        pr, pl = q_pub[:, DOF_INDEX[dof]], q_pub[:, DOF_INDEX[dof[:-1] + "l"]]
        keep = keep + np.abs(pr - r) + np.abs(pl - l_)
        swap = swap + np.abs(pr - l_) + np.abs(pl - r)
    return int(np.nansum(np.degrees(keep - swap) > margin_deg))


def evaluate_camera(ref: Reference, v: int, q_src: np.ndarray, measured_src: np.ndarray | None = None) -> dict:
    """Every figure of one camera; with measured_src (T, 46) bool also the same geometric
    figures on measured DoFs only (flagged-predicted values left out), the share flagged, and
    the left/right swaps among frames whose knees and hips were measured."""
    cam = ref.cameras[v]
    q_pub = on_reference_timeline(q_src, int(ref.offsets[v]))
    q_ref = ref.q_by_camera[cam.name]
    view = view_angle_deg(ref, v)
    out: dict = {"camera": cam.name, "coverage": float(np.isfinite(q_pub[:, 0]).mean()),
                 "median_view_deg": float(np.nanmedian(view)), "fit": {}, "geometric": {}, "by_view": {}}
    for g, names in GROUPS.items():
        errs = {n: np.degrees(q_pub[:, DOF_INDEX[n]] - q_ref[:, DOF_INDEX[n]]) for n in names}
        out["fit"][g] = stats(np.concatenate(list(errs.values())))
        for side in "rl":
            sided = [e for n, e in errs.items() if n.endswith(f"_{side}") or f"_{side}_" in n]
            if sided:
                out["fit"][f"{g} {side}"] = stats(np.concatenate(sided))
    out["fit"]["pelvis orientation"] = stats(pelvis_error_deg(q_pub, q_ref))
    for gname, dof in GEOMETRIC_ANGLES.items():
        e = np.degrees(q_pub[:, DOF_INDEX[dof]] - ref.geometric[gname])
        out["geometric"][gname] = stats(e)
        for lo, hi, label in VIEW_BINS:
            m = (view >= lo) & (view < hi)
            out["by_view"].setdefault(label, {})[gname] = stats(np.where(m, e, np.nan))
    for joint in ("knee", "elbow", "hip_flexion"):
        out["geometric"][joint] = stats(np.concatenate(
            [np.degrees(q_pub[:, DOF_INDEX[GEOMETRIC_ANGLES[f"{joint}_{s}"]]] - ref.geometric[f"{joint}_{s}"])
             for s in "rl"]))
    out["swapped_frames"] = swaps_published(q_pub, ref)
    out["pelvis_flipped_frames"] = int(np.nansum(pelvis_error_deg(q_pub, q_ref) > 90))
    if measured_src is not None:
        seen = on_reference_timeline(measured_src.astype(np.float64), int(ref.offsets[v])) > 0.5
        q_meas = np.where(seen, q_pub, np.nan)
        out["measured"], out["flagged_share"] = {}, {}
        for joint in ("knee", "elbow", "hip_flexion"):
            dofs = [DOF_INDEX[GEOMETRIC_ANGLES[f"{joint}_{s}"]] for s in "rl"]
            out["measured"][joint] = stats(np.concatenate(
                [np.degrees(q_meas[:, d] - ref.geometric[f"{joint}_{s}"]) for d, s in zip(dofs, "rl")]))
            pub = np.isfinite(q_pub[:, dofs])
            out["flagged_share"][joint] = float((pub & ~seen[:, dofs]).sum() / max(pub.sum(), 1))
        out["swapped_measured_frames"] = swaps_published(q_meas, ref)
    return out


def mean_over(cams: list[dict], section: str, key: str, field: str) -> float:
    vals = [c[section][key][field] for c in cams if key in c[section] and c[section][key]["n"] > 0]
    return float(np.mean(vals)) if vals else float("nan")


def report(name: str, variant: str, cams: list[dict]) -> None:
    print(f"\n## {name} / {variant}")
    print("| camera | coverage | view (median) | knee MAE/bias | elbow MAE/bias | hip flex MAE/bias | swaps | pelvis flips |")
    print("|---|---|---|---|---|---|---|---|")
    for c in cams:
        g = c["geometric"]
        print(f"| {c['camera']} | {c['coverage']:.2f} | {c['median_view_deg']:.0f} | "
              + " | ".join(f"{g[j]['mae']:.1f} / {g[j]['bias']:+.1f}" for j in ("knee", "elbow", "hip_flexion"))
              + f" | {c['swapped_frames']} | {c['pelvis_flipped_frames']} |")
    print("\nagainst the geometric reference, mean of the cameras (MAE / RMSE / bias, deg):")
    for j in ("knee", "elbow", "hip_flexion", "knee_r", "knee_l", "elbow_r", "elbow_l", "hip_flexion_r", "hip_flexion_l"):
        print(f"  {j:14s} {mean_over(cams, 'geometric', j, 'mae'):5.1f} / {mean_over(cams, 'geometric', j, 'rmse'):5.1f}"
              f" / {mean_over(cams, 'geometric', j, 'bias'):+5.1f}")
    if "measured" in cams[0]:
        print("measured DoFs only (values flagged q_predicted left out), mean of the cameras (MAE / bias, deg; share flagged):")
        for j in ("knee", "elbow", "hip_flexion"):
            print(f"  {j:14s} {mean_over(cams, 'measured', j, 'mae'):5.1f} / {mean_over(cams, 'measured', j, 'bias'):+5.1f}"
                  f"  ({np.mean([c['flagged_share'][j] for c in cams]):.0%} flagged)")
        print(f"  swaps among measured frames per camera: {[c['swapped_measured_frames'] for c in cams]}")
    print("against the SKEL fit on the 3D keypoints, mean of the cameras (MAE / RMSE / bias, deg):")
    for g in [*GROUPS, "pelvis orientation"]:
        sides = "  (r " + " / l ".join(f"{mean_over(cams, 'fit', f'{g} {s}', 'mae'):.1f}" for s in "rl") + ")" \
            if f"{g} r" in cams[0]["fit"] else ""
        print(f"  {g:18s} {mean_over(cams, 'fit', g, 'mae'):5.1f} / {mean_over(cams, 'fit', g, 'rmse'):5.1f} / "
              f"{mean_over(cams, 'fit', g, 'bias'):+5.1f}{sides}")
    print("knee flexion MAE by view angle (front < 45 deg <= side < 135 deg <= back), pooled:")
    for _, _, label in VIEW_BINS:
        vals = [(c["by_view"][label][f"knee_{s}"]["mae"], c["by_view"][label][f"knee_{s}"]["n"])
                for c in cams for s in "rl" if c["by_view"][label][f"knee_{s}"]["n"] > 0]
        n = sum(k for _, k in vals)
        mae = sum(m * k for m, k in vals) / n if n else float("nan")
        print(f"  {label:5s} {mae:5.1f} deg over {n} joint-frames")


def reference_quality(ref: Reference) -> dict:
    err = ref.reprojection_by_joint_px()
    used = np.where(ref.tri.used, ref.tri.reproj_px, np.nan)
    return {"offsets": ref.offsets.tolist(), "swapped_view_frames": ref.swapped.sum(0).tolist(),
            "reprojection_mean_px": float(np.nanmean(used)),
            "reprojection_by_joint_px": {k: round(v, 1) for k, v in err.items()},
            "segments_m": ref.segments_m,
            "fit_vs_geometric_deg": {
                g: stats(np.degrees(np.nanmean(np.stack([q[:, DOF_INDEX[d]] for q in ref.q_by_camera.values()]), 0)
                                    - ref.geometric[g])) for g, d in GEOMETRIC_ANGLES.items()}}


def cached_landmarks(views, t: int, v: int, width: int = 1088, height: int = 1920):
    """(LandmarkSet, crop box (4,)) of view v's frame t from the cached BlazePose outputs, as the
    engine's fill takes them (box following the landmarks); None where nobody was found."""
    from engines.blazepose.landmarks import LandmarkSet
    from engines.reference.views import box_following

    px = views.pixels[t, :, v]
    if not np.isfinite(px).all():
        return None
    conf = views.confidence[t, :, v]
    return (LandmarkSet(px, views.world_m[t, :, v], conf, 1.0, np.zeros((2, 2)), None),
            box_following(px, conf, width, height))


def tracked_person(box: np.ndarray):
    """A fresh tracked Person on `box` for the engine's fill."""
    from stream.packet import Person, TrackState

    return Person(track_id=1, track_state=TrackState.TRACKED, box_xyxy=box, score=1.0, crop_box_xyxy=box)


def fit_cost(views, variants: list[tuple[str, list[str]]], rounds: int = 3) -> dict[str, dict[str, float]]:
    """Warm per-person cost (ms) of each variant's landmark engine after BlazePose: its whole
    fill (relabelling, optional segment depths, the fit, translation, foreshortening flags), on
    the cached BlazePose outputs of every view; variants interleaved frame by frame so machine
    load hits them alike. Wall time and this thread's CPU time (`*_cpu`: what other processes on
    a shared machine cannot inflate, except through caches). Also one FK evaluation, the
    load-independent unit the tests use."""
    import yaml

    from engines.landmarks.config import LandmarkEngineConfig
    from engines.landmarks.engine import LandmarkPoseEngine
    from engines.pose_engine import default_intrinsics
    from engines.skel.kinematics import forward_kinematics, generic_skeleton

    cfgs = {}
    for name, sets in variants:
        kw = {k.removeprefix("pose.landmarks."): yaml.safe_load(v) for k, v in (s.split("=", 1) for s in sets)
              if k.startswith("pose.landmarks.")}
        cfgs[name] = LandmarkEngineConfig(**kw)
    times: dict[str, list[float]] = {n: [] for n in [*cfgs, *(f"{c}_cpu" for c in cfgs), "fk"]}
    sk = generic_skeleton(1.70)
    q_fk = np.zeros(46)
    t_n, _, v_n, _ = views.pixels.shape
    k = default_intrinsics(1088, 1920)
    for _ in range(rounds):
        for v in range(v_n):
            engines = {n: LandmarkPoseEngine(c) for n, c in cfgs.items()}
            for t in range(t_n):
                found = cached_landmarks(views, t, v)
                if found is None:
                    continue
                lms, box = found
                for n, eng in engines.items():
                    warm = eng._people.get(("bench", 1)) is not None and eng._people[("bench", 1)].q is not None
                    p = tracked_person(box)
                    t0, c0 = time.perf_counter(), time.thread_time()
                    eng._fill(p, ("bench", 1), lms, box, k)
                    if warm:
                        times[n].append(time.perf_counter() - t0)
                        times[f"{n}_cpu"].append(time.thread_time() - c0)
                t0 = time.perf_counter()
                forward_kinematics(q_fk, sk)
                times["fk"].append(time.perf_counter() - t0)
            for eng in engines.values():
                eng.close()
    return {n: {"p50_ms": 1e3 * float(np.median(x)), "p99_ms": 1e3 * float(np.percentile(x, 99)),
                "p99_in_fk": float(np.percentile(x, 99) / np.median(times["fk"]))} for n, x in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", action="append", help="Demo_SinglePerson (default) and/or Demo_MultiPerson")
    ap.add_argument("--variant", action="append", help="NAME or NAME:key=value,key=value (run_stream --set)")
    ap.add_argument("--cache", default=str(REPO / ".cache" / "reference"), help="2D landmarks cache folder")
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--fit-cost-only", action="store_true",
                    help="only the fit's cost on the cached landmarks (no pipeline runs), --rounds times")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the cached views for the fit cost")
    args = ap.parse_args()
    demos = args.demo or ["Demo_SinglePerson"]
    variants = []
    for spec in args.variant or ["current"]:
        name, _, sets = spec.partition(":")
        variants.append((name, [s for s in sets.split(",") if s]))
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for demo in demos:
        d = demo_dir(demo)
        videos = sorted((d / "videos").glob("cam*.mp4"))
        t0 = time.perf_counter()
        people = 2 if "Multi" in demo else 1
        cache = Path(args.cache) / f"{demo}_views"
        refs = reference_from_files(videos, d / "calibration" / "Calib.qca.txt", cache=cache, people=people)
        results[demo] = {"people": [], "variants": {}}
        for i, ref in enumerate(refs):
            q = reference_quality(ref)
            results[demo]["people"].append(q)
            print(f"# {demo} person {i}: reference in {time.perf_counter() - t0:.0f} s; offsets {q['offsets']} "
                  f"frames; left/right slips repaired per view {q['swapped_view_frames']}; "
                  f"reprojection {q['reprojection_mean_px']:.1f} px mean")
            print("SKEL fit reference vs geometric reference (MAE / bias deg): " + ", ".join(
                f"{g} {s['mae']:.1f}/{s['bias']:+.1f}" for g, s in q["fit_vs_geometric_deg"].items()))
        from engines.reference.views import ViewLandmarks

        cost = fit_cost(ViewLandmarks.load(f"{cache}_p0.npz"), variants, args.rounds)
        results[demo]["fit_cost"] = cost
        print("fit cost per person and frame (warm, cached landmarks of all views): " + "; ".join(
            f"{n} p50 {c['p50_ms']:.2f} ms, p99 {c['p99_ms']:.2f} ms ({c['p99_in_fk']:.0f} FK)" for n, c in cost.items()))
        if args.fit_cost_only:
            continue
        t_n = refs[0].points_m.shape[0]
        for name, sets in variants:
            with tempfile.TemporaryDirectory(prefix="bench_accuracy_") as tmp:
                t1 = time.perf_counter()
                session = run_pipeline(videos, sets, Path(tmp))
                persons = published(session, len(videos), t_n)
            out = results[demo]["variants"][name] = {"sets": sets, "pipeline_s": time.perf_counter() - t1,
                                                     "people": []}
            for i, ref in enumerate(refs):
                cams = [evaluate_camera(ref, v, *matched_q(persons[v], ref, v)) for v in range(len(videos))]
                out["people"].append(cams)
                report(f"{demo} person {i}" if len(refs) > 1 else demo, name, cams)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
