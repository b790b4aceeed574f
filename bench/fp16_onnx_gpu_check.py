"""FP16 SKEL-CF on a GPU without TensorRT: the FP16 AutoCast graph (the one TensorRT builds strongly
typed) through ONNX Runtime's CUDA provider when the installed onnxruntime has it, and torch FP16,
each against FP32. Prints one line per check; exits 1 on a failed check (a skipped one is not).

    python bench/fp16_onnx_gpu_check.py --prepare .cache/gpu_onnx [--variants tiny,vit_b]  # CPU, modelopt
    python3 bench/fp16_onnx_gpu_check.py --onnx-dir .cache/gpu_onnx [--cpu-only] [--json out.json]

--prepare exports the tiny variant (seed 0) and its AutoCast FP16 graph into the folder, for a GPU
machine without a registry (carry the folder). --cpu-only skips every CUDA part (a dry run).
Needs torch, numpy, onnx, onnxruntime; no pydantic.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.skelcf.export import FP16_PARITY_ATOL_Q_RAD, OUTPUT_NAMES  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402

TORCH_FP16_MEDIAN_DQ_RAD = 5e-3  # as tests/test_skelcf_backends_gpu.py


def inputs(b: int, seed: int = 1) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    xy = g.uniform(-0.5, 0.5, (b, 2))
    side = g.uniform(0.2, 1.0, (b, 1))
    return {"crops": g.standard_normal((b, 3, 256, 256)).astype(np.float32),
            "bbox_info": np.concatenate([xy, side], 1).astype(np.float32)}


def wrap(d: np.ndarray) -> np.ndarray:
    d = np.abs(d)
    return np.minimum(d, 2 * np.pi - d)  # +-pi wrap-around is not an error


def prepare(folder: Path, variants: list[str]) -> int:
    """Export each variant (seed 0) and its AutoCast FP16 graph into `folder`; print the time of
    each step and the FP16-vs-FP32 parity in ONNX Runtime (CPU)."""
    from engines.backends.fp16_autocast import autocast_fp16
    from engines.skelcf.export import check_fp16_parity, export_skelcf
    folder.mkdir(parents=True, exist_ok=True)
    for variant in variants:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        export_skelcf(build_skelcf(variant).eval(), folder / f"{variant}.onnx")
        t1 = time.perf_counter()
        f16 = autocast_fp16(folder / f"{variant}.onnx", folder / f"{variant}.fp16.onnx")
        t2 = time.perf_counter()
        d = check_fp16_parity(folder / f"{variant}.onnx", f16, batches=(1, 4))
        print(f"prepared {folder}/{variant}.onnx + {f16.name}: export {t1 - t0:.0f} s, AutoCast "
              f"{t2 - t1:.0f} s; FP16 vs FP32 on ORT CPU, batches 1+4: max|dq| {d['max_abs_dq_rad']:.2e} "
              f"rad, max|dbetas| {d['max_abs_dbetas']:.2e}, max|dcam| {d['max_abs_dcam']:.2e}")
    return 0


def ort_check(folder: Path, cpu_only: bool, res: dict) -> bool:
    """FP16 graph vs FP32 graph, both in ONNX Runtime: CPU always, CUDA provider when present."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        print(f"SKIP onnxruntime: not importable ({exc})")
        return True
    fp32, fp16 = folder / "tiny.onnx", folder / "tiny.fp16.onnx"
    if not (fp32.is_file() and fp16.is_file()):
        print(f"SKIP FP16 ONNX: {fp32} / {fp16} missing (run --prepare where modelopt is installed)")
        return True
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    ref_sess = ort.InferenceSession(str(fp32), opts, providers=["CPUExecutionProvider"])
    feeds = inputs(8)
    ref = ref_sess.run(list(OUTPUT_NAMES), feeds)
    providers = ort.get_available_providers()
    res["onnxruntime"] = {"version": ort.__version__, "providers": providers}
    runs = [("CPUExecutionProvider", "cpu")]
    if "CUDAExecutionProvider" in providers and not cpu_only:
        runs.append(("CUDAExecutionProvider", "cuda"))
    else:
        why = "--cpu-only" if cpu_only else f"onnxruntime {ort.__version__} has no CUDAExecutionProvider ({providers})"
        print(f"SKIP FP16 ONNX on ONNX Runtime CUDA: {why}")
    ok = True
    for provider, tag in runs:
        sess = ort.InferenceSession(str(fp16), opts, providers=[provider])
        got = sess.run(list(OUTPUT_NAMES), feeds)
        dq = float(wrap(got[0] - ref[0]).max())
        passed = dq <= FP16_PARITY_ATOL_Q_RAD and all(o.dtype == np.float32 for o in got)
        ok &= passed
        t = []
        for i in range(12):
            t0 = time.perf_counter()
            sess.run(["q"], feeds)
            if i >= 2:
                t.append(time.perf_counter() - t0)
        res[f"ort_fp16_{tag}"] = {"max_abs_dq_rad": dq, "batch8_ms_p50": 1e3 * float(np.median(t))}
        print(f"FP16 AutoCast ONNX on ORT {tag} vs FP32 ORT cpu, tiny batch 8: max|dq| {dq:.2e} rad "
              f"(atol {FP16_PARITY_ATOL_Q_RAD:.0e}) {1e3 * np.median(t):.2f} ms/call "
              f"{'OK' if passed else 'FAIL'}")
    return ok


