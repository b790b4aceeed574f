"""Real sources in the real process graph: a network stream that drops for good ends only its own
stream; a file playing beside it delivers every frame."""
from __future__ import annotations

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
