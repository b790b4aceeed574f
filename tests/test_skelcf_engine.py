"""SKEL-CF pose engine on CPU with a tiny checkpoint laid out like the official best.pth."""
from __future__ import annotations


import av
import numpy as np
import pytest
import torch
from conftest import GOLDEN, needs_shared

from engines.skelcf.checkpoint import load_skelcf, make_manifest_checkpoint
from engines.skelcf.config import SkelCFConfig
from engines.skelcf.engine import SkelCFEngine
from engines.skelcf.geometry import cam_to_translation
from engines.skelcf.model import build_skelcf
from engines.skelcf.preprocess import CropPreprocessor, square_boxes
from stream.errors import EngineError
from stream.packet import Intrinsics, Person, TrackState

CROPS = GOLDEN / "crop_preprocessing.npz"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_manifest_checkpoint("tiny", tmp_path_factory.mktemp("ck") / "best.pth", seed=3,
                                    flnet_width=4)


@pytest.fixture(scope="module")
def frame_and_boxes():
    """A real picture through a real H.264 encode/decode, and two boxes (one leaves the frame)."""
    img = np.load(CROPS)["image_rgb_uint8"] if CROPS.exists() else \
        np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    import io
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 512, 512, "yuv420p"
        for _ in range(2):
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))
    buf.seek(0)
    with av.open(buf) as inp:
        bgr = next(inp.decode(video=0)).to_ndarray(format="bgr24")
    return bgr, np.array([[150.25, 20.5, 420.75, 511.0], [-12.4, 300.6, 200.2, 530.9]], np.float32)


def _persons(boxes):
    return [Person(track_id=i, track_state=TrackState.TRACKED, box_xyxy=b, score=0.9,
                   crop_box_xyxy=b) for i, b in enumerate(boxes)]


def _cfg(ckpt, tmp_path, **kw):
    return SkelCFConfig(checkpoint=str(ckpt), variant="tiny", device="cpu",
                        cache_dir=str(tmp_path / "cache"), **{"backend": "torch", **kw})


def test_missing_checkpoint_says_where_to_get_it(tmp_path):
    with pytest.raises(EngineError, match="pose.skelcf.checkpoint"):
        SkelCFEngine(SkelCFConfig(variant="tiny"))
    with pytest.raises(EngineError, match="Hugging Face"):
        SkelCFEngine(SkelCFConfig(variant="tiny", checkpoint=str(tmp_path / "best.pth")))


@needs_shared(CROPS)
def test_engine_matches_the_direct_pipeline(ckpt, frame_and_boxes, tmp_path):
    bgr, boxes = frame_and_boxes
    eng = SkelCFEngine(_cfg(ckpt, tmp_path), focal_px=700.0)
    persons = _persons(boxes)
    k = Intrinsics(fx=500.0, fy=500.0, cx=256, cy=256, source="default")
    timings = eng.estimate(bgr, persons, k, "cam0")
    assert set(timings) == {"preprocess", "infer", "postprocess"}  # user focal: FLNet never runs
    assert all(v > 0 for v in timings.values())
    # the same computation spelled out: strict load, crops at the user focal, forward, geometry
    net = build_skelcf("tiny").eval()
    load_skelcf(net, ckpt)
    crops, info = CropPreprocessor("cpu")(bgr, boxes, 700.0)
    with torch.no_grad():
        q, betas, cam = (t.numpy() for t in net.forward_export(crops, info))
    centre, side = square_boxes(boxes)
    trans = cam_to_translation(cam.astype(np.float64), centre, side, 700.0, (512, 512))
    for i, p in enumerate(persons):
        assert p.q.shape == (46,) and p.q.dtype == np.float32
        np.testing.assert_allclose(p.q, q[i], atol=1e-5)
        np.testing.assert_allclose(p.betas, betas[i], atol=1e-5)
        np.testing.assert_allclose(p.trans_m, trans[i], rtol=1e-5, atol=1e-5)
        assert p.dof_observed.dtype == bool and p.dof_observed.all()
        assert p.model_id.startswith("skelcf-tiny-")
    assert persons[0].pose_confidence > persons[1].pose_confidence  # box 1 leaves the frame
    assert 0.0 < persons[1].pose_confidence < 1.0
    assert eng.estimate(bgr, [], k, "cam0") == {}
    eng.close()


