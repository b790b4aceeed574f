"""Live viewer: rerun's web viewer, loaded in a real headless Chromium, shows the skeleton.

Needs the `viewer` extra (rerun-sdk), websocket-client and Debian's chromium package; skipped
with the reason otherwise (CI installs only the `test` extra)."""
from __future__ import annotations


import socket

import numpy as np
import pytest

from browser_helpers import CHROMIUM, screenshot
from sinks.adapters_config import ViewerConfig
from sinks.config import PublisherConfig
from sinks.schema import frame_message
from sinks.synth import synthetic_packet
from stream.config import PipelineConfig, RuntimeConfig
from stream.packet import Packet
from stream.pipeline import build_graph, build_stages
from stream.sources.config import SourceConfig
from stream.stage import Stage

pytest.importorskip("rerun")
pytest.importorskip("websocket")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package "
                                "(apt-get install chromium) for the headless browser test")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _magenta_pixels(png: bytes) -> int:
    """Pixels of track 1's colour (255, 0, 255) in a screenshot."""
    import cv2

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)  # BGR
    b, g, r = (img[..., i].astype(int) for i in range(3))
    return int(((r > 200) & (b > 200) & (g < 80)).sum())


def test_page_loads_and_shows_the_skeleton(tmp_path):
    from sinks.viewer import PoseViewer

    cfg = ViewerConfig(enabled=True, web_port=_port(), grpc_port=_port())
    with PoseViewer(cfg) as v:
        image = np.full((480, 640, 3), 90, np.uint8)
        for seq in range(30):
            pkt = synthetic_packet("cam0", seq, 1)
            pkt.persons[0].trans_m = np.array([0.0, 0.0, 3.0], np.float32)
            pkt.persons[0].q[0] = np.pi     # upright, facing the camera side
            assert v.log_frame(frame_message(pkt), image)
        out = tmp_path / "viewer.png"
        screenshot(v.url, str(out), wait_s=150, ready=lambda png: _magenta_pixels(png) > 400)
        png = out.read_bytes()
    assert v.stats.dropped == 0
    assert _magenta_pixels(png) > 400, f"no skeleton in the screenshot {out}"


def test_display_rate_skips_frames_closer_than_max_fps():
    from sinks.viewer import PoseViewer

    cfg = ViewerConfig(enabled=True, web_port=_port(), grpc_port=_port(), max_fps=15.0)
    with PoseViewer(cfg) as v:
        for seq in range(30):                  # a 30 fps capture clock
            f = frame_message(synthetic_packet("cam0", seq, 4))
            f.capture_ns = 10**9 + seq * 33_333_333
            assert v.log_frame(f)
    assert (v.stats.shown, v.stats.skipped, v.stats.dropped) == (15, 15, 0)


class FourPeople(Stage):
    name = "persons"

    def process(self, packet: Packet) -> Packet:
        packet.persons = synthetic_packet(packet.frame.stream_id, packet.frame.seq, 4).persons
        return packet


def test_viewer_stage_with_nobody_watching_finishes_the_run():
    cfg = PipelineConfig(
        sources=[SourceConfig(uri="test:n=40,w=64,h=48,fps=0", mode="lossless")],
        runtime=RuntimeConfig(status_line=False, summary_at_exit=False, lossless=True),
        publisher=PublisherConfig(enabled=False),
        viewer=ViewerConfig(enabled=True, web_port=_port(), grpc_port=_port()))
    chain, sinks = build_stages(cfg)
    assert [s.name for s in sinks] == ["viewer"] and sinks[0].needs_image
    result = build_graph(cfg, chain=[FourPeople()], sinks=sinks,
                         opener="graph_helpers:open_test_source").run()
    assert result.exit_code == 0, result.errors



