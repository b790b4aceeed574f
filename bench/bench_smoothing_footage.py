"""Smoothing on real footage: the pipeline's own raw angles against a four-camera reference.

The smoothing benchmark (bench_smoothing.py) puts synthetic noise on a known truth. Here nothing
is synthetic: each camera of Pose2Sim's demos (Demo_SinglePerson, Demo_MultiPerson; 60 fps,
1088 x 1920) goes through the real detector, tracker and pose stage (in-process, inline
detector), and their raw output (every person, its observed DoFs, confidences, track events) is
then replayed through a fresh `SmoothingStage` per preset (and configs/offline_analysis.yaml's
fixed-lag RTS), and through One Euro. Each output is
scored against the four-camera reference (engines/reference: BlazePose in all views,
triangulated; the geometric knee, elbow and hip flexion, right and left) on the reference's
timeline, with the published person matched to the reference person by box (bench_accuracy).
At 60 Hz (every frame), 30 and 20 Hz (every second and third frame of the same raw output: the
multi-person default poses at 15-25 frames/s on 2 cores).

Figures per reference person (Demo_MultiPerson's person 1, the man lifting a leg, has a reference
that loses him: bench/motion_synth.py), pooled over the four cameras, x raw:
- RMSE: against the reference; it includes the fit's bias (~10 deg on the knee), which no
  smoother can remove;
- RMSE less bias: each (camera, person, DoF)'s mean error over the clip taken out first: the
  part of the error that moves from frame to frame, which is what a smoother works on;
- RMSE where observed: only the angle-frames the engine observed (dof_observed); the others
  are its guesses, flagged (q_predicted) in every output, the smoother's held estimate or the
  engine's value;
- jitter: mean |second difference| of the output over the reference's own.
One Euro (ONE_EURO_GRID of bench_smoothing) at two settings: the best on that very row in
hindsight (no causal filter can be tuned so), and the best on the other demo (tuned on one
footage, reported on another).

    .venv/bin/python bench/bench_smoothing_footage.py [--demo Demo_SinglePerson] [--set KEY=VALUE] [--json out.json]

The pipeline's raw output is kept in .cache/smoothing_footage/ per committed version of what makes
it (RAW_OUTPUT_SOURCES: not the smoother), so a smoothing change is scored in ~15 s, not ~80 s.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_accuracy import demo_dir, matched_index, on_reference_timeline  # noqa: E402
from bench_pose_stage import posed  # noqa: E402
from bench_smoothing import ONE_EURO_GRID  # noqa: E402
from engines.reference.angles import GEOMETRIC_ANGLES  # noqa: E402
from engines.reference.pipeline import Reference, reference_from_files  # noqa: E402
from engines.skel.dofs import DOF_INDEX  # noqa: E402
from stream.config_loader import load_config  # noqa: E402
from stream.packet import Packet  # noqa: E402
from tracking.one_euro import OneEuroFilter  # noqa: E402
from tracking.smoothing_stage import SmoothingStage  # noqa: E402

PRESETS = ("vr", "balanced", "analysis")
OFFLINE = "analysis, fixed lag 5 (offline)"
"""configs/offline_analysis.yaml's smoothing: RTS over the last 5 frames, for recordings."""
ANGLES = tuple(GEOMETRIC_ANGLES)                      # knee_r, knee_l, elbow_r, ... (6)
COLUMNS = [DOF_INDEX[GEOMETRIC_ANGLES[a]] for a in ANGLES]


