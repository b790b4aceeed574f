"""TensorRT engines from ONNX files, shared by the SKEL-CF backend and the detector runner.

Supported: TensorRT 10.12 - 11.x (`SUPPORTED_TRT`). Every call below is checked against the Python
bindings of 10.0, 10.16, 11.0 and 11.1 in docs/tensorrt_api.md (TensorRT cannot be installed in
this workplace; nothing here has run against a real TensorRT in CI).

- Precision lives in the graph: FP16 is an FP16 AutoCast ONNX (engines/backends/onnx_files.py),
  built strongly typed. Weakly typed flags (`BuilderFlag.FP16`) were deprecated in 10.12 and removed
  in 11; the STRONGLY_TYPED creation flag is required on 10.x and accepted (ignored) on 11.x, so it
  is passed whenever the binding still has it (`network_flags`).
- The parser is given the model's PATH (`parse_from_file`), so external data (ViT-H) resolves.
- Engines are cached under a key of the model digest (graph + weights), TensorRT version, GPU name,
  compute capability and profile; the timing cache under TensorRT version + GPU + capability.
- A cached plan that does not deserialize is rebuilt (with a warning).
- Every enqueue-path call's bool result is checked (`EngineError`), inputs whose address is not
  256-byte aligned are copied, and inference runs on a private stream ordered against the caller's.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engines.backends.onnx_files import atomic_write, model_digest
from stream.errors import DependencyError, EngineError, require

log = logging.getLogger(__name__)

SUPPORTED_TRT = ">=10.12,<12"
MIN_TRT = (10, 12)
MAX_TRT_MAJOR = 11
ALIGNMENT_BYTES = 256  # TensorRT's required I/O address alignment

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]


def import_tensorrt(purpose: str):
    """The tensorrt module, or DependencyError when missing or outside `SUPPORTED_TRT`."""
    trt = require("tensorrt", "gpu", purpose)
    version = parse_version(trt.__version__)
    if version < MIN_TRT or version[0] > MAX_TRT_MAJOR:
        raise DependencyError(f"{purpose} supports TensorRT {SUPPORTED_TRT}, found {trt.__version__}; "
                              f"install a supported one with: pip install -e '.[gpu]'")
    return trt


def parse_version(text: str) -> tuple[int, int]:
    """'10.13.2.6' -> (10, 13)."""
    m = re.match(r"(\d+)\.(\d+)", text)
    if not m:
        raise DependencyError(f"cannot read the TensorRT version {text!r}")
    return int(m.group(1)), int(m.group(2))


def network_flags(trt) -> int:
    """Creation flags of a strongly typed network: STRONGLY_TYPED while the binding has it
    (required on 10.x, deprecated and always on in 11.x), 0 once it is gone (always on)."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def gpu_tag(device: torch.device | int | None = None) -> str:
    """'NVIDIA-H200-sm90': GPU name and compute capability (kernels and tactics depend on both)."""
    name = torch.cuda.get_device_name(device)
    major, minor = torch.cuda.get_device_capability(device)
    return f"{_slug(name)}-sm{major}{minor}"


@dataclass(frozen=True)
class EngineSpec:
    """Everything a build gets from this code, fixed before TensorRT is called (so it can be checked
    without TensorRT): the ONNX path the parser reads, where the engine and timing cache live, the
    optimisation profile."""
    onnx_path: Path
    engine_path: Path
    timing_cache_path: Path
    profile: Profile
    workspace_bytes: int = 4 << 30
    name: str = "model"
    io: dict[str, tuple[str, str, Shape]] = field(default_factory=dict)  # name -> (mode, dtype, shape)


