"""Backends that run a detector network: onnxruntime (CPU, CUDA EP when present), torch
(TorchScript file or an `nn.Module`; an .onnx file on the torch backend goes through onnxruntime),
and TensorRT 10.12 - 11.x (built strongly typed from the ONNX file, FP16 via AutoCast).
Each is opened in the stage's child process.

Every runner takes a (1, 3, h, w) float32 RGB [0, 1] letterboxed input (a numpy array, or a torch
tensor already on the device) and returns the first output as a numpy array.
"""
from __future__ import annotations

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
    """TensorRT engine (10.12 - 11.x) built strongly typed from the ONNX file: its FP16 AutoCast
    copy when `fp16` (written into `cache_dir`), else the file itself. Build, cache key (graph +
    weights, TensorRT, GPU, profile), timing cache and checked run: engines/backends/trt_engine.py.
    I/O through torch CUDA tensors on a private stream.

    Profile: a dynamic batch axis gets (1, 1, max_batch), dynamic spatial axes `default_hw`."""

    def __init__(self, path: Path, fp16: bool = True, workspace_bytes: int = 1 << 30,
                 cache_dir: str | Path = ".cache/detector", max_batch: int = 4, default_hw: int = 640):
        from engines.backends.trt_engine import (EngineRunner, gpu_tag, import_tensorrt,
                                                 load_engine)
        trt = import_tensorrt("the TensorRT detector backend")
        torch = require("torch", "gpu", "the TensorRT detector backend (CUDA buffers)")
        if not torch.cuda.is_available():
            raise DependencyError("the TensorRT detector backend needs a CUDA device; use backend 'onnxruntime'")
        path = _check_file(path)
        spec = prepare_detector_engine(path, cache_dir, trt.__version__, gpu_tag(), fp16,
                                       max_batch, default_hw, workspace_bytes)
        logger = trt.Logger(trt.Logger.WARNING)
        self.runtime, engine = load_engine(trt, logger, spec)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or not outputs:
            raise EngineError(f"detector '{path}' has inputs {inputs} and outputs {outputs}; "
                              "one image input and at least one output are expected")
        self.input_name, self.output_name = inputs[0], outputs[0]
        for name in (self.input_name, self.output_name):
            if engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise EngineError(f"detector engine tensor {name!r} is {engine.get_tensor_dtype(name)}, "
                                  "expected FP32 I/O; export the detector with float32 inputs/outputs")
        self.torch = torch
        self.input_shape = spec.profile[self.input_name][1]
        self.runner = EngineRunner(engine, torch.device("cuda", torch.cuda.current_device()))

    def input_hw(self, default: int) -> tuple[int, int]:
        return int(self.input_shape[2]), int(self.input_shape[3])

    def _alloc_output(self, context) -> dict:
        shape = tuple(context.get_tensor_shape(self.output_name))
        if any(d < 0 for d in shape):
            raise EngineError(f"TensorRT could not resolve the detector output shape {shape}")
        return {self.output_name: self.torch.empty(shape, device=self.runner.device,
                                                   dtype=self.torch.float32)}

    def __call__(self, blob: Any) -> np.ndarray:
        torch = self.torch
        x = blob if isinstance(blob, torch.Tensor) else torch.from_numpy(blob)
        x = x.to(self.runner.device).float()
        out = self.runner.run({self.input_name: x}, self._alloc_output)[self.output_name]
        return out.cpu().numpy()  # a copy on the caller's stream, which waited for TensorRT


def detector_profile(input_name: str, shape: tuple[int, ...], max_batch: int = 4,
                     default_hw: int = 640) -> dict:
    """(min, opt, max) shapes of the image input: a dynamic batch axis (-1) ranges over
    1..max_batch with opt 1 (the stage runs one frame at a time); a dynamic spatial axis gets
    `default_hw`; static axes stay."""
    if len(shape) != 4:
        raise EngineError(f"detector input {input_name!r} has shape {shape}; (batch, 3, h, w) expected")
    rest = tuple(d if d > 0 else default_hw for d in shape[1:])
    if shape[0] > 0:
        fixed = (shape[0], *rest)
        return {input_name: (fixed, fixed, fixed)}
    return {input_name: ((1, *rest), (1, *rest), (max_batch, *rest))}


def onnx_input(path: Path) -> tuple[str, tuple[int, ...]]:
    """Name and shape (-1 for a dynamic axis) of the model's one graph input."""
    onnx = require("onnx", "gpu", "the TensorRT detector backend")
    graph = onnx.load(str(path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    if len(inputs) != 1:
        raise EngineError(f"detector '{path}' has {len(inputs)} inputs; one image input is expected")
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in inputs[0].type.tensor_type.shape.dim)
    return inputs[0].name, dims


def prepare_detector_engine(path: Path, cache_dir: str | Path, trt_version: str, gpu: str, fp16: bool,
                            max_batch: int = 4, default_hw: int = 640, workspace_bytes: int = 1 << 30):
    """The EngineSpec TensorRT gets for a detector file: its FP16 AutoCast copy (in `cache_dir`,
    named after the model's digest, so a read-only model folder works) or the file itself."""
    from engines.backends.fp16_autocast import autocast_fp16
    from engines.backends.onnx_files import model_digest
    from engines.backends.trt_engine import engine_spec
    path = Path(path)
    graph = path
    if fp16:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        graph = autocast_fp16(path, Path(cache_dir) / f"{path.stem}-{model_digest(path)[:16]}.fp16.onnx")
    name, shape = onnx_input(path)
    return engine_spec(graph, cache_dir, trt_version, gpu, detector_profile(name, shape, max_batch, default_hw),
                       name=f"{path.stem}-{'fp16' if fp16 else 'fp32'}", workspace_bytes=workspace_bytes)


def open_runner(path: Path, backend: str, device: str, fp16: bool, threads: int = 0):
    """Pick a runner for the user's file. 'auto': TensorRT on cuda when importable, else onnxruntime."""
    path = Path(path)
    suffix = path.suffix.lower()
    if backend == "auto":
        if suffix != ".onnx":
            backend = "torch"
        elif device == "cuda":
            from engines.backends.fallback import with_fallback
            return with_fallback(lambda: TensorRTRunner(path, fp16), lambda: OrtRunner(path, device, threads),
                                 "the TensorRT detector engine", "onnxruntime")
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
