"""ONNX export of SKEL-CF (backbone + decoder + 6D->Euler as one graph) and of FLNet.

Why a graph at all: TensorRT and ONNX Runtime consume ONNX, and one graph with a dynamic batch axis
lets the TensorRT builder fuse across the backbone/decoder boundary. The SKEL body model (sparse
buffers) never enters the graph. Every export is checked twice before it is kept: its op list must be
TensorRT-buildable (no control flow, no data-dependent shapes, no sparse ops) and ONNX Runtime must
reproduce PyTorch (max |dq| <= 1e-4 rad in FP32).

    python -m engines.skelcf.export --variant vit_h --checkpoint best.pth --out skelcf_vit_h.onnx
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.backends.onnx_files import data_file_name, model_digest, save_model
from stream.errors import DependencyError, EngineError, require

INPUT_NAMES = ("crops", "bbox_info")
OUTPUT_NAMES = ("q", "betas", "cam")
FLNET_INPUT_NAMES = ("image",)
FLNET_OUTPUT_NAMES = ("out",)
OPSET = 17
PARITY_ATOL_Q_RAD = 1e-4
# FP16 (10-bit mantissa, ~5e-4 relative per op) through the ViT and 6 decoder layers, each adding a
# pose update, then 6D -> Euler: measured 1.4e-3 rad on vit_b with random weights; 1e-2 rad (0.6 deg)
# is the bound the FP16 graph must hold against FP32.
FP16_PARITY_ATOL_Q_RAD = 1e-2

# ONNX ops TensorRT 10's ONNX parser builds (onnx-tensorrt docs/operators.md) that a ViT, the decoder,
# the 6D->Euler conversion or an HRNet can produce. Anything else fails the export loudly, so that a
# graph change that TensorRT could not build is caught on a CPU-only machine.
TENSORRT_OPS = frozenset("""
Abs Acos Add And ArgMax Asin Atan AveragePool BatchNormalization Cast Ceil Clip Concat Constant
ConstantOfShape Conv ConvTranspose Cos Div Einsum Equal Erf Exp Expand Flatten Floor Gather
GatherElements Gelu Gemm GlobalAveragePool Greater GreaterOrEqual Identity LayerNormalization Less
LessOrEqual Log MatMul Max MaxPool Mean Min Mod Mul Neg Not Or Pad Pow Range Reciprocal ReduceL2
ReduceMax ReduceMean ReduceMin ReduceSum Relu Reshape Resize Shape Sigmoid Sign Sin Slice Softmax
Split Sqrt Squeeze Sub Sum Tanh Tile Transpose Unsqueeze Where
""".split())
# never acceptable: data-dependent control flow / shapes, sequences, sparse tensors
FORBIDDEN_OPS = frozenset("""
If Loop Scan NonZero Unique Compress SequenceConstruct SequenceAt SequenceInsert SplitToSequence
ConcatFromSequence SparseToDense TopK NonMaxSuppression
""".split())


def dynamic_axes(input_names: tuple[str, ...], output_names: tuple[str, ...]) -> dict[str, dict[int, str]]:
    """Axis 0 of every named input and output is the batch axis."""
    return {name: {0: "batch"} for name in (*input_names, *output_names)}


def graph_ops(onnx_path: str | Path) -> set[str]:
    """Set of op types in the exported graph (subgraphs included)."""
    onnx = require("onnx", "onnx", "checking an ONNX export")
    model = onnx.load(str(onnx_path), load_external_data=False)
    ops: set[str] = set()

    def walk(graph) -> None:
        for node in graph.node:
            ops.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
    walk(model.graph)
    return ops


def check_tensorrt_ops(onnx_path: str | Path) -> set[str]:
    """Raise EngineError when the graph holds an op TensorRT cannot build; return the op set."""
    ops = graph_ops(onnx_path)
    bad = sorted((ops & FORBIDDEN_OPS) | (ops - TENSORRT_OPS))
    if bad:
        raise EngineError(f"ONNX graph {onnx_path} uses ops TensorRT cannot build ({', '.join(bad)}); "
                          f"export with the export-safe build of the network")
    return ops


def _ort_session(onnx_path: str | Path):
    """CPU session for the checks. No memory arena and no weight prepacking: neither changes a
    result, and prepacking would double ViT-H's 2.7 GB of weights."""
    ort = require("onnxruntime", "onnx", "checking an ONNX export")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = False
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


