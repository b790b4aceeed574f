"""SKEL-CF through Triton vs the local backend, in one run, against a real tritonserver.

    .venv/bin/python bench/bench_triton.py [--persons 1,4,8] [--frames 40] [--pipelines 4]
    # GPU machine (script ready; random weights): --variant vit_h --device cuda

Per frame, through the whole engine (crops -> inference -> q/trans), interleaved A-B-C per frame
(each mode first in turn) so load changes on a shared machine hit every mode alike:
- local: torch backend in this process (float32 crops, the baseline);
- triton-shm: Triton on loopback, tensors in registered system shared memory;
- triton-grpc: the same server over the gRPC socket.
Reports p50/p99 ms per frame, the added p50 (median of the per-frame differences to local on the
same frame: paired, so the load drifting on a shared machine cancels), where it goes (client round
trip = server queue + server compute + transport; server compute vs local inference), and tensor
bytes per person sent. The per-frame models have no dynamic-batching queue delay (`--queue-delay-us`,
0 by default: with one client each request would wait the whole delay for a batch that never fills).
Then `--pipelines` processes (each a pose engine posing frames of 4 persons), crops/s: each with
its own local model (torch; FP16 on CUDA), through Triton without dynamic batching, and with it
(the gain, and the server's requests per execution). Server: nvidia-pytriton's tritonserver, SKEL-CF in its Python
backend (torch, `--server-threads`); this process uses as many torch threads.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.skelcf.checkpoint import make_manifest_checkpoint  # noqa: E402
from engines.skelcf.config import SkelCFConfig, TritonConfig  # noqa: E402
from engines.skelcf.engine import SkelCFEngine  # noqa: E402
from engines.skelcf.triton_repo import model_config, python_code_path, write_config, write_repository  # noqa: E402
from engines.backends.triton_server import LocalTritonServer  # noqa: E402
from stream.packet import Intrinsics, Person, TrackState  # noqa: E402

K = Intrinsics(500.0, 500.0, 320.0, 240.0, "user")


def persons_of(n: int) -> list[Person]:
    out = []
    for i in range(n):
        x0 = 10.0 + 75.0 * i
        b = np.array([x0, 50.0, x0 + 100.0, 420.0], np.float32)
        out.append(Person(track_id=i + 1, track_state=TrackState.TRACKED, box_xyxy=b, score=0.9,
                          crop_box_xyxy=b))
    return out


def write_repo(root: Path, ckpt: Path, variant: str, device: str, threads: int,
               latency_delay_us: int = 0) -> Path:
    repo = root / "repo"
    kind = "KIND_GPU" if device == "cuda" else "KIND_CPU"
    write_repository(repo, str(ckpt), variant, backends=("python",), flnet=False, max_batch=32,
                     preferred=(8, 16, 32), queue_delay_us=2000, kind=kind,
                     python_threads=threads, check=False)
    src = repo / "skelcf_py"
    # the same model three more times: without dynamic batching (the batching baseline), and one
    # per transport for the per-frame figures (the server's per-model statistics then tell shm
    # and gRPC apart), with `latency_delay_us` of queue delay
    for name, delay, batched in (("skelcf_nobatch", 2000, False), ("skelcf_shm", latency_delay_us, True),
                                 ("skelcf_tcp", latency_delay_us, True),
                                 ("skelcf_cudashm", latency_delay_us, True)):
        c = model_config(name, "python", 32, (8, 16, 32), delay, kind, 1, parameters={
            "checkpoint": str(ckpt), "variant": variant, "code_path": python_code_path(),
            "threads": str(threads), "device": device, "fp16": "1" if device == "cuda" else "0",
            **({"FORCE_CPU_ONLY_INPUT_TENSORS": "no"} if device == "cuda" else {})})
        if not batched:
            c.ClearField("dynamic_batching")
        write_config(repo / name, c)
        (repo / name / "1").mkdir()
        (repo / name / "1" / "model.py").write_bytes((src / "1" / "model.py").read_bytes())
    return repo


def engine(ckpt: Path, variant: str, device: str, backend: str, url: str = "",
           shm: str = "none", model: str = "skelcf_py") -> SkelCFEngine:
    return SkelCFEngine(SkelCFConfig(
        checkpoint=str(ckpt) if backend != "triton" else None, variant=variant, device=device, backend=backend,
        triton=TritonConfig(url=url or "127.0.0.1:1", model_name=model, shared_memory=shm,
                            request_timeout_s=60, crops_on_gpu=shm == "cuda")), focal_px=500.0)


def per_frame(engines: dict[str, SkelCFEngine], n: int, frames: int, rng,
              threads: dict[str, int]) -> dict:
    """Whole-engine ms per frame, and for Triton the client-side round trip of the request minus
    what the server spent queueing and computing it: the cost of going remote itself."""
    times: dict[str, list[float]] = {k: [] for k in engines}
    rtt: dict[str, list[float]] = {k: [] for k in engines}
    stats0 = {k: e.backend.execution_stats() for k, e in engines.items() if k != "local"}
    for i in range(frames + 3):
        img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        if i == 3:
            stats0 = {k: engines[k].backend.execution_stats() for k in stats0}
        names = list(engines)
        for name in names[i % len(names):] + names[:i % len(names)]:  # each mode first in turn
            eng = engines[name]
            torch.set_num_threads(threads[name])
            ps = persons_of(n)
            t0 = time.perf_counter()
            tm = eng.estimate(img, ps, K, "cam0")
            dt = time.perf_counter() - t0
            assert all(p.q is not None for p in ps), f"{name}: a person was not posed"
            if i >= 3:  # warm-up
                times[name].append(dt * 1e3)
                rtt[name].append(tm["infer"] / 1e6)
    out = {k: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99)),
               "infer_mean_ms": float(np.mean(rtt[k]))} for k, v in times.items()}
    for k, s0 in stats0.items():
        s1 = engines[k].backend.execution_stats()
        req = max(1, s1["requests"] - s0["requests"])
        queue_ms = (s1["queue_ns"] - s0["queue_ns"]) / req / 1e6
        compute_ms = (s1["compute_ns"] - s0["compute_ns"]) / req / 1e6
        out[k]["added_p50_ms"] = float(np.median(np.subtract(times[k], times["local"])))
        out[k]["server_queue_mean_ms"] = queue_ms
        out[k]["server_compute_mean_ms"] = compute_ms
        out[k]["server_mean_ms"] = queue_ms + compute_ms
        # the model in another process vs in this one (the local backend's inference)
        out[k]["compute_vs_local_ms"] = compute_ms - out["local"]["infer_mean_ms"]
        out[k]["transport_mean_ms"] = out[k]["infer_mean_ms"] - queue_ms - compute_ms
    return out


PIPELINE = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
from bench.bench_triton import engine, persons_of, K
import torch; torch.set_num_threads({threads})  # a local model gets what the server's has
eng = engine({ckpt!r}, {variant!r}, {device!r}, {backend!r}, {url!r}, "system", {model!r})
rng = np.random.default_rng(0)
img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
eng.estimate(img, persons_of(4), K, "cam0")
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter(); n = 0
while time.perf_counter() - t0 < {seconds}:
    ps = persons_of(4); eng.estimate(img, ps, K, "cam0"); n += sum(p.q is not None for p in ps)
print(n / (time.perf_counter() - t0), flush=True)
eng.close()
"""


