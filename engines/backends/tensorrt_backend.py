"""TensorRT backend for SKEL-CF: an FP16 engine built strongly typed from the FP16 AutoCast ONNX.

Supported on TensorRT 10.12 - 11.x (engines/backends/trt_engine.py has the build, the cache and the
checked run; docs/tensorrt_api.md lists every TensorRT call with its binding source). No TensorRT is
installable in this workplace, so this file has not run here: its tests skip without `tensorrt`,
and what can be checked without it (the FP16 graph, the files and arguments handed to TensorRT) is
checked in tests/test_skelcf_tensorrt_prep.py.

I/O stays FP32 (AutoCast keep_io_types) and on the GPU: crops from the GPU preprocessor are bound
directly, outputs are torch tensors on the device.
"""
from __future__ import annotations

from pathlib import Path

import torch

from engines.backends.base import InferenceBackend, chunks
from engines.backends.fp16_autocast import autocast_fp16
from engines.backends.trt_engine import (EngineRunner, EngineSpec, Profile, check_io, engine_spec,
                                         gpu_tag, import_tensorrt, load_engine)
from stream.errors import DependencyError, EngineError

INPUT_SHAPES = {"crops": (3, 256, 256), "bbox_info": (3,)}
OUTPUT_DIMS = {"q": 46, "betas": 10, "cam": 3}
OUTPUTS = tuple(OUTPUT_DIMS)
# what the engine must expose, checked at load: name -> (mode, dtype, shape with -1 = batch)
ENGINE_IO = {**{n: ("input", "float32", (-1, *s)) for n, s in INPUT_SHAPES.items()},
             **{n: ("output", "float32", (-1, d)) for n, d in OUTPUT_DIMS.items()}}


def skelcf_profile(batches: tuple[int, int, int]) -> Profile:
    """Optimisation profile of both inputs for a (min, opt, max) batch range."""
    lo, mid, hi = batches
    if not 1 <= lo <= mid <= hi:
        raise EngineError(f"TensorRT batch profile {batches} must satisfy 1 <= min <= opt <= max")
    return {n: ((lo, *s), (mid, *s), (hi, *s)) for n, s in INPUT_SHAPES.items()}


def prepare_skelcf_engine(onnx_path: str | Path, cache_dir: str | Path, trt_version: str, gpu: str,
                          fp16: bool = True, batches: tuple[int, int, int] = (1, 8, 32),
                          workspace_bytes: int = 4 << 30) -> EngineSpec:
    """The spec TensorRT gets for this export: the FP16 AutoCast graph (written beside the FP32
    one) or the FP32 graph itself, hashed with its weights, keyed by TensorRT version and GPU."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineError(f"ONNX model {onnx_path} does not exist; export it with "
                          f"python -m engines.skelcf.export --out {onnx_path}")
    graph = autocast_fp16(onnx_path) if fp16 else onnx_path
    return engine_spec(graph, cache_dir, trt_version, gpu, skelcf_profile(batches),
                       name=f"skelcf-{'fp16' if fp16 else 'fp32'}", workspace_bytes=workspace_bytes,
                       io=ENGINE_IO)


class TensorRTBackend(InferenceBackend):
    """onnx_path: FP32 graph from engines.skelcf.export. cache_dir: where the FP16 graph's engine
    and the timing cache live. profile: (min, opt, max) batch of the optimisation profile."""

    name = "tensorrt"

    def __init__(self, onnx_path: str | Path, cache_dir: str | Path, fp16: bool = True,
                 profile: tuple[int, int, int] = (1, 8, 32), workspace_bytes: int = 4 << 30):
        trt = import_tensorrt("the tensorrt backend")
        if not torch.cuda.is_available():
            raise DependencyError("backend 'tensorrt' needs a CUDA GPU and a CUDA build of PyTorch; "
                                  "set pose.skelcf.backend to 'torch' or 'onnxruntime'")
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.input_dtype = torch.float32  # the graph's I/O is FP32; FP16 is inside the engine
        self.max_batch = profile[2]
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.spec = prepare_skelcf_engine(onnx_path, cache_dir, trt.__version__, gpu_tag(self.device),
                                          fp16, profile, workspace_bytes)
        self.engine_path = self.spec.engine_path
        self.runtime, engine = load_engine(trt, self.logger, self.spec)
        check_io(trt, engine, ENGINE_IO)
        self.runner = EngineRunner(engine, self.device)

    def _run(self, crops: torch.Tensor, info: torch.Tensor):
        b = crops.shape[0]
        inputs = {"crops": crops.to(self.device, torch.float32),
                  "bbox_info": info.to(self.device, torch.float32)}
        outs = {n: torch.empty((b, d), dtype=torch.float32, device=self.device)
                for n, d in OUTPUT_DIMS.items()}
        self.runner.run(inputs, outs)
        return tuple(outs[n] for n in OUTPUTS)

    def infer(self, crops, bbox_info):
        parts = [self._run(crops[s], bbox_info[s]) for s in chunks(crops.shape[0], self.max_batch)]
        return tuple(torch.cat([p[i] for p in parts]) if len(parts) > 1 else parts[0][i]
                     for i in range(3))

    def close(self) -> None:
        if getattr(self, "runner", None) is not None:
            self.runner.close()
        self.runner = None
        self.runtime = None
