"""Bad sources through run_stream.py as a user meets them: one `error:` line per source, naming
the problem and the fix, exit 2, no traceback. What the parent can see (unknown scheme, missing
file, no webcam node) stops the run before any stage starts, every such source reported; what
only opening shows (garbled or cut file, refused connection) fails in each source's own process,
so one run reports all of those too."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from sources_clips import write_clip


def test_every_bad_source_kind_is_a_one_line_error(tmp_path: Path):
    garbled = tmp_path / "garbled.mp4"
    garbled.write_bytes(os.urandom(20_000))
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    write_clip(whole, n=20)
    cut.write_bytes(whole.read_bytes()[:2000])  # MP4 cut before its index
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave the block
    checked_first = {"cam0": ("ftp://example.com/a.mp4", "unsupported source"),
                     "cam1": (str(tmp_path / "missing.mp4"), "video file not found"),
                     "cam2": ("webcam:7", "no webcam at /dev/video7")}
    found_on_open = {"cam0": (str(garbled), "garbled"),
                     "cam1": (str(cut), "cut.mp4"),
                     "cam2": (f"rtsp://127.0.0.1:{port}/cam", "connection refused")}
    if os.path.exists("/dev/video7"):
        checked_first.pop("cam2")
    for sources in (checked_first, found_on_open):
        args = [a for uri, _ in sources.values() for a in ("--source", uri)]
        res = subprocess.run([sys.executable, str(REPO / "run_stream.py"), *args,
                              "--set", "publisher.enabled=false", "--set", "recorder.enabled=false",
                              "--set", "runtime.status_line=false",
                              "--set", "runtime.summary_at_exit=false"],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
        for sid, (_, fragment) in sources.items():
            mine = [e for e in errors if e.startswith(f"error: source:{sid}: ")]
            assert len(mine) == 1 and fragment in mine[0], (sid, res.stderr)