def batching(url: str, ckpt: Path, variant: str, device: str, model: str, pipelines: int,
             seconds: float, threads: int = 1) -> dict:
    """crops/s of `pipelines` processes posing 4 persons a frame through `model` on the server
    ('local': each process runs its own torch model, the baseline), and for Triton the server's
    requests per execution."""
    from engines.backends.triton_backend import TritonBackend

    backend = "torch" if model == "local" else "triton"
    code = PIPELINE.format(root=str(ROOT), ckpt=str(ckpt), variant=variant, device=device,
                           backend=backend, url=url, model=model, seconds=seconds, threads=threads)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(pipelines)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    if backend == "torch":
        for p in procs:  # start together
            p.stdin.write("go\n")
            p.stdin.flush()
        rates = [float(p.communicate(timeout=seconds + 300)[0].strip().splitlines()[-1]) for p in procs]
        return {"crops_per_s": sum(rates)}
    with TritonBackend(TritonConfig(url=url, model_name=model, shared_memory="none")) as probe:
        before = probe.execution_stats()
        for p in procs:  # start together
            p.stdin.write("go\n")
            p.stdin.flush()
        rates = [float(p.communicate(timeout=seconds + 300)[0].strip().splitlines()[-1]) for p in procs]
        after = probe.execution_stats()
    req = after["requests"] - before["requests"]
    exe = after["executions"] - before["executions"]
    return {"crops_per_s": sum(rates), "requests": req, "executions": exe,
            "requests_per_execution": req / max(exe, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--persons", default="1,4,8")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--pipelines", type=int, default=4, help="0: no batching runs")
    ap.add_argument("--seconds", type=float, default=15.0, help="per batching run")
    ap.add_argument("--server-threads", type=int, default=1)
    ap.add_argument("--client-threads", type=int, default=1, help="torch threads of a Triton client")
    ap.add_argument("--queue-delay-us", type=int, default=0, help="per-frame models' batching delay")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.server_threads)
    res: dict = {"variant": a.variant, "device": a.device, "machine": platform.node(),
                 "queue_delay_us": a.queue_delay_us,
                 "server_threads": a.server_threads, "client_threads": a.client_threads,
                 "cpus": __import__("os").cpu_count(), "frames": a.frames}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_manifest_checkpoint(a.variant, Path(tmp) / "best.pth", seed=0)
        repo = write_repo(Path(tmp), ckpt, a.variant, a.device, a.server_threads,
                          a.queue_delay_us)
        with LocalTritonServer(repo, ready_timeout_s=600) as srv:
            engines = {"local": engine(ckpt, a.variant, a.device, "torch"),
                       "triton-shm": engine(ckpt, a.variant, a.device, "triton", srv.url, "system",
                                            "skelcf_shm"),
                       "triton-grpc": engine(ckpt, a.variant, a.device, "triton", srv.url, "none",
                                             "skelcf_tcp")}
            from engines.backends.triton_client import cuda_shm_module
            if a.device == "cuda" and cuda_shm_module() is not None:  # client and server share the GPU
                engines["triton-cudashm"] = engine(ckpt, a.variant, a.device, "triton", srv.url, "cuda",
                                                   "skelcf_cudashm")
            # torch threads of this process per mode: the local backend gets the server's count
            # (the same compute); a Triton client only cuts crops and reads results
            threads = {k: a.client_threads for k in engines}
            threads["local"] = a.server_threads
            rng = np.random.default_rng(0)
            res["per_frame"] = {}
            for n in (int(x) for x in a.persons.split(",")):
                r = per_frame(engines, n, a.frames, rng, threads)
                res["per_frame"][n] = r
                print(f"{n} persons: " + "  ".join(
                    f"{k} p50 {v['p50_ms']:.2f} p99 {v['p99_ms']:.2f} ms"
                    + (f" (added p50 {v['added_p50_ms']:+.2f}: queue {v['server_queue_mean_ms']:.2f} "
                       f"compute-local {v['compute_vs_local_ms']:+.2f} transport "
                       f"{v['transport_mean_ms']:.2f})" if "added_p50_ms" in v else
                       f" (inference {v['infer_mean_ms']:.2f})")
                    for k, v in r.items()), flush=True)
            be = engines["triton-grpc"].backend
            res["tensor_bytes_per_person"] = be.bytes_sent / max(1, sum(
                int(x) * (a.frames + 3) for x in a.persons.split(",")))
            res["float32_crop_bytes_per_person"] = 3 * 256 * 256 * 4 + 12
            print(f"tensor bytes per person: {res['tensor_bytes_per_person']:.0f} "
                  f"(float32 256x256 crops: {res['float32_crop_bytes_per_person']})", flush=True)
            for e in engines.values():
                e.close()
            res["batching"] = {}
            for model in ("local", "skelcf_nobatch", "skelcf_py") if a.pipelines > 0 else ():
                r = batching(srv.url, ckpt, a.variant, a.device, model, a.pipelines, a.seconds,
                             a.server_threads if model == "local" else a.client_threads)
                res["batching"][model] = r
                print(f"{a.pipelines} pipelines x 4 persons, {model}: {r['crops_per_s']:.1f} crops/s"
                      + (f", {r['requests_per_execution']:.2f} requests per execution"
                         if "requests_per_execution" in r else ""), flush=True)
            g = res["batching"]
            if g:
                res["batching_gain"] = g["skelcf_py"]["crops_per_s"] / g["skelcf_nobatch"]["crops_per_s"]
                res["triton_vs_local"] = g["skelcf_py"]["crops_per_s"] / g["local"]["crops_per_s"]
                print(f"dynamic batching gain: {res['batching_gain']:.2f}x; Triton (batched) vs "
                      f"local: {res['triton_vs_local']:.2f}x crops/s", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
