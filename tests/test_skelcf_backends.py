"""SKEL-CF inference backends on CPU: one interface, torch vs onnxruntime agreement, 'auto',
chunking, and the errors a user sees when a backend is unavailable."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxruntime")

from engines.backends import create_backend, fastest_cpu_backend, has_tensorrt  # noqa: E402
from engines.backends.ort_backend import OrtBackend  # noqa: E402
from engines.backends.torch_backend import TorchBackend  # noqa: E402
from engines.skelcf.export import export_skelcf  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402
from stream.errors import DependencyError, EngineError  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    net = build_skelcf("tiny").eval()
    path = tmp_path_factory.mktemp("be") / "tiny.onnx"
    export_skelcf(net, path, check=False)
    return net, path


def _inputs(b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    crops = torch.randn(b, 3, 256, 256, generator=g)
    info = torch.cat([torch.rand(b, 2, generator=g) - 0.5, 0.2 + 0.8 * torch.rand(b, 1, generator=g)], 1)
    return crops, info


def test_torch_cpu_and_onnxruntime_cpu_agree(tiny):
    net, path = tiny
    crops, info = _inputs(5)
    with TorchBackend(net, device="cpu") as tb, OrtBackend(path, device="cpu") as ob:
        assert (tb.name, ob.name) == ("torch-cpu", "onnxruntime-cpu")
        a, b = tb.infer(crops, info), ob.infer(crops, info)
    for x, y, n in zip(a, b, (46, 10, 3)):
        assert x.shape == y.shape == (5, n) and x.dtype == y.dtype == torch.float32
        assert float((x - y).abs().max()) < 1e-4
    ref = net.forward_export(crops, info)[0]
    assert float((a[0] - ref).abs().max()) == 0.0


def test_batches_above_max_batch_are_chunked(tiny):
    net, path = tiny
    crops, info = _inputs(7, seed=1)
    ob = OrtBackend(path, device="cpu", max_batch=3)
    q = ob.infer(crops, info)[0]
    tb = TorchBackend(net, device="cpu", buckets=(1, 2))
    q2 = tb.infer(crops, info)[0]
    assert q.shape == q2.shape == (7, 46)
    assert float((q - q2).abs().max()) < 1e-4
    # rows are independent: row 6 alone gives the same answer as inside the chunked batch
    assert float((ob.infer(crops[6:], info[6:])[0][0] - q[6]).abs().max()) < 1e-5


def test_create_backend_by_name_and_auto(tiny):
    net, path = tiny
    assert create_backend("torch", lambda: net, device="cpu").name == "torch-cpu"
    assert create_backend("onnxruntime", lambda: net, lambda: path, device="cpu").name == "onnxruntime-cpu"
    auto = fastest_cpu_backend(lambda: net, lambda: path)
    assert auto.name in ("torch-cpu", "onnxruntime-cpu") and auto.measured_s_per_crop > 0
    assert create_backend("auto", lambda: net, None, device="cpu").name == "torch-cpu"


def test_unavailable_backends_say_what_to_install(tiny, tmp_path):
    net, path = tiny
    with pytest.raises(EngineError, match="unknown"):
        create_backend("openvino", lambda: net)
    with pytest.raises(EngineError, match="does not exist"):
        OrtBackend(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EngineError, match="cannot load"):
        OrtBackend(bad)
    if not has_tensorrt():
        with pytest.raises(DependencyError, match="tensorrt"):
            create_backend("tensorrt", lambda: net, lambda: path, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DependencyError, match="CUDA"):
            create_backend("torch", lambda: net, device="cuda")
        with pytest.raises(DependencyError, match="CUDA"):
            TorchBackend(net, device="cuda")


@pytest.mark.skipif(has_tensorrt(), reason="TensorRT present: tested in test_skelcf_backends_gpu.py")
def test_tensorrt_backend_skips_cleanly_without_tensorrt(tiny, tmp_path):
    from engines.backends.tensorrt_backend import TensorRTBackend
    _, path = tiny
    with pytest.raises(DependencyError, match="pip install"):
        TensorRTBackend(path, cache_dir=tmp_path)


def test_auto_falls_back_with_one_warning_on_any_build_error(tiny, caplog):
    """Not only DependencyError: a TensorRT build can fail with AttributeError (a removed flag),
    RuntimeError (the parser) or EngineError; `auto` keeps running on the next backend."""
    from engines.backends.fallback import with_fallback
    net, _ = tiny
    failures = [lambda: create_backend("tensorrt", lambda: net, None, device="cpu"),  # EngineError
                lambda: torch.zeros(2) @ torch.zeros(3),  # RuntimeError
                lambda: torch.nn.Linear(2, 2).no_such_flag]  # AttributeError
    for fail in failures:
        caplog.clear()
        with caplog.at_level("WARNING"):
            be = with_fallback(fail, lambda: TorchBackend(net, device="cpu"), "the TensorRT engine",
                               "torch")
        assert be.name == "torch-cpu"
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "using torch instead" in warnings[0].getMessage()
    with pytest.raises(KeyboardInterrupt):  # only errors fall back, never an interrupt
        with_fallback(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), lambda: None, "x", "y")