def engine_spec(onnx_path: str | Path, cache_dir: str | Path, trt_version: str, gpu: str,
                profile: Profile, name: str = "model", workspace_bytes: int = 4 << 30,
                io: dict[str, tuple[str, str, Shape]] | None = None) -> EngineSpec:
    """The spec of the engine for this model file (graph + weights hashed), TensorRT version, GPU
    tag and profile. `onnx_path` is the graph TensorRT parses (FP16 AutoCast for FP16 engines)."""
    onnx_path = Path(onnx_path)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    prof = hashlib.sha256(repr(sorted((n, tuple(map(tuple, s))) for n, s in profile.items())).encode())
    key = f"{name}-{model_digest(onnx_path)[:16]}-trt{trt_version}-{gpu}-p{prof.hexdigest()[:8]}"
    return EngineSpec(onnx_path=onnx_path, engine_path=cache_dir / f"{key}.engine",
                      timing_cache_path=cache_dir / f"timing-trt{trt_version}-{gpu}.cache",
                      profile=dict(profile), workspace_bytes=workspace_bytes, name=name,
                      io=dict(io or {}))


def build_plan(trt, logger, spec: EngineSpec) -> bytes:
    """Parse `spec.onnx_path` from its path, build a strongly typed serialized engine, write it
    (atomically), then merge the timing cache. A timing cache problem never loses the build."""
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(spec.onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
        raise EngineError(f"TensorRT cannot parse {spec.onnx_path} ({errs}); re-export the model")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_bytes)
    opt = builder.create_optimization_profile()
    for tensor, (lo, mid, hi) in spec.profile.items():
        opt.set_shape(tensor, lo, mid, hi)
    if config.add_optimization_profile(opt) < 0:
        raise EngineError(f"TensorRT rejected the optimisation profile {spec.profile} of {spec.name}")
    _attach_timing_cache(config, spec.timing_cache_path)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT failed to build the {spec.name} engine (see the log above)")
    blob = bytes(memoryview(plan))
    atomic_write(spec.engine_path, blob)
    _save_timing_cache(config, spec.timing_cache_path)
    return blob


def _attach_timing_cache(config, path: Path) -> None:
    """Attach the saved timing cache; when TensorRT refuses it (another GPU or TensorRT wrote it,
    or it is corrupt: set_timing_cache returns False) attach a fresh one, so the cache that is
    saved after the build is always this build's."""
    saved = path.read_bytes() if path.is_file() else b""
    for blob in ((saved, b"") if saved else (b"",)):
        try:
            cache = config.create_timing_cache(blob)
            if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
                return
        except Exception as exc:  # a corrupt blob may raise rather than return None
            log.warning("TensorRT timing cache error (%s)", exc)
        if blob:
            log.warning("TensorRT timing cache %s does not match this TensorRT/GPU; starting a new one", path)
    log.warning("TensorRT refused an empty timing cache; building without one")


def _save_timing_cache(config, path: Path) -> None:
    try:
        cache = config.get_timing_cache()
        if cache is None:
            return
        atomic_write(path, memoryview(cache.serialize()))
    except Exception as exc:  # the engine is already written: a cache failure must not lose it
        log.warning("could not save the TensorRT timing cache %s (%s)", path, exc)


def load_engine(trt, logger, spec: EngineSpec):
    """Deserialize the cached plan, building it first when absent; a plan that does not
    deserialize (corrupt, other TensorRT build) is rebuilt once, with a warning."""
    runtime = trt.Runtime(logger)
    if spec.engine_path.is_file():
        engine = _deserialize(runtime, spec.engine_path.read_bytes())
        if engine is not None:
            return runtime, engine
        log.warning("TensorRT cannot load the cached engine %s; rebuilding it", spec.engine_path)
        spec.engine_path.unlink(missing_ok=True)
    engine = _deserialize(runtime, build_plan(trt, logger, spec))
    if engine is None:
        raise EngineError(f"TensorRT cannot load the engine it just built ({spec.engine_path}); "
                          f"check the TensorRT log above")
    return runtime, engine


def _deserialize(runtime, blob: bytes):
    try:
        return runtime.deserialize_cuda_engine(blob)
    except Exception as exc:  # bindings may raise instead of returning None
        log.warning("TensorRT deserialize failed: %s", exc)
        return None


