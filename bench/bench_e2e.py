"""End-to-end benchmark of the default CPU pipeline: 640x480, played like a live camera.

Builds a 640x480 30 fps clip from the pose2sim Demo_SinglePerson videos (real footage of one person,
shipped in the `pose2sim==0.10.49` wheel; the 1080x1920 portrait frames are letterboxed) or, with
`--people 3`, from Demo_MultiPerson cam02 (the man exercising, the woman in front, a bystander at
the back; 100 frames, looped), runs
`run_stream.py` on it as a user would (separate process, live mode, native pacing, default config
otherwise), and subscribes to its ZeroMQ output from this process.

Reported, after `--warmup-s` of start-up:
  * published frames/s, and the ratio to the source's own frame rate (the same-run baseline: a
    pipeline that keeps up publishes 1.00x of what the camera delivers);
  * capture -> publish latency (`publish_utc_ns - capture_utc_ns`, both stamped by the pipeline on
    one wall clock) and capture -> receive (adds ZeroMQ and the subscriber's wake-up), p50 / p99;
  * frames the pipeline dropped to stay live (`seq` gaps), frames with a fitted person;
  * the per-stage summary table the run prints at exit;
  * memory: the peak, over the run, of the summed resident set (RSS; shared pages counted once per
    process, an upper bound) and of the summed proportional set (PSS) of run_stream.py and all its
    stage processes, sampled every 0.5 s from /proc.

    .venv/bin/python bench/bench_e2e.py [--loops 2] [--warmup-s 3] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sinks.client import PoseSubscriber  # noqa: E402
from sinks.schema import FrameMsg, HeartbeatMsg  # noqa: E402


def pose2sim_videos(people: int = 1) -> list[Path]:
    import Pose2Sim

    if people > 1:
        videos = [Path(Pose2Sim.__file__).parent / "Demo_MultiPerson" / "videos" / "cam02.mp4"]
        videos = [v for v in videos if v.exists()]
    else:
        videos = sorted((Path(Pose2Sim.__file__).parent / "Demo_SinglePerson" / "videos").glob("cam0*.mp4"))
    if not videos:
        sys.exit("bench_e2e: pose2sim demo videos not found; "
                 "pip install --no-deps pose2sim==0.10.49")
    return videos


def write_640x480_clip(out: Path, loops: int, fps: int = 30, people: int = 1) -> int:
    """Letterbox every source frame into 640x480 and write H.264 at `fps`; returns frames written."""
    import av
    import cv2

    frames = []
    for video in pose2sim_videos(people):
        with av.open(str(video)) as c:
            for f in c.decode(video=0):
                img = f.to_ndarray(format="bgr24")
                sc = min(640 / img.shape[1], 480 / img.shape[0])
                small = cv2.resize(img, (round(img.shape[1] * sc), round(img.shape[0] * sc)),
                                   interpolation=cv2.INTER_AREA)
                canvas = np.full((480, 640, 3), 255, np.uint8)
                y0, x0 = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
                canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
                frames.append(canvas)
    frames = frames * loops
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 640, 480, "yuv420p"
        s.options = {"preset": "veryfast", "g": str(fps)}
        for img in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return len(frames)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def collect(endpoint: str, out: list, stop: threading.Event) -> PoseSubscriber:
    sub = PoseSubscriber(endpoint, timeout_s=0.2)
    while not stop.is_set():
        r = sub.recv()
        if r is None:
            continue
        if isinstance(r.msg, FrameMsg):
            m = r.msg
            fitted = sum(p.q is not None for p in m.persons)
            out.append((time.monotonic(), m.seq, m.capture_utc_ns, m.publish_utc_ns, r.recv_utc_ns,
                        fitted))
        elif isinstance(r.msg, HeartbeatMsg) and r.msg.ended:
            break
    sub.close()
    return sub


def start_collector() -> tuple[str, list, threading.Event, threading.Thread]:
    """A subscriber thread on a fresh loopback endpoint, started before the pipeline so the first
    frames are not lost: (endpoint, rows it fills, stop event, thread)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    rows: list = []
    stop = threading.Event()
    t = threading.Thread(target=collect, args=(endpoint, rows, stop), daemon=True)
    t.start()
    time.sleep(0.3)
    return endpoint, rows, stop, t


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def process_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MiB, from /proc/PID/smaps_rollup; OSError once it is gone."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss += int(line.split()[1])
        elif line.startswith("Pss:"):
            pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """(summed RSS, summed PSS) of the process tree in MiB."""
    rss = pss = 0.0
    for p in process_tree(pid):
        try:
            r, s = process_memory_mb(p)
        except OSError:
            continue
        rss, pss = rss + r, pss + s
    return rss, pss


