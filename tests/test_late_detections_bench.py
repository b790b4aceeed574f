"""bench/bench_late_detections.py: the live-like run (detector results handed back 4-8 frames late,
some frames unposed) is deterministic per seed and shows what a live run shows, on real footage."""
from __future__ import annotations

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import bench_late_detections as late  # noqa: E402
import bench_multiperson as multiperson  # noqa: E402


@pytest.mark.timeout(300)
def test_the_woman_walking_in_is_published_as_soon_as_her_crop_finds_her():
    """Sports2D demo, seed 1, its first 64 frames: her track is confirmed on frame 57 from two
    results that give it no speed; her crop finds her from frame 58 on, ahead of her box
    (engines/landmarks: newcomer_ahead_min_iou). She is published from then on under one id; with
    the rule off the engine dropped her as someone else in the crop until frame 63."""
    path = multiperson.sports2d_demo_clip()
    if path is None:
        pytest.skip("sports2d demo clip not installed (pip install --no-deps sports2d==0.8.34)")
    frames, fps = late.read_frames(path, 64)

    def woman_from(overrides: list[str]) -> dict[int, int]:
        posed = late.run(frames, fps, seed=1, lag=(4, 8), skip=0.2, overrides=overrides)
        return {seq: p.track_id for seq, f in posed.items() for p in f.persons if p.bbox_xyxy[0] > 1150}

    now = woman_from([])
    assert min(now) == 58 and len(set(now.values())) == 1, now
    assert min(woman_from(["pose.landmarks.newcomer_ahead_min_iou=1"])) == 63
