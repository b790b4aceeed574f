"""engines.skelcf.triton_repo: the written repository loads where it can here. The ONNX models run
in ONNX Runtime (uint8 in, same q as PyTorch on the normalised crops) and every config.pbtxt
parses as tritonclient's ModelConfig protobuf with the batching and instance settings asked for."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")

from google.protobuf import text_format  # noqa: E402

from engines.skelcf.checkpoint import load_skelcf, make_manifest_checkpoint  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402
from engines.skelcf.preprocess import normalize_uint8  # noqa: E402
from engines.skelcf.triton_repo import write_repository  # noqa: E402
from tests.test_sinks_proxy import REPO  # noqa: E402


def parse(path) -> "pb.ModelConfig":
    return text_format.Parse(path.read_text(), pb.ModelConfig())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    ckpt = make_manifest_checkpoint("tiny", root / "best.pth", seed=5, flnet_width=4)
    out = root / "model_repository"
    r = subprocess.run([sys.executable, "-m", "engines.skelcf.triton_repo", "--checkpoint",
                        str(ckpt), "--variant", "tiny", "--out", str(out), "--backends",
                        "tensorrt,onnxruntime,python", "--preferred-batch", "4,8",
                        "--max-queue-delay-us", "1500", "--instances", "2"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out, ckpt


def test_every_config_parses_with_the_settings_asked_for(written):
    out, _ = written
    cfgs = {p.parent.name: parse(p) for p in out.glob("*/config.pbtxt")}
    assert set(cfgs) == {"skelcf_trt", "skelcf_onnx", "skelcf_py", "flnet"}
    assert cfgs["skelcf_trt"].platform == "tensorrt_plan"
    assert cfgs["skelcf_onnx"].platform == "onnxruntime_onnx"
    assert cfgs["skelcf_py"].backend == "python"
    for name in ("skelcf_trt", "skelcf_onnx", "skelcf_py"):
        c = cfgs[name]
        assert c.name == name and c.max_batch_size == 32
        assert [(i.name, i.data_type, list(i.dims)) for i in c.input] == [
            ("crops", pb.TYPE_UINT8, [3, 256, 192]), ("bbox_info", pb.TYPE_FP32, [3])]
        assert [(o.name, list(o.dims)) for o in c.output] == [("q", [46]), ("betas", [10]), ("cam", [3])]
        assert list(c.dynamic_batching.preferred_batch_size) == [4, 8]
        assert c.dynamic_batching.max_queue_delay_microseconds == 1500
        assert c.instance_group[0].count == 2
        assert c.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    acc = cfgs["skelcf_onnx"].optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"
    script = (out / "skelcf_trt" / "build_plan.sh").read_text()
    assert "--fp16" in script and "--maxShapes=crops:32x3x256x192,bbox_info:32x3" in script
    assert list(cfgs["flnet"].input[0].dims) == [3, 256, 256]


def test_onnx_models_run_in_onnxruntime_with_uint8_crops(written):
    import onnxruntime as ort

    out, ckpt = written
    net = build_skelcf("tiny")
    load_skelcf(net, ckpt)
    g = torch.Generator().manual_seed(2)
    crops = torch.randint(0, 256, (3, 3, 256, 192), generator=g, dtype=torch.uint8)
    info = torch.tensor([[0.1, -0.1, 0.5], [0.0, 0.2, 0.8], [-0.3, 0.0, 0.3]])
    with torch.no_grad():
        ref = net.eval().forward_export(normalize_uint8(crops), info)[0].numpy()
    for path in (out / "skelcf_onnx" / "1" / "model.onnx", out / "skelcf_trt" / "model.onnx"):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [(i.name, i.type) for i in sess.get_inputs()] == [
            ("crops", "tensor(uint8)"), ("bbox_info", "tensor(float)")]
        q = sess.run(["q"], {"crops": crops.numpy(), "bbox_info": info.numpy()})[0]
        assert q.shape == (3, 46) and float(np.abs(q - ref).max()) <= 1e-4
    fl = ort.InferenceSession(str(out / "flnet" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert fl.run(None, {"image": np.zeros((2, 3, 256, 256), np.float32)})[0].shape == (2, 2)
    assert (out / "skelcf_py" / "1" / "model.py").is_file()


def test_python_backend_without_checkpoint_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "engines.skelcf.triton_repo", "--variant", "tiny",
                        "--out", str(tmp_path / "r"), "--backends", "python", "--no-flnet"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("error:") and r.stderr.count("\n") == 1