class _ExportWrapper(nn.Module):
    """Exposes `forward_export` as `forward` so the tracer sees the inference path only."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor, bbox_info: torch.Tensor):
        fn = getattr(self.net, "forward_export", None) or self.net.forward
        return fn(crops, bbox_info)


def export_skelcf(net: nn.Module, out_path: str | Path, batch: int = 2, opset: int = OPSET,
                  check: bool = True, seed: int = 0) -> dict:
    """Export net.forward_export(crops (B,3,256,256) f32, bbox_info (B,3) f32) -> q (B,46) rad,
    betas (B,10), cam (B,3) to one ONNX graph with a dynamic batch axis.

    With `check`, verifies the op list against TensorRT's and ONNX Runtime against PyTorch at two
    batch sizes (the traced one and another, proving the batch axis is really dynamic).
    Returns {'path', 'ops', 'max_abs_dq_rad', 'max_abs_dbetas', 'max_abs_dcam', 'sha256'}."""
    if opset < 17:
        raise EngineError(f"opset {opset} is too old; use opset >= 17 (LayerNormalization)")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _ExportWrapper(net).eval().float().cpu()
    g = torch.Generator().manual_seed(seed)
    crops = torch.randn(batch, 3, 256, 256, generator=g)
    info = _plausible_bbox_info(batch, g)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), \
            _exported_to(out_path) as tmp_path:
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (crops, info), str(tmp_path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES),
                          dynamic_axes=dynamic_axes(INPUT_NAMES, OUTPUT_NAMES),
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    result: dict = {"path": str(out_path), "sha256": model_digest(out_path)}
    if check:
        result["ops"] = sorted(check_tensorrt_ops(out_path))
        result.update(check_parity(wrapper, out_path, batches=(batch, batch + 3), seed=seed + 1))
    return result


@contextmanager
def _exported_to(out_path: Path):
    """Yield a path in a fresh folder beside `out_path` for torch to export into, then move the
    model to `out_path`. A model over 2 GB comes out of torch as one file per tensor (named after
    the tensor): those are gathered into the one data file `<model>.onnx.data`, so exports sharing
    a folder never overwrite each other's weights, and a failed export leaves nothing behind."""
    tmp_dir = Path(tempfile.mkdtemp(dir=out_path.parent, prefix=f".{out_path.name}."))
    try:
        tmp_path = tmp_dir / out_path.name
        yield tmp_path
        if any(f != tmp_path for f in tmp_dir.iterdir()):
            onnx = require("onnx", "skelcf", "saving a large ONNX export")
            save_model(onnx.load(str(tmp_path), load_external_data=True), out_path, external=True)
        else:
            # a data file left by an older, large export of this name would be stale
            (out_path.parent / data_file_name(out_path)).unlink(missing_ok=True)
            os.replace(tmp_path, out_path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _plausible_bbox_info(batch: int, g: torch.Generator) -> torch.Tensor:
    # centres within +-0.5 f of the principal point, box sides 0.2..1.0 f
    xy = (torch.rand(batch, 2, generator=g) - 0.5)
    side = 0.2 + 0.8 * torch.rand(batch, 1, generator=g)
    return torch.cat([xy, side], dim=1)


def _seeded_inputs(batches: tuple[int, ...], seed: int):
    """(crops, bbox_info) per batch size: N(0, 1) crops and plausible boxes, from one seed."""
    g = torch.Generator().manual_seed(seed)
    for b in batches:
        yield torch.randn(b, 3, 256, 256, generator=g), _plausible_bbox_info(b, g)


def _worst_differences(ref_outputs, run_got, batches: tuple[int, ...], seed: int, mismatch_hint: str) -> dict:
    """Max abs differences of q, betas, cam between reference outputs (one list per batch, from
    `_seeded_inputs(batches, seed)`) and a runner on the same inputs; EngineError (with
    `mismatch_hint`) when an output's shape or dtype differs."""
    worst = {"max_abs_dq_rad": 0.0, "max_abs_dbetas": 0.0, "max_abs_dcam": 0.0}
    for b, ref, (crops, info) in zip(batches, ref_outputs, _seeded_inputs(batches, seed)):
        for key, r, o in zip(worst, ref, run_got(crops, info)):
            if r.shape != o.shape or o.dtype != np.float32:
                raise EngineError(f"ONNX output {o.dtype}{o.shape} != reference {r.dtype}{r.shape} at "
                                  f"batch {b}; {mismatch_hint}")
            worst[key] = max(worst[key], float(np.max(np.abs(r.astype(np.float64) - o))))
    return worst


def _ort_runner(onnx_path: str | Path):
    sess = _ort_session(onnx_path)
    return lambda crops, info: sess.run(list(OUTPUT_NAMES), {"crops": crops.numpy(), "bbox_info": info.numpy()})


def check_parity(net: nn.Module, onnx_path: str | Path, batches: tuple[int, ...] = (2, 5),
                 seed: int = 1, atol_q_rad: float = PARITY_ATOL_Q_RAD) -> dict:
    """Run PyTorch (FP32, CPU) and ONNX Runtime on the same seeded inputs; raise EngineError when
    max |dq| exceeds `atol_q_rad`. Returns the max abs differences over all batches."""
    wrapper = net if isinstance(net, _ExportWrapper) else _ExportWrapper(net)
    wrapper = wrapper.eval().float().cpu()

    def run_torch(crops, info):
        with torch.no_grad():
            return [t.numpy() for t in wrapper(crops, info)]
    worst = _worst_differences([run_torch(*x) for x in _seeded_inputs(batches, seed)],
                               _ort_runner(onnx_path), batches, seed,
                               "the batch axis is not dynamic in the export")
    if not worst["max_abs_dq_rad"] <= atol_q_rad:
        raise EngineError(f"ONNX Runtime differs from PyTorch by {worst['max_abs_dq_rad']:.2e} rad "
                          f"(> {atol_q_rad:.0e}); the export is not faithful, do not use {onnx_path}")
    return worst


def check_fp16_parity(fp32_path: str | Path, fp16_path: str | Path, batches: tuple[int, ...] = (2, 5),
                      seed: int = 1, atol_q_rad: float = FP16_PARITY_ATOL_Q_RAD) -> dict:
    """Run the FP32 export and its FP16 AutoCast graph in ONNX Runtime (CPU) on the same seeded
    inputs; raise EngineError when max |dq| exceeds `atol_q_rad`. This is the graph TensorRT builds
    strongly typed, so its error is the engine's precision error (up to kernel choice). One session
    at a time (the FP32 one is dropped before the FP16 one loads), so ViT-H fits in ~6 GB."""
    run_fp32 = _ort_runner(fp32_path)
    ref = [run_fp32(*x) for x in _seeded_inputs(batches, seed)]
    del run_fp32
    worst = _worst_differences(ref, _ort_runner(fp16_path), batches, seed,
                               "the FP16 graph must keep FP32 inputs/outputs (keep_io_types)")
    if not worst["max_abs_dq_rad"] <= atol_q_rad:
        raise EngineError(f"the FP16 graph differs from FP32 by {worst['max_abs_dq_rad']:.2e} rad "
                          f"(> {atol_q_rad:.0e}); do not build TensorRT from {fp16_path}")
    return worst


def export_flnet(flnet: nn.Module, out_path: str | Path, opset: int = OPSET, check: bool = True) -> dict:
    """Export FLNet: image (B,3,256,256) letterboxed, ImageNet-normalized -> out (B,2) (out[:,1] is
    the vertical FOV in radians). Checked against ONNX Runtime (max |dout| <= 1e-4)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    flnet = flnet.eval().float().cpu()
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), warnings.catch_warnings(), _exported_to(out_path) as tmp_path:
        warnings.simplefilter("ignore")
        torch.onnx.export(flnet, (x,), str(tmp_path), input_names=list(FLNET_INPUT_NAMES),
                          output_names=list(FLNET_OUTPUT_NAMES),
                          dynamic_axes=dynamic_axes(FLNET_INPUT_NAMES, FLNET_OUTPUT_NAMES),
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    result: dict = {"path": str(out_path), "sha256": model_digest(out_path)}
    if check:
        result["ops"] = sorted(check_tensorrt_ops(out_path))
        sess = _ort_session(out_path)
        x2 = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            ref = flnet(x2)
        ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).numpy()
        got = sess.run(list(FLNET_OUTPUT_NAMES), {"image": x2.numpy()})[0]
        err = float(np.max(np.abs(ref - got)))
        if not err <= 1e-4:
            raise EngineError(f"FLNet ONNX differs from PyTorch by {err:.2e}; do not use {out_path}")
        result["max_abs_dout"] = err
    return result


def load_network(variant: str, checkpoint: str | None) -> nn.Module:
    """Build the variant and, when given, load the official checkpoint strictly."""
    try:
        from engines.skelcf.model import build_skelcf
    except ImportError as exc:
        raise DependencyError(f"the SKEL-CF network module is unavailable ({exc}); "
                              f"update the checkout (engines/skelcf/model.py)") from None
    net = build_skelcf(variant)
    if checkpoint:
        from engines.skelcf.checkpoint import load_skelcf
        load_skelcf(net, checkpoint)
    return net.eval()


def load_flnet_for_export(checkpoint: str | None) -> nn.Module:
    """FLNet from the checkpoint's cam_model.* (strict), or random official-size weights."""
    from engines.skelcf.flnet import build_flnet
    if checkpoint:
        from engines.skelcf.checkpoint import load_flnet
        return load_flnet(checkpoint)
    return build_flnet()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="vit_h", choices=["vit_h", "vit_b", "tiny"])
    p.add_argument("--checkpoint", default=None, help="official best.pth (random weights if omitted)")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--flnet-out", default=None, help="also export FLNet to this .onnx path")
    p.add_argument("--fp16", action="store_true",
                   help="also write the FP16 AutoCast graph TensorRT builds (<out stem>.fp16.onnx)")
    p.add_argument("--opset", type=int, default=OPSET)
    p.add_argument("--no-check", action="store_true", help="skip op-list and ONNX Runtime checks")
    a = p.parse_args(argv)
    try:
        net = load_network(a.variant, a.checkpoint)
        res = export_skelcf(net, a.out, opset=a.opset, check=not a.no_check)
        print(f"wrote {res['path']} sha256={res['sha256'][:16]}")
        if "ops" in res:
            print(f"ops: {' '.join(res['ops'])}")
            print(f"ORT parity: max|dq|={res['max_abs_dq_rad']:.2e} rad "
                  f"max|dbetas|={res['max_abs_dbetas']:.2e} max|dcam|={res['max_abs_dcam']:.2e}")
        if a.fp16:
            from engines.backends.fp16_autocast import autocast_fp16
            f16 = autocast_fp16(res["path"])
            print(f"wrote {f16} (FP16 AutoCast)")
            if not a.no_check:
                d = check_fp16_parity(res["path"], f16)
                print(f"FP16 vs FP32 (ONNX Runtime CPU): max|dq|={d['max_abs_dq_rad']:.2e} rad "
                      f"max|dbetas|={d['max_abs_dbetas']:.2e} max|dcam|={d['max_abs_dcam']:.2e}")
        if a.flnet_out:
            fl = load_flnet_for_export(a.checkpoint)
            r2 = export_flnet(fl, a.flnet_out, opset=a.opset, check=not a.no_check)
            print(f"wrote {r2['path']} (FLNet)")
    except (EngineError, DependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
