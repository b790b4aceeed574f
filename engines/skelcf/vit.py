"""ViTPose backbone as SKEL-CF uses it: 256x192 crop -> 192 patch tokens.

Module and parameter names follow the official checkpoint (`backbone.*` keys of
`state_dict_manifest.tsv`) so `load_state_dict(strict=True)` works on the real weights.
Details that change the numbers (see ../shared/skelcf/FACTS.md): patch conv padding 2, the single
stored position row 0 is added to every token (no CLS token), LayerNorm eps 1e-6, exact GELU.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    """Backbone sizes. `img_hw_px` is the (already column-sliced) input, 256x192 in SKEL-CF."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size_px: int = 16
    patch_padding_px: int = 2
    img_hw_px: tuple[int, int] = (256, 192)
    in_chans: int = 3
    qkv_bias: bool = True
    layernorm_eps: float = 1e-6

    @property
    def tokens_hw(self) -> tuple[int, int]:
        """Patch grid (rows, cols): conv output size with the official padding."""
        p, pad = self.patch_size_px, self.patch_padding_px
        return tuple((s + 2 * pad - p) // p + 1 for s in self.img_hw_px)  # type: ignore[return-value]

    @property
    def num_tokens(self) -> int:
        h, w = self.tokens_hw
        return h * w


VIT_CONFIGS: dict[str, ViTConfig] = {
    "vit_h": ViTConfig(embed_dim=1280, depth=32, num_heads=16),
    "vit_b": ViTConfig(embed_dim=768, depth=12, num_heads=12),
    "tiny": ViTConfig(embed_dim=128, depth=2, num_heads=4),
}


class PatchEmbed(nn.Module):
    """Conv patchify; padding 2 makes 256x192 -> 16x12 (the last 4 px rows/cols never reach a patch)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size_px,
                              stride=cfg.patch_size_px, padding=cfg.patch_padding_px)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


class Attention(nn.Module):
    """Multi-head self-attention through SDPA (flash/memory-efficient kernels on GPU, exports to ONNX)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # scale = head_dim ** -0.5
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf GELU, as the official timm-style Mlp
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (drop-path is training-only and omitted)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=cfg.layernorm_eps)
        self.attn = Attention(d, cfg.num_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(d, eps=cfg.layernorm_eps)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """ViTPose backbone. Input (B,3,256,192) float normalized RGB -> (B,192,D) tokens after last_norm."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        # 193 rows as in the checkpoint; row 0 was the CLS position and is added to every token.
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens + 1, cfg.embed_dim))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.last_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layernorm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens plus position: the input of block 0, (B, N, D)."""
        return self.patch_embed(x) + self.pos_embed[:, 1:] + self.pos_embed[:, :1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,256,192) -> (B,192,D) float tokens, row-major over the 16x12 patch grid."""
        x = self.embed(x)
        for blk in self.blocks:
            x = blk(x)
        return self.last_norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def build_vit(variant: str | ViTConfig) -> ViT:
    """Backbone for a registry name ('vit_h', 'vit_b', 'tiny') or an explicit config."""
    if isinstance(variant, ViTConfig):
        return ViT(variant)
    if variant not in VIT_CONFIGS:
        raise ValueError(f"unknown ViT variant '{variant}'; use one of {sorted(VIT_CONFIGS)}")
    return ViT(VIT_CONFIGS[variant])
