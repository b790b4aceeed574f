"""Strict checkpoint loading: official layouts load, every kind of bad file gives one clear EngineError."""
from __future__ import annotations

import json

import pytest
import torch

from engines.skelcf.checkpoint import (
    load_flnet, load_from_config, load_skelcf, make_manifest_checkpoint, manifest_shapes, read_checkpoint,
)
from engines.skelcf.config import SkelCFConfig
from engines.skelcf.model import build_skelcf
from stream.errors import EngineError, UserError
from conftest import GOLDEN, SHARED, needs_shared

MANIFEST = SHARED / "skelcf" / "state_dict_manifest.tsv"


class NotAWeight:
    """A pickled non-tensor object, like the OmegaConf cfg inside the real best.pth."""

    def __init__(self):
        self.lr = 1e-4


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "best.pth"
    return make_manifest_checkpoint("tiny", path, seed=5, flnet_width=2)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and isinstance(exc.value, UserError)
    return msg


def test_manifest_layout_loads_strictly_and_reproduces(tiny_ckpt):
    raw = torch.load(tiny_ckpt, weights_only=True)
    assert "updates" in raw["ema_model"] and "model.skel_model.J_regressor_osim" in raw["ema_model"]
    net = build_skelcf("tiny")
    cam = load_skelcf(net, tiny_ckpt)
    assert cam and all(not k.startswith("cam_model.") for k in cam)
    for k, v in net.state_dict().items():
        assert torch.equal(v, raw["ema_model"][f"model.{k}"]), k
    fl = load_flnet(cam)
    assert torch.equal(fl.fc3.weight, raw["ema_model"]["model.cam_model.fc3.weight"])


def test_load_from_config_builds_both(tiny_ckpt):
    net, fl = load_from_config(SkelCFConfig(checkpoint=str(tiny_ckpt), variant="tiny"))
    assert not net.training and fl is not None and fl.backbone.out_channels == 30
    with pytest.raises(EngineError, match="skelcf.checkpoint is not set"):
        load_from_config(SkelCFConfig(variant="tiny"))


def test_full_size_keys_and_shapes_equal_the_manifest():
    """vit_h + FLNet-W48, built on the meta device, has exactly the official keys, order and shapes."""
    if not MANIFEST.exists():
        pytest.skip(f"{MANIFEST} not present")
    rows = [line.split("\t") for line in MANIFEST.read_text().splitlines()[1:]]
    official = {k: tuple(json.loads(s)) for k, s, _ in rows}
    ours = manifest_shapes("vit_h", flnet_width=48)
    assert list(ours) == list(official)
    assert ours == official


@needs_shared(GOLDEN / "skelcf_small.pth")
def test_wrong_variant_lists_first_offending_keys():
    with pytest.raises(EngineError) as exc:
        load_skelcf(build_skelcf("tiny", depth=3), GOLDEN / "skelcf_small.pth")
    msg = _one_line(exc)
    assert "12 missing (backbone.blocks.2.norm1.weight, backbone.blocks.2.norm1.bias" in msg


def test_shape_mismatch_names_variant(tiny_ckpt):
    with torch.device("meta"):
        net = build_skelcf("vit_b")
    with pytest.raises(EngineError) as exc:
        load_skelcf(net, tiny_ckpt)
    msg = _one_line(exc)
    assert "shape mismatches (backbone.pos_embed file (1, 193, 128) vs model (1, 193, 768)" in msg
    assert "looks like variant 'tiny'" in msg


def test_missing_and_unexpected_keys(tmp_path, tiny_ckpt):
    raw = torch.load(tiny_ckpt, weights_only=True)
    del raw["ema_model"]["model.decoder.mean_cam"]
    raw["ema_model"]["model.decoder.extra_head.weight"] = torch.zeros(3)
    bad = tmp_path / "bad.pth"
    torch.save(raw, bad)
    with pytest.raises(EngineError) as exc:
        load_skelcf(build_skelcf("tiny"), bad)
    msg = _one_line(exc)
    assert "1 missing (decoder.mean_cam)" in msg and "1 unexpected (decoder.extra_head.weight)" in msg


def test_truncated_garbage_missing_and_empty_files(tmp_path, tiny_ckpt):
    data = tiny_ckpt.read_bytes()
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("<html>404 not found</html>")
    for path in (trunc, garbage):
        with pytest.raises(EngineError, match="truncated, corrupt or not a PyTorch checkpoint") as exc:
            read_checkpoint(path)
        _one_line(exc)
    with pytest.raises(EngineError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(EngineError, match="no weight tensors"):
        load_skelcf(build_skelcf("tiny"), empty)
    lst = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], lst)
    with pytest.raises(EngineError, match="not a dict of weights"):
        read_checkpoint(lst)


def test_pickled_objects_need_the_unsafe_option(tmp_path, tiny_ckpt):
    raw = torch.load(tiny_ckpt, weights_only=True)
    raw["cfg"] = NotAWeight()
    path = tmp_path / "with_cfg.pth"
    torch.save(raw, path)
    with pytest.raises(EngineError) as exc:
        load_skelcf(build_skelcf("tiny"), path)
    msg = _one_line(exc)
    assert "allow_unsafe_checkpoint: true" in msg and "NotAWeight" in msg
    load_skelcf(build_skelcf("tiny"), path, allow_unsafe=True)


@needs_shared(GOLDEN / "flnet_small.pth")
def test_flnet_from_state_dict_layout(tmp_path):
    """The official separate FLNet file is Lightning-style ['state_dict']; also accept a bare prefix."""
    sd = torch.load(GOLDEN / "flnet_small.pth", weights_only=True)["ema_model"]
    bare = {k[len("model.cam_model."):]: v.contiguous() for k, v in sd.items()}
    path = tmp_path / "cam_model_cleaned.ckpt"
    torch.save({"state_dict": bare, "epoch": 1}, path)
    fl = load_flnet(path)
    assert fl.backbone.out_channels == 60
    with pytest.raises(EngineError, match="holds no FLNet"):
        load_flnet(GOLDEN / "skelcf_small.pth")


def test_omegaconf_cfg_gets_its_own_message(tmp_path, tiny_ckpt, monkeypatch):
    """The real best.pth pickles an omegaconf DictConfig: name the option, and the package if absent."""
    import sys
    import types

    fake = types.ModuleType("omegaconf.dictconfig")

    class DictConfig(dict):
        pass

    DictConfig.__module__ = "omegaconf.dictconfig"
    DictConfig.__qualname__ = "DictConfig"
    fake.DictConfig = DictConfig
    parent = types.ModuleType("omegaconf")
    parent.dictconfig = fake
    if "omegaconf" not in sys.modules:
        monkeypatch.setitem(sys.modules, "omegaconf", parent)
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", fake)  # only so pickle can name the class
    raw = torch.load(tiny_ckpt, weights_only=True)
    raw["cfg"] = DictConfig(lr=1e-4)
    path = tmp_path / "omega.pth"
    torch.save(raw, path)
    monkeypatch.undo()
    with pytest.raises(EngineError) as exc:
        read_checkpoint(path)
    msg = _one_line(exc)
    assert "OmegaConf object" in msg and "allow_unsafe_checkpoint: true" in msg
    import importlib.util

    if importlib.util.find_spec("omegaconf") is None:
        with pytest.raises(EngineError, match="missing package 'omegaconf'"):
            read_checkpoint(path, allow_unsafe=True)
