"""Write a ready Triton model repository for SKEL-CF (and FLNet).

    python -m engines.skelcf.triton_repo --checkpoint best.pth --out model_repository/

Models written (names are what `pose.skelcf.triton.model_name` selects):
- `skelcf_trt`: TensorRT backend (`platform: tensorrt_plan`). A plan is specific to the GPU's
  compute capability and the TensorRT version, so the repository carries the ONNX and
  `build_plan.sh`, which runs `trtexec --fp16` with the batch profile inside the serving container
  (same TensorRT as the server) to make `1/model.plan`.
- `skelcf_onnx`: ONNX Runtime backend (`platform: onnxruntime_onnx`), on GPU with ONNX Runtime's
  TensorRT execution provider in FP16, or on CPU; loads as written, no build step.
- `skelcf_py` (`--backends python`): PyTorch in Triton's Python backend; the CPU reference the
  tests serve with the nvidia-pytriton tritonserver.
- `flnet`: FLNet (focal length) on ONNX Runtime.

Preprocessing lives inside each SKEL-CF model: inputs are crops (B, 3, 256, 192) UINT8 RGB and
bbox_info (B, 3) FP32; the graph casts and ImageNet-normalises (`preprocess.UInt8Input`), so
clients send a quarter of the bytes and no ensemble step is needed. Every model has dynamic
batching (preferred sizes, max queue delay) and an instance group. Each config.pbtxt is built
as tritonclient's `ModelConfig` protobuf and written in its text format.
"""
from __future__ import annotations

import argparse
import os
import shutil
import site
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from engines.skelcf.export import (OPSET, PARITY_ATOL_Q_RAD, _ort_session, check_tensorrt_ops,
                                   dynamic_axes, export_flnet, load_flnet_for_export,
                                   load_network)
from engines.skelcf.preprocess import UInt8Input
from stream.errors import EngineError, require

CROP_DIMS = (3, 256, 192)
INPUTS = (("crops", "TYPE_UINT8", CROP_DIMS), ("bbox_info", "TYPE_FP32", (3,)))
OUTPUTS = (("q", 46), ("betas", 10), ("cam", 3))
BACKENDS = ("tensorrt", "onnxruntime", "python")
MODEL_NAMES = {"tensorrt": "skelcf_trt", "onnxruntime": "skelcf_onnx", "python": "skelcf_py"}
REPO = Path(__file__).resolve().parents[2]


def model_config(name: str, backend: str, max_batch: int = 32,
                 preferred: tuple[int, ...] = (4, 8, 16), queue_delay_us: int = 2000,
                 kind: str = "KIND_GPU", count: int = 1, fp16: bool = True,
                 parameters: dict[str, str] | None = None, inputs=INPUTS, outputs=OUTPUTS):
    """The `ModelConfig` protobuf of one model (SKEL-CF's I/O unless `inputs` (name, TYPE_*,
    dims) and `outputs` (name, dim or dims, FP32) are given; dynamic batching, instances).
    max_batch 0: a model without a batch axis (dims are the whole shape, no dynamic batching)."""
    pb = require("tritonclient.grpc.model_config_pb2", "triton", "writing a Triton repository")
    c = pb.ModelConfig(name=name, max_batch_size=max_batch)
    if backend == "tensorrt":
        c.platform = "tensorrt_plan"
    elif backend == "onnxruntime":
        c.platform = "onnxruntime_onnx"
    elif backend == "python":
        c.backend = "python"
    else:
        raise EngineError(f"backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
    for n, dt, dims in inputs:
        c.input.add(name=n, data_type=getattr(pb, dt), dims=list(dims))
    for n, d in outputs:
        c.output.add(name=n, data_type=pb.TYPE_FP32, dims=list(d) if isinstance(d, tuple) else [d])
    if max_batch > 0:
        c.dynamic_batching.preferred_batch_size.extend([b for b in preferred if b <= max_batch])
        c.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    c.instance_group.add(kind=getattr(pb.ModelInstanceGroup, kind), count=count)
    if backend == "onnxruntime" and kind == "KIND_GPU" and fp16:
        acc = c.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        acc.parameters["precision_mode"] = "FP16"
        acc.parameters["max_workspace_size_bytes"] = str(1 << 31)
    for k, v in (parameters or {}).items():
        c.parameters[k].string_value = v
    return c


def write_config(model_dir: Path, config) -> Path:
    from google.protobuf import text_format

    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "config.pbtxt"
    path.write_text(text_format.MessageToString(config))
    return path


def export_uint8_onnx(net: torch.nn.Module, out_path: Path, opset: int = OPSET,
                      check: bool = True) -> dict:
    """ONNX of `UInt8Input(net)`: crops (B,3,256,192) uint8 + bbox_info (B,3) -> q, betas, cam,
    batch axis dynamic; checked against TensorRT's op list and PyTorch via ONNX Runtime."""
    model = UInt8Input(net).eval().float().cpu()
    g = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (2, *CROP_DIMS), generator=g, dtype=torch.uint8)
    info = torch.tensor([[0.05, -0.1, 0.6], [-0.2, 0.1, 0.4]])
    names_in, names_out = ("crops", "bbox_info"), tuple(n for n, _ in OUTPUTS)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (crops, info), str(out_path), input_names=list(names_in),
                          output_names=list(names_out), dynamic_axes=dynamic_axes(names_in, names_out),
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    res: dict = {"path": str(out_path)}
    if check:
        res["ops"] = sorted(check_tensorrt_ops(out_path))
        sess = _ort_session(out_path)
        c5 = torch.randint(0, 256, (5, *CROP_DIMS), generator=g, dtype=torch.uint8)
        i5 = torch.cat([torch.rand(5, 2, generator=g) - 0.5, 0.2 + 0.8 * torch.rand(5, 1, generator=g)], 1)
        with torch.no_grad():
            ref = model(c5, i5)[0].numpy()
        got = sess.run(["q"], {"crops": c5.numpy(), "bbox_info": i5.numpy()})[0]
        res["max_abs_dq_rad"] = float(np.max(np.abs(ref - got)))
        if not res["max_abs_dq_rad"] <= PARITY_ATOL_Q_RAD:
            raise EngineError(f"ONNX Runtime differs from PyTorch by {res['max_abs_dq_rad']:.2e} rad "
                              f"in {out_path}; do not serve it")
    return res


