"""What the TensorRT backend prepares before TensorRT is called, checked without TensorRT: the FP16
AutoCast graph (run in ONNX Runtime against FP32), the files and arguments handed to the parser,
cache keys that hash weights, atomic writes, buffer alignment, capability-chosen network flags."""
from __future__ import annotations

import threading
import types

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("modelopt.onnx.autocast", reason="nvidia-modelopt AutoCast not installed (.[test])")

from engines.backends.fp16_autocast import autocast_fp16  # noqa: E402
from engines.backends.onnx_files import (atomic_write, data_file_name,  # noqa: E402
                                         external_data_files, fp16_path, model_digest, model_files,
                                         save_model)
from engines.backends.tensorrt_backend import ENGINE_IO, prepare_skelcf_engine, skelcf_profile  # noqa: E402
from engines.backends.trt_engine import (MIN_TRT, aligned, engine_spec, network_flags,  # noqa: E402
                                         parse_version)
from engines.skelcf.export import (FP16_PARITY_ATOL_Q_RAD, check_fp16_parity,  # noqa: E402
                                   check_tensorrt_ops, export_skelcf)
from engines.skelcf.model import build_skelcf  # noqa: E402
from stream.errors import EngineError  # noqa: E402

H200 = "NVIDIA-H200-sm90"


@pytest.fixture(scope="module")
def tiny_fp16(tmp_path_factory):
    """FP32 export of the tiny variant and its FP16 AutoCast graph (~1 min on 2 cores)."""
    torch.manual_seed(0)
    net = build_skelcf("tiny").eval()
    d = tmp_path_factory.mktemp("fp16")
    fp32 = d / "tiny.onnx"
    export_skelcf(net, fp32, check=False)
    return fp32, autocast_fp16(fp32)


