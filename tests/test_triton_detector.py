"""`detector.backend: triton` against a REAL tritonserver (nvidia-pytriton's binary, a small
random-weight YOLO-layout detector as ONNX run by onnxruntime in its Python backend, bound to
127.0.0.1): the repository export (uint8 input in front of the user's graph, configs that parse),
boxes equal to the local onnxruntime detector's on the same frames, a batch-1 export served
without batching, and the faults a user sees (unreachable, missing model, server killed)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.triton_helpers import server_or_skip

server_or_skip()

from engines.backends.triton_server import LocalTritonServer, free_port  # noqa: E402
from engines.detection.config import DetectorConfig, TritonDetectorConfig  # noqa: E402
from engines.detection.detectors import YoloDetector  # noqa: E402
from engines.detection.triton_repo import (check_parity, uint8_detector_onnx,  # noqa: E402
                                           write_detector_repository)
from engines.detection.yolo_like import YoloLike  # noqa: E402
from stream.errors import EngineError  # noqa: E402

SIZE = 160
READY_S = 240.0


def small_detector(path: Path, dynamic_batch: bool = True) -> Path:
    """A YOLOv8-layout net ((1, 84, anchors) output), narrow and at 160 px so CPU runs are quick."""
    torch.manual_seed(0)
    net = YoloLike(80, width=(8, 16, 16, 32, 32)).eval()
    axes = {"images": {0: "batch"}, "output0": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(net, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["images"],
                      output_names=["output0"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("triton_det")
    onnx_path = small_detector(root / "det.onnx")
    repo = root / "model_repository"
    write_detector_repository(repo, onnx_path, backends=("python",), max_batch=4, preferred=(2, 4),
                              kind="KIND_CPU")
    fixed = small_detector(root / "det_b1.onnx", dynamic_batch=False)
    write_detector_repository(root / "b1", fixed, backends=("python",), kind="KIND_CPU")
    shutil.move(root / "b1" / "yolo_py", repo / "yolo_b1")
    cfg = repo / "yolo_b1" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace('name: "yolo_py"', 'name: "yolo_b1"'))
    with LocalTritonServer(repo, ready_timeout_s=READY_S) as srv:
        yield srv, onnx_path


def frames(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(n)]


def _remote(url: str, model: str = "yolo_py", shm: str = "auto", **kw) -> YoloDetector:
    det = YoloDetector(DetectorConfig(kind="yolo", backend="triton", input_size_px=SIZE, score_threshold=0.3,
                                      triton=TritonDetectorConfig(url=url, model_name=model, shared_memory=shm,
                                                                  request_timeout_s=60, **kw)))
    det.open()
    return det


def test_repository_configs_parse_and_batch1_export_is_unbatched(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    onnx_path = small_detector(tmp_path / "det.onnx", dynamic_batch=False)
    written = write_detector_repository(tmp_path / "repo", onnx_path, backends=("tensorrt", "onnxruntime", "python"))
    assert set(written) == {"yolo_trt", "yolo_onnx", "yolo_py"}
    for name, path in written.items():
        c = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        assert c.name == name and c.max_batch_size == 0 and not c.HasField("dynamic_batching")
        assert c.input[0].data_type == model_config_pb2.TYPE_UINT8 and list(c.input[0].dims) == [1, 3, SIZE, SIZE]
        assert list(c.output[0].dims) == [1, 84, 525]  # 20x20 + 10x10 + 5x5 anchors
    assert c.backend == "python"
    onnx_c = text_format.Parse(written["yolo_onnx"].read_text(), model_config_pb2.ModelConfig())
    assert onnx_c.platform == "onnxruntime_onnx"
    plan = (tmp_path / "repo" / "yolo_trt" / "build_plan.sh").read_text()
    assert "--fp16" in plan and "minShapes" not in plan  # static shapes: no profile


def test_uint8_graph_equals_the_original_on_the_float_blob(tmp_path):
    src = small_detector(tmp_path / "det.onnx")
    info = uint8_detector_onnx(src, tmp_path / "u8.onnx")
    assert info == {"size": SIZE, "batched": True, "src_input": "images"}
    shape, diff = check_parity(src, tmp_path / "u8.onnx", SIZE, "images")
    assert shape == [1, 84, 525] and diff <= 1e-5


@pytest.mark.parametrize("model,shm", [("yolo_py", "system"), ("yolo_py", "none"), ("yolo_b1", "system")])
def test_boxes_equal_the_local_detector(served, model, shm):
    srv, onnx_path = served
    local = YoloDetector(DetectorConfig(kind="yolo", model_path=onnx_path, backend="onnxruntime",
                                        input_size_px=SIZE, score_threshold=0.3))
    local.open()
    remote = _remote(srv.url, model, shm)
    try:
        assert remote.runner.name == ("triton-shm" if shm == "system" else "triton-grpc")
        for img in frames():
            b_loc, s_loc = local.detect(img)
            b_rem, s_rem = remote.detect(img)
            assert len(b_loc) > 0  # random weights still score some anchors above 0.3
            assert b_rem.shape == b_loc.shape
            np.testing.assert_allclose(b_rem, b_loc, atol=1e-3)
            np.testing.assert_allclose(s_rem, s_loc, atol=1e-5)
        # the letterboxed frame travels as uint8: 1 byte per value
        assert remote.runner.remote.bytes_sent == len(frames()) * 3 * SIZE * SIZE
    finally:
        remote.close()
        local.close()


def test_unreachable_and_missing_model_name_url_model_and_shape(served):
    srv, _ = served
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(EngineError) as e:
        _remote(url, connect_timeout_s=2)
    assert url in str(e.value) and "unreachable" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(EngineError) as e:
        _remote(srv.url, "nope")
    msg = str(e.value)
    assert "'nope'" in msg and f"images UINT8 [-1, 3, {SIZE}, {SIZE}]" in msg and "yolo_py" in msg
    with pytest.raises(EngineError) as e:  # the right model at the wrong input size
        YoloDetector(DetectorConfig(kind="yolo", backend="triton", input_size_px=320, triton=TritonDetectorConfig(
            url=srv.url, model_name="yolo_py"))).open()
    assert f"images UINT8 [-1, 3, {SIZE}, {SIZE}]" in str(e.value) and "[-1, 3, 320, 320]" in str(e.value)


def test_server_killed_gives_no_detections_then_recovers(tmp_path):
    onnx_path = small_detector(tmp_path / "det.onnx")
    repo = tmp_path / "repo"
    write_detector_repository(repo, onnx_path, backends=("python",), kind="KIND_CPU")
    port = free_port()
    srv = LocalTritonServer(repo, grpc_port=port, ready_timeout_s=READY_S).start()
    srv2 = None
    det = _remote(srv.url, retry_backoff_s=0.1, retry_backoff_max_s=0.5)
    img = frames(1)[0]
    try:
        assert len(det.detect(img)[0]) > 0
        srv.kill()
        boxes, scores = det.detect(img)
        assert boxes.shape == (0, 4) and scores.shape == (0,)  # nobody invented while down
        assert det.runner.errors >= 1 and det.take_error_count() == det.runner.errors  # status line
        assert det.take_error_count() == 0
        srv2 = LocalTritonServer(repo, grpc_port=port, ready_timeout_s=READY_S).start()
        import time
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(det.detect(img)[0]) == 0:
            time.sleep(0.1)
        assert len(det.detect(img)[0]) > 0, "no recovery after the server came back"
    finally:
        det.close()
        srv.close()
        if srv2 is not None:
            srv2.close()


def test_repo_cli_missing_onnx_is_one_line(tmp_path, capsys):
    from engines.detection.triton_repo import main

    assert main(["--onnx", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.onnx" in err and "--onnx" in err and "\n" not in err