def pct(a, q):
    return float(np.percentile(a, q)) if len(a) else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loops", type=int, default=2, help="play the 400-frame clip this many times")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--people", type=int, choices=(1, 3), default=1,
                    help="1: Demo_SinglePerson (4 cameras); 3: Demo_MultiPerson cam02 (three people)")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / f"people{args.people}_640x480.mp4"
        n = write_640x480_clip(clip, args.loops * (4 if args.people > 1 else 1), args.fps, args.people)
        endpoint, rows, stop, t = start_collector()
        cmd = [sys.executable, str(REPO / "run_stream.py"), "--source", str(clip),
               "--set", "sources.0.mode=live", "--set", "sources.0.pace=native",
               "--set", "sources.0.loop=false", "--set", "sources.0.max_frames=0",
               "--set", f"publisher.endpoint={endpoint}", "--set", "runtime.status_line=false"]
        for o in args.overrides:
            cmd += ["--set", o]
        t0 = time.monotonic()
        peak = (0.0, 0.0)
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=err, text=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            while proc.poll() is None and time.monotonic() - t0 < 900:
                rss, pss = tree_memory_mb(proc.pid)
                peak = (max(peak[0], rss), max(peak[1], pss))
                time.sleep(0.5)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            err.seek(0)
            res = subprocess.CompletedProcess(cmd, proc.returncode, "", err.read())
        wall = time.monotonic() - t0
        stop.set()
        t.join(5)

    print(f"clip: {n} frames 640x480 @ {args.fps} fps ({n / args.fps:.1f} s), run exit "
          f"{res.returncode}, wall {wall:.1f} s, load avg {os.getloadavg()[0]:.2f}")
    if res.returncode != 0 or not rows:
        print(res.stderr[-4000:])
        return 1
    a = np.array(rows, dtype=np.float64)
    steady = a[a[:, 0] >= a[0, 0] + args.warmup_s]
    span = steady[-1, 0] - steady[0, 0]
    fps = (len(steady) - 1) / span if span > 0 else float("nan")
    seq = steady[:, 1].astype(int)
    skipped = int(np.sum(np.diff(seq) - 1))
    pub_ms = (steady[:, 3] - steady[:, 2]) / 1e6
    recv_ms = (steady[:, 4] - steady[:, 2]) / 1e6
    print(f"published frames: {len(a)} total, {len(steady)} after {args.warmup_s:.0f} s warm-up; "
          f"with a fitted person: {int(np.sum(steady[:, 5] > 0))}; "
          f"fitted persons per frame: mean {steady[:, 5].mean():.2f}, max {int(steady[:, 5].max())}")
    print(f"published pose frames/s (steady): {fps:.1f}  = {fps / args.fps:.2f}x source rate; "
          f"seq gaps: {skipped} of {seq[-1] - seq[0] + 1} frames (dropped to stay live, or nobody in "
          "view: those go out as heartbeats; the summary's drops column tells them apart)")
    print(f"capture -> publish ms: p50 {pct(pub_ms, 50):.1f}  p99 {pct(pub_ms, 99):.1f}  "
          f"max {pub_ms.max():.1f}")
    print(f"capture -> receive ms: p50 {pct(recv_ms, 50):.1f}  p99 {pct(recv_ms, 99):.1f}")
    print(f"memory of the whole run (run_stream.py + stage processes), peak: RSS sum {peak[0]:.0f} MiB, "
          f"PSS sum {peak[1]:.0f} MiB")
    worst = np.argsort(pub_ms)[-max(3, len(pub_ms) // 50):]
    print("slowest frames (seq: ms): " + ", ".join(f"{seq[i]}: {pub_ms[i]:.0f}" for i in sorted(worst)))
    print("run summary (stderr tail):")
    print("\n".join(res.stderr.strip().splitlines()[-14:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
