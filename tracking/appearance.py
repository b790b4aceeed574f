"""Clothing colour of a person box: a cheap appearance cue that tells two people apart.

Position alone cannot tell who is who where people cross or come out from behind an occluder:
on vtest.avi a coasting track was re-found on a woman walking out beside the man it had
followed, and tracks trade people at crossings. What people wear differs more than where their
boxes are at such moments, and a colour histogram of the clothes (as in the colour-based trackers
before learned re-identification) costs ~0.1 ms a box, needs no weights and does not mind a
person turning round. It cannot tell two people dressed alike apart (on vtest's hand-labelled
people, someone else 2 s later is told apart in about half the pairs), so the tracker uses it as
a veto (this box is clearly someone else), never to prefer a match.

The histogram is taken inside the box where the body is (the middle of the width) for two parts,
upper body and legs, each over hue x saturation for coloured pixels plus value bins for grey,
black and white ones (hue means nothing there). Parts are normalised to sum 1; similarity is
the Bhattacharyya coefficient of the least alike part: 1 = the same colours, 0 = none shared.
The least alike part, not the mean: two people in the same jeans differ only above the waist.
"""
from __future__ import annotations

import cv2
import numpy as np

PARTS = ((0.15, 0.50), (0.52, 0.92))
"""Vertical spans of the box (fractions of its height): upper body, legs (the head and the feet,
whose colours say little and whose background shows most, left out)."""
WIDTH_SPAN = (0.25, 0.75)
"""The middle of the box width, where the body is even for a walker's wide box."""
HUE_BINS, SAT_BINS, GREY_BINS = 12, 2, 4
MIN_SAT, MIN_VAL_REL = 50, 0.25
"""Below this saturation (OpenCV's 0-255), or this share of the box's reference brightness, a
pixel is grey/black/white."""
V_REF_PERCENTILE = 90
PART_DIM = HUE_BINS * SAT_BINS + GREY_BINS
DIM = PART_DIM * len(PARTS)
SAMPLE_SIDE = 24
"""Each part is resampled to this many pixels a side first: the cost does not grow with the box."""


def _part_histogram(hsv: np.ndarray, v_ref: float) -> np.ndarray:
    """(h, w, 3) uint8 HSV, the box's reference brightness -> (PART_DIM,) float64 histogram
    summing to 1. Brightness counts relative to the box's own (hue and saturation do not change
    when the exposure does, absolute brightness does)."""
    h, s, v = (hsv[..., i].ravel().astype(np.int32) for i in range(3))
    v_rel = v / max(v_ref, 1.0)
    grey = (s < MIN_SAT) | (v_rel < MIN_VAL_REL)
    colour_bin = (h * HUE_BINS // 180) * SAT_BINS + np.minimum((s - MIN_SAT) * SAT_BINS // (256 - MIN_SAT), SAT_BINS - 1)
    grey_bin = HUE_BINS * SAT_BINS + np.minimum((v_rel * GREY_BINS).astype(np.int32), GREY_BINS - 1)
    hist = np.bincount(np.where(grey, grey_bin, colour_bin), minlength=PART_DIM).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def appearance_features(image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR frame, (N, 4) xyxy px boxes -> (N, DIM) float32 part histograms.

    A box with no pixels inside the frame (or a part of under one pixel) gives a zero row:
    unknown, which `appearance_similarity` reads as no evidence."""
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), DIM), np.float32)
    if image_bgr is None or not len(boxes):
        return out
    H, W = image_bgr.shape[:2]
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        w, h = x1 - x0, y1 - y0
        xa = int(np.clip(x0 + WIDTH_SPAN[0] * w, 0, W))
        xb = int(np.clip(x0 + WIDTH_SPAN[1] * w, 0, W))
        parts = []
        for p0, p1 in PARTS:
            ya = int(np.clip(y0 + p0 * h, 0, H))
            yb = int(np.clip(y0 + p1 * h, 0, H))
            if xb - xa < 1 or yb - ya < 1:
                parts.append(None)
                continue
            patch = cv2.resize(image_bgr[ya:yb, xa:xb], (SAMPLE_SIDE, SAMPLE_SIDE), interpolation=cv2.INTER_AREA)
            parts.append(cv2.cvtColor(patch, cv2.COLOR_BGR2HSV))
        known = [p for p in parts if p is not None]
        if not known:
            continue
        v_ref = float(np.percentile(np.concatenate([p[..., 2].ravel() for p in known]), V_REF_PERCENTILE))
        for k, hsv in enumerate(parts):
            if hsv is not None:
                out[i, k * PART_DIM:(k + 1) * PART_DIM] = _part_histogram(hsv, v_ref)
    return out


def appearance_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, DIM), (M, DIM) part histograms -> (N, M) the least Bhattacharyya coefficient over the
    parts both rows know, in [0, 1]; 1 (no evidence against) where they share no known part."""
    a = np.asarray(a, np.float64).reshape(len(a), len(PARTS), PART_DIM)
    b = np.asarray(b, np.float64).reshape(len(b), len(PARTS), PART_DIM)
    ka = a.sum(-1) > 0                                              # (N, parts) part known
    kb = b.sum(-1) > 0
    bc = np.einsum("npd,mpd->nmp", np.sqrt(a), np.sqrt(b))          # per part
    both = ka[:, None, :] & kb[None, :, :]
    return np.where(both, bc, 1.0).min(-1)
