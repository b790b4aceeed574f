"""Backends that run a detector network: onnxruntime (CPU, CUDA EP when present), torch
(TorchScript file or an `nn.Module`; an .onnx file on the torch backend goes through onnxruntime),
and TensorRT 10 (built from the ONNX file, FP16). Each is opened in the stage's child process.

Every runner takes a (1, 3, h, w) float32 RGB [0, 1] letterboxed input (a numpy array, or a torch
tensor already on the device) and returns the first output as a numpy array.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import DependencyError, EngineError, require


def _check_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"detector model file '{path}' not found; set detector.model_path to your exported .onnx")
    return path


class OrtRunner:
    """onnxruntime session; CUDA execution provider when device='cuda' and it is available."""

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0):
        ort = require("onnxruntime", "cpu", "the onnxruntime detector backend")
        path = _check_file(path)
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise DependencyError("detector.device 'cuda' needs onnxruntime-gpu (CUDAExecutionProvider "
                                      f"missing; have {available}); pip install onnxruntime-gpu or use device 'cpu'")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise EngineError(f"onnxruntime cannot load detector '{path}': {str(exc).splitlines()[0]}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32  # fp16 exports
        self.device = device

    def input_hw(self, default: int) -> tuple[int, int]:
        """Network input (h, w); `default` where the axis is dynamic."""
        h, w = self.input_shape[2:4] if len(self.input_shape) == 4 else (None, None)
        return (h if isinstance(h, int) else default, w if isinstance(w, int) else default)

    def __call__(self, blob: Any) -> np.ndarray:
        if not isinstance(blob, np.ndarray):
            blob = blob.detach().float().cpu().numpy()
        out = self.session.run(None, {self.input_name: blob.astype(self.input_dtype, copy=False)})[0]
        return np.asarray(out, dtype=np.float32)


class TorchRunner:
    """A TorchScript file (torch.jit.load) or an `nn.Module`, on cpu or cuda, FP16 on cuda."""

    def __init__(self, model: Any, device: str = "cpu", fp16: bool = True):
        torch = require("torch", "gpu", "the torch detector backend")
        if device == "cuda" and not torch.cuda.is_available():
            raise DependencyError("detector.device 'cuda' but torch sees no CUDA device; use device 'cpu'")
        if isinstance(model, (str, Path)):
            path = _check_file(Path(model))
            try:
                model = torch.jit.load(str(path), map_location=device)
            except Exception as exc:
                raise EngineError(f"torch cannot load detector '{path}' as TorchScript ({str(exc).splitlines()[0]}); "
                                  "export it with torch.jit.trace/script, or pass the .onnx file") from None
        self.torch = torch
        self.device = device
        self.half = fp16 and device == "cuda"
        self.model = model.to(device).eval()
        if self.half:
            self.model = self.model.half()

    def input_hw(self, default: int) -> tuple[int, int]:
        return default, default

    def __call__(self, blob: Any) -> np.ndarray:
        torch = self.torch
        x = blob if isinstance(blob, torch.Tensor) else torch.from_numpy(blob)
        x = x.to(self.device, non_blocking=True)
        x = x.half() if self.half else x.float()
        with torch.inference_mode():
            y = self.model(x)
        if isinstance(y, (list, tuple)):
            y = y[0]
        return y.float().cpu().numpy()


class TensorRTRunner:
    """TensorRT 10 engine built from the ONNX file (FP16 when asked) and cached beside it as
    `<model>.<key>.engine` (key: ONNX bytes, TensorRT version, GPU, precision: a stale engine is
    never loaded). I/O through torch CUDA tensors. Not generic enough to share
    engines/backends/tensorrt_backend.py, which is bound to SKEL-CF's named inputs and outputs."""

    def __init__(self, path: Path, fp16: bool = True, workspace_bytes: int = 1 << 30):
        trt = require("tensorrt", "tensorrt", "the TensorRT detector backend")
        torch = require("torch", "gpu", "the TensorRT detector backend (CUDA buffers)")
        if not torch.cuda.is_available():
            raise DependencyError("the TensorRT detector backend needs a CUDA device; use backend 'onnxruntime'")
        path = _check_file(path)
        logger = trt.Logger(trt.Logger.WARNING)
        onnx_bytes = path.read_bytes()
        gpu = "".join(c if c.isalnum() else "-" for c in torch.cuda.get_device_name())
        key = f"{hashlib.sha256(onnx_bytes).hexdigest()[:16]}-trt{trt.__version__}-{gpu}-{'fp16' if fp16 else 'fp32'}"
        engine_path = path.with_name(f"{path.stem}.{key}.engine")
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_bytes):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineError(f"TensorRT cannot parse detector '{path}': {errs}")
        inp = network.get_input(0)
        if engine_path.is_file():
            blob = engine_path.read_bytes()
        else:
            config = builder.create_builder_config()
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
            if fp16:
                config.set_flag(trt.BuilderFlag.FP16)
            if any(d < 0 for d in inp.shape):
                profile = builder.create_optimization_profile()
                shape = tuple(d if d > 0 else 640 for d in inp.shape)
                profile.set_shape(inp.name, shape, shape, shape)
                config.add_optimization_profile(profile)
            plan = builder.build_serialized_network(network, config)
            if plan is None:
                raise EngineError(f"TensorRT failed to build an engine from '{path}'")
            blob = bytes(memoryview(plan))
            try:
                tmp = engine_path.with_suffix(".tmp")
                tmp.write_bytes(blob)
                tmp.replace(engine_path)   # atomic: a killed build never leaves half an engine
            except OSError:
                pass                       # read-only model folder: rebuild next time
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
        if self.engine is None:
            raise EngineError(f"TensorRT cannot load the detector engine {engine_path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.torch = torch
        self.input_name = inp.name
        self.input_shape = tuple(d if d > 0 else 640 for d in inp.shape)
        self.output_name = next(self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)
                                if self.engine.get_tensor_mode(self.engine.get_tensor_name(i)) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream()

    def input_hw(self, default: int) -> tuple[int, int]:
        return int(self.input_shape[2]), int(self.input_shape[3])

    def __call__(self, blob: Any) -> np.ndarray:
        torch = self.torch
        x = blob if isinstance(blob, torch.Tensor) else torch.from_numpy(blob)
        x = x.to("cuda").float().contiguous()
        self.context.set_input_shape(self.input_name, tuple(x.shape))
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), device="cuda", dtype=torch.float32)
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return out.cpu().numpy()


def open_runner(path: Path, backend: str, device: str, fp16: bool, threads: int = 0):
    """Pick a runner for the user's file. 'auto': TensorRT on cuda when importable, else onnxruntime."""
    path = Path(path)
    suffix = path.suffix.lower()
    if backend == "auto":
        if suffix != ".onnx":
            backend = "torch"
        elif device == "cuda":
            try:
                return TensorRTRunner(path, fp16)
            except DependencyError:
                backend = "onnxruntime"
        else:
            backend = "onnxruntime"
    if backend == "tensorrt":
        if suffix != ".onnx":
            raise EngineError(f"the TensorRT backend builds from an .onnx file, got '{path}'; export to ONNX first")
        return TensorRTRunner(path, fp16)
    if backend == "torch" and suffix != ".onnx":
        return TorchRunner(path, device, fp16)
    # onnxruntime, or an .onnx file on the torch backend (torch cannot execute ONNX itself)
    return OrtRunner(path, device, threads)
