"""GPU checks of the SKEL-CF backends and preprocessing (run through bench/gpu_checks.sh on a lent
GPU; skipped without CUDA)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.backends.torch_backend import TorchBackend
from engines.skelcf.model import build_skelcf
from engines.skelcf.preprocess import CropPreprocessor

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _inputs(b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    crops = torch.randn(b, 3, 256, 256, generator=g)
    info = torch.cat([torch.rand(b, 2, generator=g) - 0.5, 0.2 + 0.8 * torch.rand(b, 1, generator=g)], 1)
    return crops, info


@pytest.mark.parametrize("variant", ["tiny", "vit_b", "vit_h"])
def test_fp16_cuda_graphs_agree_with_fp32_cpu(variant):
    torch.manual_seed(0)
    net = build_skelcf(variant).eval()
    crops, info = _inputs(3)
    with torch.no_grad():
        ref = [t.double() for t in net.forward_export(crops, info)]
    gpu = TorchBackend(net, device="cuda", fp16=True, cuda_graphs=True)
    out = gpu.infer(crops.cuda().half(), info.cuda())
    q, betas, cam = [t.double().cpu() for t in out]
    assert q.shape == (3, 46) and q.dtype == torch.float64
    dq = (q - ref[0]).abs()
    # wrap-around of +-pi angles is not an error of the network
    dq = torch.minimum(dq, 2 * torch.pi - dq)
    print(f"{variant}: FP16 vs FP32 max|dq|={dq.max():.2e} rad median={dq.median():.2e} "
          f"max|dbetas|={(betas - ref[1]).abs().max():.2e} max|dcam|={(cam - ref[2]).abs().max():.2e}")
    assert float(dq.median()) < 5e-3
    assert float(dq.max()) < 5e-2
    assert float((cam - ref[2]).abs().max()) < 2e-2


def test_cuda_graph_buckets_match_eager_and_pad_correctly():
    torch.manual_seed(1)
    net = build_skelcf("tiny").eval()
    g = TorchBackend(net, device="cuda", fp16=True, cuda_graphs=True)
    e = TorchBackend(net, device="cuda", fp16=True, cuda_graphs=False)
    for b in (1, 3, 5, 33):  # 3 -> bucket 4, 5 -> 8, 33 -> 32 + 1 (chunked)
        crops, info = _inputs(b, seed=b)
        crops, info = crops.cuda().half(), info.cuda()
        qg = g.infer(crops, info)[0]
        qe = e.infer(crops, info)[0]
        assert qg.shape == (b, 46)
        torch.testing.assert_close(qg, qe, atol=2e-3, rtol=0)
    # replay outputs are copies: a later call must not change an earlier result
    crops, info = _inputs(2, seed=9)
    first = g.infer(crops.cuda().half(), info.cuda())[0]
    keep = first.clone()
    g.infer(torch.zeros_like(crops).cuda().half(), info.cuda())
    assert torch.equal(first, keep)


def test_gpu_crops_match_cpu_crops():
    from conftest import GOLDEN
    d = np.load(GOLDEN / "crop_preprocessing.npz")
    bgr = np.ascontiguousarray(d["image_rgb_uint8"][:, :, ::-1])
    cpu, info_c = CropPreprocessor("cpu")(bgr, d["boxes_xyxy"], 600.0)
    gpu, info_g = CropPreprocessor("cuda", torch.float32)(bgr, d["boxes_xyxy"], 600.0)
    assert gpu.is_cuda
    assert float((gpu.cpu() - cpu).abs().max()) < 1e-3
    assert float(np.abs(gpu.cpu().numpy() - d["crops"]).max()) < 0.075
    torch.testing.assert_close(info_g.cpu(), info_c)


def test_ort_cuda_matches_torch_when_available(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA execution provider here (install onnxruntime-gpu)")
    from engines.backends.ort_backend import OrtBackend
    from engines.skelcf.export import export_skelcf
    torch.manual_seed(2)
    net = build_skelcf("tiny").eval()
    export_skelcf(net, tmp_path / "t.onnx")
    crops, info = _inputs(4)
    ref = net.forward_export(crops, info)[0]
    q = OrtBackend(tmp_path / "t.onnx", device="cuda").infer(crops.cuda(), info.cuda())[0]
    assert float((q.cpu() - ref).abs().max()) < 1e-3


def test_tensorrt_fp16_matches_torch(tmp_path, caplog):
    """The strongly typed FP16 engine (AutoCast graph) against PyTorch FP32, at batch 40 (chunks of
    32 + 8: the second bbox_info slice is not 256-byte aligned), then the cache: a hit, a corrupt
    plan rebuilt with a warning, a foreign timing cache replaced."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install -e '.[gpu]')")
    pytest.importorskip("modelopt.onnx.autocast", reason="nvidia-modelopt is not installed")
    from engines.backends.tensorrt_backend import TensorRTBackend
    from engines.skelcf.export import export_skelcf
    torch.manual_seed(3)
    net = build_skelcf("tiny").eval()
    export_skelcf(net, tmp_path / "t.onnx")
    crops, info = _inputs(40)
    with torch.no_grad():
        ref = net.forward_export(crops, info)[0]
    cache = tmp_path / "cache"
    be = TensorRTBackend(tmp_path / "t.onnx", cache_dir=cache)
    q = be.infer(crops.cuda(), info.cuda())[0]
    assert q.shape == (40, 46) and float((q.cpu() - ref).abs().max()) < 5e-2
    engines = list(cache.glob("*.engine"))
    timing = list(cache.glob("timing-*.cache"))
    assert len(engines) == 1 and len(timing) == 1
    mtime = engines[0].stat().st_mtime_ns
    TensorRTBackend(tmp_path / "t.onnx", cache_dir=cache)  # cache hit: no rebuild
    assert engines[0].stat().st_mtime_ns == mtime
    engines[0].write_bytes(b"not a plan")
    timing[0].write_bytes(b"timing data of another GPU")
    with caplog.at_level("WARNING"):
        be2 = TensorRTBackend(tmp_path / "t.onnx", cache_dir=cache)
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    q2 = be2.infer(crops.cuda(), info.cuda())[0]
    assert float((q2.cpu() - ref).abs().max()) < 5e-2
    assert timing[0].stat().st_size > 100  # a real timing cache again


