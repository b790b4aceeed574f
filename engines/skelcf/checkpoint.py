"""Load SKEL-CF / FLNet weights strictly, with one-line errors a user can act on.

Accepted layouts (../shared/skelcf/FACTS.md):
- official `best.pth`: {'ema_model': {'model.backbone.*', 'model.decoder.*', 'model.cam_model.*',
  'model.skel_model.*', 'updates'}, 'cfg': OmegaConf, ...}: `model.` keys only, prefix stripped,
  `skel_model.*` (licensed body-model buffers) ignored;
- Lightning-style {'state_dict': {...}} (e.g. the official `cam_model_cleaned.ckpt` for FLNet);
- a plain state dict.
Nothing is downloaded: paths come from config.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from engines.skelcf.flnet import FLNet, build_flnet
from engines.skelcf.model import SkelCFNet, build_skelcf
from engines.skelcf.vit import VIT_CONFIGS
from stream.errors import EngineError

MAX_LISTED = 4
UNSAFE_HINT = ("set `allow_unsafe_checkpoint: true` in the skelcf config (full unpickling runs code from "
               "the file: only for a file from a source you trust; needs `pip install omegaconf`)")
_IGNORED_PREFIXES = ("skel_model.",)


def read_checkpoint(path: str | Path, *, allow_unsafe: bool = False) -> dict:
    """torch.load to CPU; weights_only unless `allow_unsafe`. Raises EngineError on any failure."""
    p = Path(path)
    if not p.is_file():
        raise EngineError(f"checkpoint '{p}' does not exist; set skelcf.checkpoint to the downloaded best.pth "
                          "(Hugging Face Intellindust/SKEL_CF_vitpose_H)")
    try:
        raw = _torch_load(p, weights_only=not allow_unsafe)
    except ModuleNotFoundError as exc:
        raise EngineError(f"checkpoint '{p}' pickles objects of the missing package '{exc.name}'; "
                          f"install it (pip install {exc.name}) to load it unsafely") from None
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError/... for bad files
        msg = " ".join(str(exc).split())
        if "omegaconf" in msg:
            raise EngineError(f"checkpoint '{p}' stores its cfg as an OmegaConf object, which the safe loader "
                              f"(weights_only=True) refuses; {UNSAFE_HINT}") from None
        if "Unsupported global" in msg:
            what = msg.split("Unsupported global:")[-1][:120].strip()
            raise EngineError(f"checkpoint '{p}' pickles non-tensor objects ({what}); {UNSAFE_HINT}") from None
        if "Weights only load failed" in msg:  # torch's preamble hides the real reason at the end
            msg = msg.split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].strip()
        raise EngineError(f"cannot read checkpoint '{p}' ({type(exc).__name__}: {msg[:160]}); the file is "
                          "truncated, corrupt or not a PyTorch checkpoint: download it again") from None
    if not isinstance(raw, Mapping):
        raise EngineError(f"checkpoint '{p}' holds a {type(raw).__name__}, not a dict of weights; "
                          "point skelcf.checkpoint at the official best.pth")
    return dict(raw)


def _torch_load(p: Path, weights_only: bool):
    try:  # mmap: a 3 GB best.pth is not copied into memory twice
        return torch.load(p, map_location="cpu", weights_only=weights_only, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(p, map_location="cpu", weights_only=weights_only)


def model_state(raw: Mapping, path: str | Path = "<memory>") -> dict[str, torch.Tensor]:
    """Flatten any accepted layout to {'backbone.*', 'decoder.*', 'cam_model.*' or FLNet keys: tensor}."""
    if "ema_model" in raw and isinstance(raw["ema_model"], Mapping):
        sd = raw["ema_model"]
    elif "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        sd = raw["state_dict"]
    elif "model" in raw and isinstance(raw["model"], Mapping) and raw["model"]:
        sd = raw["model"]
    else:
        sd = raw
    tensors = {k: v for k, v in sd.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise EngineError(f"checkpoint '{path}' has no weight tensors (top-level keys {sorted(map(str, raw))[:6]}); "
                          "expected the official best.pth with 'ema_model'")
    if any(k.startswith("model.") for k in tensors):  # `updates` and other bookkeeping lack the prefix
        tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return {k: v for k, v in tensors.items() if not k.startswith(_IGNORED_PREFIXES)}


def _first(keys, n: int = MAX_LISTED) -> str:
    keys = list(keys)
    more = f", ... (+{len(keys) - n})" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, path: str | Path) -> None:
    """load_state_dict(strict=True), but shape/key problems become one EngineError line."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches ({_first(shapes, 2)})")
        raise EngineError(f"checkpoint '{path}' does not fit the {what}: {'; '.join(parts)}; "
                          "check skelcf.variant and that the file is the official SKEL-CF checkpoint")
    module.load_state_dict(dict(state), strict=True)


def infer_variant(state: Mapping[str, torch.Tensor]) -> str | None:
    """Registry name whose backbone width and depth match the state, or None."""
    pos = state.get("backbone.pos_embed")
    if pos is None:
        return None
    depth = len({k.split(".")[2] for k in state if k.startswith("backbone.blocks.")})
    for name, cfg in VIT_CONFIGS.items():
        if cfg.embed_dim == pos.shape[-1] and cfg.depth == depth:
            return name
    return None


