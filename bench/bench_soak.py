"""Soak: the default command for minutes on end, as a live camera would run it for hours.

A webcam session is not 30 s long. This runs `run_stream.py` on a looping file (default: the
shared `vtest.avi`, 10 fps, people walking in and out all the time, so tracks and per-person
state are made and freed over and over; or any `--source`) live, at the file's own pace, with
the default recorder on, subscribes to its ZeroMQ output, samples the memory of the whole process
tree every 5 s, and after `--minutes` stops it with Ctrl-C (SIGINT) as a user would.

Reported per minute: published frames/s, persons per frame, capture -> publish p50 / p99 ms,
summed RSS / PSS of the tree at the minute's end, and PSS per process (each stage process
carries its stage's name); then the memory slope (MiB per minute, least
squares over the samples after the first minute, and over the second half), the exit code, and whether the recording holds
every frame that was published (frames that reached the subscriber but not the file are lost
data). A leak shows as a slope that does not fall with a longer run; a stage that slows with
time as a p99 or fps that drifts from the first minutes to the last.

    .venv/bin/python bench/bench_soak.py --minutes 10          # ~10.5 min
    .venv/bin/python bench/bench_soak.py --minutes 3 --source clip.mp4 --set pose.max_persons=2
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_e2e import pct, process_memory_mb, process_tree, start_collector, tree_memory_mb  # noqa: E402
from sinks.replay import load_frames  # noqa: E402

VTEST = Path(os.environ.get("SKELSTREAM_SHARED", REPO.parent / "shared")) / "data" / "vtest.avi"


def pss_by_process(pid: int) -> dict[str, float]:
    """PSS in MiB of each process of the tree, by its name (stages name their processes,
    `stream.graph.name_process`; the parent is "python")."""
    out: dict[str, float] = {}
    for p in process_tree(pid):
        try:
            name = Path(f"/proc/{p}/comm").read_text().strip()
            out[f"{name} ({p})"] = process_memory_mb(p)[1]
        except OSError:
            continue
    return out


def memory_slope(samples: np.ndarray, after_s: float) -> float:
    """MiB per minute: least-squares slope of summed PSS over the samples taken after `after_s`."""
    s = samples[samples[:, 0] >= after_s]
    if len(s) < 3:
        return float("nan")
    return float(np.polyfit(s[:, 0] / 60.0, s[:, 2], 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--source", default=str(VTEST), help="a video file, played live and looped")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()
    if not Path(args.source).exists():
        sys.exit(f"bench_soak: {args.source} not found (set SKELSTREAM_SHARED or pass --source)")

    with tempfile.TemporaryDirectory() as tmp:
        endpoint, rows, stop, t = start_collector()
        cmd = [sys.executable, str(REPO / "run_stream.py"), "--source", str(Path(args.source).resolve()),
               "--set", "sources.0.loop=true", "--set", f"publisher.endpoint={endpoint}",
               "--set", "runtime.status_line=false", "--set", "recorder.enabled=true",
               "--set", f"recorder.directory={tmp}/sessions"]
        for o in args.overrides:
            cmd += ["--set", o]
        mem: list[tuple[float, float, float]] = []
        per_minute: list[dict[str, float]] = []    # PSS per process at each minute's end
        t0 = time.monotonic()
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=err, text=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            while proc.poll() is None and time.monotonic() - t0 < args.minutes * 60:
                rss, pss = tree_memory_mb(proc.pid)
                mem.append((time.monotonic() - t0, rss, pss))
                if mem[-1][0] >= 60.0 * (len(per_minute) + 1):
                    per_minute.append(pss_by_process(proc.pid))
                time.sleep(5.0)
            stopped_at = time.monotonic()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                rc = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
                print("run_stream.py did not stop within 60 s of Ctrl-C: killed")
            exit_s = time.monotonic() - stopped_at
            err.seek(0)
            stderr = err.read()
        time.sleep(0.5)
        stop.set()
        t.join(5)
        sessions = sorted((Path(tmp) / "sessions").glob("*"))
        recorded = load_frames(str(sessions[-1])) if sessions else []

    print(f"source {args.source}, {args.minutes:g} min live, looped; exit code {rc} "
          f"{exit_s:.1f} s after Ctrl-C; load avg {os.getloadavg()[0]:.2f}")
    if not rows:
        print(stderr[-4000:])
        return 1
    a = np.array(rows, dtype=np.float64)          # (t, seq, capture ns, publish ns, recv ns, fitted)
    a[:, 0] -= t0
    m = np.array(mem)
    print("| minute | published fps | persons / frame | capture -> publish p50 / p99 ms | RSS / PSS MiB |")
    print("|---:|---:|---:|---:|---:|")
    for k in range(int(np.ceil(args.minutes))):
        w = a[(a[:, 0] >= 60 * k) & (a[:, 0] < 60 * (k + 1))]
        mm = m[m[:, 0] < 60 * (k + 1)]
        if len(w) < 2 or not len(mm):
            continue
        lat = (w[:, 3] - w[:, 2]) / 1e6
        fps = (len(w) - 1) / (w[-1, 0] - w[0, 0])
        print(f"| {k + 1} | {fps:.1f} | {w[:, 5].mean():.2f} | {pct(lat, 50):.0f} / {pct(lat, 99):.0f} | "
              f"{mm[-1, 1]:.0f} / {mm[-1, 2]:.0f} |")
    half = m[len(m) // 2, 0] if len(m) else 0.0
    print(f"memory slope: {memory_slope(m, 60.0):+.2f} MiB/min PSS after the first minute, "
          f"{memory_slope(m, half):+.2f} over the second half (peak RSS {m[:, 1].max():.0f} MiB, "
          f"PSS {m[:, 2].max():.0f} MiB)")
    if per_minute:
        names = sorted(per_minute[0])
        print("PSS per process at each minute's end (MiB):")
        print("| minute | " + " | ".join(names) + " |")
        print("|---:|" + "---:|" * len(names))
        for k, snap in enumerate(per_minute):
            print(f"| {k + 1} | " + " | ".join(f"{snap[n]:.0f}" if n in snap else "-" for n in names) + " |")
    published = {(int(r[1]), int(r[2])) for r in rows}
    on_file = {(f.seq, f.capture_utc_ns) for f in recorded}
    lost = published - on_file
    print(f"recording: {len(recorded)} frames on file, {len(published)} received by the subscriber, "
          f"{len(lost)} received but not on file")
    print("run summary (stderr tail):")
    print("\n".join(stderr.strip().splitlines()[-16:]))
    return 0 if rc == 0 and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
