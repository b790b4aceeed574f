"""SKEL-CF on CPU: crops/s of torch-cpu (FP32) vs onnxruntime-cpu on the same exported network,
measured in the same run, interleaved (A-B-A-B) so load changes on a shared machine hit both.

    .venv/bin/python bench/bench_skelcf_cpu.py [--variants tiny,vit_b] [--batches 1,8] [--rounds 4]

Prints per variant and batch: p50/p99 ms per call and crops/s for each backend, and the ratio
ort/torch of the p50s (< 1 = onnxruntime faster). Random weights (speed does not depend on them).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.backends.ort_backend import OrtBackend  # noqa: E402
from engines.backends.torch_backend import TorchBackend  # noqa: E402
from engines.skelcf.export import export_skelcf  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402


def time_calls(backend, crops, info, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        backend.infer(crops, info)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="tiny,vit_b")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--rounds", type=int, default=4, help="A-B alternations per batch size")
    p.add_argument("--calls", type=int, default=3, help="calls per backend per round")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    import onnxruntime as ort
    res = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "torch": torch.__version__,
           "onnxruntime": ort.__version__, "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
           "results": []}
    tmp = Path(tempfile.mkdtemp(prefix="skelcf_bench_"))
    for variant in a.variants.split(","):
        torch.manual_seed(0)
        net = build_skelcf(variant).eval()
        onnx_path = tmp / f"{variant}.onnx"
        export_skelcf(net, onnx_path, check=False)
        tb, ob = TorchBackend(net, device="cpu"), OrtBackend(onnx_path, device="cpu")
        for b in [int(x) for x in a.batches.split(",")]:
            g = torch.Generator().manual_seed(b)
            crops = torch.randn(b, 3, 256, 256, generator=g)
            info = torch.tensor([[0.0, 0.0, 0.5]] * b)
            tb.infer(crops, info), ob.infer(crops, info)  # warm-up
            t_torch, t_ort = [], []
            for _ in range(a.rounds):
                t_torch += time_calls(tb, crops, info, a.calls)
                t_ort += time_calls(ob, crops, info, a.calls)
            row = {"variant": variant, "batch": b}
            for name, ts in (("torch", t_torch), ("ort", t_ort)):
                ms = np.array(ts) * 1e3
                row[f"{name}_p50_ms"] = float(np.percentile(ms, 50))
                row[f"{name}_p99_ms"] = float(np.percentile(ms, 99))
                row[f"{name}_crops_per_s"] = b / (row[f"{name}_p50_ms"] / 1e3)
            row["ort_over_torch_p50"] = row["ort_p50_ms"] / row["torch_p50_ms"]
            res["results"].append(row)
            print(f"{variant:6s} b={b:2d}  torch p50 {row['torch_p50_ms']:8.1f} ms p99 {row['torch_p99_ms']:8.1f} "
                  f"({row['torch_crops_per_s']:6.1f} crops/s) | ort p50 {row['ort_p50_ms']:8.1f} ms p99 "
                  f"{row['ort_p99_ms']:8.1f} ({row['ort_crops_per_s']:6.1f} crops/s) | ort/torch "
                  f"{row['ort_over_torch_p50']:.2f}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
