"""The labelled clips under conditions a camera meets: new light, flicker, motion blur, a shaking
hand; who is published under which id, against the hand labels (issue 14, sixteenth pass).

Each condition rewrites a clip frame by frame and encodes it lossless (libx264 crf 0, yuv444p),
then runs the default pipeline on it lossless and scores it as bench_multiperson.py does:

  * bright   the middle third of the clip (ramped in and out over 1/12) at up to 2.6x gain plus
             40 grey levels, clipped: sun on a camera whose exposure lags
  * dark     the middle third down to 0.25x: a lamp switched off
  * flicker  the middle third at 1.8x and 0.6x on alternate pairs of frames
  * blur     the middle third through a motion-blur streak of up to 25 px at 60 deg
  * shake    the whole clip through a 1.15x zoom whose window sways (0.3-0.4 Hz) and trembles
             (2 Hz); published boxes are mapped back to the labels' pixels, the labels are cut
             to the window, and a person less than half in it is out of view (not counted)
  * none     the clip as it is, re-encoded the same way (the encode's own effect)

    .venv/bin/python bench/bench_conditions.py                               # ~8 min, Demo x 4
    .venv/bin/python bench/bench_conditions.py --clips vtest --conditions none,flicker
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_multiperson as bench  # noqa: E402

ZOOM = 1.15
"""The shaking hand's digital zoom: the margin its window wanders in."""


def stretch(i: int, n: int) -> float:
    """0..1: how far frame i of n lies in the clip's middle third, ramped over n / 12."""
    a, b, r = n / 3, 2 * n / 3, n / 12
    if i < a - r or i > b + r:
        return 0.0
    if i < a:
        return (i - (a - r)) / r
    if i > b:
        return ((b + r) - i) / r
    return 1.0


def window(i: int, fps: float, shape) -> tuple[float, float]:
    """Top-left corner of the shaking hand's zoom window at frame i."""
    h, w = shape[:2]
    mx, my = (w - w / ZOOM) / 2, (h - h / ZOOM) / 2
    t = i / fps
    ux = 0.7 * np.sin(2 * np.pi * 0.4 * t) + 0.3 * np.sin(2 * np.pi * 2.1 * t + 1)
    uy = 0.7 * np.sin(2 * np.pi * 0.3 * t + 2) + 0.3 * np.sin(2 * np.pi * 1.7 * t)
    return mx * (1 + ux), my * (1 + uy)


def in_view(labels: dict[int, list], fps: float, shape) -> tuple[dict[int, list], set[tuple[int, str]]]:
    """The labels as the shaking hand's zoom window shows them: each box cut to the window, and
    (frame, name) of the people less than half of whose box is in it (out of view: neither to
    be found nor a false positive when found)."""
    h, w = shape[:2]
    cut, hidden = {}, set()
    for f, people in labels.items():
        x0, y0 = window(f, fps, shape)
        win = np.array([x0, y0, x0 + w / ZOOM, y0 + h / ZOOM])
        cut[f] = []
        for name, b in people:
            c = np.concatenate([np.maximum(b[:2], win[:2]), np.minimum(b[2:], win[2:])])
            inside = max(c[2] - c[0], 0) * max(c[3] - c[1], 0) / max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)
            if inside < 0.5:
                hidden.add((f, name))
            cut[f].append((name, c if inside > 0 else b))
    return cut, hidden


def condition(img: np.ndarray, kind: str, i: int, n: int, fps: float) -> np.ndarray:
    """Frame i of n as the condition `kind` shows it."""
    if kind == "shake":
        x0, y0 = window(i, fps, img.shape)
        m = np.float32([[ZOOM, 0, -x0 * ZOOM], [0, ZOOM, -y0 * ZOOM]])
        return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR)
    w = stretch(i, n)
    if kind == "none" or w <= 0:
        return img
    f = img.astype(np.float32)
    if kind == "bright":
        f = f * (1 + 1.6 * w) + 40 * w
    elif kind == "dark":
        f = f * (1 - 0.75 * w)
    elif kind == "flicker":
        f = f * (1 + (0.8 if i % 4 < 2 else -0.4) * w)
    elif kind == "blur":
        k = int(3 + 22 * w) | 1
        streak = np.zeros((k, k), np.float32)
        streak[k // 2, :] = 1.0
        streak = cv2.warpAffine(streak, cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), 60, 1.0), (k, k))
        f = cv2.filter2D(f, -1, streak / streak.sum())
    else:
        raise ValueError(f"unknown condition {kind!r}")
    return np.clip(f, 0, 255).astype(np.uint8)


def write(src: Path, out: Path, kind: str) -> tuple[tuple[int, ...], float]:
    """`src` under condition `kind`, lossless, to `out`; the frame shape and rate."""
    with av.open(str(src)) as inp:
        rate = inp.streams.video[0].average_rate
        frames = [f.to_ndarray(format="bgr24") for f in inp.decode(video=0)]
    bench.write_clip((condition(img, kind, i, len(frames), float(rate)) for i, img in enumerate(frames)),
                     out, rate, 0, pix_fmt="yuv444p")
    return frames[0].shape, float(rate)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", default="cam01,cam02,cam03,cam04")
    ap.add_argument("--conditions", default="bright,dark,flicker,blur,shake")
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="extra --set for every run")
    args = ap.parse_args()
    clips, labels = bench.clip_paths(), bench.load_labels()
    print("| condition | clip | visible published | ID sw | FP person-frames | IDF1 | one id per person |")
    print("|---|---|---:|---:|---:|---:|---|")
    for kind in args.conditions.split(","):
        for name in args.clips.split(","):
            with tempfile.TemporaryDirectory() as td:
                td = Path(td)
                shape, fps = write(clips[name], td / "c.mp4", kind)
                frames, _, _ = bench.run_clip(td / "c.mp4", args.overrides, td, "run")
            if kind == "shake":
                for seq, m in frames.items():
                    x0, y0 = window(seq, fps, shape)
                    for p in m.persons:
                        p.bbox_xyxy = np.asarray(p.bbox_xyxy, np.float32) / ZOOM + np.float32([x0, y0, x0, y0])
            seen, hidden = labels[name], set()
            if kind == "shake":
                seen, hidden = in_view(labels[name], fps, shape)
            r = bench.score(frames, seen, shape[0], 0.15, 0.3, identities=True, out_of_view=hidden)
            print(f"| {kind} | {name} | {r['published']}/{r['visible']} | {r['num_switches']:.0f} | "
                  f"{r['fp']}/{r['pub_on_labelled']} | {r['idf1']:.2f} | {bench.format_stable(r)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
