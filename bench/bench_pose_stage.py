"""The pose stage's own cost per frame on real footage: `PoseStage.process` (batched BlazePose
landmarks + the SKEL fit of every tracked person), timed in-process on a clip's first frames.

The detector and tracker run inline before it (`detector.schedule=inline`), so every run sees
the same people on the same frames; each run starts fresh stages. A live run (`run_stream.py`)
shares two cores among five processes and this machine's speed moves by a quarter between
minutes, so compare trees with this, alternating them in the same minutes.

    .venv/bin/python bench/bench_pose_stage.py [--clip cam01] [--frames 120] [--runs 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_multiperson import clip_paths  # noqa: E402
from engines.pose_stage import PoseStage  # noqa: E402
from stream.config_loader import load_config  # noqa: E402
from stream.packet import FrameInfo, Packet  # noqa: E402
from tracking.stage import DetectTrackStage  # noqa: E402


def clip_path(name: str) -> Path:
    """A clip of the multi-person benchmark (cam01-cam04 of Pose2Sim's Demo_MultiPerson, vtest
    where ../shared has it) or a path."""
    return clip_paths().get(name, Path(name))


def read_frames(path: Path, n: int) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"error: cannot open {path}; pass --clip cam01..cam04, vtest or a video file")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames: list[np.ndarray] = []
    while len(frames) < n:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    return frames, fps


def posed(frames: Iterable[np.ndarray], fps: float, overrides: Sequence[str] = (), stream_id: str = "bench"
          ) -> Iterator[tuple[Packet | None, float, int]]:
    """Each frame through fresh inline detector/tracker and pose stages (the file's own clock:
    frame / fps): (the pose stage's packet, None where it gives none; `PoseStage.process`
    seconds; people tracked on the frame)."""
    cfg = load_config(None, ["detector.schedule=inline", *overrides])
    detect, pose = DetectTrackStage(cfg), PoseStage(cfg)
    detect.setup()
    pose.setup()
    try:
        for seq, img in enumerate(frames):
            t_ns = int(round(seq / fps * 1e9))
            packet = Packet(FrameInfo(stream_id, seq, t_ns, t_ns, img.shape[1], img.shape[0],
                                      media_pts_s=seq / fps))
            packet.image = img
            packet = detect.process(packet)
            people = len(packet.persons)
            t0 = time.perf_counter()
            result = pose.process(packet)
            yield result, time.perf_counter() - t0, people
    finally:
        pose.close()
        detect.close()


def time_pose_stage(frames: list[np.ndarray], fps: float, overrides: list[str]) -> tuple[np.ndarray, float]:
    """Per-frame `PoseStage.process` seconds on fresh stages; mean people per frame."""
    runs = [(took, people) for _, took, people in posed(frames, fps, overrides)]
    took, people = zip(*runs)
    return np.array(took), float(np.mean(people))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="cam01", help="cam01..cam04 (Pose2Sim's Demo_MultiPerson), vtest, or a video file")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="a config override, as run_stream.py")
    args = ap.parse_args()
    frames, fps = read_frames(clip_path(args.clip), args.frames)
    for run in range(args.runs):
        took, people = time_pose_stage(frames, fps, args.overrides)
        ms = took * 1e3
        print(f"run {run + 1}: {len(frames)} frames, {people:.2f} tracked people a frame, PoseStage.process "
              f"p50 {np.percentile(ms, 50):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, mean {ms.mean():.1f} ms")


if __name__ == "__main__":
    main()
