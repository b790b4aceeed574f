"""FLNet (focal-length network), its letterbox and the camera geometry against the golden data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engines.skelcf.checkpoint import load_flnet, manifest_shapes
from engines.skelcf.flnet import build_flnet, letterbox_for_flnet, letterbox_uint8
from engines.skelcf.geometry import bbox_info, cam_to_translation, focal_from_vfov
from stream.errors import EngineError
from conftest import GOLDEN, needs_shared

FL_IO = GOLDEN / "flnet_small_io.npz"
FL_PTH = GOLDEN / "flnet_small.pth"


@pytest.fixture(scope="module")
def io():
    return dict(np.load(FL_IO))


@pytest.fixture(scope="module")
def net():
    return load_flnet(FL_PTH)


@needs_shared(FL_IO)
def test_letterbox_bytes_and_offsets(io):
    box, top_left = letterbox_uint8(io["image_rgb_uint8"])
    assert np.array_equal(box, io["letterboxed_uint8"])
    assert top_left == tuple(io["letterbox_top_left"])
    np.testing.assert_allclose(letterbox_for_flnet(io["image_rgb_uint8"]).numpy(), io["image_letterboxed"],
                               rtol=0, atol=1e-6)


@needs_shared(FL_IO)
def test_flnet_features_pooled_out_match_golden(io, net):
    cfg = json.loads((GOLDEN / "flnet_small_config.json").read_text())
    assert net.backbone.out_channels == cfg["fused_channels"]
    x = torch.from_numpy(io["image_letterboxed"])
    with torch.no_grad():
        feats = net.backbone(x)
        pooled = net.pool(feats)
        out = net.forward_head(pooled)
    for ours, key in ((feats, "features"), (pooled, "pooled"), (out, "out")):
        err = float((ours - torch.from_numpy(io[key])).abs().max())
        assert err <= 1e-5, f"{key}: {err}"


@needs_shared(FL_IO)
def test_vfov_focal_and_bbox_info(io, net):
    h, w = (int(v) for v in io["image_hw"])
    vfov = net.vfov(io["image_rgb_uint8"])
    assert abs(vfov - float(io["vfov"][0])) < 1e-5
    f = net.focal_px(io["image_rgb_uint8"])
    assert abs(f - float(io["focal"][0])) < 1e-3
    assert abs(focal_from_vfov(float(io["vfov"][0]), h) - float(io["focal"][0])) < 1e-3
    x0, y0, x1, y1 = io["box_xyxy"][0].astype(np.float64)
    centre = np.array([[(x0 + x1) / 2, (y0 + y1) / 2]])
    size = np.array([max(x1 - x0, y1 - y0)])
    bi = bbox_info(centre, size, np.array([float(io["focal"][0])]), (h, w))
    np.testing.assert_allclose(bi, io["bbox_info"], rtol=0, atol=1e-6)
    k = io["cam_int"][0]
    assert k[0, 2] == pytest.approx(w / 2) and k[1, 2] == pytest.approx(h / 2)


@needs_shared(GOLDEN / "skelcf_small_io.npz")
def test_bbox_info_numpy_and_torch_match_golden_batch():
    g = np.load(GOLDEN / "skelcf_small_io.npz")
    bi = bbox_info(g["box_center"].astype(np.float64), g["bbox_size"], g["focal"], g["img_size"])
    np.testing.assert_allclose(bi, g["bbox_info"], rtol=0, atol=1e-6)
    bt = bbox_info(torch.from_numpy(g["box_center"]), torch.from_numpy(g["bbox_size"]).float(),
                   torch.from_numpy(g["focal"]).float(), torch.from_numpy(g["img_size"]).float())
    np.testing.assert_allclose(bt.numpy(), g["bbox_info"], rtol=0, atol=1e-6)


def test_cam_to_translation_reprojects_the_box_centre():
    """A body at the predicted translation projects back onto the box centre, at the box scale."""
    rng = np.random.default_rng(0)
    h, w, f = 720.0, 1280.0, 900.0
    cam = np.column_stack([rng.uniform(0.5, 1.2, 8), rng.uniform(-0.2, 0.2, 8), rng.uniform(-0.2, 0.2, 8)])
    centre = rng.uniform([100, 100], [1100, 600], (8, 2))
    size = rng.uniform(80, 500, 8)
    t = cam_to_translation(cam, centre, size, f, (h, w))
    # Origin of the crop camera frame (tx, ty shifted by the crop offset) projects to the box centre
    # plus the crop-frame offset (tx, ty) scaled by s*b/2.
    proj = f * t[:, :2] / t[:, 2:3] + np.array([w / 2, h / 2])
    expect = centre + cam[:, 1:] * (cam[:, :1] * size[:, None] / 2)
    np.testing.assert_allclose(proj, expect, rtol=1e-9)
    np.testing.assert_allclose(t[:, 2], 2 * f / (size * cam[:, 0]))
    tt = cam_to_translation(torch.from_numpy(cam), torch.from_numpy(centre), torch.from_numpy(size), f, (h, w))
    np.testing.assert_allclose(tt.numpy(), t)


def test_full_size_flnet_matches_manifest_shapes():
    shapes = manifest_shapes("tiny", flnet_width=48)
    cam = {k: v for k, v in shapes.items() if k.startswith("model.cam_model.")}
    assert len(cam) == 1874 and cam["model.cam_model.fc1.weight"] == (1024, 720)


@needs_shared(FL_PTH)
def test_flnet_wrong_width_is_a_clear_error():
    with pytest.raises(EngineError, match=r"shape mismatches \(backbone\.transition1"):
        load_flnet(FL_PTH, flnet=build_flnet(8))


def test_letterbox_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8 RGB"):
        letterbox_uint8(np.zeros((10, 10, 3), np.float32))


def test_letterbox_landscape_pads_top_and_bottom_white():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 200, (100, 301, 3), dtype=np.uint8)
    box, (top, left) = letterbox_uint8(img)
    nh = int(100 * 256 / 301)  # 85.04 -> 85 (truncated, not rounded)
    assert (top, left) == ((256 - nh) // 2, 0)
    assert (box[:top] == 255).all() and (box[top + nh:] == 255).all()
    assert box[top:top + nh].max() < 255
