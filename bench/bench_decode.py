"""Decode throughput of a 1080p H.264 file: bare PyAV vs our FrameSource vs the process graph.

The clip (1920x1080, H.264 yuv420p, 30 fps, moving test pattern) is written with PyAV into a temp
folder first. Three paths decode the same file to (H, W, 3) uint8 BGR, with the same decoder
threading (`thread_type = "AUTO"`):
- bare: `av.open` + `decode(video=0)` + `to_ndarray(format="bgr24")`, nothing else;
- source: `open_source(SourceConfig(uri=clip, pace="fast"))` + `read()` in a loop;
- source into shm: the same with `read_into` a 16-slot shared-memory ring (the source stage's work);
- graph: the real runtime, lossless mode: the source process decodes into its shared-memory ring
  and a downstream process receives every packet; fps = frames / (last - first arrival) there.
Paths alternate per round so machine load hits all alike; figures are medians over rounds.
    .venv/bin/python bench/bench_decode.py [--frames 180] [--rounds 3] [--no-graph]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream.packet import Packet  # noqa: E402
from stream.sources.config import SourceConfig  # noqa: E402
from stream.sources.factory import open_source  # noqa: E402
from stream.sources.synthetic import render  # noqa: E402
from stream.stage import Stage  # noqa: E402

W, H, FPS = 1920, 1080, 30


def write_clip(path: str, n: int) -> None:
    """1080p H.264 with a 1 s GOP, like a camera recording; the pattern moves so P-frames carry data."""
    container = av.open(path, "w")
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "23", "g": str(FPS)}
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 24, (H, W, 3), dtype=np.uint8)  # texture: a realistic bitrate
    for k in range(n):
        img = render(k, W, H, FPS)
        img += np.roll(noise, 8 * k, axis=1)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def run_bare(path: str) -> np.ndarray:
    """Per-frame decode+convert times in ns."""
    times = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        t = time.perf_counter_ns()
        for frame in container.decode(stream):
            frame.to_ndarray(format="bgr24")
            now = time.perf_counter_ns()
            times.append(now - t)
            t = now
    return np.asarray(times, np.int64)


def run_source(path: str) -> np.ndarray:
    times = []
    with open_source(SourceConfig(uri=path, pace="fast"), "cam0") as src:
        t = time.perf_counter_ns()
        while src.read() is not None:
            now = time.perf_counter_ns()
            times.append(now - t)
            t = now
    return np.asarray(times, np.int64)


def run_source_shm(path: str, slots: int = 16) -> np.ndarray:
    """FrameSource.read_into a 16-slot shared-memory ring, in this process: what the source stage
    does per frame, without the other graph processes."""
    from multiprocessing import shared_memory

    times = []
    with open_source(SourceConfig(uri=path, pace="fast"), "cam0") as src:
        shm = shared_memory.SharedMemory(create=True, size=slots * src.height * src.width * 3)
        try:
            ring = np.ndarray((slots, src.height, src.width, 3), np.uint8, buffer=shm.buf)
            ring.fill(0)  # pre-fault, as ShmRing.create does
            t, k = time.perf_counter_ns(), 0
            while src.read_into(ring[k % slots]) is not None:
                now = time.perf_counter_ns()
                times.append(now - t)
                t, k = now, k + 1
            del ring
        finally:
            shm.close()
            shm.unlink()
    return np.asarray(times, np.int64)


class ArrivalProbe(Stage):
    """Records the arrival time of every packet (no pixels needed: measures the source side)."""

    def __init__(self, path: str):
        self.name, self.path, self.t = "probe", path, []

    def process(self, packet: Packet) -> None:
        self.t.append(time.monotonic_ns())
        return None

    def close(self) -> None:
        np.save(self.path, np.asarray(self.t, np.int64))


def run_graph(path: str, tmp: str, max_frames: int = 0) -> np.ndarray:
    from stream.config import RuntimeConfig
    from stream.graph import Graph
    from stream.source_stage import SourceStage

    out = os.path.join(tmp, "arrivals.npy")
    g = Graph(RuntimeConfig(status_line=False, summary_at_exit=False, queue_size=8), lossless=True)
    cfg = SourceConfig(uri=path, pace="fast", mode="lossless", max_frames=max_frames)
    g.add(SourceStage(cfg, "cam0", 16), to=["probe"])
    g.add(ArrivalProbe(out), to=[])
    res = g.run()
    if res.exit_code != 0:
        raise SystemExit(f"graph run failed: {res.errors}")
    return np.diff(np.load(out))  # inter-arrival times, ns


def cpu_s() -> float:
    """CPU seconds of this process (all threads) plus its reaped children (graph stages)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args) -> tuple[np.ndarray, float]:
    """(per-frame times, CPU ms per frame) of one run."""
    c0 = cpu_s()
    times = fn(*args)
    return times, (cpu_s() - c0) * 1e3 / (len(times) + 1)


