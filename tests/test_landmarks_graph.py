"""Lockstep end-to-end: a real clip through source -> detect_track -> pose -> smooth -> sinks, each
an OS process; invariants on what comes out (every frame, limits, the engine's model id, overlay)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from engines.skel.dofs import DOF_LOWER, DOF_UPPER
from landmarks_helpers import PoseNpzSink
from sinks.preview_stage import PreviewStage
from stream.config import PipelineConfig
from stream.pipeline import build_graph
from test_landmarks_engine import CLIP, needs_clip, read_frames

N = 24


def _write_clip(path: Path, n: int) -> None:
    import cv2

    frames = read_frames(CLIP, n, step=2)
    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264", rate=30)
        st.width, st.height, st.pix_fmt = 360, 640, "yuv420p"
        for img in frames:
            small = cv2.resize(img, (360, 640), interpolation=cv2.INTER_AREA)
            for pkt in st.encode(av.VideoFrame.from_ndarray(small, format="bgr24")):
                c.mux(pkt)
        for pkt in st.encode(None):
            c.mux(pkt)


@needs_clip
def test_clip_through_the_whole_graph(tmp_path: Path):
    clip = tmp_path / "walk.mp4"
    _write_clip(clip, N)
    out = tmp_path / "log"
    out.mkdir()
    cfg = PipelineConfig.model_validate({
        "sources": [{"uri": str(clip), "mode": "lossless", "stream_id": "w"}],
        "runtime": {"status_line": False, "summary_at_exit": False},
        "publisher": {"enabled": False},
        "preview": {"video_path": str(tmp_path / "overlay.mp4")},
    })
    graph = build_graph(cfg, sinks=[PreviewStage(cfg), PoseNpzSink(str(out))])
    res = graph.run()
    assert res.exit_code == 0, res.errors
    files = sorted(out.glob("w_*.npz"))
    assert len(files) == N                                   # lossless: every frame came out
    logs = [np.load(f) for f in files]
    with_pose = [g for g in logs if g["q"].shape[0] > 0]
    assert len(with_pose) >= N // 2                          # the walker is tracked and posed
    for g in with_pose:
        q = g["q"].astype(np.float64)
        assert np.all(q[:, 3:] >= DOF_LOWER[3:] - 1e-5) and np.all(q[:, 3:] <= DOF_UPPER[3:] + 1e-5)
        assert set(g["model"]) == {"blazepose-full+skelfit"}
        assert np.all(g["trans"][:, 2] > 0)
    assert any("pose.landmarks" in g["timings"] for g in with_pose)
    with av.open(str(tmp_path / "overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == N
