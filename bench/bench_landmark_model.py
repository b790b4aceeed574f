"""The BlazePose landmark model per crop: the whole .tflite against the same graph without its
image outputs (segmentation mask and heatmaps, never read: engines/blazepose/models.py
`without_image_outputs`), same run, alternating, one thread, on real crops.

    .venv/bin/python bench/bench_landmark_model.py [--repeats 30] [--batches 1,3,5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_multiperson import clip_paths  # noqa: E402
from engines.blazepose import models  # noqa: E402
from engines.blazepose.landmarks import BlazePoseLandmarker, roi_from_box  # noqa: E402


def demo_frame() -> np.ndarray:
    """The first frame of Pose2Sim's Demo_MultiPerson cam01 (three people)."""
    import av

    with av.open(str(clip_paths()["cam01"])) as c:
        return next(c.decode(video=0)).to_ndarray(format="bgr24")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batches", default="1,3,5")
    args = ap.parse_args()
    img = demo_frame()
    h, w = img.shape[:2]
    boxes = [(0, 0, w / 2, h), (w / 2, 0, w, h), (w / 4, h / 4, 3 * w / 4, h), (0, h / 3, w / 2, h),
             (w / 2, h / 3, w, h)]
    crops = BlazePoseLandmarker().crops(img, [roi_from_box(np.array(b, float)) for b in boxes])
    path = models.bundled_model(models.LANDMARK_FULL_FILE)
    kinds = {"whole": models.TfliteModel(path), "no image outputs": models.TfliteModel(path, drop_image_outputs=True)}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.repeats} calls each, alternating; median (p90) ms per call")
    print("| batch | " + " | ".join(kinds) + " | ratio |")
    print("|---|" + "---|" * (len(kinds) + 1))
    for b in (int(v) for v in args.batches.split(",")):
        x = crops[:b]
        times = {k: [] for k in kinds}
        for m in kinds.values():
            m.run(x)                                   # resize and warm up
        for _ in range(args.repeats):
            for k, m in kinds.items():
                t0 = time.perf_counter()
                m.run(x)
                times[k].append(1e3 * (time.perf_counter() - t0))
        med = {k: float(np.median(v)) for k, v in times.items()}
        cells = [f"{med[k]:.1f} ({np.percentile(times[k], 90):.1f})" for k in kinds]
        print(f"| {b} | " + " | ".join(cells) + f" | {med['no image outputs'] / med['whole']:.2f} |")


if __name__ == "__main__":
    main()
