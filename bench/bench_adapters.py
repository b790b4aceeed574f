"""Per-frame cost of the protocol adapters (4 people unless --persons), against the publisher's
own per-frame work (`encode_frame`) measured in the same run as the baseline.

    .venv/bin/python bench/bench_adapters.py                 # 2000 frames per case
    .venv/bin/python bench/bench_adapters.py --frames 300    # quick look

Cases, each on the same synthetic frames (`sinks.synth`, moving people inside joint limits):
- baseline `encode_frame` (what the publish stage does per frame);
- `frame_message`: packet -> the subscriber's FrameMsg (encode + decode), the input of the
  in-graph adapters;
- vmc: `VmcSender.send_frame` (choose the largest person, FK, retarget, pack, UDP send to a
  local socket) and the whole `vmc` stage step (frame_message + send_frame);
- ros2: `Ros2McapWriter.write_frame` (FK of every person, JointState x N, /tf, MarkerArray, MCAP
  write to a temporary file) and the record stage's extra step (frame_message + write_frame);
- viewer (when rerun-sdk is installed), every frame shown (`max_fps` lifted): `PoseViewer.log_frame`
  without the image (FK of every person, boxes, 2D/3D skeletons, 4 angle plots each) and with a
  real 768x576 frame of vtest.avi (shrink to 384 px + JPEG); then the defaults (`max_fps` 15) on
  the 30 fps clock with the image: the cost per frame of the stream, half of them shown;
- bvh: `export_bvh` of a 2000-frame session divided by its frames (offline, not a live sink).

Timing: `time.perf_counter_ns` per call; reported p50, p90 and the minimum of per-100-call means
(the shared 2-core machine's other processes inflate single calls; the min of means is the
figure least touched by them). Thread CPU time (`time.thread_time_ns`) p50 and mean too (the
mean is the figure for the viewer's defaults case, where half the calls only skip), and the
process's CPU time over the case per call ("proc mean": adds what rerun's own threads spend,
and anything else the process runs meanwhile).
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(fn, items: list) -> dict:
    wall, cpu = [], []
    p0 = time.process_time_ns()
    for it in items:
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        fn(it)
        wall.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
    proc = (time.process_time_ns() - p0) / len(items) / 1e6   # + background threads (rerun's)
    w = np.array(wall) / 1e6
    blocks = w[: len(w) // 100 * 100].reshape(-1, 100).mean(axis=1) if len(w) >= 100 else w
    return {"p50_ms": float(np.median(w)), "p90_ms": float(np.percentile(w, 90)),
            "min_mean100_ms": float(blocks.min()), "cpu_p50_ms": float(np.median(cpu) / 1e6),
            "cpu_mean_ms": float(np.mean(cpu) / 1e6), "proc_mean_ms": proc}


def video_frame() -> np.ndarray:
    """A real frame (vtest.avi, 768x576) for the viewer's image cases: JPEG cost depends on
    content (random noise compresses ~10x worse); 640x480 noise without the clip."""
    import cv2

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                        "shared", "data", "vtest.avi")
    cap = cv2.VideoCapture(path)
    ok, img = cap.read()
    cap.release()
    return img if ok else np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    from sinks.adapters_config import VmcConfig
    from sinks.bvh_export import export_bvh
    from sinks.ros2_mcap import Ros2McapWriter
    from sinks.schema import encode_frame, frame_message
    from sinks.synth import synthetic_packet
    from sinks.vmc import VmcSender

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--persons", type=int, default=4)
    a = ap.parse_args(argv)
    packets = [synthetic_packet("cam0", s, a.persons) for s in range(a.frames)]
    frames = [frame_message(p) for p in packets]
    for i, f in enumerate(frames):  # a 30 fps capture clock (synthesis runs much faster)
        f.capture_ns = 10**9 + i * 33_333_333
        f.capture_utc_ns = 1_800_000_000 * 10**9 + i * 33_333_333
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):  # second pass is the one reported (warm caches, templates, JIT-free)
            rows["baseline encode_frame"] = measure(lambda p: encode_frame(p, 1, 2 ** 32), packets)
            rows["frame_message (adapter input)"] = measure(frame_message, packets)
            with VmcSender(VmcConfig(address=f"127.0.0.1:{rx.getsockname()[1]}")) as vmc:
                rows["vmc send_frame"] = measure(vmc.send_frame, frames)
                rows["vmc stage step"] = measure(lambda p: vmc.send_frame(frame_message(p)), packets)
            path = os.path.join(tmp, "ros2.mcap")
            for name, fn in (("ros2 write_frame", None), ("ros2 record step", frame_message)):
                if os.path.exists(path):
                    os.remove(path)
                with Ros2McapWriter(path) as w:
                    rows[name] = measure(w.write_frame if fn is None
                                         else (lambda p, w=w: w.write_frame(frame_message(p))),
                                         frames if fn is None else packets)
            try:
                from sinks.adapters_config import ViewerConfig
                from sinks.viewer import PoseViewer

                image = video_frame()
                label = f"{image.shape[1]}x{image.shape[0]}"
                with PoseViewer(ViewerConfig(web_port=free_port(), grpc_port=free_port(),
                                             max_fps=240.0, image_fps=240.0)) as v:  # every frame shown
                    rows["viewer log_frame"] = measure(v.log_frame, frames)
                    rows[f"viewer log_frame + {label} image"] = measure(
                        lambda f: v.log_frame(f, image), frames)
                with PoseViewer(ViewerConfig(web_port=free_port(), grpc_port=free_port())) as v:
                    rows["viewer defaults, per 30 fps frame + image"] = measure(
                        lambda f: v.log_frame(f, image), frames)   # max_fps 15: half shown
            except ImportError:
                pass
            t0 = time.perf_counter_ns()
            export_bvh(frames, tmp)
            per = (time.perf_counter_ns() - t0) / 1e6 / len(frames)
            rows["bvh export (offline, per frame)"] = {"p50_ms": per, "p90_ms": float("nan"),
                                                       "min_mean100_ms": per, "cpu_p50_ms": float("nan"),
                                                       "cpu_mean_ms": float("nan"), "proc_mean_ms": float("nan")}
    rx.close()
    print(f"{a.persons} people, {a.frames} frames; load average {os.getloadavg()[0]:.1f}")
    print(f"{'case':44s} {'p50 ms':>8s} {'p90 ms':>8s} {'min mean/100':>13s} {'cpu p50':>8s} {'cpu mean':>8s} {'proc mean':>9s}")
    for name, r in rows.items():
        print(f"{name:44s} {r['p50_ms']:8.3f} {r['p90_ms']:8.3f} {r['min_mean100_ms']:13.3f} "
              f"{r['cpu_p50_ms']:8.3f} {r['cpu_mean_ms']:8.3f} {r['proc_mean_ms']:9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
