"""Test-only sources and stages for the graph runtime tests (imported by spawned children).

`TestSource` stamps each frame's seq into its pixels so a reader can prove it got the right,
untorn frame. URIs: `test:n=50,w=64,h=48,fps=0,fail_at=-1` (fps=0: as fast as possible).
"""
from __future__ import annotations

import os
import time

import numpy as np

from stream.errors import SourceError, UserError
from stream.packet import Packet
from stream.sources.base import DecodedFrame, FrameSource, SourceStats
from stream.stage import Stage


def stamp(seq: int, h: int, w: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[...] = seq % 251
    img[0, 0, :] = [seq & 0xFF, (seq >> 8) & 0xFF, (seq >> 16) & 0xFF]
    return img


def read_stamp(img: np.ndarray) -> int:
    b = img[0, 0].astype(np.int64)
    return int(b[0] | (b[1] << 8) | (b[2] << 16))


class TestSource(FrameSource):
    __test__ = False

    def __init__(self, stream_id: str, n: int, w: int, h: int, fps: float, fail_at: int,
                 live: bool, crash_at: int = -1, marker: str = ""):
        self.stream_id, self.width, self.height = stream_id, w, h
        self.crash_at, self.marker = crash_at, marker
        self.fps = fps or None
        self.is_live = live
        self.n, self.fail_at, self.i = n, fail_at, 0
        self._stats = SourceStats()
        self._t0 = time.monotonic()

    def read(self) -> DecodedFrame | None:
        if self.i == self.fail_at:
            raise SourceError(f"test source {self.stream_id} failed at frame {self.i}")
        if self.i == self.crash_at and not os.path.exists(self.marker):
            open(self.marker, "w").close()  # crash once: the restarted source runs through
            raise ZeroDivisionError("source bug")
        if self.n >= 0 and self.i >= self.n:
            return None
        if self.fps:
            due = self._t0 + self.i / self.fps
            time.sleep(max(0.0, due - time.monotonic()))
        img = stamp(self.i, self.height, self.width)
        self.i += 1
        self._stats.frames += 1
        return DecodedFrame(img, time.monotonic_ns(), time.time_ns(), None if self.is_live
                            else (self.i - 1) / (self.fps or 30.0))

    @property
    def stats(self) -> SourceStats:
        return self._stats


class TestSourceInto(TestSource):
    """Same frames, written straight into the ring slot (the optional read_into path)."""
    __test__ = False

    def read_into(self, out: np.ndarray) -> DecodedFrame | None:
        frame = self.read()
        if frame is None:
            return None
        out[...] = frame.image
        frame.image = out
        return frame


def open_test_source(cfg, stream_id: str) -> TestSource:
    uri = cfg.uri
    if not uri.startswith("test:"):
        raise SourceError(f"unsupported test uri {uri!r}")
    kv = dict(p.split("=") for p in uri[5:].split(",") if p)
    if kv.get("missing"):
        raise SourceError(f"file not found: {kv['missing']}; check the path")
    cls = TestSourceInto if kv.get("into") == "1" else TestSource
    return cls(stream_id, int(kv.get("n", 50)), int(kv.get("w", 64)), int(kv.get("h", 48)),
                      float(kv.get("fps", 0)), int(kv.get("fail_at", -1)),
                      live=kv.get("live", "0") == "1", crash_at=int(kv.get("crash_at", -1)),
                      marker=kv.get("marker", ""))


OPENER = "graph_helpers:open_test_source"


class CheckStage(Stage):
    """Reads pixels and checks the stamp matches the packet's seq; optional per-frame delay."""
    needs_image = True

    def __init__(self, name: str = "check", delay_s: float = 0.0, strict: bool = True,
                 first_delay_s: float = 0.0):
        self.name, self.delay_s, self.strict = name, delay_s, strict
        self.first_delay_s = first_delay_s   # a warm-up: only the first frame takes this long

    def process(self, packet: Packet) -> Packet | None:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.first_delay_s:
            time.sleep(self.first_delay_s)
            self.first_delay_s = 0.0
        got = read_stamp(packet.image)
        ok = got == packet.frame.seq % (1 << 24)
        if self.strict and not ok:
            raise RuntimeError(f"pixel stamp {got} != seq {packet.frame.seq}")
        packet.timings_ns["px_ok"] = int(ok)  # non-strict: let the test see what it read
        return packet


class CrashStage(Stage):
    """Raises at seq `crash_at` (RuntimeError), or raises a UserError with user=True.
    With `marker`, crashes only while that file does not exist (first incarnation only)."""

    def __init__(self, name: str = "crash", crash_at: int = 5, user: bool = False,
                 marker: str = "", in_setup: bool = False, hard: bool = False):
        self.name, self.crash_at, self.user, self.marker = name, crash_at, user, marker
        self.in_setup, self.hard = in_setup, hard

    def _armed(self) -> bool:
        if not self.marker:
            return True
        if os.path.exists(self.marker):
            return False
        open(self.marker, "w").close()
        return True

    def setup(self) -> None:
        if self.in_setup and self._armed():
            raise (UserError if self.user else RuntimeError)("setup failed on purpose")

    def process(self, packet: Packet) -> Packet | None:
        if packet.frame.seq == self.crash_at and not self.in_setup and self._armed():
            if self.hard:
                os._exit(9)
            if self.user:
                raise UserError("bad thing the user can fix; fix it")
            raise RuntimeError(f"boom at seq {packet.frame.seq}")
        return packet


class CollectSink(Stage):
    """Appends `stream seq last timings` per packet and `END stream` per flush to a file."""

    def __init__(self, path: str, name: str = "collect", delay_s: float = 0.0,
                 needs_image: bool = False):
        self.name, self.path, self.delay_s = name, path, delay_s
        self.needs_image = needs_image
        self._f = None

    def setup(self) -> None:
        self._f = open(self.path, "a", buffering=1)

    def process(self, packet: Packet) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        fi = packet.frame
        lat = time.monotonic_ns() - fi.capture_ns
        ok = "" if not self.needs_image else f" px={int(read_stamp(packet.image) == fi.seq)}"
        px = packet.timings_ns.get("px_ok", -1)
        self._f.write(f"{fi.stream_id} {fi.seq} {int(fi.last)} {fi.capture_ns} {lat} {px} "
                      f"{','.join(sorted(packet.timings_ns))}{ok}\n")
        return None

    def flush(self, stream_id: str) -> list[Packet]:
        self._f.write(f"END {stream_id}\n")
        return []

    def close(self) -> None:
        if self._f is not None:
            self._f.write("CLOSED\n")
            self._f.close()
            self._f = None


def read_collected(path) -> tuple[list[tuple], list[str], bool]:
    """(packets as (stream, seq, last, capture_ns, latency_ns, px_ok, stage names), ended
    streams, closed cleanly)."""
    pk, ends, closed = [], [], False
    with open(path) as f:
        for line in f:
            p = line.split()
            if p[0] == "END":
                ends.append(p[1])
            elif p[0] == "CLOSED":
                closed = True
            else:
                pk.append((p[0], int(p[1]), int(p[2]), int(p[3]), int(p[4]), int(p[5]),
                           p[6].split(",") if len(p) > 6 else []))
    return pk, ends, closed


class CfgStage(Stage):
    """A registry-style stage: built as `cls(config)`, passes packets on (pixels checked)."""
    needs_image = True

    def __init__(self, config):
        self.config = config

    def process(self, packet: Packet) -> Packet | None:
        if read_stamp(packet.image) != packet.frame.seq % (1 << 24):
            raise RuntimeError("wrong pixels")
        return packet


class CfgSink(Stage):
    """A registry-style sink writing to recorder.directory/<name>.txt."""

    def __init__(self, config):
        self.config = config
        self._inner = None

    def setup(self) -> None:
        os.makedirs(self.config.recorder.directory, exist_ok=True)
        self._inner = CollectSink(os.path.join(self.config.recorder.directory,
                                               f"{self.name}.txt"), self.name)
        self._inner.setup()

    def process(self, packet: Packet) -> None:
        return self._inner.process(packet)

    def flush(self, stream_id: str) -> list[Packet]:
        return self._inner.flush(stream_id)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


class DropOddStage(Stage):
    """Consumes odd seqs and every seq >= drop_from mid-chain (returns None)."""

    def __init__(self, name: str = "drop_odd", drop_from: int = 1 << 30):
        self.name, self.drop_from = name, drop_from

    def process(self, packet: Packet) -> Packet | None:
        seq = packet.frame.seq
        return None if seq % 2 or seq >= self.drop_from else packet


class RecoveringStage(Stage):
    """Passes every packet on, but 'recovers' from one error on each odd seq (a remote inference
    that did not come back): the runtime must count them on the stage's status line."""

    def __init__(self, name: str = "recover"):
        self.name, self._pending = name, 0

    def process(self, packet: Packet) -> Packet:
        self._pending += packet.frame.seq % 2
        return packet

    def take_error_count(self) -> int:
        n, self._pending = self._pending, 0
        return n


class CommSink(Stage):
    """Writes its own process name (/proc/self/comm) to `path` on setup; consumes packets."""

    def __init__(self, path: str, name: str):
        self.name, self.path = name, path

    def setup(self) -> None:
        with open(self.path, "w") as f:
            f.write(open("/proc/self/comm").read().strip())

    def process(self, packet: Packet) -> None:
        return None
