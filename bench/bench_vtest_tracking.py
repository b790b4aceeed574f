"""Detection and tracking on ../shared/data/vtest.avi (768x576, 10 fps, pedestrians).

Reports detections per frame, number of confirmed tracks, median track duration, detector time,
and an ESTIMATE of the share of frames where a visible walker has no track.

There is no ground truth for vtest.avi, so "visible walker" is estimated offline, with hindsight:
the detector runs on EVERY frame, an offline tracker links those detections (3 hits to confirm),
each reference track with >= 1 s of hits is taken as a walker, and its box is interpolated over the
gaps between its hits (a person the detector misses for a moment is still there). The online
pipeline under test (detector every N frames, tracker in between, as configured) then has a
'missing' walker-frame wherever none of its output boxes overlaps the reference box with IoU >= 0.3
(strict: HOG box sizes jump between pyramid levels, so a tracked walker can fail it), and, leniently,
wherever no output box contains the reference box's centre.
Walkers the detector never finds at all are invisible to this estimate (it is a lower bound).

    .venv/bin/python bench/bench_vtest_tracking.py [--frames 300] [--every-n 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.detection.config import DetectorConfig  # noqa: E402
from engines.detection.detectors import build_detector  # noqa: E402
from tracking.bytetrack import ByteTracker, iou_matrix  # noqa: E402
from tracking.config import TrackerConfig  # noqa: E402

VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"


def decode(path: Path, n: int) -> list[tuple[float, np.ndarray]]:
    import av
    out = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            out.append((float(f.pts * s.time_base), f.to_ndarray(format="bgr24")))
            if len(out) >= n:
                break
    return out


def reference_walkers(times, dets, min_hits_s: float = 1.0):
    """{walker: {frame index: box}} from an offline every-frame tracker, gaps interpolated."""
    tr = ByteTracker(TrackerConfig(confirm_hits=3, carry_misses=0, max_lost_s=1.0))
    hits: dict[int, dict[int, np.ndarray]] = {}
    for i, (t, (b, s)) in enumerate(zip(times, dets)):
        out = tr.update(b, s, t)
        for tid, box, pred in zip(out.track_ids, out.boxes_xyxy, out.predicted):
            if not pred:
                hits.setdefault(int(tid), {})[i] = box
    walkers = {}
    for tid, h in hits.items():
        idx = sorted(h)
        if times[idx[-1]] - times[idx[0]] < min_hits_s:
            continue
        boxes = np.array([h[i] for i in idx])
        full = np.arange(idx[0], idx[-1] + 1)
        walkers[tid] = {int(f): np.array([np.interp(f, idx, boxes[:, k]) for k in range(4)]) for f in full}
    return walkers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=VTEST)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--every-n", type=int, default=DetectorConfig().every_n_frames)
    ap.add_argument("--pyramid-scale", type=float, default=DetectorConfig().hog.pyramid_scale)
    ap.add_argument("--resize", type=float, default=DetectorConfig().hog.resize_factor)
    args = ap.parse_args()
    frames = decode(args.video, args.frames)
    times = [t for t, _ in frames]
    dcfg = DetectorConfig()
    dcfg = dcfg.model_copy(update={"hog": dcfg.hog.model_copy(update={"pyramid_scale": args.pyramid_scale,
                                                                     "resize_factor": args.resize})})
    det = build_detector(dcfg)
    det.open()
    dets, det_ms = [], []
    for _, img in frames:
        t0 = time.perf_counter()
        dets.append(det.detect(img))
        det_ms.append((time.perf_counter() - t0) * 1e3)

    # online pipeline: detector every N frames (same detector output on those frames)
    tr = ByteTracker(TrackerConfig())
    online, first_seen, last_seen, upd_us = [], {}, {}, []
    for i, t in enumerate(times):
        t0 = time.perf_counter()
        out = tr.update(*dets[i], t) if i % args.every_n == 0 else tr.predict(t)
        upd_us.append((time.perf_counter() - t0) * 1e6)
        online.append(out.boxes_xyxy)
        for tid in out.track_ids:
            first_seen.setdefault(int(tid), t)
            last_seen[int(tid)] = t
    durations = np.array([last_seen[k] - first_seen[k] for k in first_seen])

    walkers = reference_walkers(times, dets)
    total = missing = missing_centre = 0
    for w in walkers.values():
        for f, box in w.items():
            total += 1
            o = online[f]
            if len(o) == 0 or iou_matrix(box[None], o).max() < 0.3:
                missing += 1
            cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
            if not ((o[:, 0] <= cx) & (cx <= o[:, 2]) & (o[:, 1] <= cy) & (cy <= o[:, 3])).any():
                missing_centre += 1
    n_det = np.array([len(b) for b, _ in dets])
    print(f"video {args.video.name}: {len(frames)} frames, {frames[0][1].shape[1]}x{frames[0][1].shape[0]}, "
          f"{times[-1] - times[0]:.1f} s; detector hog every {args.every_n} frames, "
          f"pyramid scale {args.pyramid_scale}, resize {args.resize}")
    print(f"detections/frame (detector frames): mean {n_det[::args.every_n].mean():.2f}, "
          f"median {np.median(n_det[::args.every_n]):.0f}, max {n_det.max()}")
    print(f"hog detect ms: p50 {np.percentile(det_ms, 50):.1f}, p99 {np.percentile(det_ms, 99):.1f}")
    print(f"tracker step us: p50 {np.percentile(upd_us, 50):.0f}, p99 {np.percentile(upd_us, 99):.0f}")
    print(f"confirmed tracks: {len(durations)}; median duration {np.median(durations):.1f} s; "
          f"tracks >= 2 s: {(durations >= 2).sum()}")
    print(f"reference walkers (offline, every-frame, >= 1 s): {len(walkers)}, walker-frames {total}")
    print(f"estimated share of visible-walker frames with no track: {missing / max(total, 1):.1%} "
          f"(no output box with IoU >= 0.3); {missing_centre / max(total, 1):.1%} (no output box "
          "containing the walker's centre)")


if __name__ == "__main__":
    main()
