"""Preview: drawing changes the right pixels, the overlay video decodes with the stream's timing,
the stage writes per-stream files, and a window on a headless machine is a clear config error."""
from __future__ import annotations

import av
import numpy as np
import pytest

from engines.pose_engine import default_intrinsics
from engines.skel.dofs import DOF_INDEX, NUM_DOFS
from engines.landmarks.fit import PRIOR_Q
from sinks.preview import AnglePlot, OverlayWriter, project, render
from sinks.preview_stage import PreviewStage, video_path_for
from stream.config import PipelineConfig
from stream.errors import ConfigError
from stream.packet import FrameInfo, Packet, Person, TrackState


def _person(tid: int = 1) -> Person:
    q = PRIOR_Q.astype(np.float32).copy()
    q[:3] = [np.pi, 0.0, np.pi / 2]           # upright, anterior (+x body) -> -z: facing the camera
    return Person(track_id=tid, track_state=TrackState.TRACKED,
                  box_xyxy=np.array([220, 60, 420, 460], np.float32), score=0.9, q=q,
                  trans_m=np.array([0.0, 0.0, 4.0], np.float32), dof_observed=np.ones(NUM_DOFS, bool))


def _packet(seq: int, stream: str = "cam0", t_s: float | None = None) -> Packet:
    pk = Packet(frame=FrameInfo(stream, seq, seq * 40_000_000, 0, 640, 480,
                                media_pts_s=seq * 0.04 if t_s is None else t_s),
                persons=[_person()], intrinsics=default_intrinsics(640, 480))
    pk.image = np.full((480, 640, 3), 30, np.uint8)
    return pk


def test_render_draws_skeleton_inside_the_body_and_leaves_the_input_alone():
    pk = _packet(0)
    src = pk.image.copy()
    out = render(pk, pk.image)
    np.testing.assert_array_equal(pk.image, src)
    changed = np.any(out != src, axis=2)
    assert changed[60:460, 220:420].mean() > 0.01          # box, bones, joints
    assert changed[:, :150].mean() < 0.001                  # far from the person: untouched
    # the projected pelvis sits at the image centre (trans x=y=0)
    uv = project(np.array([[0.0, 0.0, 4.0]]), pk.intrinsics)
    np.testing.assert_allclose(uv, [[320.0, 240.0]])
    assert np.isnan(project(np.array([[0.0, 0.0, -1.0]]), pk.intrinsics)).all()


def test_angle_plot_keeps_its_window_and_draws():
    plot = AnglePlot(("knee_angle_r", "elbow_flexion_l"), window_s=1.0)
    img = np.zeros((480, 640, 3), np.uint8)
    for i in range(60):
        q = np.zeros(NUM_DOFS)
        q[DOF_INDEX["knee_angle_r"]] = 0.8 * (1 + np.sin(i / 5))
        plot.add(i * 0.04, q)
    assert plot.hist[-1][0] - plot.hist[0][0] <= 1.0 + 1e-9
    plot.draw(img)
    assert img[480 - 125:, :265].any() and not img[:300].any()


def test_overlay_writer_keeps_stream_timing(tmp_path):
    path = tmp_path / "ov.mp4"
    times = [0.0, 0.04, 0.08, 0.5, 0.54]      # a gap: the video must keep it
    with OverlayWriter(path) as w:
        for t in times:
            w.write(render(_packet(0), _packet(0).image), t)
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == len(times)
    pts_s = [float(f.pts * f.time_base) for f in frames]
    np.testing.assert_allclose(np.array(pts_s) - pts_s[0], times, atol=0.002)
    assert frames[0].width == 640 and frames[0].height == 480


def test_preview_stage_writes_one_file_per_stream(tmp_path):
    cfg = PipelineConfig.model_validate({
        "sources": [{"stream_id": "a"}, {"stream_id": "b"}],
        "preview": {"video_path": str(tmp_path / "ov.mp4")}})
    stage = PreviewStage(cfg)
    stage.setup()
    try:
        for i in range(4):
            for s in ("a", "b"):
                assert stage.process(_packet(i, s)) is None
        stage.flush("a")
    finally:
        stage.close()
    for s in ("a", "b"):
        p = video_path_for(str(tmp_path / "ov.mp4"), s, 2)
        assert p.name == f"ov_{s}.mp4"
        with av.open(str(p)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 4


def test_window_without_display_is_a_config_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ConfigError, match="video_path"):
        PreviewStage(PipelineConfig.model_validate({"preview": {"window": True}}))


def test_bad_plot_dof_is_rejected():
    with pytest.raises(Exception, match="knee_angle_r"):
        PipelineConfig.model_validate({"preview": {"plot_dofs": ["knee"]}})