def test_engine_on_cuda_matches_cpu(tmp_path):
    """SkelCFEngine end to end on the GPU (FP16 torch backend, GPU crops) vs the CPU engine."""
    from engines.skelcf.checkpoint import make_manifest_checkpoint
    from engines.skelcf.config import SkelCFConfig
    from engines.skelcf.engine import SkelCFEngine
    from stream.packet import Intrinsics, Person, TrackState

    ck = make_manifest_checkpoint("vit_b", tmp_path / "best.pth", seed=4)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    boxes = np.array([[100, 50, 400, 650], [900, 300, 1300, 760], [600, 200, 700, 300]], np.float32)
    k = Intrinsics(fx=900.0, fy=900.0, cx=640, cy=360, source="user")
    res = {}
    for dev in ("cpu", "cuda"):
        cfg = SkelCFConfig(checkpoint=str(ck), variant="vit_b", device=dev, backend="torch",
                           cache_dir=str(tmp_path / "c"))
        eng = SkelCFEngine(cfg)
        ps = [Person(track_id=i, track_state=TrackState.TRACKED, box_xyxy=b, score=1.0)
              for i, b in enumerate(boxes)]
        timings = [eng.estimate(img, ps, k, "s") for _ in range(3)][-1]
        print(dev, eng.backend.name, {n: round(v / 1e6, 2) for n, v in timings.items()}, "ms")
        res[dev] = ps
    for a, b in zip(res["cpu"], res["cuda"]):
        dq = np.abs(a.q - b.q)
        dq = np.minimum(dq, 2 * np.pi - dq)
        assert dq.max() < 2e-2, dq.max()
        assert np.abs(a.trans_m - b.trans_m).max() < 2e-2 * max(1.0, np.abs(a.trans_m).max())
