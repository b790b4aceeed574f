"""Per-stage metrics shared between stage processes and the graph parent.

Each stage process owns one row of a lock-free shared float64 table (only it writes its row) and
publishes windowed figures every `interval_s`: fps, processing time and end-to-end latency
(capture -> end of this stage) p50/p99 in ms, frames in/out, drops, errors and (sources) the
undecodable frames skipped. The parent reads the table to print a one-line status and, at exit,
a summary from the totals each stage writes when it closes.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

FIELDS = ("state", "frames_in", "frames_out", "drops", "stale", "errors", "restarts", "fps",
          "proc_p50_ms", "proc_p99_ms", "lat_p50_ms", "lat_p99_ms",
          "all_proc_p50_ms", "all_proc_p99_ms", "all_lat_p50_ms", "all_lat_p99_ms",
          "all_fps", "corrupt")
F = {name: i for i, name in enumerate(FIELDS)}
NF = len(FIELDS)
STARTING, READY, DONE, FAILED = 0.0, 1.0, 2.0, 3.0
_MAX_SAMPLES = 200_000  # per stage, for the exit summary (~3 h at 20 fps)


def _pcts(a: list[int] | np.ndarray) -> tuple[float, float]:
    if len(a) == 0:
        return float("nan"), float("nan")
    p = np.percentile(np.asarray(a, np.float64), [50, 99]) / 1e6
    return float(p[0]), float(p[1])


class StageMeter:
    """Child side: record one row of the table. `table` is a flat RawArray('d')."""

    def __init__(self, table, row: int, interval_s: float):
        self._row = np.frombuffer(table, np.float64)[row * NF:(row + 1) * NF]
        self.interval_s = interval_s
        self._win_proc: list[int] = []
        self._win_lat: list[int] = []
        self._all_proc: list[int] = []
        self._all_lat: list[int] = []
        self._t_win = time.monotonic()
        self._t0 = self._t_win
        self._win_out = 0

    def set(self, field: str, value: float) -> None:
        self._row[F[field]] = value

    def add(self, field: str, n: float = 1.0) -> None:
        self._row[F[field]] += n

    def get(self, field: str) -> float:
        return float(self._row[F[field]])

    def frame(self, proc_ns: int, capture_ns: int | None) -> None:
        """One packet processed: its processing time and (if known) capture -> now latency."""
        self._win_proc.append(proc_ns)
        if capture_ns:
            self._win_lat.append(time.monotonic_ns() - capture_ns)
        self._win_out += 1

    def tick(self, force: bool = False) -> None:
        """Publish the window's figures if `interval_s` has passed."""
        now = time.monotonic()
        dt = now - self._t_win
        if not force and dt < self.interval_s:
            return
        r = self._row
        r[F["fps"]] = self._win_out / dt if dt > 0 else 0.0
        r[F["proc_p50_ms"]], r[F["proc_p99_ms"]] = _pcts(self._win_proc)
        r[F["lat_p50_ms"]], r[F["lat_p99_ms"]] = _pcts(self._win_lat)
        for src, dst in ((self._win_proc, self._all_proc), (self._win_lat, self._all_lat)):
            if len(dst) < _MAX_SAMPLES:
                dst.extend(src[: _MAX_SAMPLES - len(dst)])
            src.clear()
        self._win_out = 0
        self._t_win = now

    def finish(self, state: float = DONE) -> None:
        """Write the whole-run totals (called on every exit path of the stage)."""
        self.tick(force=True)
        r = self._row
        r[F["all_proc_p50_ms"]], r[F["all_proc_p99_ms"]] = _pcts(self._all_proc)
        r[F["all_lat_p50_ms"]], r[F["all_lat_p99_ms"]] = _pcts(self._all_lat)
        elapsed = time.monotonic() - self._t0
        r[F["all_fps"]] = r[F["frames_out"]] / elapsed if elapsed > 0 else 0.0
        r[F["state"]] = state


@dataclass(frozen=True)
class StageFigures:
    """Parent-side snapshot of one stage's row."""
    name: str
    values: dict[str, float]

    def __getitem__(self, field: str) -> float:
        return self.values[field]


class MetricsBoard:
    """Parent side: read rows, format the live status line and the exit summary."""

    def __init__(self, table, names: list[str]):
        self._t = np.frombuffer(table, np.float64).reshape(len(names), NF)
        self.names = list(names)

    def row(self, name: str) -> StageFigures:
        r = self._t[self.names.index(name)]
        return StageFigures(name, {f: float(r[i]) for i, f in enumerate(FIELDS)})

    def add(self, name: str, field: str, n: float = 1.0) -> None:
        self._t[self.names.index(name), F[field]] += n

    def all(self) -> list[StageFigures]:
        return [self.row(n) for n in self.names]

    def status_line(self) -> str:
        parts = []
        for s in self.all():
            txt = f"{s.name} {s['fps']:.1f}fps"
            if s["frames_in"] > 0 and not np.isnan(s["proc_p50_ms"]):
                txt += f" {s['proc_p50_ms']:.1f}ms"
            if s["drops"] or s["stale"]:
                txt += f" drop {int(s['drops'] + s['stale'])}"
            if s["errors"]:
                txt += f" err {int(s['errors'])}"
            if s["corrupt"]:
                txt += f" corrupt {int(s['corrupt'])}"
            parts.append(txt)
        last = self.all()[-1]
        if not np.isnan(last["lat_p50_ms"]):
            parts.append(f"e2e p50 {last['lat_p50_ms']:.1f}ms p99 {last['lat_p99_ms']:.1f}ms")
        return " | ".join(parts)

    def summary(self) -> str:
        """Multi-line table of whole-run figures per stage."""
        head = (f"{'stage':<18}{'in':>8}{'out':>8}{'drops':>7}{'stale':>7}{'err':>5}"
                f"{'restart':>8}{'fps':>8}{'proc p50/p99 ms':>18}{'latency p50/p99 ms':>21}"
                f"{'corrupt':>9}")
        lines = ["run summary:", head]
        for s in self.all():
            lines.append(
                f"{s.name:<18}{int(s['frames_in']):>8}{int(s['frames_out']):>8}"
                f"{int(s['drops']):>7}{int(s['stale']):>7}{int(s['errors']):>5}"
                f"{int(s['restarts']):>8}{s['all_fps']:>8.1f}"
                f"{s['all_proc_p50_ms']:>9.2f}/{s['all_proc_p99_ms']:<8.2f}"
                f"{s['all_lat_p50_ms']:>11.2f}/{s['all_lat_p99_ms']:<9.2f}"
                f"{int(s['corrupt']):>9}")
        return "\n".join(lines)


class StatusPrinter:
    """One live line on a terminal (carriage return); into a log (not a terminal), a plain line
    at most every `log_interval_s` so logs stay readable."""

    def __init__(self, stream=None, enabled: bool = True, log_interval_s: float = 0.0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_interval_s = log_interval_s
        self._next_log = 0.0
        self._width = 0

    def show(self, line: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            now = time.monotonic()
            if now < self._next_log:
                return
            self._next_log = now + self.log_interval_s
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
