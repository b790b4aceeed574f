"""2D BlazePose landmarks of one person in every view, with the project's landmark engine.

Each view is read frame by frame; the crop box follows the previous frame's landmarks (first
frame: the whole image, where BlazePose's own detector finds the person). `ViewLandmarks` saves
to and loads from .npz, so benchmarks run BlazePose over the views once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.errors import SourceError

NUM_LANDMARKS = 33


@dataclass
class ViewLandmarks:
    """pixels: (T, 33, V, 2) distorted image pixels (NaN where not found);
    confidence: (T, 33, V) BlazePose visibility in [0, 1] (0 where not found);
    world_m: (T, 33, V, 3) BlazePose world landmarks per view (camera-aligned, NaN when not found)."""
    pixels: np.ndarray
    confidence: np.ndarray
    world_m: np.ndarray

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, pixels=self.pixels, confidence=self.confidence, world_m=self.world_m)

    @classmethod
    def load(cls, path: str | Path) -> "ViewLandmarks":
        with np.load(path) as z:
            return cls(z["pixels"], z["confidence"], z["world_m"])


def box_following(image_px: np.ndarray, visibility: np.ndarray, width: int, height: int,
                  margin: float = 1.3) -> np.ndarray:
    """(4,) xyxy square box around the visible landmarks, `margin` times their extent."""
    px = image_px[visibility > 0.5]
    if px.shape[0] < 4:
        return np.array([0, 0, width, height], np.float32)
    (x0, y0), (x1, y1) = px.min(0), px.max(0)
    cx, cy, s = 0.5 * (x0 + x1), 0.5 * (y0 + y1), margin * max(x1 - x0, y1 - y0)
    return np.array([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], np.float32)


def read_video(path: str | Path, max_frames: int | None = None):
    """Yield (H, W, 3) uint8 BGR frames of a video file (PyAV)."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FileNotFoundError, av.error.InvalidDataError, OSError) as exc:
        raise SourceError(f"cannot read video {path} ({exc}); give an existing video file") from None
    with container:
        for i, f in enumerate(container.decode(video=0)):
            if max_frames is not None and i >= max_frames:
                break
            yield f.to_ndarray(format="bgr24")


def detect_views(videos: list[str | Path], max_frames: int | None = None, engine=None) -> ViewLandmarks:
    """BlazePose landmarks of the (single) person in each of `videos`, frame by frame."""
    from engines.landmarks.engine import LandmarkPoseEngine

    own = engine is None
    eng = engine or LandmarkPoseEngine()
    per_view = []
    try:
        for v, path in enumerate(videos):
            rows = []
            box = None
            for img in read_video(path, max_frames):
                h, w = img.shape[:2]
                if box is None:
                    box = np.array([0, 0, w, h], np.float32)
                lm = eng.landmarks(img, box, (f"reference{v}", 0))
                if lm is None:
                    rows.append(None)
                    box = np.array([0, 0, w, h], np.float32)
                    continue
                rows.append(lm)
                box = box_following(lm.image_px, lm.visibility, w, h)
            eng.forget(f"reference{v}", 0)
            per_view.append(rows)
    finally:
        if own:
            eng.close()
    t_n = max(len(r) for r in per_view)
    v_n = len(videos)
    px = np.full((t_n, NUM_LANDMARKS, v_n, 2), np.nan)
    conf = np.zeros((t_n, NUM_LANDMARKS, v_n))
    world = np.full((t_n, NUM_LANDMARKS, v_n, 3), np.nan)
    for v, rows in enumerate(per_view):
        for t, lm in enumerate(rows):
            if lm is not None:
                px[t, :, v] = lm.image_px
                conf[t, :, v] = lm.visibility
                world[t, :, v] = lm.world_m
    return ViewLandmarks(px, conf, world)
