"""Transport overhead of the process graph for 1920x1080 BGR frames, vs a plain multiprocessing.Queue.

Graph path (the real runtime, `stream.graph.Graph`): a source process whose FrameSource hands out
pre-generated 1080p frames at a fixed rate, stamping `capture_ns` as a decoder would; the source
stage copies each frame into its shared-memory ring and sends the packet through a FrameQueue; a
downstream stage (needs_image=True) records `monotonic_ns() - capture_ns` when `process()` starts,
i.e. with the pixel view attached. Two source flavours: `read()` + one copy into the slot, and
`read_into(slot)` (a decoder writing straight into shared memory, no copy). Baseline: the same frames, rate and clock points through one
`multiprocessing.Queue` between two spawned processes (pixels pickled through a pipe). Floor:
a 512-byte stamp through a bare pipe to a process sleeping in poll(), same pacing: what waking
another process costs on this machine before any frame moves.

Both run in the same invocation, alternating rounds, so machine load hits both alike.
    .venv/bin/python bench/bench_transport.py [--frames 240] [--fps 60] [--rounds 2]
"""
from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream.config import RuntimeConfig  # noqa: E402
from stream.graph import Graph  # noqa: E402
from stream.packet import Packet  # noqa: E402
from stream.source_stage import SourceStage  # noqa: E402
from stream.sources.base import DecodedFrame, FrameSource, SourceStats  # noqa: E402
from stream.sources.config import SourceConfig  # noqa: E402
from stream.stage import Stage  # noqa: E402

H, W = 1080, 1920
POOL = 6  # distinct frames, so no frame is served from a warm cache line by accident


def make_pool(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(POOL)]


class PacedFrames(FrameSource):
    """Hands out pool frames at `fps`; capture time is taken when a frame is handed out."""

    def __init__(self, stream_id: str, n: int, fps: float):
        self.stream_id, self.width, self.height, self.fps, self.is_live = stream_id, W, H, fps, True
        self.n, self.i, self.pool = n, 0, make_pool()
        self._t0 = time.monotonic() + 0.2
        self._stats = SourceStats()

    def read(self) -> DecodedFrame | None:
        if self.i >= self.n:
            return None
        time.sleep(max(0.0, self._t0 + self.i / self.fps - time.monotonic()))
        img = self.pool[self.i % POOL]
        self.i += 1
        return DecodedFrame(img, time.monotonic_ns(), time.time_ns(), None)

    @property
    def stats(self) -> SourceStats:
        return self._stats


class PacedFramesInto(PacedFrames):
    """A decoder that writes its output straight into the ring slot (`read_into`): the pool
    copy stands in for the decoder's own output write, which every decoder does anyway; the
    capture stamp is taken when the frame is complete, as for `read()`."""

    def read_into(self, out: np.ndarray) -> DecodedFrame | None:
        if self.i >= self.n:
            return None
        time.sleep(max(0.0, self._t0 + self.i / self.fps - time.monotonic()))
        np.copyto(out, self.pool[self.i % POOL])
        self.i += 1
        return DecodedFrame(out, time.monotonic_ns(), time.time_ns(), None)


def open_paced(cfg: SourceConfig, stream_id: str) -> PacedFrames:
    kind, n, fps = cfg.uri.replace("@", ":").split(":")
    return (PacedFramesInto if kind == "into" else PacedFrames)(stream_id, int(n), float(fps))


class LatencyProbe(Stage):
    """Records capture -> pixels-attached latency per frame; saves them at close."""
    needs_image = True

    def __init__(self, path: str):
        self.name, self.path, self.lat = "probe", path, []

    def process(self, packet: Packet) -> None:
        self.lat.append(time.monotonic_ns() - packet.frame.capture_ns)
        assert packet.image is not None and packet.image.shape == (H, W, 3)
        return None

    def close(self) -> None:
        np.save(self.path, np.asarray(self.lat, np.int64))


def run_graph(n: int, fps: float, tmp: str, into: bool = False) -> np.ndarray:
    path = os.path.join(tmp, "graph.npy")
    g = Graph(RuntimeConfig(status_line=False, summary_at_exit=False, queue_size=2), lossless=False)
    kind = "into" if into else "paced"
    g.add(SourceStage(SourceConfig(uri=f"{kind}:{n}@{fps}"), "cam0", 16,
                      opener="bench_transport:open_paced"), to=["probe"])
    g.add(LatencyProbe(path), to=[])
    res = g.run()
    if res.exit_code != 0:
        raise SystemExit(f"graph run failed: {res.errors}")
    return np.load(path)