def test_fp16_graph_keeps_fp32_io_and_matches_fp32_in_onnxruntime(tiny_fp16):
    fp32, fp16 = tiny_fp16
    assert fp16 == fp16_path(fp32) and fp16.is_file()
    m = onnx.load(str(fp16))
    f32 = onnx.TensorProto.FLOAT
    assert [v.type.tensor_type.elem_type for v in (*m.graph.input, *m.graph.output)] == [f32] * 5
    inits = {i.data_type for i in m.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in inits  # the weights really are FP16
    check_tensorrt_ops(fp16)  # still TensorRT-buildable (AutoCast adds Cast nodes)
    worst = check_fp16_parity(fp32, fp16, batches=(1, 4, 7), seed=3)
    assert 0 < worst["max_abs_dq_rad"] <= FP16_PARITY_ATOL_Q_RAD
    assert worst["max_abs_dcam"] <= 1e-2 and worst["max_abs_dbetas"] <= 1e-2
    assert autocast_fp16(fp32) == fp16  # reused, not converted again


def test_fp16_parity_check_can_fail(tiny_fp16, tmp_path):
    _, fp16 = tiny_fp16
    other = tmp_path / "other.onnx"
    torch.manual_seed(1)
    export_skelcf(build_skelcf("tiny").eval(), other, check=False)  # different weights
    with pytest.raises(EngineError, match="differs from FP32"):
        check_fp16_parity(other, fp16, batches=(2,))


def test_spec_hands_tensorrt_the_fp16_graph_path(tiny_fp16, tmp_path):
    fp32, fp16 = tiny_fp16
    spec = prepare_skelcf_engine(fp32, tmp_path / "cache", "10.16.0.72", H200, batches=(1, 8, 32))
    assert spec.onnx_path == fp16 and spec.io == ENGINE_IO
    assert spec.profile == {"crops": ((1, 3, 256, 256), (8, 3, 256, 256), (32, 3, 256, 256)),
                            "bbox_info": ((1, 3), (8, 3), (32, 3))}
    assert spec.engine_path.parent == tmp_path / "cache" and spec.engine_path.suffix == ".engine"
    assert H200 in spec.timing_cache_path.name and "trt10.16.0.72" in spec.timing_cache_path.name
    assert model_digest(fp16)[:16] in spec.engine_path.name
    fp32_spec = prepare_skelcf_engine(fp32, tmp_path / "cache", "10.16.0.72", H200, fp16=False)
    assert fp32_spec.onnx_path == fp32 and fp32_spec.engine_path != spec.engine_path
    with pytest.raises(EngineError, match="does not exist"):
        prepare_skelcf_engine(tmp_path / "missing.onnx", tmp_path, "11.1.0", H200)
    with pytest.raises(EngineError, match="min <= opt <= max"):
        skelcf_profile((4, 2, 8))


def test_engine_key_changes_with_every_component(tiny_fp16, tmp_path):
    fp32, _ = tiny_fp16
    prof = skelcf_profile((1, 8, 32))
    spec = engine_spec(fp32, tmp_path, "10.16.0", H200, prof)
    assert spec.engine_path == engine_spec(fp32, tmp_path, "10.16.0", H200, prof).engine_path
    others = [engine_spec(fp32, tmp_path, "11.1.0", H200, prof),
              engine_spec(fp32, tmp_path, "10.16.0", "NVIDIA-H100-sm90", prof),
              engine_spec(fp32, tmp_path, "10.16.0", "NVIDIA-H200-sm89", prof),
              engine_spec(fp32, tmp_path, "10.16.0", H200, skelcf_profile((1, 8, 16))),
              engine_spec(fp32, tmp_path, "10.16.0", H200, skelcf_profile((2, 8, 32)))]
    assert len({spec.engine_path, *(o.engine_path for o in others)}) == 6
    # the timing cache follows TensorRT version and GPU (name + capability), not the model
    assert others[0].timing_cache_path != spec.timing_cache_path
    assert others[1].timing_cache_path != spec.timing_cache_path
    assert others[2].timing_cache_path != spec.timing_cache_path
    assert others[3].timing_cache_path == spec.timing_cache_path
    assert " " not in spec.engine_path.name and "/" not in spec.engine_path.name


def test_external_data_weights_are_hashed_and_never_shared(tiny_fp16, tmp_path):
    """Two checkpoints of one architecture: byte-identical .onnx files (the weights live in the
    data file), different digests; two models in one folder each keep their own data file."""
    fp32, _ = tiny_fp16

    def checkpoint(bump: float):
        m = onnx.load(str(fp32))
        big = max(m.graph.initializer, key=lambda t: len(t.raw_data))
        arr = onnx.numpy_helper.to_array(big).copy()
        arr.flat[0] += bump
        big.CopyFrom(onnx.numpy_helper.from_array(arr, big.name))
        return m
    a = save_model(checkpoint(0.0), tmp_path / "ck1" / "model.onnx", external=True)
    b = save_model(checkpoint(1.0), tmp_path / "ck2" / "model.onnx", external=True)
    assert a.read_bytes() == b.read_bytes()  # what the old key hashed: identical
    assert model_digest(a) != model_digest(b)
    assert external_data_files(a) == [a.parent / data_file_name(a)]
    one = tmp_path / "one"
    save_model(checkpoint(0.0), one / "a.onnx", external=True)
    save_model(checkpoint(1.0), one / "b.onnx", external=True)
    assert sorted(p.name for p in one.iterdir()) == ["a.onnx", "a.onnx.data", "b.onnx", "b.onnx.data"]
    (one / "b.onnx.data").unlink()
    with pytest.raises(EngineError, match="b.onnx.data is missing"):
        model_files(one / "b.onnx")


def test_atomic_write_uses_unique_temps(tmp_path):
    target = tmp_path / "timing.cache"
    payloads = [bytes([i]) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write, args=(target, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in payloads  # one whole payload, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["timing.cache"]  # no temp left behind


def test_misaligned_slices_are_copied_to_aligned_buffers():
    buf = torch.empty(64 * 3 + 64)
    start = (-buf.data_ptr() % 256) // 4
    info = buf[start:start + 64 * 3].view(64, 3).copy_(torch.arange(64 * 3.0).view(64, 3))
    assert info.data_ptr() % 256 == 0  # like a fresh CUDA allocation
    tail = info[32:]  # 32 * 3 * 4 = 384 bytes in: what chunking a batch of 33+ hands over
    assert tail.data_ptr() % 256 == 128
    out = aligned(tail)
    assert out.data_ptr() % 256 == 0 and torch.equal(out, tail) and out.shape == (32, 3)
    assert aligned(info).data_ptr() == info.data_ptr()  # no copy when already aligned


def test_network_flags_follow_the_binding():
    """STRONGLY_TYPED is enum value 1 in TensorRT 10.x and 0 in 11.x (NvInfer.h): the shift uses the
    binding's own value while the attribute exists, and 0 once it is gone."""
    def binding(**flags):
        return types.SimpleNamespace(NetworkDefinitionCreationFlag=types.SimpleNamespace(**flags))
    assert network_flags(binding(STRONGLY_TYPED=1)) == 2  # 10.x
    assert network_flags(binding(STRONGLY_TYPED=0)) == 1  # 11.x (deprecated, ignored)
    assert network_flags(binding()) == 0  # a release without the flag: always strongly typed
    assert parse_version("10.16.0.72") == (10, 16) and parse_version("11.1.0") == (11, 1)
    assert parse_version("10.11.0") < MIN_TRT <= parse_version("10.12.0.36")


def test_onnxruntime_runs_the_fp16_graph_at_any_batch(tiny_fp16):
    import onnxruntime as ort
    _, fp16 = tiny_fp16
    sess = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"])
    for b in (1, 3):
        out = sess.run(None, {"crops": np.zeros((b, 3, 256, 256), np.float32),
                              "bbox_info": np.tile(np.float32([[0, 0, 0.5]]), (b, 1))})
        assert [o.shape for o in out] == [(b, 46), (b, 10), (b, 3)]
        assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in out)