def raw_packets(video: Path, max_frames: int | None = None) -> list[Packet]:
    """Every frame's packet after the pose stage (before smoothing): persons with raw q,
    dof_observed, confidences; images dropped. Stamps are the file's own (frame / fps)."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"error: cannot open {video}; reinstall pose2sim==0.10.49 (its demo clips)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 60.0

    def frames():
        n = 0
        while max_frames is None or n < max_frames:
            ok, img = cap.read()
            if not ok:
                return
            n += 1
            yield img

    out: list[Packet] = []
    for result, _, _ in posed(frames(), fps, stream_id=video.stem):
        if result is not None:
            result.image = None
            out.append(copy.deepcopy(result))
    return out


RAW_OUTPUT_SOURCES = ("engines", "stream", "configs", "tracking", ":(exclude)tracking/joint_filter.py",
                      ":(exclude)tracking/smoothing_*.py", ":(exclude)tracking/one_euro.py",
                      ":(exclude)tracking/rts.py", ":(exclude)tracking/shape_root.py")
"""What makes the raw output (git pathspecs): everything before the smoothing stage."""


def pipeline_version() -> str:
    """A hash of the committed RAW_OUTPUT_SOURCES; '' outside a git checkout or with changes
    there not committed (then nothing is cached). Changes to the smoother keep the cache."""
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *RAW_OUTPUT_SOURCES], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        blobs = subprocess.run(["git", "ls-files", "-s", "--", *RAW_OUTPUT_SOURCES], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    return "" if dirty or not blobs else hashlib.sha1(blobs.encode()).hexdigest()[:12]


def cached_raw_packets(video: Path, cache: Path | None) -> list[Packet]:
    """raw_packets, kept in `cache` (a folder) under the pipeline's version, so replaying the
    smoother on the same footage costs seconds, not the pose stage's minutes."""
    version = pipeline_version() if cache is not None else ""
    if not version:
        return raw_packets(video)
    path = cache / f"{video.parent.parent.name}_{video.stem}_{version}.pkl"
    if path.is_file():
        with path.open("rb") as f:
            return pickle.load(f)
    packets = raw_packets(video)
    cache.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(packets, f)
    return packets


def every_nth(packets: list[Packet], n: int) -> list[Packet]:
    """The same raw output at 1/n the rate (frames whose seq is a multiple of n), the track
    events of the frames left out kept."""
    out, pending = [], []
    for p in packets:
        if p.frame.seq % n:
            pending += p.events
            continue
        q = copy.deepcopy(p)
        q.events = pending + q.events
        pending = []
        out.append(q)
    return out


def smoothed(packets: list[Packet], preset: str, overrides: tuple[str, ...] = ()) -> list[Packet]:
    """The packets through a fresh SmoothingStage (preset, then `overrides`: run_stream --set)."""
    stage = SmoothingStage(load_config(None, [f"smoothing.preset={preset}", *overrides]))
    stage.setup()
    out = [stage.process(copy.deepcopy(p)) for p in packets]
    out = [p for p in out if p is not None]                 # (fixed_lag_frames holds N back)
    if packets:
        out += stage.flush(packets[0].frame.stream_id)
    stage.close()
    return out


def one_euro(packets: list[Packet], min_cutoff_hz: float, beta: float) -> list[Packet]:
    """One Euro per track id on the observed persons' raw q (the scored angles are bounded: no
    unwrapping of the pelvis needed)."""
    filters: dict[int, OneEuroFilter] = {}
    out = []
    for p in packets:
        p = copy.deepcopy(p)
        for person in p.persons:
            if person.q is None or person.pose_confidence <= 0:
                continue
            f = filters.setdefault(person.track_id, OneEuroFilter(min_cutoff_hz, beta))
            person.q = f(np.asarray(person.q, np.float64), p.frame.media_pts_s).astype(np.float32)
        out.append(p)
    return out


def persons_by_frame(packets: list[Packet], t_n: int) -> dict[int, list]:
    """source frame -> [(box, q, observed DoFs, track_id)] of the observed persons (bench_accuracy's
    layout plus the track id); frames the packets do not hold are absent."""
    out: dict[int, list] = {}
    for p in packets:
        if p.frame.seq < t_n:
            out[p.frame.seq] = [(np.asarray(x.box_xyxy, np.float64), np.asarray(x.q, np.float64),
                                 np.ones(46, bool) if x.dof_observed is None else np.asarray(x.dof_observed, bool),
                                 x.track_id)
                                for x in p.persons if x.q is not None and x.pose_confidence > 0]
    return out


def reference_track(raw: dict[int, list], ref: Reference, v: int, t_n: int) -> np.ndarray:
    """(t_n,) per source frame: the raw output's track matched to the reference person by box
    (-1: none), so every method is scored on the same person-frames."""
    frames = [raw.get(s, []) for s in range(t_n)]
    best = matched_index(frames, ref, v)
    return np.array([frames[s][b][3] if b >= 0 else -1 for s, b in enumerate(best)])


