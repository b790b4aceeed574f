"""YOLO-family decoding, letterbox, NMS and backends, against ONNX graphs with known outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engines.detection.config import DetectorConfig
from engines.detection.detectors import YoloDetector, build_detector
from engines.detection.postprocess import letterbox, nms, sanitize_detections
from stream.errors import EngineError


def constant_model(path: Path, output: np.ndarray, size: int = 640, fp16_input: bool = False) -> Path:
    """An ONNX graph that ignores its image input and returns `output` (plus 0 * mean(image), so
    the input is really consumed by the runtime)."""
    in_type = TensorProto.FLOAT16 if fp16_input else TensorProto.FLOAT
    img = helper.make_tensor_value_info("images", in_type, [1, 3, size, size])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(output.astype(np.float32))),
        helper.make_node("Cast", ["images"], ["img32"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["img32"], ["m"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.float32))),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["c", "z"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "const", [img], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def raw_output(boxes_cxcywh: list, class_scores: list[dict[int, float]], nc: int = 80, n: int = 200) -> np.ndarray:
    out = np.zeros((1, 4 + nc, n), np.float32)
    out[0, :4, :] = np.array([[10], [10], [4], [4]])   # background anchors, score 0
    for i, (b, sc) in enumerate(zip(boxes_cxcywh, class_scores)):
        out[0, :4, i] = b
        for c, s in sc.items():
            out[0, 4 + c, i] = s
    return out


def detect_with(tmp_path, output, image_hw=(480, 640), **cfg):
    path = constant_model(tmp_path / "m.onnx", output)
    det = YoloDetector(DetectorConfig(kind="yolo", model_path=path, **cfg))
    det.open()
    return det.detect(np.zeros((*image_hw, 3), np.uint8))


def test_raw_layout_decodes_filters_class_and_nms(tmp_path):
    # 640x480 image -> 640x640 input: ratio 1, 80 px of padding on top
    out = raw_output(
        [(320, 320, 100, 200), (322, 321, 100, 200),   # duplicate person: NMS keeps the stronger
         (100, 200, 50, 100),                          # second person
         (500, 300, 80, 80),                           # a car (class 2): filtered out
         (400, 400, 60, 120)],                         # person below the threshold
        [{0: 0.9}, {0: 0.8}, {0: 0.7}, {2: 0.95, 0: 0.05}, {0: 0.2}])
    boxes, scores = detect_with(tmp_path, out)
    order = np.argsort(-scores)
    np.testing.assert_allclose(scores[order], [0.9, 0.7], atol=1e-6)
    np.testing.assert_allclose(boxes[order], [[270, 140, 370, 340], [75, 70, 125, 170]], atol=1e-3)


def test_fp16_input_model(tmp_path):
    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0] = [100, 180, 200, 380, 0.95, 0]
    path = constant_model(tmp_path / "m16.onnx", out, fp16_input=True)
    det = YoloDetector(DetectorConfig(kind="yolo", model_path=path))
    det.open()
    boxes, scores = det.detect(np.zeros((480, 640, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[100, 100, 200, 300]], atol=1e-3)


def test_end_to_end_layout(tmp_path):
    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0] = [100, 180, 200, 380, 0.95, 0]
    out[0, 1] = [300, 180, 400, 380, 0.9, 1]     # not a person
    out[0, 2] = [500, 100, 600, 300, 0.1, 0]     # below threshold
    boxes, scores = detect_with(tmp_path, out)
    np.testing.assert_allclose(boxes, [[100, 100, 200, 300]], atol=1e-3)
    np.testing.assert_allclose(scores, [0.95], atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 100, 7), (2, 84, 8400), (84, 8400), (1, 3, 10)])
def test_unexpected_layout_names_the_shape(tmp_path, shape):
    with pytest.raises(EngineError) as ei:
        detect_with(tmp_path, np.zeros(shape, np.float32))
    assert str(list(shape)) in str(ei.value) and "[1, N, 6]" in str(ei.value)


def test_class_id_beyond_the_model(tmp_path):
    with pytest.raises(EngineError, match="person_class_ids"):
        detect_with(tmp_path, np.zeros((1, 5, 50), np.float32), person_class_ids=(3,))


def test_missing_model_file(tmp_path):
    det = build_detector(DetectorConfig(kind="yolo", model_path=tmp_path / "nope.onnx"))
    with pytest.raises(EngineError, match="not found"):
        det.open()


def test_yolo_config_needs_a_file():
    with pytest.raises(ValueError, match="model_path"):
        DetectorConfig(kind="yolo")


def test_letterbox_maps_back():
    img = np.zeros((480, 640, 3), np.uint8)
    img[100:200, 300:340] = 255
    blob, lb = letterbox(img, (320, 320))
    assert blob.shape == (1, 3, 320, 320) and blob.dtype == np.float32
    ys, xs = np.nonzero(blob[0, 0] > 0.9)
    back = lb.to_image(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32))
    np.testing.assert_allclose(back[0], [300, 100, 340, 200], atol=2.5)
    assert abs(blob[0, 0, 0, 0] - 114 / 255) < 1e-6   # padding grey


def greedy_nms_reference(boxes, scores, thr, classes=None):
    """Textbook greedy NMS, written out plainly (the reference for the fast one)."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = []
        for j in order:
            if classes is not None and classes[i] != classes[j]:
                rest.append(j)
                continue
            iw = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            ih = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = iw * ih
            union = np.prod(boxes[i, 2:] - boxes[i, :2]) + np.prod(boxes[j, 2:] - boxes[j, :2]) - inter
            if inter / union <= thr:
                rest.append(j)
        order = rest
    return keep


