"""Live viewer: what it logs, read back from rerun's own recording (.rrd) file, and rerun's web
viewer, loaded in a real headless Chromium, showing the skeleton.

rerun-sdk is in the `test` extra; the browser test also needs websocket-client and Debian's
chromium package and is skipped with the reason where they are missing."""
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
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package "
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


@needs_chromium
def test_page_loads_and_shows_the_skeleton(tmp_path):
    pytest.importorskip("websocket")
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


def _rrd_columns(path) -> dict[str, list]:
    """entity path -> [(static, {column: values})] of every chunk rerun wrote to the file."""
    from rerun.chunk import RrdReader

    out: dict[str, list] = {}
    for chunk in RrdReader(path).stream().to_chunks():
        rb = chunk.to_record_batch()
        out.setdefault(chunk.entity_path, []).append(
            (chunk.is_static, {n: rb.column(n).to_pylist() for n in rb.schema.names}))
    return out


def _rows(chunks, column: str, static: bool = False) -> list:
    """Values of one column over an entity's chunks, in capture-time order."""
    rows = [(c.get("capture", [0] * len(v)), v) for st, c in chunks if st == static
            for v in [c.get(column)] if v is not None]
    return [x for _, x in sorted((t, x) for ts, v in rows for t, x in zip(ts, v))]


BUILD = np.array([0.36, 0.36, 0.27, 0.21, 0.15, 0.33, 0.42], np.float32)
"""Estimated segment lengths (MEASURED_SEGMENTS order) of a short person."""


def test_logged_data_read_back_from_rerun_recording(tmp_path):
    """Everything the viewer logs, read back by rerun's own .rrd reader: per frame the JPEG
    (shrunk 768 -> 384 px by an integer factor), boxes with ids, 3D strips that are the FK joints
    of each person along CHAINS (on their own build where they carry segment lengths), 2D strips
    that are their projection, angle series in degrees;
    colours logged when the people change, radii once (static). Runs without a browser."""
    import cv2

    from engines.skel.kinematics import forward_kinematics
    from sinks.session_skeleton import segments_skeleton
    from sinks.viewer import CHAIN_INDEX, PoseViewer, project, track_colors

    rrd = tmp_path / "view.rrd"
    cfg = ViewerConfig(enabled=True, web_port=_port(), grpc_port=_port(), max_fps=240.0,
                       image_fps=240.0, save_rrd=str(rrd))
    frames = []
    with PoseViewer(cfg) as v:
        for seq in range(6):
            pkt = synthetic_packet("cam0", seq, 2 if seq < 4 else 3)   # a third person comes in
            pkt.persons[1].segments_m = BUILD                          # drawn on their own build
            f = frame_message(pkt)
            f.capture_ns = 10**9 + seq * 33_333_333
            f.capture_utc_ns = 1_800_000_000 * 10**9 + seq * 33_333_333
            assert v.log_frame(f, np.full((576, 768, 3), 90, np.uint8))
            frames.append(f)
        skeleton = v.skeleton
    assert (v.stats.shown, v.stats.dropped) == (6, 0)
    cols = _rrd_columns(str(rrd))

    jpegs = _rows(cols["/image/cam0"], "EncodedImage:blob")
    assert len(jpegs) == 6
    img = cv2.imdecode(np.asarray(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (288, 384, 3)
    labels = _rows(cols["/image/cam0/people"], "Boxes2D:labels")   # logged when the people change
    assert labels == [["#1", "#2"], ["#1", "#2", "#3"]]
    centers = _rows(cols["/image/cam0/people"], "Boxes2D:centers")
    half = _rows(cols["/image/cam0/people"], "Boxes2D:half_sizes")
    for f, c, h in zip(frames, centers, half, strict=True):
        b = np.array([p.bbox_xyxy for p in f.persons]) * 0.5
        np.testing.assert_allclose(np.hstack([np.array(c) - h, np.array(c) + h]), b, atol=1e-3)

    strips3d = _rows(cols["/bodies/cam0"], "LineStrips3D:strips")
    strips2d = _rows(cols["/image/cam0/people"], "LineStrips2D:strips")
    assert len(strips3d) == len(strips2d) == 6
    for f, s3, s2 in zip(frames, strips3d, strips2d):
        want3, want2 = [], []
        for p in f.persons:
            sk = skeleton if p.segments_m is None else segments_skeleton(cfg.body_height_m, BUILD)
            j = forward_kinematics(p.q.astype(np.float64), sk, p.trans_m.astype(np.float64)).joints_m
            want3.append(j[CHAIN_INDEX])
            k = f.intrinsics
            want2.append(project(j, k.fx, k.fy, k.cx, k.cy)[CHAIN_INDEX] * 0.5)
        np.testing.assert_allclose(np.array(s3, np.float64), np.concatenate(want3), atol=1e-5)
        np.testing.assert_allclose(np.array(s2, np.float64), np.concatenate(want2), atol=1e-3)
    colors = _rows(cols["/bodies/cam0"], "LineStrips3D:colors")
    assert [len(c) for c in colors] == [10, 15]      # first frame, and when the third person came
    assert colors[1] == list(np.repeat(track_colors([1, 2, 3]), 5))
    assert np.allclose(_rows(cols["/bodies/cam0"], "LineStrips3D:radii", static=True), [[0.015]])

    for tid in (1, 2):
        angles = _rows(cols[f"/angles/cam0/track{tid}"], "Scalars:scalars")
        want = [np.degrees(f.persons[tid - 1].q[v._plot_idx]) for f in frames]
        np.testing.assert_allclose(np.array(angles), np.array(want), atol=1e-3)
        assert _rows(cols[f"/angles/cam0/track{tid}"], "SeriesLines:names", static=True) == [
            list(cfg.plot_dofs)]


def test_camera_panel_at_image_fps_3d_at_max_fps(tmp_path):
    """Defaults on a 30 fps clock: 15 frames shown (3D skeletons, plots), the camera panel
    (JPEG, boxes, 2D skeletons) on every other one of them (image_fps 7.5), all from one frame."""
    rrd = tmp_path / "rate.rrd"
    from sinks.viewer import PoseViewer

    with PoseViewer(ViewerConfig(enabled=True, web_port=_port(), grpc_port=_port(),
                                 save_rrd=str(rrd))) as v:
        for seq in range(30):
            f = frame_message(synthetic_packet("cam0", seq, 2))
            f.capture_ns = 10**9 + seq * 33_333_333
            f.capture_utc_ns = 1_800_000_000 * 10**9 + seq * 33_333_333
            assert v.log_frame(f, np.full((480, 640, 3), 90, np.uint8))
    cols = _rrd_columns(str(rrd))
    t3d = _rows(cols["/bodies/cam0"], "capture")
    assert len(t3d) == 15
    for entity, column in (("/image/cam0", "EncodedImage:blob"), ("/image/cam0/people", "Boxes2D:centers"),
                           ("/image/cam0/people", "LineStrips2D:strips")):
        assert _rows(cols[entity], "capture") == t3d[::2], entity


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