def check_io(trt, engine, expected: dict[str, tuple[str, str, Shape]]) -> None:
    """EngineError unless each named tensor has the expected mode ('input'/'output'), dtype
    ('float32'/'float16') and shape (-1 = dynamic, must stay dynamic)."""
    names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
    modes = {"input": trt.TensorIOMode.INPUT, "output": trt.TensorIOMode.OUTPUT}
    dtypes = {"float32": trt.DataType.FLOAT, "float16": trt.DataType.HALF}
    for name, (mode, dtype, shape) in expected.items():
        if name not in names:
            raise EngineError(f"the TensorRT engine has no tensor {name!r} (has {sorted(names)}); "
                              f"re-export the model")
        got_mode, got_dtype = engine.get_tensor_mode(name), engine.get_tensor_dtype(name)
        got_shape = tuple(engine.get_tensor_shape(name))
        if got_mode != modes[mode] or got_dtype != dtypes[dtype] or not shape_matches(got_shape, shape):
            raise EngineError(f"TensorRT tensor {name!r} is {got_mode} {got_dtype} {got_shape}, "
                              f"expected {mode} {dtype} {shape}; re-export the model")


def shape_matches(got: Shape, want: Shape) -> bool:
    return len(got) == len(want) and all(w == g for g, w in zip(got, want))


def aligned(t: torch.Tensor, alignment: int = ALIGNMENT_BYTES) -> torch.Tensor:
    """`t` contiguous with a data pointer aligned to `alignment` bytes: `t` itself when it is,
    else a copy placed at an aligned offset of a slightly larger buffer (a slice such as
    bbox_info[32:] starts 32 * 3 * 4 = 384 bytes into its storage)."""
    t = t.contiguous()
    if t.data_ptr() % alignment == 0:
        return t
    size = t.element_size()
    buf = torch.empty(t.numel() + alignment // size, dtype=t.dtype, device=t.device)
    start = (-buf.data_ptr() % alignment) // size
    out = buf[start:start + t.numel()].view(t.shape)
    out.copy_(t)
    return out


class EngineRunner:
    """An execution context with checked calls, on a private CUDA stream.

    Order: the private stream waits for the caller's current stream (inputs are ready), TensorRT
    enqueues on it, then the caller's stream waits for it (outputs are ready), as torch-tensorrt
    does. The legacy default stream is never used (TensorRT would add syncs and warn)."""

    def __init__(self, engine, device: torch.device):
        self.engine = engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise EngineError("TensorRT could not create an execution context (out of GPU memory?)")
        self.device = device
        self.stream = torch.cuda.Stream(device=device)

    def run(self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor] | Any) -> dict:
        """inputs: name -> device tensor. outputs: name -> preallocated tensor, or a callable
        (context) -> {name: tensor} that allocates them once input shapes are set."""
        ctx = self.context
        inputs = {n: aligned(t) for n, t in inputs.items()}
        for name, t in inputs.items():
            if not ctx.set_input_shape(name, tuple(t.shape)):
                raise EngineError(f"TensorRT rejected input {name!r} of shape {tuple(t.shape)} "
                                  f"(outside the engine's optimisation profile?)")
        outs = outputs(ctx) if callable(outputs) else outputs
        for name, t in (*inputs.items(), *outs.items()):
            if t.data_ptr() % ALIGNMENT_BYTES:
                raise EngineError(f"TensorRT buffer {name!r} is not {ALIGNMENT_BYTES}-byte aligned")
            if not ctx.set_tensor_address(name, t.data_ptr()):
                raise EngineError(f"TensorRT rejected the address of tensor {name!r}")
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise EngineError("TensorRT execution failed; see the TensorRT log above")
        caller.wait_stream(self.stream)
        for t in (*inputs.values(), *outs.values()):
            t.record_stream(self.stream)  # the allocator must not reuse them before TensorRT is done
        return outs

    def close(self) -> None:
        self.context = None
        self.engine = None
