"""Tracker update time with 20 detections and 20 live tracks (target: <= 1 ms p99 on the dev machine).

20 walkers move with random velocities; every frame gets their boxes with noise, a few misses, and
clutter, so all association steps run. Wall time on a shared machine includes preemption; the
thread CPU time per update does not, so both are printed. Baseline in the same run: one 20x20 IoU matrix plus
scipy's linear_sum_assignment, the irreducible core of an update.

    .venv/bin/python bench/bench_tracker.py [--frames 3000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracking.bytetrack import ByteTracker, iou_matrix  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--people", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.people
    pos = rng.uniform([0, 100], [1900, 900], (n, 2))
    vel = rng.normal(0, 60, (n, 2))
    size = rng.uniform(60, 200, n)
    tr = ByteTracker()
    times, cpu, base, live = [], [], [], []
    for k in range(args.frames):
        t = k / 30
        pos += vel / 30
        vel[(pos[:, 0] < 0) | (pos[:, 0] > 1900), 0] *= -1
        vel[(pos[:, 1] < 100) | (pos[:, 1] > 900), 1] *= -1
        boxes = np.stack([pos[:, 0] - 0.2 * size, pos[:, 1] - size, pos[:, 0] + 0.2 * size, pos[:, 1]], 1)
        boxes += rng.normal(0, 2, boxes.shape)
        scores = rng.uniform(0.3, 1.0, n)
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        out = tr.update(boxes, scores, t)
        times.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
        live.append(len(out.track_ids))
        t0 = time.perf_counter_ns()
        linear_sum_assignment(1.0 - iou_matrix(out.boxes_xyxy, boxes))
        base.append(time.perf_counter_ns() - t0)
    times = np.array(times[100:]) / 1e6
    cpu = np.array(cpu[100:]) / 1e6
    base = np.array(base[100:]) / 1e6
    print(f"tracker update, {n} detections, {np.mean(live[100:]):.1f} live tracks, {len(times)} frames")
    print(f"update ms: p50 {np.percentile(times, 50):.3f}  p99 {np.percentile(times, 99):.3f}  max {times.max():.3f}")
    print(f"update thread CPU ms (excludes time preempted by other processes): p50 "
          f"{np.percentile(cpu, 50):.3f}  p99 {np.percentile(cpu, 99):.3f}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"baseline (IoU + linear_sum_assignment) ms: p50 {np.percentile(base, 50):.3f}  "
          f"p99 {np.percentile(base, 99):.3f}; ratio p50 {np.percentile(times, 50) / np.percentile(base, 50):.1f}x")


if __name__ == "__main__":
    main()