def summarize(times: list[np.ndarray], skip: int) -> tuple[float, float, float, int]:
    """(median fps over rounds, p50 ms, p99 ms of per-frame time, frames) skipping warm-up."""
    fps = [1e9 / t[skip:].mean() for t in times]
    allt = np.concatenate([t[skip:] for t in times]) / 1e6
    return float(np.median(fps)), float(np.percentile(allt, 50)), float(np.percentile(allt, 99)), len(allt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=180)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=10, help="frames excluded per round (decoder ramp-up)")
    ap.add_argument("--no-graph", action="store_true", help="skip the process-graph path")
    args = ap.parse_args()
    results: dict[str, list[np.ndarray]] = {"bare PyAV": [], "FrameSource (pace=fast)": [],
                                            "FrameSource.read_into shm ring": []}
    if not args.no_graph:
        results["graph (source process -> stage)"] = []
    cpu: dict[str, list[float]] = {k: [] for k in results}
    with tempfile.TemporaryDirectory() as tmp:
        clip = os.path.join(tmp, "clip1080.mp4")
        t0 = time.monotonic()
        write_clip(clip, args.frames)
        print(f"# wrote {args.frames} frames 1920x1080 H.264 ({os.path.getsize(clip) / 1e6:.1f} MB) "
              f"in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        run_bare(clip)  # warm the page cache and the libraries once
        for _ in range(args.rounds):
            runs = [("bare PyAV", run_bare, (clip,)), ("FrameSource (pace=fast)", run_source, (clip,)),
                    ("FrameSource.read_into shm ring", run_source_shm, (clip,))]
            if not args.no_graph:
                runs.append(("graph (source process -> stage)", run_graph, (clip, tmp)))
            for name, fn, fargs in runs:
                times, cpu_ms = timed(fn, *fargs)
                if fn is run_graph:  # take out process start-up: CPU of a 2-frame run of the same graph
                    c0 = cpu_s()
                    run_graph(clip, tmp, 2)
                    startup_ms = (cpu_s() - c0) * 1e3
                    cpu_ms = (cpu_ms * (len(times) + 1) - startup_ms) / (len(times) - 1)
                results[name].append(times)
                cpu[name].append(cpu_ms)
    print(f"# bench_decode {datetime.date.today()} {platform.node()} cpus={os.cpu_count()} "
          f"av={av.__version__} frames={args.frames}x{args.rounds} 1920x1080 H.264 -> BGR")
    w = 36
    print(f"{'path':<{w}}{'n':>6}{'fps':>9}{'x bare':>8}{'p50 ms':>9}{'x bare p50':>11}{'p99 ms':>9}"
          f"{'CPU ms/frame':>14}")
    base, base_p50 = summarize(results["bare PyAV"], args.warmup)[:2]
    for name, times in results.items():
        fps, p50, p99, n = summarize(times, args.warmup)
        print(f"{name:<{w}}{n:>6}{fps:>9.1f}{fps / base:>8.2f}{p50:>9.2f}{base_p50 / p50:>11.2f}{p99:>9.2f}"
              f"{np.median(cpu[name]):>14.1f}")
    print(f"# load average {os.getloadavg()[0]:.1f} (other work shares these cores: fps ratios are noisy, "
          f"CPU ms/frame is not; graph CPU excludes start-up, all its processes counted)")


if __name__ == "__main__":
    main()
