"""Who is who when the detector's results come late, as they do live, without a live run's noise.

Live (`run_stream.py --source clip.mp4`, the default), the detector works in the background: its
result for a frame arrives 4-8 frames later on 2 cores at 1768 x 994 (~150 ms a run), the tracker
applies it to a snapshot taken at that frame and replays the frames since (tracking/stage.py), and
the pose stage, which takes the newest frame, skips some. A live run's timings differ run to run,
so one live run says little and five take ten minutes. This runs the same stages in-process with
the background schedule, each result handed back a seeded 4-8 frames after its frame and ~20 % of
frames left unposed, and scores what a client holds on each labelled frame (bench_multiperson's
`held_at` and `score`): the same draw on any machine, one seed in ~15 s.

    .venv/bin/python bench/bench_late_detections.py [--clip s2d_demo] [--seeds 1-6] [--lag 4,8]
        [--skip 0.2] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tracking.stage as tracking_stage  # noqa: E402
from bench_multiperson import Published, PublishedFrame, format_stable, held_at, load_labels, score  # noqa: E402
from bench_pose_stage import clip_path, read_frames  # noqa: E402
from engines.pose_stage import PoseStage  # noqa: E402
from stream.config_loader import load_config  # noqa: E402
from stream.packet import FrameInfo, Packet  # noqa: E402


class LateResult:
    """A detector result that is `done` only once the run reaches frame `ready_at`."""

    def __init__(self, result, ready_at: int, clock: list[int]):
        self._result, self.ready_at, self._clock = result, ready_at, clock

    def done(self) -> bool:
        return self._clock[0] >= self.ready_at

    def result(self):
        return self._result

    def cancel(self) -> bool:
        return True


class LateWorker:
    """Stands in for the stage's detector thread: computes at once, hands back `lag` frames later."""

    def __init__(self, rng: random.Random, lag: tuple[int, int], clock: list[int]):
        self.rng, self.lag, self.clock = rng, lag, clock

    def submit(self, fn, *args) -> LateResult:
        return LateResult(fn(*args), self.clock[0] + self.rng.randint(*self.lag), self.clock)

    def shutdown(self, **_) -> None:
        pass


def run(frames: list[np.ndarray], fps: float, seed: int, lag: tuple[int, int], skip: float,
        overrides: list[str]) -> dict[int, PublishedFrame]:
    """Frame -> the people the pose stage published on it (frames it skipped are absent)."""
    rng, clock = random.Random(seed), [0]
    cfg = load_config(None, ["detector.schedule=background", *overrides])
    detect, pose = tracking_stage.DetectTrackStage(cfg), PoseStage(cfg)
    detect.setup()
    pose.setup()
    detect._worker = LateWorker(rng, lag, clock)
    nice = tracking_stage._lower_thread_priority
    tracking_stage._lower_thread_priority = lambda _: None   # the "worker" is this thread
    out: dict[int, PublishedFrame] = {}
    try:
        for seq, img in enumerate(frames):
            clock[0] = seq
            t_ns = int(round(seq / fps * 1e9))
            pk = Packet(FrameInfo("bench", seq, t_ns, t_ns, img.shape[1], img.shape[0], media_pts_s=seq / fps))
            pk.image = img
            pk = detect.process(pk)
            if seq > 0 and rng.random() < skip:
                continue
            pk = pose.process(pk)
            out[seq] = PublishedFrame([Published(p.track_id, p.box_xyxy) for p in pk.persons])
    finally:
        tracking_stage._lower_thread_priority = nice
        pose.close()
        detect.close()
    return out


def seeds_of(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default="s2d_demo", help="a labelled clip of bench_multiperson (default s2d_demo)")
    ap.add_argument("--seeds", default="1-6", help="draws of lags and skipped frames, e.g. 1-6")
    ap.add_argument("--lag", default="4,8", help="a result comes back this many frames late (min,max)")
    ap.add_argument("--skip", type=float, default=0.2, help="share of frames the pose stage leaves out")
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="config KEY=VALUE")
    args = ap.parse_args()
    labels = load_labels()
    if args.clip not in labels:
        sys.exit(f"error: no labels for {args.clip!r}; pass one of {', '.join(sorted(labels))}")
    frames, fps = read_frames(clip_path(args.clip), 1 << 20)
    if not frames:
        sys.exit(f"error: {args.clip}: no frames read (is its package installed? see bench_multiperson.py)")
    lag = tuple(int(v) for v in args.lag.split(","))
    height = frames[0].shape[0]
    print(f"{args.clip}: {len(frames)} frames, results {lag[0]}-{lag[1]} frames late, "
          f"{args.skip:.0%} of frames unposed, --set {' '.join(args.overrides) or '(none)'}")
    print("| seed | visible published | stable id (per person) | FP | IDF1 | ID sw | ids |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    idf1 = []
    for seed in seeds_of(args.seeds):
        posed = run(frames, fps, seed, lag, args.skip, args.overrides)
        r = score(held_at(posed, labels[args.clip]), labels[args.clip], height, 0.15, 0.3, identities=True)
        stable = format_stable(r)
        idf1.append(r["idf1"])
        print(f"| {seed} | {r['published']}/{r['visible']} | {stable} | {r['fp']} | {r['idf1']:.3f} | "
              f"{r['num_switches']:.0f} | {r['ids']} |", flush=True)
    print(f"| mean | | | | **{np.mean(idf1):.3f}** | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
