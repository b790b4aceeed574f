"""SKEL-CF network: ViTPose backbone + coarse-to-fine decoder, crops -> 46 SKEL DoFs.

`SkelCFNet.forward` returns every intermediate the golden data checks; `forward_export` is the
lean graph that ONNX/TensorRT export uses (q, betas, cam only).
Submodule names `backbone` / `decoder` match the checkpoint's `model.backbone.*` / `model.decoder.*`.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from engines.skelcf.decoder import DECODER_CONFIGS, DecoderConfig, SkelCFDecoder
from engines.skelcf.rotations import rep_to_q
from engines.skelcf.vit import VIT_CONFIGS, ViT, ViTConfig

CROP_PX = 256
CROP_COLS = (32, 224)  # the network sees the central 256x192 of the square crop
VARIANTS = tuple(VIT_CONFIGS)


class SkelCFNet(nn.Module):
    """Backbone + decoder. Inputs: crops (B,3,256,256) float32 normalized RGB, or already-sliced
    (B,3,256,192); bbox_info (B,3) = ((cx-W/2)/f, (cy-H/2)/f, box/f)."""

    def __init__(self, vit_cfg: ViTConfig, dec_cfg: DecoderConfig):
        super().__init__()
        if dec_cfg.dim != vit_cfg.embed_dim:
            raise ValueError(f"decoder dim {dec_cfg.dim} must equal the backbone width {vit_cfg.embed_dim}")
        self.vit_cfg, self.dec_cfg = vit_cfg, dec_cfg
        self.backbone = ViT(vit_cfg)
        self.decoder = SkelCFDecoder(dec_cfg)

    @staticmethod
    def slice_crops(crops: torch.Tensor) -> torch.Tensor:
        """(B,3,256,256) -> (B,3,256,192) columns 32:224; a 192-wide input passes unchanged."""
        if crops.shape[-1] == CROP_PX:
            return crops[..., CROP_COLS[0]:CROP_COLS[1]]
        return crops

    def forward_features(self, crops: torch.Tensor) -> torch.Tensor:
        """(B,3,256,256|192) -> image tokens (B,192,D)."""
        return self.backbone.forward_features(self.slice_crops(crops))

    def forward(self, crops: torch.Tensor, bbox_info: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """All outputs, float32: 'q' (B,46) rad SKEL order, 'betas' (B,10), 'cam' (B,3) = (s,tx,ty)
        final; 'poses_rep' (B,144); coarse 'q_enc', 'poses_rep_enc', 'betas_enc', 'cam_enc';
        'tokens' (B,192,D), 'x_cls' (B,D); per-layer lists 'layers_poses_rep', 'layers_q',
        'layers_betas', 'layers_cam'."""
        tokens = self.forward_features(crops)
        x_cls = tokens.mean(1)
        out = self.decoder(x_cls, tokens, bbox_info)
        out["tokens"], out["x_cls"] = tokens, x_cls
        out["layers_q"] = [rep_to_q(p) for p in out["layers_poses_rep"]]
        out["q_enc"] = rep_to_q(out["poses_rep_enc"])
        out["poses_rep"] = out["layers_poses_rep"][-1]
        out["q"] = out["layers_q"][-1]
        out["betas"] = out["layers_betas"][-1]
        out["cam"] = out["layers_cam"][-1]
        return out

    def forward_export(self, crops: torch.Tensor, bbox_info: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Graph to export: -> q (B,46) rad, betas (B,10), cam (B,3). Only the final layer is read."""
        tokens = self.forward_features(crops)
        out = self.decoder(tokens.mean(1), tokens, bbox_info)
        return rep_to_q(out["layers_poses_rep"][-1]), out["layers_betas"][-1], out["layers_cam"][-1]


def build_skelcf(variant: str, **overrides) -> SkelCFNet:
    """Build a network for 'vit_h', 'vit_b' or 'tiny' (random init; load weights with checkpoint.py).

    `overrides` replace config fields: keys of ViTConfig apply to the backbone, keys prefixed
    `dec_` (e.g. dec_depth=2) to the decoder. The decoder width always follows the backbone.
    """
    if variant not in VIT_CONFIGS:
        raise ValueError(f"unknown SKEL-CF variant '{variant}'; use one of {sorted(VIT_CONFIGS)}")
    vit_fields = set(ViTConfig.__dataclass_fields__)
    dec_fields = set(DecoderConfig.__dataclass_fields__)
    vit_over = {k: v for k, v in overrides.items() if k in vit_fields}
    dec_over = {k[4:]: v for k, v in overrides.items() if k.startswith("dec_") and k[4:] in dec_fields}
    unknown = set(overrides) - set(vit_over) - {"dec_" + k for k in dec_over}
    if unknown:
        raise ValueError(f"unknown SKEL-CF override(s) {sorted(unknown)}; backbone fields "
                         f"{sorted(vit_fields)}, decoder fields dec_{{{','.join(sorted(dec_fields))}}}")
    vit_cfg = replace(VIT_CONFIGS[variant], **vit_over)
    dec_cfg = replace(DECODER_CONFIGS[variant], **dec_over)
    dec_cfg = replace(dec_cfg, dim=vit_cfg.embed_dim)
    return SkelCFNet(vit_cfg, dec_cfg)