def split_state(state: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """-> (backbone+decoder state, FLNet state without the `cam_model.` prefix)."""
    net = {k: v for k, v in state.items() if not k.startswith("cam_model.")}
    cam = {k[len("cam_model."):]: v for k, v in state.items() if k.startswith("cam_model.")}
    return net, cam


def load_skelcf(net: SkelCFNet, path: str | Path, *, allow_unsafe: bool = False) -> dict[str, torch.Tensor]:
    """Load backbone+decoder strictly from `path`; returns the file's FLNet part ({} if none)."""
    state = model_state(read_checkpoint(path, allow_unsafe=allow_unsafe), path)
    net_state, cam_state = split_state(state)
    found = infer_variant(net_state)
    what = f"SKEL-CF network (backbone width {net.vit_cfg.embed_dim}, depth {net.vit_cfg.depth})"
    if found is not None and found != _variant_of(net):
        what += f"; the file looks like variant '{found}'"
    load_strict(net, net_state, what, path)
    return cam_state


def _variant_of(net: SkelCFNet) -> str | None:
    for name, cfg in VIT_CONFIGS.items():
        if (cfg.embed_dim, cfg.depth) == (net.vit_cfg.embed_dim, net.vit_cfg.depth):
            return name
    return None


def flnet_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip whichever prefix (`cam_model.`, `model.`) sits in front of FLNet's own keys."""
    for prefix in ("cam_model.", "model.cam_model.", "model.", ""):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if "fc3.weight" in sub or "backbone.transition1.0.0.weight" in sub:
            return sub
    return {}


def flnet_width_of(state: Mapping[str, torch.Tensor]) -> int:
    """HRNet width from the first transition conv (48 for the official FLNet)."""
    w = state.get("backbone.transition1.0.0.weight")
    return int(w.shape[0]) if w is not None else 48


def load_flnet(path_or_state: str | Path | Mapping[str, torch.Tensor], *, width: int | None = None,
               allow_unsafe: bool = False, flnet: FLNet | None = None) -> FLNet:
    """FLNet loaded strictly from a best.pth, a ['state_dict'] file, an FLNet-only file or a state dict.

    The HRNet width is read from the weights unless given. Returns the module in eval mode.
    """
    if isinstance(path_or_state, Mapping):
        path, state = "<state dict>", flnet_state(path_or_state)
    else:
        path = path_or_state
        state = flnet_state(model_state(read_checkpoint(path, allow_unsafe=allow_unsafe), path))
    if not state:
        raise EngineError(f"checkpoint '{path}' holds no FLNet (cam_model) weights; "
                          "set skelcf.flnet_checkpoint to cam_model_cleaned.ckpt or give a focal length")
    net = flnet or build_flnet(width or flnet_width_of(state))
    load_strict(net, state, f"FLNet (HRNet width {net.backbone.out_channels // 15})", path)
    return net.eval()


def load_from_config(cfg) -> tuple[SkelCFNet, FLNet | None]:
    """Network (+ FLNet when weights for it exist) from a SkelCFConfig; eval mode, CPU."""
    if cfg.checkpoint is None:
        raise EngineError("skelcf.checkpoint is not set; download best.pth (Hugging Face "
                          "Intellindust/SKEL_CF_vitpose_H) and put its path in the config")
    net = build_skelcf(cfg.variant)
    cam = load_skelcf(net, cfg.checkpoint, allow_unsafe=cfg.allow_unsafe_checkpoint)
    flnet = None
    if cfg.flnet_checkpoint is not None:
        flnet = load_flnet(cfg.flnet_checkpoint, allow_unsafe=cfg.allow_unsafe_checkpoint)
    elif cam:
        flnet = load_flnet(cam)
    return net.eval(), flnet


def manifest_shapes(variant: str, flnet_width: int | None = 48) -> dict[str, tuple[int, ...]]:
    """Keys (with the `model.` prefix, checkpoint order) and shapes of a variant, built on the meta
    device (no memory for the 700M parameters of vit_h)."""
    with torch.device("meta"):
        net = build_skelcf(variant)
        fl = build_flnet(flnet_width) if flnet_width else None
    out = {f"model.{k}": tuple(v.shape) for k, v in net.state_dict().items()}
    if fl is not None:
        out.update({f"model.cam_model.{k}": tuple(v.shape) for k, v in fl.state_dict().items()})
    return out


def make_manifest_checkpoint(variant: str, path: str | Path, *, seed: int = 0, flnet_width: int | None = None,
                             with_skel_model: bool = True) -> Path:
    """Write a random checkpoint laid out like the official best.pth (for tests).

    `ema_model` holds `model.backbone.*`, `model.decoder.*` (+ `model.cam_model.*` when flnet_width),
    an `updates` counter and, if asked, a stand-in `model.skel_model.*` buffer that loaders must skip.
    """
    torch.manual_seed(seed)
    net = build_skelcf(variant)
    ema = {f"model.{k}": v.clone() for k, v in net.state_dict().items()}
    if flnet_width:
        ema.update({f"model.cam_model.{k}": v.clone() for k, v in build_flnet(flnet_width).state_dict().items()})
    if with_skel_model:
        ema["model.skel_model.J_regressor_osim"] = torch.zeros(24, 8)
    ema["updates"] = torch.tensor(1000)
    raw = {"model": {}, "ema_model": ema, "optimizer": {}, "lr_scheduler": {}, "epoch": 0,
           "cfg": {"variant": variant}}
    path = Path(path)
    torch.save(raw, path)
    return path
