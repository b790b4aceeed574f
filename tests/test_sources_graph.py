"""Real sources in the real process graph: a network stream that drops for good ends only its own
stream; a file playing beside it delivers every frame."""
from __future__ import annotations

import io
import re
import threading
from pathlib import Path

from graph_helpers import CollectSink, read_collected
from sources_clips import write_clip
from stream.config import RuntimeConfig
from stream.graph import Graph
from stream.source_stage import SourceStage
from stream.sources.config import SourceConfig
from test_sources_network import FAST, Server


def test_dropped_stream_does_not_stop_the_file_beside_it(tmp_path: Path):
    clip, ts = tmp_path / "a.mp4", tmp_path / "live.ts"
    write_clip(clip, n=90, width=96, height=64, fps=30)
    write_clip(ts, n=30, width=96, height=64, fmt="mpegts", gop=5)
    server = Server(ts)
    server.start()
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(status_line=False, summary_at_exit=False, metrics_interval_s=0.2,
                            queue_size=64, drain_timeout_s=10), lossless=False)
    g.add(SourceStage(SourceConfig(uri=str(clip), stream_id="file", pace="native"), "file", 8),
          to=["collect"])
    g.add(SourceStage(SourceConfig(uri=server.uri, stream_id="net", reconnect_max_attempts=2, **FAST),
                      "net", 8), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    stop = threading.Event()

    def kill_when_streaming() -> None:
        # the camera disappears for good once its frames reach the sink
        while not stop.wait(0.05):
            if out.exists() and sum(line.startswith("net ") for line in out.read_text().splitlines()) >= 5:
                server.kill()
                return

    killer = threading.Thread(target=kill_when_streaming, daemon=True)
    killer.start()
    try:
        res = g.run()
    finally:
        stop.set()
        killer.join(5)
        server.kill()
    assert any(e.startswith("source:net:") and "reconnect attempts failed" in e
               for e in res.errors), res.errors
    assert not any(e.startswith("source:file") for e in res.errors)
    pk, ends, closed = read_collected(out)
    assert [p[1] for p in pk if p[0] == "file"] == list(range(90))  # every frame of the file
    assert len([p for p in pk if p[0] == "net"]) > 3                   # the stream did run before it dropped
    assert sorted(ends) == ["file", "net"] and closed


class _Terminal(io.StringIO):
    """Captures the status line as a terminal would get it (one '\\r' update per interval)."""

    def isatty(self) -> bool:
        return True


def test_corrupt_frames_show_on_the_status_line_in_the_summary_and_the_recording(tmp_path: Path):
    from sinks.config import RecorderConfig
    from sinks.record_stage import RecordStage
    from sinks.recorder import read_session
    from stream.config import PipelineConfig
    from stream.pipeline import build_graph

    clip = tmp_path / "damaged.mkv"
    packets = write_clip(clip, n=60, width=96, height=64, fps=30, codec="mjpeg", fmt="matroska")
    data = bytearray(clip.read_bytes())
    for k in (5, 6, 20):  # JPEG data wiped in the middle of the clip: undecodable frames
        pos, size = packets[k]
        data[pos + 20:pos + size - 20] = bytes(size - 40)
    clip.write_bytes(bytes(data))
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=str(clip), pace="native", mode="lossless")],
        runtime=RuntimeConfig(metrics_interval_s=0.05, summary_at_exit=True),
        recorder=RecorderConfig(enabled=True, directory=str(tmp_path), session_name="run"))
    term = _Terminal()
    res = build_graph(cfg, chain=[], sinks=[RecordStage(cfg)], status_stream=term).run()
    assert res.exit_code == 0, res.errors
    out = term.getvalue()
    assert re.search(r"source:cam0 [^|]*corrupt 3", out), out[-2000:]
    head, row = [line for line in out.splitlines()
                 if line.startswith(("stage ", "source:cam0 "))][-2:]
    assert head.split()[-1] == "corrupt" and row.split()[-1] == "3", out[-2000:]
    stats = read_session(str(tmp_path / "run")).metadata["skelstream.stats"]
    assert stats["corrupt_skipped.cam0"] == "3" and stats["frames"] == "57"
