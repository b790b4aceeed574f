"""Detector throughput per backend: the embedded HOG default and a YOLOv8n-sized net (random
weights, engines/detection/yolo_like.py) at 640x640 on onnxruntime and torch.

CPU (default): HOG on a vtest.avi frame (768x576) and on 640x480; YoloLike ONNX on onnxruntime CPU;
YoloLike on torch CPU. Baseline in the same run: a 512x512 float32 matmul (machine speed), so runs
on a noisy shared machine can be compared by ratio.
--device cuda: YoloLike on torch CUDA FP16 (model only, and the full detect() path with letterbox
on the device and decode/NMS), onnxruntime CUDA EP and TensorRT when they are installed.

    .venv/bin/python bench/bench_detector.py [--device cpu|cuda] [--iters 30]

--regions: the BlazePose SSD detector (the default) on vtest.avi with 6, 10 and 13 regions a call,
the regions in one LiteRT call against parts of at most 2 / 4 (`REGIONS_PER_INVOKE`), alternating,
one thread, detections checked identical.

    .venv/bin/python bench/bench_detector.py --regions [--iters 30]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.detection.config import DetectorConfig  # noqa: E402
from engines.detection.detectors import BlazePoseDetector, HogDetector, YoloDetector  # noqa: E402

VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"


def timeit(fn, iters: int, warmup: int = 3, sync=None) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append((time.perf_counter() - t0) * 1e3)
    return np.array(out)


def report(name: str, ms: np.ndarray, base_ms: float | None = None) -> None:
    p50 = np.percentile(ms, 50)
    extra = f"  ({p50 / base_ms:.0f}x baseline)" if base_ms else ""
    print(f"{name:58s} p50 {p50:8.2f} ms  p99 {np.percentile(ms, 99):8.2f} ms  {1e3 / p50:7.1f} fps{extra}")


def frame() -> np.ndarray:
    import cv2
    if VTEST.exists():
        cap = cv2.VideoCapture(str(VTEST))
        ok, img = cap.read()
        cap.release()
        if ok:
            return img
    return np.random.default_rng(0).integers(0, 255, (576, 768, 3), np.uint8)


def pose2sim_frame_640x480() -> np.ndarray | None:
    """First frame of the Pose2Sim demo (one person, 1080x1920) letterboxed into 640x480."""
    import av
    import cv2
    from stream.sources.factory import sample_clip_path
    clip = sample_clip_path()
    if clip is None:
        return None
    with av.open(str(clip)) as c:
        img = next(c.decode(video=0)).to_ndarray(format="bgr24")
    small = cv2.resize(img, (270, 480), interpolation=cv2.INTER_AREA)
    out = np.full((480, 640, 3), 255, np.uint8)
    out[:, 185:455] = small
    return out


def stage_fps(base: float, n: int = 60, schedule: str = "inline") -> None:
    """The detect_track stage with HOG every N frames on vtest frames resized to 640x480. inline:
    mean time per frame decides the stage's throughput. background: frames arrive at 30 Hz and the
    time a frame spends in `process` is what it adds to the latency path."""
    import av
    import cv2
    from stream.config import PipelineConfig
    from stream.packet import FrameInfo, Packet
    from tracking.stage import DetectTrackStage
    imgs = []
    if VTEST.exists():
        with av.open(str(VTEST)) as c:
            for f in c.decode(video=0):
                imgs.append(cv2.resize(f.to_ndarray(format="bgr24"), (640, 480)))
                if len(imgs) >= n:
                    break
    else:
        imgs = [frame()[:480, :640].copy() for _ in range(n)]
    cfg = PipelineConfig.model_validate({"detector": {"schedule": schedule}})
    stage = DetectTrackStage(cfg)
    stage.setup()
    ms = []
    for i, img in enumerate(imgs):
        pkt = Packet(frame=FrameInfo("cam0", i, i * 100_000_000, 0, 640, 480, media_pts_s=i / 10), image=img)
        t0 = time.perf_counter()
        stage.process(pkt)
        ms.append((time.perf_counter() - t0) * 1e3)
        if schedule == "background":
            time.sleep(max(0.0, 1 / 30 - ms[-1] / 1e3))
    stage.close()
    ms = np.array(ms)
    name = f"detect_track stage, hog every {stage.det_cfg.every_n_frames}, {schedule}, 640x480"
    print(f"{name:58s} "
          f"p50 {np.percentile(ms, 50):8.2f} ms  p99 {np.percentile(ms, 99):8.2f} ms  mean {ms.mean():.1f} ms "
          f"= {1e3 / ms.mean():.1f} fps ({ms.mean() / base:.0f}x baseline)")


def cpu(iters: int, tmp: Path) -> None:
    import cv2
    import torch
    from engines.detection.runners import OrtRunner, TorchRunner
    from engines.detection.yolo_like import YoloLike, export_onnx
    a = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    base = np.percentile(timeit(lambda: a @ a, 50), 50)
    print(f"baseline 512x512 float32 matmul: p50 {base:.3f} ms")
    img = frame()
    hog = HogDetector(DetectorConfig())
    hog.open()
    report("hog (default cfg), 768x576 vtest frame", timeit(lambda: hog.detect(img), iters), base)
    small = cv2.resize(img, (640, 480))
    report("hog (default cfg), 640x480", timeit(lambda: hog.detect(small), iters), base)
    stage_fps(base)
    stage_fps(base, schedule="background")
    sample = pose2sim_frame_640x480()
    if sample is not None:
        bp = BlazePoseDetector(DetectorConfig(kind="blazepose"))
        bp.open()
        report("blazepose SSD (whole frame + 4 tiles per call), 640x480 pose2sim frame",
               timeit(lambda: bp.detect(sample), iters), base)
        report("hog (default cfg), same 640x480 pose2sim frame", timeit(lambda: hog.detect(sample), iters), base)
        bp.close()
    path = export_onnx(tmp / "yolo_like.onnx", 640)
    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    ort_run = OrtRunner(path)
    report("yolo-like 640x640, onnxruntime CPU (model only)", timeit(lambda: ort_run(x), iters), base)
    det = YoloDetector(DetectorConfig(kind="yolo", model_path=path, backend="onnxruntime"))
    det.open()
    report("yolo-like 640x640, onnxruntime CPU (full detect on 640x480)", timeit(lambda: det.detect(small), iters), base)
    torch.manual_seed(0)
    tr = TorchRunner(YoloLike().eval(), "cpu")
    report("yolo-like 640x640, torch CPU fp32 (model only)", timeit(lambda: tr(x), iters), base)


def cuda(iters: int, tmp: Path) -> None:
    import torch
    from engines.detection.yolo_like import YoloLike, export_onnx
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    torch.manual_seed(0)
    model = YoloLike().eval().cuda().half()
    x = torch.rand(1, 3, 640, 640, device="cuda").half()
    sync = torch.cuda.synchronize
    with torch.inference_mode():
        report("yolo-like 640x640, torch CUDA fp16 (model only)", timeit(lambda: model(x), iters, 10, sync))
        xb = torch.rand(8, 3, 640, 640, device="cuda").half()
        ms = timeit(lambda: model(xb), iters, 5, sync)
        print(f"{'  same, batch 8 (per frame)':58s} p50 {np.percentile(ms, 50) / 8:8.2f} ms  "
              f"{8e3 / np.percentile(ms, 50):7.1f} fps")
    ts_path = tmp / "yolo_like.ts"
    torch.jit.trace(YoloLike().eval(), torch.zeros(1, 3, 640, 640)).save(str(ts_path))
    img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
    det = YoloDetector(DetectorConfig(kind="yolo", model_path=ts_path, backend="torch", device="cuda"))
    det.open()
    report("yolo-like 640x640, torch CUDA fp16 (full detect, 640x480 frame)", timeit(lambda: det.detect(img), iters, 10))
    onnx_path = export_onnx(tmp / "yolo_like.onnx", 640)
    for backend in ("onnxruntime", "tensorrt"):
        try:
            d = YoloDetector(DetectorConfig(kind="yolo", model_path=onnx_path, backend=backend, device="cuda"))
            d.open()
            report(f"yolo-like 640x640, {backend} CUDA (full detect)", timeit(lambda: d.detect(img), iters, 10))
        except Exception as exc:  # report what is missing on this machine and go on
            print(f"{backend}: not available ({str(exc).splitlines()[0][:120]})")


def regions_per_call(iters: int) -> None:
    """One LiteRT call for all of a detector run's regions vs parts of at most 2 / 4 of them."""
    import engines.blazepose.detector as ssd_mod
    from engines.blazepose.detector import BlazePoseSsd, Region

    img = frame()
    h, w = img.shape[:2]
    ssd = BlazePoseSsd(grids=(2, 3, 4), tiles_per_call=4)
    shipped = ssd_mod.REGIONS_PER_INVOKE
    print(f"BlazePose SSD, {w}x{h}, one thread, median of {iters} alternating calls")
    print("| regions a call | one call ms | parts of <= 4 ms | parts of <= 2 ms | detections |")
    print("|---|---:|---:|---:|---|")
    try:
        for n_extra in (1, 5, 8):                   # + the whole frame and 4 tiles: 6, 10, 13 regions
            extra = [Region(40.0 + 70 * i, 120.0, 160.0, 160.0) for i in range(n_extra)]
            times: dict[int, list[float]] = {64: [], 4: [], 2: []}
            found: dict[int, np.ndarray] = {}
            for it in range(iters + 2):
                for per in times:
                    ssd_mod.REGIONS_PER_INVOKE = per
                    ssd._next_tile.clear()          # the same tiles for every variant
                    t0 = time.perf_counter()
                    det = ssd.detect(img, extra, "bench")
                    if it >= 2:
                        times[per].append((time.perf_counter() - t0) * 1e3)
                    found[per] = np.concatenate([det.boxes.ravel(), det.scores])
            same = all(np.array_equal(found[64], v) for v in found.values())
            print(f"| {5 + n_extra} | {np.median(times[64]):.1f} | {np.median(times[4]):.1f} | "
                  f"{np.median(times[2]):.1f} | {'identical' if same else 'DIFFER'} |")
    finally:
        ssd_mod.REGIONS_PER_INVOKE = shipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--regions", action="store_true", help="the BlazePose SSD's regions per LiteRT call")
    args = ap.parse_args()
    if args.regions:
        regions_per_call(args.iters)
        return
    with tempfile.TemporaryDirectory() as d:
        (cuda if args.device == "cuda" else cpu)(args.iters, Path(d))


if __name__ == "__main__":
    main()
