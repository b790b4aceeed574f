"""SKEL-CF inference backends behind one interface, and the 'auto' choice between them.

auto order: tensorrt > torch-cuda > the faster of torch-cpu / onnxruntime-cpu (measured on this
machine, on this model, at batch 1, when an ONNX export is at hand). A TensorRT engine that fails to
build, for any reason, falls back to torch FP16 with one warning.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from engines.backends.base import InferenceBackend
from engines.backends.fallback import with_fallback
from stream.errors import DependencyError, EngineError

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime", "triton")


def has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def has_ort_cuda() -> bool:
    from engines.backends.ort_backend import ort_providers
    return torch.cuda.is_available() and "CUDAExecutionProvider" in ort_providers()


def time_backend(backend: InferenceBackend, batch: int = 1, repeats: int = 2) -> float:
    """Best-of-`repeats` seconds per call at `batch` (after one warm-up call)."""
    crops = torch.zeros((batch, 3, 256, 256), dtype=backend.input_dtype, device=backend.device)
    info = torch.tensor([[0.0, 0.0, 0.5]] * batch, device=backend.device)
    backend.infer(crops, info)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = backend.infer(crops, info)
        if backend.device.type == "cuda":
            torch.cuda.synchronize()
        _ = out[0].sum().item()
        best = min(best, time.perf_counter() - t0)
    return best


def create_backend(kind: str, net_factory: Callable[[], nn.Module],
                   onnx_factory: Callable[[], Path] | None = None,
                   cache_dir: str | Path = ".cache/skelcf", device: str | None = None,
                   triton_cfg=None) -> InferenceBackend:
    """Build the backend `kind` ('auto', 'tensorrt', 'torch', 'onnxruntime').

    net_factory: builds the (loaded) PyTorch network; onnx_factory: returns the exported ONNX path
    (exporting on first use). Both are called only if the chosen backend needs them.
    device: force 'cpu' or 'cuda' (None = CUDA when present).
    triton_cfg: the `TritonConfig` of backend 'triton' (a server runs the network; no factory
    is called)."""
    if kind not in BACKENDS:
        raise EngineError(f"backend {kind!r} is unknown; use one of {', '.join(BACKENDS)}")
    if kind == "triton":
        from engines.backends.triton_backend import TritonBackend
        from engines.skelcf.config import TritonConfig
        return TritonBackend(triton_cfg or TritonConfig())
    cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise DependencyError("a CUDA device was requested but PyTorch sees none; install a CUDA "
                              "build of torch or use device 'cpu'")
    if kind == "tensorrt":
        if onnx_factory is None:
            raise EngineError("backend 'tensorrt' needs an ONNX export; give an onnx path")
        from engines.backends.tensorrt_backend import TensorRTBackend
        return TensorRTBackend(onnx_factory(), cache_dir=cache_dir)
    if kind == "torch":
        from engines.backends.torch_backend import TorchBackend
        return TorchBackend(net_factory(), device="cuda" if cuda else "cpu")
    if kind == "onnxruntime":
        if onnx_factory is None:
            raise EngineError("backend 'onnxruntime' needs an ONNX export; give an onnx path")
        from engines.backends.ort_backend import OrtBackend
        return OrtBackend(onnx_factory(), device="cuda" if cuda else "cpu")
    # auto
    if cuda:
        torch_fp16 = lambda: create_backend("torch", net_factory, onnx_factory, cache_dir, "cuda")  # noqa: E731
        if has_tensorrt() and onnx_factory is not None:
            return with_fallback(
                lambda: create_backend("tensorrt", net_factory, onnx_factory, cache_dir, "cuda"),
                torch_fp16, "the TensorRT engine", "torch FP16 on CUDA")
        return torch_fp16()
    return fastest_cpu_backend(net_factory, onnx_factory)


def fastest_cpu_backend(net_factory: Callable[[], nn.Module],
                        onnx_factory: Callable[[], Path] | None) -> InferenceBackend:
    """Measure torch-cpu and onnxruntime-cpu on this model at batch 1; keep the faster one."""
    from engines.backends.torch_backend import TorchBackend
    tb = TorchBackend(net_factory(), device="cpu")
    if onnx_factory is None:
        return tb
    try:
        from engines.backends.ort_backend import OrtBackend
        ob = OrtBackend(onnx_factory(), device="cpu")
    except DependencyError:
        return tb
    t_torch, t_ort = time_backend(tb), time_backend(ob)
    (keep, drop) = (ob, tb) if t_ort < t_torch else (tb, ob)
    drop.close()
    keep.measured_s_per_crop = min(t_torch, t_ort)
    return keep
