"""TensorRT 10 backend: FP16 engine built from the exported ONNX, cached on disk.

Written against the TensorRT 10 Python API (no TensorRT is installable in this workplace, so this
file is unmeasured here; its tests skip without `tensorrt`). The engine runs with
`execute_async_v3` on the current torch CUDA stream and reads/writes torch device tensors directly,
so crops from the GPU preprocessor never go through the host.

Cache key: sha256 of the ONNX bytes + TensorRT version + GPU name + precision + profile; an engine
built for another GPU or TensorRT version is never loaded (TensorRT would reject it, or worse).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from engines.backends.base import InferenceBackend, chunks
from stream.errors import DependencyError, EngineError, require

INPUT_SHAPES = {"crops": (3, 256, 256), "bbox_info": (3,)}
OUTPUTS = ("q", "betas", "cam")


def engine_cache_key(onnx_bytes: bytes, trt_version: str, gpu_name: str, precision: str,
                     profile: tuple[int, int, int]) -> str:
    """Stable file stem for a built engine; any change of model, TensorRT, GPU or precision misses."""
    h = hashlib.sha256(onnx_bytes).hexdigest()[:16]
    gpu = "".join(c if c.isalnum() else "-" for c in gpu_name)
    return f"skelcf-{h}-trt{trt_version}-{gpu}-{precision}-b{profile[0]}_{profile[1]}_{profile[2]}"


class TensorRTBackend(InferenceBackend):
    """onnx_path: graph from engines.skelcf.export. cache_dir: where engines and the timing cache
    live. profile: (min, opt, max) batch of the optimization profile."""

    name = "tensorrt"

    def __init__(self, onnx_path: str | Path, cache_dir: str | Path, fp16: bool = True,
                 profile: tuple[int, int, int] = (1, 8, 32), workspace_bytes: int = 4 << 30):
        trt = require("tensorrt", "tensorrt", "the tensorrt backend")
        if not torch.cuda.is_available():
            raise DependencyError("backend 'tensorrt' needs a CUDA GPU and a CUDA build of PyTorch; "
                                  "set pose.skelcf.backend to 'torch' or 'onnxruntime'")
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise EngineError(f"ONNX model {onnx_path} does not exist; export it with "
                              f"python -m engines.skelcf.export --out {onnx_path}")
        self.trt = trt
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.input_dtype = torch.float32  # the ONNX I/O is FP32; FP16 is inside the engine
        self.max_batch = profile[2]
        self.logger = trt.Logger(trt.Logger.WARNING)
        precision = "fp16" if fp16 else "fp32"
        onnx_bytes = onnx_path.read_bytes()
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = engine_cache_key(onnx_bytes, trt.__version__, torch.cuda.get_device_name(self.device),
                               precision, profile)
        self.engine_path = cache_dir / f"{key}.engine"
        if not self.engine_path.is_file():
            plan = self._build(onnx_bytes, cache_dir / f"timing-trt{trt.__version__}.cache", fp16,
                               profile, workspace_bytes)
            tmp = self.engine_path.with_suffix(".tmp")
            tmp.write_bytes(plan)
            tmp.replace(self.engine_path)  # atomic: a killed build never leaves half an engine
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise EngineError(f"TensorRT cannot load {self.engine_path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()

    def _build(self, onnx_bytes: bytes, timing_path: Path, fp16: bool,
               profile: tuple[int, int, int], workspace_bytes: int) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_bytes):
            errs = "; ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
            raise EngineError(f"TensorRT cannot parse the SKEL-CF ONNX ({errs}); re-export it")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        opt = builder.create_optimization_profile()
        lo, mid, hi = profile
        for name, shape in INPUT_SHAPES.items():
            opt.set_shape(name, (lo, *shape), (mid, *shape), (hi, *shape))
        config.add_optimization_profile(opt)
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(timing, ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineError("TensorRT failed to build the SKEL-CF engine (see the log above); "
                              "try backend 'torch'")
        timing_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
        return bytes(memoryview(plan))

    def _run(self, crops: torch.Tensor, info: torch.Tensor):
        b = crops.shape[0]
        crops = crops.to(self.device, torch.float32).contiguous()
        info = info.to(self.device, torch.float32).contiguous()
        outs = {n: torch.empty((b, d), dtype=torch.float32, device=self.device)
                for n, d in zip(OUTPUTS, (46, 10, 3))}
        ctx = self.context
        for name, t in (("crops", crops), ("bbox_info", info)):
            ctx.set_input_shape(name, tuple(t.shape))
            ctx.set_tensor_address(name, t.data_ptr())
        for name, t in outs.items():
            ctx.set_tensor_address(name, t.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise EngineError("TensorRT execution failed; see the TensorRT log above")
        return tuple(outs[n] for n in OUTPUTS)

    def infer(self, crops, bbox_info):
        parts = [self._run(crops[s], bbox_info[s]) for s in chunks(crops.shape[0], self.max_batch)]
        return tuple(torch.cat([p[i] for p in parts]) if len(parts) > 1 else parts[0][i]
                     for i in range(3))

    def close(self) -> None:
        self.context = None
        self.engine = None
        self.runtime = None