@pytest.mark.parametrize("with_classes", [False, True])
def test_nms_agrees_with_reference(with_classes):
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy = rng.uniform(0, 300, (60, 2))
        wh = rng.uniform(20, 120, (60, 2))
        boxes = np.hstack([xy, xy + wh]).astype(np.float32)
        scores = rng.uniform(0, 1, 60).astype(np.float32)
        classes = rng.integers(0, 2, 60) if with_classes else None
        ours = nms(boxes, scores, 0.5, classes)
        ref = greedy_nms_reference(boxes.astype(np.float64), scores, 0.5, classes)
        assert ours.tolist() == ref


def test_sanitize_bad_boxes_and_cap():
    b = np.array([[np.nan, 0, 10, 10],           # NaN
                  [50, 50, 50, 90],               # zero width
                  [-100, -100, -50, -50],         # outside the frame
                  [600, 400, 800, 600],           # partly outside: clipped
                  [10, 10, 60, 120]], np.float32)
    s = np.array([0.9, 0.9, 0.9, 0.8, 0.7], np.float32)
    boxes, scores = sanitize_detections(b, s, 640, 480)
    np.testing.assert_allclose(boxes, [[600, 400, 640, 480], [10, 10, 60, 120]])
    many = np.tile(np.array([[10, 10, 60, 120]], np.float32), (5000, 1))
    with pytest.warns(RuntimeWarning, match="5000 detections"):
        boxes, scores = sanitize_detections(many, np.linspace(0, 1, 5000), 640, 480, max_detections=300)
    assert len(boxes) == 300 and scores.min() > 0.9
    with pytest.raises(EngineError, match="one score per box"):
        sanitize_detections(b, s[:2], 640, 480)


def test_empty_frame_gives_no_detections(tmp_path):
    out = raw_output([(320, 320, 100, 200)], [{0: 0.9}])
    path = constant_model(tmp_path / "m.onnx", out)
    det = YoloDetector(DetectorConfig(kind="yolo", model_path=path))
    det.open()
    boxes, scores = det.detect(np.zeros((0, 0, 3), np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_yolo_like_torch_and_onnxruntime_agree(tmp_path):
    torch = pytest.importorskip("torch")
    from engines.detection.runners import OrtRunner, TorchRunner
    from engines.detection.yolo_like import YoloLike, export_onnx
    path = export_onnx(tmp_path / "yl.onnx", size_px=160, seed=3)
    torch.manual_seed(3)
    model = YoloLike().eval()
    x = np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)
    y_ort = OrtRunner(path)(x)
    y_torch = TorchRunner(model, "cpu")(x)
    assert y_ort.shape == (1, 84, 10 * 10 + 5 * 5 + 20 * 20)
    np.testing.assert_allclose(y_ort, y_torch, rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_torchscript_file_on_the_torch_backend(tmp_path):
    torch = pytest.importorskip("torch")
    from engines.detection.yolo_like import YoloLike
    torch.manual_seed(3)
    model = YoloLike().eval()
    x = np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)
    ts_path = tmp_path / "yl.ts"
    torch.jit.trace(model, torch.from_numpy(x)).save(str(ts_path))
    det = YoloDetector(DetectorConfig(kind="yolo", model_path=ts_path, backend="torch", input_size_px=160,
                                      score_threshold=0.5))
    det.open()
    boxes, scores = det.detect(np.full((120, 160, 3), 128, np.uint8))
    assert boxes.shape[1] == 4 and len(boxes) == len(scores)


def test_tensorrt_backend_missing_is_a_dependency_error(tmp_path):
    from stream.errors import DependencyError
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    path = constant_model(tmp_path / "m.onnx", np.zeros((1, 300, 6), np.float32))
    det = YoloDetector(DetectorConfig(kind="yolo", model_path=path, backend="tensorrt"))
    with pytest.raises(DependencyError, match="tensorrt"):
        det.open()
