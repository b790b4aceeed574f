"""SKEL-CF on a GPU: torch FP16 backend (CUDA graphs per batch bucket) or the TensorRT FP16 engine
(--backend tensorrt), ViT-H, random weights.

Reports throughput at batch 1, 4, 8, 16, 32, batch-1 latency p50/p99 (host wall time per call,
input copy and output read-back included), the measured FP16 matrix rate of this GPU, FLOPs per crop
(counted by torch's FlopCounterMode on the real graph) and measured time / floor, where
floor = FLOPs per crop / measured matmul rate. Also times batched GPU crop preprocessing.

    .venv/bin/python bench/bench_skelcf_gpu.py [--variant vit_h] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.backends.torch_backend import TorchBackend  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402
from engines.skelcf.preprocess import CropPreprocessor  # noqa: E402


def matmul_rate_flops(n: int = 8192, iters: int = 20) -> float:
    """Measured dense FP16 matmul rate (FLOP/s) on random data, the floor's denominator."""
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n ** 3 * iters / (start.elapsed_time(end) / 1e3)


def flops_per_crop(net, batch: int = 8) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    crops = torch.randn(batch, 3, 256, 256, device="cuda", dtype=torch.float16)
    info = torch.tensor([[0.0, 0.0, 0.5]] * batch, device="cuda", dtype=torch.float16)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        net.forward_export(crops, info)
    return fc.get_total_flops() / batch


def throughput(backend: TorchBackend, batch: int, seconds: float = 2.0) -> dict:
    """Crops/s with device-resident inputs, calls back to back (GPU-bound), events for timing."""
    crops = torch.randn(batch, 3, 256, 256, device="cuda", dtype=backend.input_dtype)
    info = torch.tensor([[0.0, 0.0, 0.5]] * batch, device="cuda")
    for _ in range(3):
        backend.infer(crops, info)
    torch.cuda.synchronize()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(5):
            backend.infer(crops, info)
        n += 5
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"batch": batch, "calls": n, "ms_per_call": 1e3 * dt / n, "crops_per_s": batch * n / dt}


def latency_b1(backend: TorchBackend, n: int = 300) -> dict:
    """Batch-1 latency per call: host crop tensor in, q on the host out (what a frame pays)."""
    crops_h = torch.randn(1, 3, 256, 256, dtype=backend.input_dtype).pin_memory()
    info_h = torch.tensor([[0.0, 0.0, 0.5]]).pin_memory()
    ts = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        q, _, _ = backend.infer(crops_h.to("cuda", non_blocking=True), info_h.to("cuda", non_blocking=True))
        q.cpu()
        if i >= 20:
            ts.append(time.perf_counter() - t0)
    ts = np.array(ts) * 1e3
    return {"p50_ms": float(np.percentile(ts, 50)), "p99_ms": float(np.percentile(ts, 99)),
            "mean_ms": float(ts.mean())}


def preprocess_time(n_boxes: int = 8, n: int = 100) -> dict:
    """1920x1080 BGR host frame -> n_boxes normalized FP16 crops on the GPU (upload included)."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    xy = rng.uniform(0, 1600, (n_boxes, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(100, 500, (n_boxes, 1))], axis=1)
    pre = CropPreprocessor("cuda", torch.float16)
    ts = []
    for i in range(n + 10):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        pre(frame, boxes, 1000.0)
        torch.cuda.synchronize()
        if i >= 10:
            ts.append(time.perf_counter() - t0)
    ts = np.array(ts) * 1e3
    return {"boxes": n_boxes, "p50_ms": float(np.percentile(ts, 50)), "p99_ms": float(np.percentile(ts, 99))}


def tensorrt_backend(variant: str, cache_dir: str, res: dict):
    """Export (random weights, seed 0), AutoCast to FP16 and build the TensorRT engine; the time of
    each step goes into `res` (a second run reuses all three from the cache)."""
    from engines.backends.tensorrt_backend import TensorRTBackend
    from engines.skelcf.export import export_skelcf
    onnx_path = Path(cache_dir) / f"skelcf-{variant}-seed0.onnx"
    t0 = time.perf_counter()
    if not onnx_path.is_file():
        torch.manual_seed(0)
        export_skelcf(build_skelcf(variant).eval(), onnx_path, check=False)
    res["export_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    backend = TensorRTBackend(onnx_path, cache_dir=cache_dir)
    res["autocast_and_build_s"] = time.perf_counter() - t0
    import tensorrt
    res["tensorrt"] = tensorrt.__version__
    return backend


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="vit_h")
    p.add_argument("--batches", default="1,4,8,16,32")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--no-eager", action="store_true", help="skip the eager (no CUDA graph) comparison")
    p.add_argument("--backend", default="torch", choices=["torch", "tensorrt"],
                   help="tensorrt: the strongly typed FP16 engine (TensorRT 10.12-11.x + nvidia-modelopt)")
    p.add_argument("--cache-dir", default=".cache/bench_skelcf_gpu", help="ONNX exports and engines (tensorrt)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    res: dict = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                 "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                 "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                 "python": platform.python_version(), "variant": a.variant}
    res["fp16_matmul_tflops"] = matmul_rate_flops() / 1e12
    torch.manual_seed(0)
    net = build_skelcf(a.variant)
    backend = TorchBackend(net, device="cuda", fp16=True, cuda_graphs=True)
    res["gflops_per_crop"] = flops_per_crop(backend.net) / 1e9
    res["backend"] = a.backend
    if a.backend == "tensorrt":
        backend = tensorrt_backend(a.variant, a.cache_dir, res)
    floor_ms = res["gflops_per_crop"] * 1e9 / (res["fp16_matmul_tflops"] * 1e12) * 1e3
    res["floor_ms_per_crop"] = floor_ms
    batches = [int(b) for b in a.batches.split(",")]
    t0 = time.perf_counter()
    backend.warmup(tuple(batches))
    res["graph_capture_s"] = time.perf_counter() - t0
    res["throughput"] = []
    for b in batches:
        r = throughput(backend, b, a.seconds)
        r["measured_over_floor"] = (1e3 / r["crops_per_s"]) / floor_ms
        res["throughput"].append(r)
        print(f"batch {b:2d}: {r['crops_per_s']:8.1f} crops/s  {r['ms_per_call']:7.2f} ms/call  "
              f"measured/floor {r['measured_over_floor']:.2f}", flush=True)
    res["latency_b1_graphs"] = latency_b1(backend)
    if not a.no_eager and a.backend == "torch":
        eager = TorchBackend(net, device="cuda", fp16=True, cuda_graphs=False)
        res["latency_b1_eager"] = latency_b1(eager, n=100)
        res["throughput_eager_b32"] = throughput(eager, 32, a.seconds)
    res["preprocess_1080p"] = [preprocess_time(k) for k in (1, 8, 32)]
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
