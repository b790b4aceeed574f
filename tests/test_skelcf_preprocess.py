"""Crop geometry of the batched SKEL-CF preprocessor against the official OpenCV crops (golden)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import GOLDEN, needs_shared

from engines.skelcf.preprocess import (IMAGENET_MEAN, IMAGENET_STD, CropPreprocessor, bbox_info,
                                       crop_affine, square_boxes)
from stream.errors import EngineError

CROPS = GOLDEN / "crop_preprocessing.npz"
# FACTS.md: a float bilinear sampler differs from cv2's 1/32-px fixed point by up to ~4 grey levels
FLOAT_SAMPLER_ATOL = 0.075
BORDER = -np.asarray(IMAGENET_MEAN) / np.asarray(IMAGENET_STD)  # a zero pixel after normalization


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(CROPS))


@needs_shared(CROPS)
def test_affine_and_bbox_info_match_official(golden):
    centre, side = square_boxes(golden["boxes_xyxy"])
    np.testing.assert_allclose(centre, golden["box_center"], atol=1e-4)
    np.testing.assert_allclose(side, golden["bbox_size"], atol=1e-4)
    np.testing.assert_allclose(crop_affine(centre, side), golden["affine_2x3"], atol=1e-3)
    info = bbox_info(centre, side, tuple(golden["image_hw"]), float(golden["focal"]))
    np.testing.assert_allclose(info, golden["bbox_info"], atol=1e-6)


@needs_shared(CROPS)
def test_crops_match_official_opencv_crops(golden):
    bgr = np.ascontiguousarray(golden["image_rgb_uint8"][:, :, ::-1])
    crops, info = CropPreprocessor("cpu")(bgr, golden["boxes_xyxy"], float(golden["focal"]))
    assert crops.shape == (2, 3, 256, 256) and crops.dtype == torch.float32
    err = np.abs(crops.numpy() - golden["crops"])
    assert err.max() < FLOAT_SAMPLER_ATOL
    assert err.mean() < 0.01  # geometry right: a half-pixel shift would give ~0.1 on this image
    # the second box leaves the image: its left/bottom border is the zero pixel, normalized
    out_cols = crops[1, :, 128, :5].numpy()
    np.testing.assert_allclose(out_cols, np.repeat(BORDER[:, None], 5, 1), atol=1e-5)
    np.testing.assert_allclose(info.numpy(), golden["bbox_info"], atol=1e-6)


@needs_shared(CROPS)
def test_half_pixel_shift_is_detected(golden):
    """The tolerance above is tight enough to catch the classic pixel-centre mistake."""
    bgr = np.ascontiguousarray(golden["image_rgb_uint8"][:, :, ::-1])
    shifted = golden["boxes_xyxy"] + np.array([0.5, 0.5, 0.5, 0.5], np.float32) * golden["bbox_size"][:, None] / 256
    crops, _ = CropPreprocessor("cpu")(bgr, shifted, 600.0)
    assert np.abs(crops.numpy() - golden["crops"]).mean() > 0.02


def test_unit_scale_box_is_an_exact_image_slice():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    # side 256 -> scale 1; centre at a pixel centre + 0 so patch pixel u maps to x = u - 128 + cx
    box = np.array([[20.0, 10.0, 276.0, 266.0]])
    crops, _ = CropPreprocessor("cpu")(img, box, 500.0)
    want = img[10:266, 20:276, ::-1].astype(np.float32)
    got = crops[0].numpy().transpose(1, 2, 0) * (255 * np.asarray(IMAGENET_STD)) + 255 * np.asarray(IMAGENET_MEAN)
    np.testing.assert_allclose(got, want, atol=0.02)  # float32 grid coordinates: ~1e-5 px


def test_boxes_outside_frame_and_batch_order():
    img = np.full((120, 160, 3), 200, np.uint8)
    boxes = np.array([[-500.0, -500.0, -300.0, -300.0],   # fully outside: all border
                      [40.0, 20.0, 120.0, 100.0],          # fully inside: all 200
                      [140.0, 60.0, 180.0, 100.0]])        # right half outside
    crops, info = CropPreprocessor("cpu")(img, boxes, 100.0)
    c = crops.numpy()
    np.testing.assert_allclose(c[0], np.broadcast_to(BORDER[:, None, None], c[0].shape), atol=1e-5)
    inside = (200 - 255 * np.asarray(IMAGENET_MEAN)) / (255 * np.asarray(IMAGENET_STD))
    np.testing.assert_allclose(c[1, :, 2:-2, 2:-2].mean(axis=(1, 2)), inside, atol=1e-4)
    assert np.allclose(c[2, :, 128, :100], inside[:, None], atol=1e-4)   # left part in the frame
    assert np.allclose(c[2, :, 128, -100:], BORDER[:, None], atol=1e-4)  # right part outside
    np.testing.assert_allclose(info[:, 2].numpy(), [2.0, 0.8, 0.4], atol=1e-6)


def test_non_square_box_uses_longest_side_and_empty_batch():
    centre, side = square_boxes(np.array([[0.0, 0.0, 50.0, 200.0]]))
    assert side[0] == 200.0 and tuple(centre[0]) == (25.0, 100.0)
    crops, info = CropPreprocessor("cpu")(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4)), 100.0)
    assert crops.shape == (0, 3, 256, 256) and info.shape == (0, 3)


def test_user_errors():
    pre = CropPreprocessor("cpu")
    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(EngineError, match="zero or negative size"):
        pre(img, np.array([[5.0, 5.0, 5.0, 5.0]]), 100.0)
    with pytest.raises(EngineError, match="not positive"):
        pre(img, np.array([[0.0, 0.0, 5.0, 5.0]]), -1.0)
    with pytest.raises(EngineError, match="uint8 BGR"):
        pre(np.zeros((10, 10), np.uint8), np.array([[0.0, 0.0, 5.0, 5.0]]), 100.0)