def angles_on_reference(out: dict[int, list], track: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(T_ref, 6) degrees: the matched track's knee, elbow and hip flexion on the reference's
    timeline (source frame = reference frame + offset; NaN where not published or not matched),
    and (T_ref, 6) bool: the engine observed that angle (dof_observed; meaningful for the raw
    output, whose flags every method shares)."""
    q = np.full((track.size, 46), np.nan)
    seen = np.zeros((track.size, 46))
    for s, tid in enumerate(track):
        for _, qq, obs, t in out.get(s, []):
            if t == tid >= 0:
                q[s], seen[s] = qq, obs
    return (np.degrees(on_reference_timeline(q, offset)[:, COLUMNS]),
            on_reference_timeline(seen, offset)[:, COLUMNS] > 0.5)


def second_diff(x: np.ndarray) -> np.ndarray:
    return np.abs(x[2:] - 2 * x[1:-1] + x[:-2])


def score(outs: list[np.ndarray], truths: list[np.ndarray], observed: list[np.ndarray] | None = None
          ) -> dict[str, float]:
    """Pooled figures of one method over (camera, person) pieces: RMSE, RMSE less each piece's
    per-angle bias, mean |2nd difference| of the output (deg); with `observed`, also the RMSE on
    the angle-frames the engine observed (the others it guessed and flagged)."""
    errs = [o - t for o, t in zip(outs, truths)]
    e = np.concatenate([x.ravel() for x in errs])
    centred = np.concatenate([(x - np.nanmean(x, axis=0)).ravel() for x in errs])
    jit = np.concatenate([second_diff(o).ravel() for o in outs])
    out = {"rmse": float(np.sqrt(np.nanmean(e ** 2))), "rmse_less_bias": float(np.sqrt(np.nanmean(centred ** 2))),
           "jitter": float(np.nanmean(jit)), "n": int(np.isfinite(e).sum())}
    if observed is not None:
        seen = np.concatenate([m.ravel() for m in observed])
        out["rmse_observed"] = float(np.sqrt(np.nanmean(e[seen] ** 2)))
        out["observed_share"] = float(np.isfinite(e[seen]).sum() / max(out["n"], 1))
    return out


def evaluate_demo(demo: str, cache: Path, max_frames: int | None = None, overrides: tuple[str, ...] = (),
                  raw_cache: Path | None = None) -> dict:
    """{"person i": {rate: {method: figures}}} of one demo: each reference person's figures,
    pooled over the demo's cameras."""
    d = demo_dir(demo)
    videos = sorted((d / "videos").glob("cam*.mp4"))
    people = 2 if "Multi" in demo else 1
    refs = reference_from_files(videos, d / "calibration" / "Calib.qca.txt", cache=cache / f"{demo}_views",
                                fit=False, people=people)
    t_n = refs[0].points_m.shape[0]
    truth = [np.degrees(np.stack([ref.geometric[a] for a in ANGLES], axis=1)) for ref in refs]
    pieces: dict[tuple[int, int], dict[str, list]] = {}
    truths: dict[tuple[int, int], list] = {}
    observed: dict[tuple[int, int], list] = {}
    for v, video in enumerate(videos):
        t0 = time.perf_counter()
        raw = raw_packets(video, max_frames) if max_frames else cached_raw_packets(video, raw_cache)
        for rate, packets in ((60, raw), (30, every_nth(raw, 2)), (20, every_nth(raw, 3))):
            outputs = {"raw": packets, **{m: smoothed(packets, m, overrides) for m in PRESETS},
                       OFFLINE: smoothed(packets, "analysis", ("smoothing.fixed_lag_frames=5", *overrides)),
                       **{f"one_euro {mc} {b}": one_euro(packets, mc, b) for mc, b in ONE_EURO_GRID}}
            raw_frames = persons_by_frame(packets, t_n)
            published = {name: raw_frames if name == "raw" else persons_by_frame(out, t_n)
                         for name, out in outputs.items()}
            for i, (ref, tr) in enumerate(zip(refs, truth)):
                track = reference_track(raw_frames, ref, v, t_n)
                # the reference frames this rate's source frames land on
                keep = (np.arange(tr.shape[0]) + int(ref.offsets[v])) % (60 // rate) == 0
                truths.setdefault((i, rate), []).append(tr[keep])
                offset = int(ref.offsets[v])
                observed.setdefault((i, rate), []).append(angles_on_reference(raw_frames, track, offset)[1][keep])
                for name, frames in published.items():
                    pieces.setdefault((i, rate), {}).setdefault(name, []).append(
                        angles_on_reference(frames, track, offset)[0][keep])
        print(f"# {demo} {video.stem}: {len(raw)} frames, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rows: dict = {}
    for (i, rate), by_method in pieces.items():
        row = {name: score(outs, truths[i, rate], observed[i, rate]) for name, outs in by_method.items()}
        row["reference"] = score(truths[i, rate], truths[i, rate])
        rows.setdefault(f"person {i}", {})[rate] = row
    return rows


def best_one_euro(rows: list[dict]) -> str:
    """The One Euro setting with the least RMSE less bias summed over these rows."""
    names = [n for n in rows[0] if n.startswith("one_euro ")]
    return min(names, key=lambda n: sum(r[n]["rmse_less_bias"] ** 2 * r[n]["n"] for r in rows))


def markdown(name: str, rows: dict, tuned_elsewhere: dict[int, str]) -> str:
    """One (demo, person)'s table; One Euro at its best setting on this row in hindsight and at
    the setting tuned on the other demo."""
    lines = [f"\n{name}: x raw (raw in deg); jitter = mean |second difference|, also x the reference's own",
             "| rate | method | RMSE | RMSE less bias | RMSE where observed | jitter | jitter x reference |",
             "|---|---|---|---|---|---|---|"]
    for rate, r in rows.items():
        raw = r["raw"]
        lines.append(f"| {rate} Hz | raw | {raw['rmse']:.2f} deg | {raw['rmse_less_bias']:.2f} deg | "
                     f"{raw['rmse_observed']:.2f} deg ({raw['observed_share']:.0%} of values) | "
                     f"{raw['jitter']:.2f} deg | {raw['jitter'] / r['reference']['jitter']:.2f} |")
        shown = [(m, m) for m in (*PRESETS, OFFLINE)]
        shown.append((f"One Euro {best_one_euro([r]).removeprefix('one_euro ')}, best here in hindsight",
                      best_one_euro([r])))
        if rate in tuned_elsewhere:
            shown.append((f"One Euro {tuned_elsewhere[rate].removeprefix('one_euro ')}, tuned on the other demo",
                          tuned_elsewhere[rate]))
        for label, key in shown:
            s = r[key]
            lines.append(f"| {rate} Hz | {label} | {s['rmse'] / raw['rmse']:.3f} | "
                         f"{s['rmse_less_bias'] / raw['rmse_less_bias']:.3f} | "
                         f"{s['rmse_observed'] / raw['rmse_observed']:.3f} | {s['jitter'] / raw['jitter']:.3f} | "
                         f"{s['jitter'] / r['reference']['jitter']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", action="append", help="Demo_SinglePerson and/or Demo_MultiPerson (default both)")
    ap.add_argument("--cache", default=str(REPO / ".cache" / "reference"), help="the reference's 2D landmarks")
    ap.add_argument("--frames", type=int, default=None, help="only the first N frames of each camera")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a smoothing setting for every preset (run_stream --set), e.g. "
                         "smoothing.unobserved_guess_std_rad=0")
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--raw-cache", default=str(REPO / ".cache" / "smoothing_footage"),
                    help="keep the pipeline's raw output here, per committed version of engines/, "
                         "tracking/, stream/, configs/ ('' = no cache)")
    args = ap.parse_args()
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    demos = args.demo or ["Demo_SinglePerson", "Demo_MultiPerson"]
    raw_cache = Path(args.raw_cache) if args.raw_cache else None
    results = {demo: evaluate_demo(demo, Path(args.cache), args.frames, tuple(args.set), raw_cache) for demo in demos}
    for demo in demos:
        others = [r for d, people in results.items() if d != demo for r in people.values()]
        tuned = {rate: best_one_euro([p[rate] for p in others]) for rate in (60, 30, 20)} if others else {}
        for person, rows in results[demo].items():
            print(markdown(f"{demo} {person}", rows, tuned), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
