"""Crop boxes: square, steadier than the tracker box, containing it, inside the frame where possible."""
from __future__ import annotations

import numpy as np

from tracking.config import CropConfig
from tracking.crop_boxes import CropBoxes, fit_into_frame

W, H = 640, 480


def _side(c):
    return c[2] - c[0], c[3] - c[1]


def test_square_and_scaled():
    cb = CropBoxes(CropConfig(scale=1.5))
    c = cb.update(1, np.array([300, 100, 340, 300]), 0.0, W, H)
    w, h = _side(c)
    assert abs(w - h) < 1e-3 and abs(w - 300) < 1e-3


def test_steadier_than_the_box_and_always_contains_it():
    rng = np.random.default_rng(0)
    cb = CropBoxes()
    centres_box, centres_crop, sides_box, sides_crop = [], [], [], []
    for i in range(120):
        t = i / 30
        cx = 200 + 60 * t
        box = np.array([cx - 30, 150, cx + 30, 300]) + rng.normal(0, 4, 4)
        c = cb.update(7, box, t, W, H)
        assert abs(_side(c)[0] - _side(c)[1]) < 1e-3
        assert c[0] <= box[0] + 1e-3 and c[1] <= box[1] + 1e-3 and c[2] >= box[2] - 1e-3 and c[3] >= box[3] - 1e-3
        centres_box.append(0.5 * (box[0] + box[2]) - cx)
        centres_crop.append(0.5 * (c[0] + c[2]) - cx)
        sides_box.append(box[3] - box[1])
        sides_crop.append(c[3] - c[1])
    # frame-to-frame jitter is what makes poses shake
    assert np.std(np.diff(centres_crop[30:])) < 0.5 * np.std(np.diff(centres_box[30:]))
    assert np.std(np.diff(sides_crop[30:])) < 0.5 * np.std(np.diff(sides_box[30:]))


def test_moved_inside_the_frame_at_the_border():
    cb = CropBoxes()
    c = cb.update(1, np.array([0, 300, 50, 470]), 0.0, W, H)
    assert c[0] >= 0 and c[1] >= 0 and c[2] <= W + 1e-3 and c[3] <= H + 1e-3
    assert c[0] <= 0 + 1e-3 and c[3] >= 470 - 1e-3


def test_larger_than_frame_is_centred():
    cx, cy = fit_into_frame(100.0, 100.0, 600.0, W, H)
    assert cx == 300.0 and cy == 240.0   # fits along x: shifted in; too tall: centred
    cb = CropBoxes()
    c = cb.update(1, np.array([100, 0, 300, 480]), 0.0, W, H)   # 1.25 * 480 = 600 > H
    assert abs((c[1] + c[3]) / 2 - 240) < 1e-3 and c[0] <= 100 and c[2] >= 300


def test_box_outside_frame_and_forget():
    cb = CropBoxes()
    c = cb.update(3, np.array([-500, -500, -400, -300]), 0.0, W, H)
    assert np.isfinite(c).all()
    assert len(cb) == 1
    cb.forget(3)
    assert len(cb) == 0
    c2 = cb.update(3, np.array([300, 100, 340, 300]), 1.0, W, H)
    assert 300 < (c2[0] + c2[2]) / 2 < 340   # restarted from the box, not smoothed from the old one
