"""Network sources against real sockets: refused, silent and unroutable hosts fail in one line
within their timeouts; a live HTTP stream served by a subprocess that is killed and restarted is
reconnected, counted, and frames flow again."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sources_clips import frame_indices, write_clip
from stream.errors import SourceError
from stream.sources.config import SourceConfig
from stream.sources.factory import open_source

SERVER = Path(__file__).with_name("sources_stream_server.py")
FAST = dict(open_timeout_s=1.0, read_timeout_s=1.0, reconnect_initial_s=0.2, reconnect_max_s=0.4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_error(cfg: SourceConfig) -> tuple[str, float]:
    t0 = time.monotonic()
    with pytest.raises(SourceError) as exc:
        open_source(cfg, "cam0")
    msg = str(exc.value)
    assert "\n" not in msg
    return msg, time.monotonic() - t0


@pytest.mark.parametrize("scheme", ["rtsp", "http", "tcp"])
def test_closed_port_is_refused_in_one_line(scheme: str):
    msg, dt = open_error(SourceConfig(uri=f"{scheme}://127.0.0.1:{free_port()}/cam", **FAST))
    assert "refused" in msg and "127.0.0.1" in msg and dt < 2.0


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_silent_host_times_out(transport: str):
    """A listener that accepts but never answers: the open timeout must end the wait."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        uri = f"rtsp://127.0.0.1:{srv.getsockname()[1]}/cam"
        msg, dt = open_error(SourceConfig(uri=uri, rtsp_transport=transport, **FAST))
    assert "open_timeout_s" in msg and dt < 3.0


def test_unroutable_address_fails_within_the_timeout():
    # 10.255.255.1 is private and unused: either no route (instant) or SYNs into the void (timeout)
    msg, dt = open_error(SourceConfig(uri="rtsp://10.255.255.1:554/cam", **FAST))
    assert "10.255.255.1" in msg and dt < 3.5


@pytest.fixture(scope="module")
def ts_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("net") / "live.ts"
    write_clip(path, n=30, width=128, height=96, fmt="mpegts", gop=5)
    return path


class Server:
    """The stream server subprocess; `start()` again after `kill()` serves on the same port."""

    def __init__(self, clip: Path):
        self.clip, self.port, self.proc = clip, free_port(), None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(self.port), str(self.clip), "1.0"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.ts"


@pytest.fixture
def server(ts_clip: Path):
    srv = Server(ts_clip)
    srv.start()
    yield srv
    srv.kill()


def take(src, n: int) -> list:
    return [src.read() for _ in range(n)]


def test_stream_killed_and_restarted_reconnects_and_counts(server: Server):
    with open_source(SourceConfig(uri=server.uri, **FAST), "cam0") as src:
        assert src.is_live and (src.width, src.height) == (128, 96)
        before = take(src, 15)
        assert all(f is not None and f.media_pts_s is None for f in before)
        assert src.stats.reconnects == 0
        server.kill()
        restarter = threading.Timer(1.5, server.start)  # down for ~1.5 s: several failed attempts
        restarter.start()
        t0 = time.monotonic()
        try:
            after = take(src, 40)  # blocks through the drop until the stream is back
        finally:
            restarter.join()
        assert time.monotonic() - t0 > 1.0
        stats = src.stats
        assert stats.reconnects == 1
        assert stats.reconnect_attempts >= 3  # refused while the server was down, then success
        assert all(f is not None for f in after)
        idx = frame_indices([f.image for f in after[-10:]])
        assert all(0 <= k < 30 for k in idx)  # real pattern frames from the restarted server
        cap = [f.capture_ns for f in before + after]
        assert cap == sorted(cap)


def test_gives_up_after_max_attempts_in_one_line(server: Server):
    cfg = SourceConfig(uri=server.uri, reconnect_max_attempts=3, **FAST)
    with open_source(cfg, "cam0") as src:
        take(src, 5)
        server.kill()
        t0 = time.monotonic()
        with pytest.raises(SourceError) as exc:
            take(src, 1000)
        msg = str(exc.value)
        assert "3 reconnect attempts failed" in msg and "reconnect_max_attempts" in msg and "\n" not in msg
        assert src.stats.reconnect_attempts == 3 and src.stats.reconnects == 0
        assert time.monotonic() - t0 < 6.0  # 0.2 + 0.4 s backoff plus the buffered tail


def test_close_interrupts_the_backoff(server: Server):
    """Shutdown must not wait for a reconnect loop that would retry forever."""
    src = open_source(SourceConfig(uri=server.uri, open_timeout_s=1.0, read_timeout_s=1.0,
                                   reconnect_initial_s=30.0, reconnect_max_s=60.0), "cam0")
    take(src, 3)
    server.kill()
    result: list = []
    reader = threading.Thread(target=lambda: result.append(take(src, 1000)), daemon=True)
    reader.start()
    time.sleep(2.0)  # in the 30 s backoff by now
    t0 = time.monotonic()
    src.close()
    reader.join(5.0)
    assert not reader.is_alive() and time.monotonic() - t0 < 2.0
    assert result and result[0][-1] is None  # read() returned None after close()


def test_stalled_stream_hits_the_read_timeout_and_recovers(server: Server):
    """SIGSTOP the server: the socket stays open but no byte arrives. The read timeout turns the
    stall into a drop; once the server resumes, a reconnect brings frames back."""
    import os
    import signal

    with open_source(SourceConfig(uri=server.uri, **FAST), "cam0") as src:
        take(src, 10)
        os.kill(server.proc.pid, signal.SIGSTOP)
        resume = threading.Timer(2.5, os.kill, (server.proc.pid, signal.SIGCONT))
        resume.start()
        t0 = time.monotonic()
        try:
            after = take(src, 30)
        finally:
            resume.join()
        assert all(f is not None for f in after)
        assert src.stats.reconnects >= 1 and time.monotonic() - t0 > 2.0


def test_finite_file_over_http_with_live_false_ends(tmp_path: Path):
    """`python -m http.server` serving a clip: with live=false EOF is the end, not a drop."""
    write_clip(tmp_path / "clip.mp4", n=20, width=160, height=96)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        cfg = SourceConfig(uri=f"http://127.0.0.1:{port}/clip.mp4", live=False, pace="fast", **FAST)
        with open_source(cfg, "cam0") as src:
            frames = []
            while (f := src.read()) is not None:
                frames.append(f)
        assert frame_indices([f.image for f in frames]) == list(range(20))
        assert src.stats.reconnect_attempts == 0 and not src.is_live
    finally:
        proc.kill()
        proc.wait(10)
