"""detect_track in the real process graph: PyAV file source -> DetectTrackStage (default HOG) -> a
sink that records what reached it, on a short clip cut from vtest.avi, lossless (every frame)."""
from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from conftest import VTEST, needs_shared
from stream.config import PipelineConfig, RuntimeConfig
from stream.graph import Graph
from stream.packet import Packet
from stream.source_stage import DEFAULT_OPENER, SourceStage
from stream.sources.config import SourceConfig
from stream.stage import Stage
from tracking.stage import DetectTrackStage

N_FRAMES = 30


class JsonSink(Stage):
    """One JSON line per packet: seq, persons (id, predicted, box, crop), events."""

    def __init__(self, path: str):
        self.name, self.path, self._f = "collect", path, None

    def setup(self) -> None:
        self._f = open(self.path, "w", buffering=1)

    def process(self, packet: Packet) -> None:
        self._f.write(json.dumps({
            "seq": packet.frame.seq, "last": packet.frame.last,
            "dets": None if packet.detections_xyxy is None else len(packet.detections_xyxy),
            "persons": [[p.track_id, p.box_predicted, p.box_xyxy.tolist(), p.crop_box_xyxy.tolist()]
                        for p in packet.persons],
            "events": [[e.track_id, e.kind.value] for e in packet.events]}) + "\n")
        return None

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


@pytest.fixture(scope="module")
def vtest_clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vt") / "vtest30.mp4"
    with av.open(str(VTEST)) as src, av.open(str(out), "w") as dst:
        s = dst.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 768, 576, "yuv420p"
        for i, f in enumerate(src.decode(video=0)):
            if i >= N_FRAMES:
                break
            for p in s.encode(av.VideoFrame.from_ndarray(f.to_ndarray(format="bgr24"), format="bgr24")):
                dst.mux(p)
        for p in s.encode():
            dst.mux(p)
    return out


@needs_shared(VTEST)
def test_detect_track_in_the_graph_on_vtest(tmp_path, vtest_clip):
    out = tmp_path / "out.jsonl"
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(vtest_clip), mode="lossless", pace="fast")])
    g = Graph(RuntimeConfig(status_line=False, summary_at_exit=False, drain_timeout_s=20), lossless=True)
    g.add(SourceStage(cfg.sources[0], "cam0", 8, DEFAULT_OPENER), to=["detect_track"])
    g.add(DetectTrackStage(cfg), to=["collect"])
    g.add(JsonSink(str(out)))
    res = g.run()
    assert res.exit_code == 0, res.errors
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    *rows, end = rows
    assert [r["seq"] for r in rows] == list(range(N_FRAMES))        # lossless: every frame, in order
    every_n = cfg.detector.every_n_frames
    assert [r["dets"] is not None for r in rows] == [i % every_n == 0 for i in range(N_FRAMES)]
    born, removed = set(), set()
    for r in rows:
        for tid, kind in r["events"]:
            (born if kind == "born" else removed if kind == "removed" else set()).add(tid)
        for tid, predicted, box, crop in r["persons"]:
            assert tid in born and tid not in removed
            assert [tid, "removed"] not in r["events"]
            assert crop[0] <= box[0] + 1e-3 and crop[2] >= box[2] - 1e-3  # the crop holds the person
    assert len(born) >= 2, "vtest's first 3 s show several walkers"
    assert rows[-1]["last"] and end["persons"] == [] and end["seq"] == N_FRAMES - 1
    assert {tid for tid, kind in end["events"] if kind == "removed"} | removed == born  # nothing outlives the stream
    ids_per_frame = [len(r["persons"]) for r in rows]
    assert max(ids_per_frame) >= 2