def torch_check(variants: list[str], res: dict, device: str = "cuda") -> bool:
    """torch FP16 vs torch FP32 on `device` (TF32 off), same weights, batch 8 ('cpu': the dry run
    of the same code)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ok = True
    for variant in variants:
        torch.manual_seed(0)
        net = build_skelcf(variant).eval().to(device)
        feeds = {k: torch.from_numpy(v).to(device) for k, v in inputs(8).items()}
        with torch.no_grad():
            q32 = net.forward_export(feeds["crops"], feeds["bbox_info"])[0]
            net = net.half()
            q16 = net.forward_export(feeds["crops"].half(), feeds["bbox_info"].half())[0]
        dq = wrap((q16.float() - q32).cpu().numpy())
        finite = bool(torch.isfinite(q16).all())
        passed = finite and float(np.median(dq)) < TORCH_FP16_MEDIAN_DQ_RAD
        ok &= passed
        res[f"torch_fp16_{variant}_{device}"] = {"max_abs_dq_rad": float(dq.max()), "median_dq_rad": float(np.median(dq))}
        print(f"torch FP16 vs FP32 on {device}, {variant} batch 8: max|dq| {dq.max():.2e} rad, median "
              f"{np.median(dq):.2e} (< {TORCH_FP16_MEDIAN_DQ_RAD:.0e}), finite {finite} "
              f"{'OK' if passed else 'FAIL'}")
        del net
        if device == "cuda":
            torch.cuda.empty_cache()
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepare", type=Path, default=None, help="write tiny.onnx + tiny.fp16.onnx here, then exit")
    p.add_argument("--onnx-dir", type=Path, default=Path(".cache/gpu_onnx"))
    p.add_argument("--variants", default=None,
                   help="variants: torch FP16 check (default tiny,vit_h); --prepare (default tiny)")
    p.add_argument("--cpu-only", action="store_true", help="skip every CUDA part (dry run)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if a.prepare is not None:
        return prepare(a.prepare, [v for v in (a.variants or "tiny").split(",") if v])
    res: dict = {"torch": torch.__version__, "cuda": torch.version.cuda}
    ok = ort_check(a.onnx_dir, a.cpu_only, res)
    if a.cpu_only or not torch.cuda.is_available():
        print(f"SKIP torch FP16 on CUDA: {'--cpu-only' if a.cpu_only else 'no CUDA device'}; "
              f"the same check on the CPU, tiny:")
        ok &= torch_check(["tiny"], res, "cpu")
    else:
        res["device"] = torch.cuda.get_device_name()
        ok &= torch_check([v for v in (a.variants or "tiny,vit_h").split(",") if v], res)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    print("ALL OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