def build_plan_script(max_batch: int, opt_batch: int, inputs: tuple | None = None) -> str:
    """trtexec command building the FP16 plan with batch profile 1 / opt / max over `inputs`
    ((name, dims without batch)); max_batch 0: static shapes, no profile."""
    inputs = tuple(inputs) if inputs is not None else tuple((n, d) for n, _, d in INPUTS)
    shapes = {k: ",".join(f"{n}:{'x'.join(map(str, (b, *d)))}" for n, d in inputs)
              for k, b in (("min", 1), ("opt", opt_batch), ("max", max_batch))}
    profile = "" if max_batch <= 0 else f""" \\
  --minShapes={shapes['min']} --optShapes={shapes['opt']} --maxShapes={shapes['max']}"""
    return f"""#!/bin/sh
# Build the TensorRT FP16 plan for THIS GPU with THIS TensorRT (run it inside the tritonserver
# container that will serve it: a plan only loads with the TensorRT version and compute
# capability it was built with).
set -e
cd "$(dirname "$0")"
mkdir -p 1
${{TRTEXEC:-trtexec}} --onnx=model.onnx --saveEngine=1/model.plan --fp16{profile}
"""


def python_code_path() -> str:
    """Folders the Python-backend stub needs on sys.path: this checkout and torch's site-packages."""
    return os.pathsep.join([str(REPO), *site.getsitepackages()])