def test_flnet_once_per_stream_on_request_and_periodically(ckpt, frame_and_boxes, tmp_path):
    bgr, boxes = frame_and_boxes
    now = [1000.0]
    eng = SkelCFEngine(_cfg(ckpt, tmp_path, flnet_refresh_s=60.0), clock=lambda: now[0])
    assert eng.flnet is not None  # cam_model.* of the checkpoint
    k = Intrinsics(fx=500.0, fy=500.0, cx=256, cy=256, source="default")
    one = boxes[:1]
    ran = [("flnet" in eng.estimate(bgr, _persons(one), k, "a")) for _ in range(2)]
    assert ran == [True, False]
    now[0] += 59.0
    assert "flnet" not in eng.estimate(bgr, _persons(one), k, "a")
    now[0] += 1.0  # the refresh period is over
    assert "flnet" in eng.estimate(bgr, _persons(one), k, "a")
    eng.refresh_focal("a")
    assert "flnet" in eng.estimate(bgr, _persons(one), k, "a")
    assert "flnet" not in eng.estimate(bgr, _persons(one), k, "a")
    # user intrinsics from the stage win over FLNet; an untrained FLNet's negative focal falls
    # back to the stage's intrinsics instead of stopping the stream
    ku = Intrinsics(fx=650.0, fy=650.0, cx=256, cy=256, source="user")
    assert "flnet" not in eng.estimate(bgr, _persons(one), ku, "b")
    est = eng.estimate_intrinsics(bgr)
    f_flnet = float(eng.flnet.focal_px(np.ascontiguousarray(bgr[:, :, ::-1])))
    assert (est is None) == (not f_flnet > 0)  # random weights: usually a negative focal
    assert eng._focal["a"][0] == (f_flnet if f_flnet > 0 else 500.0)


def test_onnxruntime_backend_exports_once_and_agrees(ckpt, frame_and_boxes, tmp_path):
    pytest.importorskip("onnxruntime")
    bgr, boxes = frame_and_boxes
    k = Intrinsics(fx=600.0, fy=600.0, cx=256, cy=256, source="user")
    pt, po = _persons(boxes), _persons(boxes)
    SkelCFEngine(_cfg(ckpt, tmp_path)).estimate(bgr, pt, k, "s")
    eng = SkelCFEngine(_cfg(ckpt, tmp_path, backend="onnxruntime"))
    assert eng.backend.name == "onnxruntime-cpu"
    eng.estimate(bgr, po, k, "s")
    for a, b in zip(pt, po):
        assert np.abs(a.q - b.q).max() < 1e-4
        assert np.abs(a.trans_m - b.trans_m).max() < 1e-3
    exported = list((tmp_path / "cache").glob("*.onnx"))
    assert len(exported) == 1
    mtime = exported[0].stat().st_mtime_ns
    SkelCFEngine(_cfg(ckpt, tmp_path, backend="onnxruntime"))
    assert exported[0].stat().st_mtime_ns == mtime  # cached export reused


def test_pose_stage_runs_the_skelcf_engine(ckpt, frame_and_boxes, tmp_path):
    """The graph's pose stage builds SkelCFEngine from config and gets q, timings and intrinsics
    (an untrained FLNet's invalid focal falls back to the 60 degree default)."""
    from engines.pose_stage import PoseStage
    from stream.config import PipelineConfig
    from stream.packet import FrameInfo, Packet

    bgr, boxes = frame_and_boxes
    cfg = PipelineConfig.model_validate({"pose": {"engine": "skelcf", "skelcf": {
        "checkpoint": str(ckpt), "variant": "tiny", "device": "cpu", "backend": "torch",
        "cache_dir": str(tmp_path / "cache")}}})
    stage = PoseStage(cfg)
    stage.setup()
    try:
        pk = Packet(frame=FrameInfo("cam0", 0, 0, 0, 512, 512), persons=_persons(boxes))
        pk.image = bgr
        out = stage.process(pk)
        assert out.intrinsics.source in ("flnet", "default") and out.intrinsics.fx > 0
        assert {"pose.preprocess", "pose.infer"} <= set(out.timings_ns)
        assert all(p.q is not None and np.isfinite(p.q).all() for p in out.persons)
        assert all(p.model_id.startswith("skelcf-tiny") for p in out.persons)
    finally:
        stage.close()
