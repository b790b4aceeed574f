"""Exactly one published and one recorded message per captured frame: the tracker's end-of-stream
packet (REMOVED events for the last tracks, the last frame's seq) is applied downstream but is
neither published nor recorded, so `seq` never repeats (docs/schema.md)."""
from __future__ import annotations

import socket
import threading

from conftest import VTEST, needs_shared
from sinks.client import PoseSubscriber
from sinks.config import PublisherConfig, RecorderConfig
from sinks.publish_stage import PublishStage
from sinks.record_stage import RecordStage
from sinks.recorder import read_session
from sinks.schema import FrameMsg, HeartbeatMsg, decode
from stream.config import PipelineConfig, RuntimeConfig
from stream.pipeline import build_graph
from stream.sources.config import SourceConfig
from tracking.stage import DetectTrackStage

N_FRAMES = 40


def _ep() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _collect(sub: PoseSubscriber, out: list, stop: threading.Event) -> None:
    while not stop.is_set():
        r = sub.recv(0.1)
        if r is not None:
            out.append(r.msg)
            if isinstance(r.msg, HeartbeatMsg) and r.msg.ended:
                return


@needs_shared(VTEST)
def test_one_message_per_frame_over_zeromq_and_in_the_recording(tmp_path):
    endpoint = _ep()
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=str(VTEST), mode="lossless", pace="fast", max_frames=N_FRAMES)],
        runtime=RuntimeConfig(status_line=False, summary_at_exit=False, lossless=True),
        publisher=PublisherConfig(endpoint=endpoint, wait_for_subscriber_s=5.0),
        recorder=RecorderConfig(enabled=True, directory=str(tmp_path), session_name="run"))
    got: list = []
    stop = threading.Event()
    sub = PoseSubscriber(endpoint)
    t = threading.Thread(target=_collect, args=(sub, got, stop))
    t.start()
    try:
        res = build_graph(cfg, chain=[DetectTrackStage(cfg)],
                          sinks=[PublishStage(cfg), RecordStage(cfg)]).run()
        t.join(10)
    finally:
        stop.set()
        t.join(5)
        sub.close()
    assert res.exit_code == 0, res.errors
    assert isinstance(got[-1], HeartbeatMsg) and got[-1].ended
    seqs = [m.seq for m in got if isinstance(m, FrameMsg)]
    assert seqs and seqs[-1] == N_FRAMES - 1       # vtest has walkers in view at the end
    assert seqs == sorted(set(seqs))               # no frame published twice
    assert all(0 <= s < N_FRAMES for s in seqs)
    recorded = [decode(d) for d in read_session(str(tmp_path / "run")).frames()]
    assert [m.seq for m in recorded] == list(range(N_FRAMES))  # every frame once, nothing more