def write_repository(out: str | Path, checkpoint: str | None, variant: str = "vit_h",
                     backends: tuple[str, ...] = ("tensorrt", "onnxruntime"), flnet: bool = True,
                     max_batch: int = 32, preferred: tuple[int, ...] = (4, 8, 16),
                     queue_delay_us: int = 2000, instances: int = 1, kind: str = "KIND_GPU",
                     python_threads: int = 0, check: bool = True) -> dict[str, Path]:
    """Write the repository; returns {model name: its config.pbtxt}."""
    out = Path(out)
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise EngineError(f"unknown backend(s) {bad}; use {', '.join(BACKENDS)}")
    written: dict[str, Path] = {}
    onnx_backends = [b for b in backends if b in ("tensorrt", "onnxruntime")]
    net = load_network(variant, checkpoint) if onnx_backends else None
    onnx_tmp = None
    if onnx_backends:
        onnx_tmp = out / ".skelcf_uint8.onnx"
        export_uint8_onnx(net, onnx_tmp, check=check)
    for b in backends:
        name = MODEL_NAMES[b]
        mdir = out / name
        params = None
        if b == "python":
            if checkpoint is None:
                raise EngineError("the python backend loads the checkpoint on the server; "
                                  "give --checkpoint best.pth")
            params = {"checkpoint": str(Path(checkpoint).resolve()), "variant": variant,
                      "code_path": python_code_path(), "threads": str(python_threads),
                      "device": "cuda" if kind == "KIND_GPU" else "cpu",
                      "fp16": "1" if kind == "KIND_GPU" else "0"}
            if kind == "KIND_GPU":  # CUDA shared-memory inputs reach the model on the GPU
                params["FORCE_CPU_ONLY_INPUT_TENSORS"] = "no"
            (mdir / "1").mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(__file__).with_name("triton_python_model.py"), mdir / "1" / "model.py")
        elif b == "onnxruntime":
            (mdir / "1").mkdir(parents=True, exist_ok=True)
            shutil.copy(onnx_tmp, mdir / "1" / "model.onnx")
        else:  # tensorrt: ONNX + the plan build step, see build_plan_script
            mdir.mkdir(parents=True, exist_ok=True)
            shutil.copy(onnx_tmp, mdir / "model.onnx")
            script = mdir / "build_plan.sh"
            script.write_text(build_plan_script(max_batch, max(preferred, default=8)))
            script.chmod(0o755)
        written[name] = write_config(mdir, model_config(
            name, b, max_batch, preferred, queue_delay_us, kind, instances, parameters=params))
    if onnx_tmp is not None:
        onnx_tmp.unlink(missing_ok=True)
    if flnet:
        written["flnet"] = write_flnet(out, checkpoint, kind, check)
    return written


def write_flnet(out: Path, checkpoint: str | None, kind: str = "KIND_GPU", check: bool = True) -> Path:
    """FLNet: image (B,3,256,256) FP32 letterboxed, ImageNet-normalised -> out (B,2); ONNX Runtime."""
    pb = require("tritonclient.grpc.model_config_pb2", "triton", "writing a Triton repository")
    mdir = out / "flnet"
    export_flnet(load_flnet_for_export(checkpoint), mdir / "1" / "model.onnx", check=check)
    c = pb.ModelConfig(name="flnet", platform="onnxruntime_onnx", max_batch_size=8)
    c.input.add(name="image", data_type=pb.TYPE_FP32, dims=[3, 256, 256])
    c.output.add(name="out", data_type=pb.TYPE_FP32, dims=[2])
    c.dynamic_batching.max_queue_delay_microseconds = 0  # once per stream every few minutes
    c.instance_group.add(kind=getattr(pb.ModelInstanceGroup, kind), count=1)
    return write_config(mdir, c)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engines.skelcf.triton_repo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="official best.pth (random weights if omitted)")
    ap.add_argument("--variant", default="vit_h", choices=["vit_h", "vit_b", "tiny"])
    ap.add_argument("--out", required=True, help="model repository folder")
    ap.add_argument("--backends", default="tensorrt,onnxruntime",
                    help="comma list of tensorrt, onnxruntime, python")
    ap.add_argument("--no-flnet", action="store_true")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--preferred-batch", default="4,8,16", help="dynamic batching preferred sizes")
    ap.add_argument("--max-queue-delay-us", type=int, default=2000)
    ap.add_argument("--instances", type=int, default=1, help="model instances per GPU (or CPU)")
    ap.add_argument("--cpu", action="store_true", help="KIND_CPU instance groups (no GPU server)")
    ap.add_argument("--python-threads", type=int, default=0)
    ap.add_argument("--no-check", action="store_true")
    a = ap.parse_args(argv)
    try:
        written = write_repository(
            a.out, a.checkpoint, a.variant, tuple(x for x in a.backends.split(",") if x),
            not a.no_flnet, a.max_batch, tuple(int(x) for x in a.preferred_batch.split(",") if x),
            a.max_queue_delay_us, a.instances, "KIND_CPU" if a.cpu else "KIND_GPU",
            a.python_threads, check=not a.no_check)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_written(written, a.out, "skelcf_trt")
    return 0


def print_written(written: dict[str, Path], out: str | Path, plan_model: str) -> None:
    """Each model's config path, and the plan-build step when a TensorRT model was written."""
    for name, path in written.items():
        print(f"{name}: {path}")
    if plan_model in written:
        print(f"TensorRT: run {Path(out) / plan_model / 'build_plan.sh'} inside the serving "
              "container before starting tritonserver")


if __name__ == "__main__":
    raise SystemExit(main())
