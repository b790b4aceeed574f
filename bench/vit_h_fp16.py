"""Full-size ViT-H SKEL-CF (random weights, seed 0) -> FP16 AutoCast ONNX -> parity against FP32 in
ONNX Runtime CPU: the graph TensorRT builds strongly typed, checked where no GPU exists. Each step
runs in its own process so its wall time and peak RSS (incl. AutoCast's child) are measured apart.
Too big for CI (BENCHMARKS.md has the figures); one command, under the shared big-memory lock:

    flock /work/coord/bigmem.lock python bench/vit_h_fp16.py --dir /tmp/vit_h [--json out.json]

--variant vit_b runs the same steps on the base model (minutes, ~2 GB).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARITY_BATCHES = (1, 2)


def step_export(variant: str, out: Path) -> dict:
    import torch

    from engines.skelcf.export import export_skelcf
    from engines.skelcf.model import build_skelcf
    torch.manual_seed(0)
    net = build_skelcf(variant).eval()
    res = export_skelcf(net, out, check=False)
    return {"params": sum(p.numel() for p in net.parameters()), "sha256": res["sha256"]}


def step_autocast(src: Path, out: Path) -> dict:
    import onnx

    from engines.backends.fp16_autocast import autocast_fp16
    autocast_fp16(src, out)
    m = onnx.load(str(out), load_external_data=False)
    casts = [n.attribute[0].i for n in m.graph.node if n.op_type == "Cast"]
    return {"nodes": len(m.graph.node), "casts_to_fp32": casts.count(onnx.TensorProto.FLOAT),
            "casts_to_fp16": casts.count(onnx.TensorProto.FLOAT16)}


def step_parity(src: Path, fp16: Path) -> dict:
    from engines.skelcf.export import FP16_PARITY_ATOL_Q_RAD, check_fp16_parity
    worst = check_fp16_parity(src, fp16, batches=PARITY_BATCHES, seed=2, atol_q_rad=float("inf"))
    return {**worst, "batches": list(PARITY_BATCHES), "atol_q_rad": FP16_PARITY_ATOL_Q_RAD}


STEPS = {"export": step_export, "autocast": step_autocast, "parity": step_parity}


def run_step(name: str, *args: str) -> dict:
    """One step in a child process; its result, wall seconds and peak RSS (GB, its descendants
    included: wait4 reports the largest of them)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--step", name, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"step {name} failed (exit {proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    res.update(wall_s=round(time.perf_counter() - t0, 1), peak_rss_gb=round(usage.ru_maxrss / 2**20, 2))
    print(f"{name}: {res}", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=Path("/tmp/skelstream_vit_h_fp16"))
    p.add_argument("--variant", default="vit_h")
    p.add_argument("--json", type=Path)
    p.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    a, rest = p.parse_known_args(argv)
    if a.step:  # child: print the step's result as the last stdout line
        args = [rest[0]] if a.step == "export" else []
        res = STEPS[a.step](*args, *map(Path, rest[len(args):]))
        print(json.dumps(res, default=float))
        return 0
    a.dir.mkdir(parents=True, exist_ok=True)
    fp32, fp16 = a.dir / f"skelcf-{a.variant}.onnx", a.dir / f"skelcf-{a.variant}.fp16.onnx"
    report = {"variant": a.variant, "cpus": len(os.sched_getaffinity(0))}
    report["export"] = run_step("export", a.variant, str(fp32))
    fp16.unlink(missing_ok=True)  # convert again, measured
    report["autocast"] = run_step("autocast", str(fp32), str(fp16))
    report["parity"] = run_step("parity", str(fp32), str(fp16))
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))
    ok = report["parity"]["max_abs_dq_rad"] <= report["parity"]["atol_q_rad"]
    print(f"{a.variant} FP16 AutoCast vs FP32 (ORT CPU, batches {PARITY_BATCHES}): max|dq| "
          f"{report['parity']['max_abs_dq_rad']:.2e} rad (atol {report['parity']['atol_q_rad']:.0e}) "
          f"{'OK' if ok else 'FAIL'}; peak RSS export {report['export']['peak_rss_gb']} GB, AutoCast "
          f"{report['autocast']['peak_rss_gb']} GB, parity {report['parity']['peak_rss_gb']} GB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
