"""2D BlazePose landmarks of one person in every view, with the project's landmark engine.

Each view is read frame by frame; the crop box follows the previous frame's landmarks (first
frame: the whole image, where BlazePose's own detector finds the person). `ViewLandmarks` saves
to and loads from .npz, so benchmarks run BlazePose over the views once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.blazepose.detector import person_boxes
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


def _follow(eng, detector, path: str | Path, key: tuple[str, int], max_frames: int | None,
            avoid: list[list[np.ndarray | None]]) -> list:
    """One person through a video, crop box following its landmarks. While it is not (yet)
    found, the boxes of already-followed people (`avoid`: per person, per frame) are blacked
    out and BlazePose's detector looks for someone else (its most confident detection)."""
    rows: list = []
    box = None
    for t, img in enumerate(read_video(path, max_frames)):
        h, w = img.shape[:2]
        if box is None:
            frame = img
            if avoid:
                frame = img.copy()
                for other in avoid:
                    b = other[t] if t < len(other) else None
                    if b is not None:
                        x0, y0, x1, y1 = (int(round(float(c))) for c in b)
                        frame[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 0
            det = detector.detect(frame)
            lm = None
            if len(det):
                found = person_boxes(det)[int(np.argmax(det.scores))]
                lm = eng.landmarks(frame, [found], [key])[0]
        else:
            lm = eng.landmarks(img, [box], [key])[0]
        rows.append(lm)
        box = None if lm is None else box_following(lm.image_px, lm.visibility, w, h)
    eng.forget(*key)
    return rows


def _stack(per_view: list[list]) -> ViewLandmarks:
    t_n = max(len(r) for r in per_view)
    v_n = len(per_view)
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


def detect_views(videos: list[str | Path], max_frames: int | None = None, engine=None,
                 people: int = 1) -> list[ViewLandmarks]:
    """BlazePose landmarks of up to `people` persons in each of `videos`, frame by frame.

    Returns one ViewLandmarks per candidate index; candidate i of one view is not necessarily
    candidate i of another (`engines.reference.association` matches them across views).
    """
    from engines.blazepose.detector import BlazePoseSsd
    from engines.landmarks.engine import LandmarkPoseEngine

    own = engine is None
    eng = engine or LandmarkPoseEngine()
    detector = BlazePoseSsd()
    per_person: list[list[list]] = [[] for _ in range(people)]
    try:
        for v, path in enumerate(videos):
            boxes: list[list[np.ndarray | None]] = []
            for i in range(people):
                rows = _follow(eng, detector, path, (f"reference{v}", i), max_frames, boxes)
                per_person[i].append(rows)
                boxes.append([None if lm is None else box_following(lm.image_px, lm.visibility, 10 ** 6, 10 ** 6, 1.1)
                              for lm in rows])
    finally:
        if own:
            eng.close()
    return [_stack(rows) for rows in per_person]
