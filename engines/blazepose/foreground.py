"""Where a person might be that the face-keyed detector cannot see: moving foreground blobs.

BlazePose's SSD detector finds a person by the face. A walker seen from behind or from the side,
or one 60-120 px tall (a face of ~8 px), is missed: on vtest.avi's hand-labelled frames it finds
77 % of the people 60-86 px tall even on a region cut exactly round them. The landmark model
finds 92 % of the same people from a crop of 1.25 x their box, whichever way they face, but it
needs to be told where to look. A background model (OpenCV's MOG2 on a small copy of the frame,
updated on each detector run) gives those places: the blobs of what moved against the learnt
background, which on a fixed camera are mostly people, each about the size of one. A moving or
shaking camera makes most of the frame foreground: then no blob is proposed until the model has
learnt the new view.
"""
from __future__ import annotations

import cv2
import numpy as np

FOREGROUND_WIDTH_PX = 192
"""The background model runs on the frame scaled to this width (~0.8 ms per update on one core);
a walker 60 px tall in a 576 px frame is still 20 px tall there."""
HISTORY_UPDATES = 50
"""MOG2's history, in detector runs (every third frame: 15 s at 10 fps, 5 s at 30 fps)."""
MAX_FOREGROUND_SHARE = 0.3
"""More of the frame than this in the foreground: the camera moved (or the lights changed), no blobs."""
MIN_HEIGHT_FRAC = 0.05
"""Blobs shorter than this share of the frame height are too small to pose."""
MIN_FILL = 0.15
"""Share of the blob's box its pixels must fill (a thin line of changed pixels is an edge, not a body)."""
MIN_HEIGHT_OVER_WIDTH = 0.6
"""A standing or walking body is taller than wide give or take; a car or a sweep of light is not."""


class ForegroundBlobs:
    """Per stream, a background model; `update` gives the boxes of what stands out from it now."""

    def __init__(self) -> None:
        self._models: dict[str, tuple[cv2.BackgroundSubtractorMOG2, tuple[int, int]]] = {}

    def update(self, image_bgr: np.ndarray, stream: str = "") -> np.ndarray:
        """(N, 4) float32 xyxy image-px boxes of foreground blobs, largest first; none on a
        stream's first call, after a change of frame size, or while most of the frame moves."""
        h, w = image_bgr.shape[:2]
        size = (FOREGROUND_WIDTH_PX, max(1, round(h * FOREGROUND_WIDTH_PX / w)))
        model = self._models.get(stream)
        if model is None or model[1] != size:
            model = (cv2.createBackgroundSubtractorMOG2(history=HISTORY_UPDATES, varThreshold=16,
                                                        detectShadows=True), size)
            self._models[stream] = model
        small = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        fg = model[0].apply(small) == 255          # 127 = shadow: not a body
        none = np.zeros((0, 4), np.float32)
        if fg.mean() > MAX_FOREGROUND_SHARE or not fg.any():
            return none
        mask = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 3), np.uint8))
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        scale = w / size[0]
        min_h = MIN_HEIGHT_FRAC * size[1]
        out = [(area, [x * scale, y * scale, (x + bw) * scale, (y + bh) * scale])
               for x, y, bw, bh, area in stats[1:].tolist()
               if bh >= min_h and area >= MIN_FILL * bw * bh and bh >= MIN_HEIGHT_OVER_WIDTH * bw]
        out.sort(key=lambda a: -a[0])
        return np.array([b for _, b in out], np.float32).reshape(-1, 4)


def beside_regions(blobs: np.ndarray, boxes: np.ndarray, min_share: float,
                   width_share: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Where a blob reaches well past the people found on it: two people walking side by side.

    BlazePose's detector often gives one body for a pair walking shoulder to shoulder (on vtest.avi
    the woman beside the man in the red jacket is missed at frames 20, 360 and 540), while the
    background model sees one blob round both. For each blob with found people on it (a box's
    centre inside the blob, or IoU >= 0.2; `boxes` are this run's detections, not a tracker's
    expected boxes, which lag a walker so that his own front looks like someone beside), the sides
    of the blob past their joint width, where at least `min_share` x the blob's height is left,
    give a person-sized region flush with the blob's outer edge (`width_share` x its height wide). Returns (K, 4) float32 xyxy regions, widest side left
    first, and for each the boxes found on its blob (to mask while the landmark model looks).
    """
    regions: list[tuple[float, list[float], np.ndarray]] = []
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(blobs) and len(boxes):
        from tracking.bytetrack import iou_matrix

        cx, cy = 0.5 * (boxes[:, 0] + boxes[:, 2]), 0.5 * (boxes[:, 1] + boxes[:, 3])
        overlap = iou_matrix(blobs, boxes)
        for bi, (x0, y0, x1, y1) in enumerate(blobs.tolist()):
            on = (((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)) | (overlap[bi] >= 0.2))
            if not on.any():
                continue
            h = y1 - y0
            left, right = float(boxes[on, 0].min()), float(boxes[on, 2].max())
            width = width_share * h
            for spare, region in ((left - x0, [x0, y0, x0 + width, y1]), (x1 - right, [x1 - width, y0, x1, y1])):
                if spare >= min_share * h:
                    regions.append((spare, region, boxes[on]))
    regions.sort(key=lambda r: -r[0])
    return (np.array([r for _, r, _ in regions], np.float32).reshape(-1, 4), [m for _, _, m in regions])
