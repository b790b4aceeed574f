"""Per-stage metrics: windowed and whole-run percentiles, status line, summary."""
from __future__ import annotations

import io
import multiprocessing as mp
import time

import numpy as np

from stream.metrics import NF, MetricsBoard, StageMeter, StatusPrinter


def test_meter_percentiles_and_board_views():
    table = mp.get_context("spawn").RawArray("d", 2 * NF)
    meter = StageMeter(table, 1, interval_s=1e9)
    rng = np.random.default_rng(0)
    proc_ms = rng.uniform(1.0, 3.0, 500)
    now = time.monotonic_ns()
    for p in proc_ms:
        meter.add("frames_in")
        meter.add("frames_out")
        meter.frame(int(p * 1e6), now - 20_000_000)  # captured 20 ms ago
    meter.add("drops", 7)
    meter.finish()
    board = MetricsBoard(table, ["source:cam0", "pose"])
    row = board.row("pose")
    assert row["frames_in"] == 500 and row["drops"] == 7 and row["state"] == 2.0
    np.testing.assert_allclose(row["all_proc_p50_ms"], np.percentile(proc_ms, 50), rtol=1e-6)
    np.testing.assert_allclose(row["all_proc_p99_ms"], np.percentile(proc_ms, 99), rtol=1e-6)
    assert 20.0 <= row["all_lat_p50_ms"] < 2000.0
    line = board.status_line()
    assert "pose" in line and "drop 7" in line and "e2e p50" in line and "\n" not in line
    summary = board.summary()
    assert summary.splitlines()[0] == "run summary:" and "pose" in summary.splitlines()[-1]


def test_status_printer_one_line_on_tty_plain_lines_otherwise():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    p = StatusPrinter(tty)
    p.show("a long status line")
    p.show("short")
    p.end()
    assert tty.getvalue() == "\ra long status line\rshort             \n"
    plain = io.StringIO()
    q = StatusPrinter(plain)
    q.show("x")
    q.show("y")
    assert plain.getvalue() == "x\ny\n"
    off = io.StringIO()
    StatusPrinter(off, enabled=False).show("z")
    assert off.getvalue() == ""
