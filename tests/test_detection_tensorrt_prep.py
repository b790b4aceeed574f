"""What the TensorRT detector runner prepares before TensorRT is called, checked without TensorRT:
a real batch range in the optimisation profile (batch 1 inside it), the FP16 AutoCast graph of the
detector written to the cache (read-only model folders work) and handed over by path."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("modelopt.onnx.autocast", reason="nvidia-modelopt AutoCast not installed (.[test])")

from engines.detection.runners import detector_profile, onnx_input, prepare_detector_engine  # noqa: E402
from stream.errors import EngineError  # noqa: E402


def test_profile_has_batch_one_inside_a_real_range():
    prof = detector_profile("images", (-1, 3, -1, -1), max_batch=4, default_hw=640)
    assert prof == {"images": ((1, 3, 640, 640), (1, 3, 640, 640), (4, 3, 640, 640))}
    assert detector_profile("x", (1, 3, 320, 480))["x"] == ((1, 3, 320, 480),) * 3
    assert detector_profile("x", (-1, 3, 320, 320), max_batch=8)["x"][2] == (8, 3, 320, 320)
    with pytest.raises(EngineError, match="batch, 3, h, w"):
        detector_profile("x", (3, 320, 320))


@pytest.fixture(scope="module")
def yolo_onnx(tmp_path_factory):
    from engines.detection.yolo_like import YoloLike
    torch.manual_seed(3)
    model = YoloLike().eval()
    path = tmp_path_factory.mktemp("det") / "yl.onnx"
    x = torch.rand(1, 3, 160, 160)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["images"], output_names=["output0"],
                          dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
                          opset_version=17, dynamo=False)
    return model, path


def test_fp16_detector_graph_goes_to_the_cache_and_is_handed_over(yolo_onnx, tmp_path):
    import onnxruntime as ort
    model, path = yolo_onnx
    assert onnx_input(path) == ("images", (-1, 3, 160, 160))
    spec = prepare_detector_engine(path, tmp_path / "cache", "10.16.0", "NVIDIA-L4-sm89", fp16=True)
    assert spec.onnx_path.parent == tmp_path / "cache" and spec.onnx_path.name.endswith(".fp16.onnx")
    assert spec.profile == {"images": ((1, 3, 160, 160), (1, 3, 160, 160), (4, 3, 160, 160))}
    assert "NVIDIA-L4-sm89" in spec.timing_cache_path.name
    x = np.random.default_rng(0).random((2, 3, 160, 160), dtype=np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    got = ort.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    assert got.dtype == np.float32 and got.shape == ref.shape
    scale = float(np.abs(ref).max())
    assert float(np.abs(got - ref).max()) <= 1e-2 * max(1.0, scale)
    fp32 = prepare_detector_engine(path, tmp_path / "cache", "10.16.0", "NVIDIA-L4-sm89", fp16=False)
    assert fp32.onnx_path == path and fp32.engine_path != spec.engine_path