def _mpq_producer(q, n: int, fps: float) -> None:
    pool = make_pool()
    t0 = time.monotonic() + 0.2
    for i in range(n):
        time.sleep(max(0.0, t0 + i / fps - time.monotonic()))
        q.put((time.monotonic_ns(), pool[i % POOL]))
    q.put(None)


def _mpq_consumer(q, path: str) -> None:
    lat = []
    while (item := q.get()) is not None:
        lat.append(time.monotonic_ns() - item[0])
        assert item[1].shape == (H, W, 3)
    np.save(path, np.asarray(lat, np.int64))


def _run_pair(producer, consumer, n: int, fps: float, path: str, ends: tuple) -> np.ndarray:
    """Spawn consumer(ends[0], path) and producer(ends[1], n, fps); the consumer's latencies."""
    ctx = mp.get_context("spawn")
    cons = ctx.Process(target=consumer, args=(ends[0], path))
    prod = ctx.Process(target=producer, args=(ends[1], n, fps))
    cons.start()
    prod.start()
    prod.join()
    cons.join()
    return np.load(path)


def run_mpqueue(n: int, fps: float, tmp: str) -> np.ndarray:
    q = mp.get_context("spawn").Queue(maxsize=2)
    return _run_pair(_mpq_producer, _mpq_consumer, n, fps, os.path.join(tmp, "mpq.npy"), (q, q))


def _pipe_producer(conn, n: int, fps: float) -> None:
    t0 = time.monotonic() + 0.2
    for i in range(n):
        time.sleep(max(0.0, t0 + i / fps - time.monotonic()))
        conn.send_bytes(time.monotonic_ns().to_bytes(8, "little") + bytes(504))  # ~ a packet
    conn.send_bytes(b"")


def _pipe_consumer(conn, path: str) -> None:
    lat = []
    while True:
        if not conn.poll(0.1):  # the stage's wait: blocked in the kernel until bytes arrive
            continue
        b = conn.recv_bytes()
        if not b:
            break
        lat.append(time.monotonic_ns() - int.from_bytes(b[:8], "little"))
    np.save(path, np.asarray(lat, np.int64))


def run_pipe_floor(n: int, fps: float, tmp: str) -> np.ndarray:
    """The floor of any hand-off to a sleeping process on this machine: stamp, 512 bytes through
    a pipe, the consumer wakes from poll() and reads them. No pixels, no pickling."""
    r, w = mp.get_context("spawn").Pipe(duplex=False)
    return _run_pair(_pipe_producer, _pipe_consumer, n, fps, os.path.join(tmp, "pipe.npy"), (r, w))


def pct(a: np.ndarray) -> tuple[float, float]:
    p50, p99 = np.percentile(a / 1e6, [50, 99])
    return float(p50), float(p99)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=20, help="frames discarded per round")
    args = ap.parse_args()
    graph, into, mpq, pipe = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            graph.append(run_graph(args.frames, args.fps, tmp)[args.warmup:])
            into.append(run_graph(args.frames, args.fps, tmp, into=True)[args.warmup:])
            mpq.append(run_mpqueue(args.frames, args.fps, tmp)[args.warmup:])
            pipe.append(run_pipe_floor(args.frames, args.fps, tmp)[args.warmup:])
    g, d, m, f = (np.concatenate(x) for x in (graph, into, mpq, pipe))
    (g50, g99), (d50, d99), (m50, m99), (f50, f99) = pct(g), pct(d), pct(m), pct(f)
    print(f"# bench_transport {datetime.date.today()} {platform.node()} "
          f"cpus={os.cpu_count()} frames={args.frames}x{args.rounds} fps={args.fps:g} "
          f"1920x1080 BGR (6.2 MB)")
    w = 44
    print(f"{'path':<{w}}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'graph, source copies frame into ring':<{w}}{len(g):>6}{g50:>10.3f}{g99:>10.3f}")
    print(f"{'graph, source decodes into ring (read_into)':<{w}}{len(d):>6}{d50:>10.3f}{d99:>10.3f}")
    print(f"{'baseline: multiprocessing.Queue':<{w}}{len(m):>6}{m50:>10.3f}{m99:>10.3f}")
    print(f"{'floor: 512 B through a pipe, no frame':<{w}}{len(f):>6}{f50:>10.3f}{f99:>10.3f}")
    print(f"{'ratio baseline / graph (copy)':<{w}}{'':>6}{m50 / g50:>10.1f}{m99 / g99:>10.1f}")
    print(f"{'ratio baseline / graph (read_into)':<{w}}{'':>6}{m50 / d50:>10.1f}{m99 / d99:>10.1f}")


if __name__ == "__main__":
    main()
