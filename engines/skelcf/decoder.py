"""SKEL-CF coarse heads and coarse-to-fine decoder (names match the official `decoder.*` keys).

Flow (../shared/skelcf/FACTS.md): x_cls = mean of the image tokens -> three head MLPs give the coarse
(encoder) pose/betas/cam around the mean-init buffers. Then, per decoder layer, three tokens are
embedded from the current parameters plus bbox_info, pass self-attention, cross-attention to the
image tokens and a feed-forward, and the SAME heads add a residual update read from the tokens.
The hidden token state is not carried between layers: tokens are re-embedded every time.
Decoder LayerNorms use torch's default eps 1e-5 (the ViT uses 1e-6); GELU is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.skelcf.rotations import q_to_rep

N_POSES_REP = 144
N_BETAS = 10
N_CAM = 3
N_BBOX = 3

# SKEL_mean.npz (official mean init): 46 Euler DoFs (rad, SKEL order) and 10 betas.
MEAN_Q = (
    3.1415927410125732, 0.0, 0.0, 0.25820183753967285, -0.007054016925394535,
    -0.08758170157670975, 0.47313252091407776, 0.17969553172588348, -0.08887676894664764,
    0.16858740150928497, 0.21810555458068848, -0.042616523802280426, -0.025765277445316315,
    0.4004657566547394, 0.22350327670574188, -0.12816691398620605, 0.09740804880857468,
    0.007973157800734043, -0.1757056713104248, 0.012776459567248821, -0.005013397429138422,
    -0.013977035880088806, -0.025100665166974068, 0.03342827782034874, -0.07045484334230423,
    0.011786816641688347, 0.1171078085899353, 0.22040417790412903, -0.15290412306785583,
    0.81089186668396, -0.15045548975467682, 0.32635506987571716, 0.8769254088401794,
    0.002891787327826023, 0.009305845946073532, -0.13572657108306885, -0.07222773134708405,
    -0.20905406773090363, -0.20103240013122559, -0.7916855812072754, 0.08471839129924774,
    0.3903517723083496, 0.9035889506340027, -0.023677995428442955, -0.029802601784467697,
    -0.18856768310070038,
)
MEAN_BETAS = (
    0.07217557728290558, 0.49867695569992065, 0.40301209688186646, -0.009203381836414337,
    0.2598448693752289, -0.651563823223114, 0.3039904236793518, -0.5180162191390991,
    0.477567195892334, 0.2177228182554245,
)
MEAN_CAM = (0.9, 0.0, 0.0)  # (s, tx, ty)


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder sizes. `dim` equals the backbone width (tokens live in the context space)."""

    dim: int
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    mlp_dim: int = 1024
    head_hidden: int = 256
    layernorm_eps: float = 1e-5


DECODER_CONFIGS: dict[str, DecoderConfig] = {
    "vit_h": DecoderConfig(dim=1280),
    "vit_b": DecoderConfig(dim=768),
    "tiny": DecoderConfig(dim=128, depth=2, heads=4, dim_head=32, mlp_dim=256),
}


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, _ = x.shape
    return x.reshape(b, n, heads, -1).transpose(1, 2)  # (B, H, N, Dh)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        inner = cfg.heads * cfg.dim_head
        self.heads = cfg.heads
        self.to_qkv = nn.Linear(cfg.dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, cfg.dim))  # index 0 as in the checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        return self.to_out(_merge_heads(F.scaled_dot_product_attention(q, k, v)))


class CrossAttention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        inner = cfg.heads * cfg.dim_head
        self.heads = cfg.heads
        self.to_kv = nn.Linear(cfg.dim, inner * 2, bias=False)
        self.to_q = nn.Linear(cfg.dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, cfg.dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k, v = (_split_heads(t, self.heads) for t in self.to_kv(context).chunk(2, dim=-1))
        q = _split_heads(self.to_q(x), self.heads)
        return self.to_out(_merge_heads(F.scaled_dot_product_attention(q, k, v)))


class FeedForward(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        # Linear, GELU, Dropout, Linear: indices 0 and 3 carry weights, as in the checkpoint.
        self.net = nn.Sequential(nn.Linear(cfg.dim, cfg.mlp_dim), nn.GELU(), nn.Identity(),
                                 nn.Linear(cfg.mlp_dim, cfg.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PreNorm(nn.Module):
    """LayerNorm on the token stream only (the cross-attention context is not normalized)."""

    def __init__(self, cfg: DecoderConfig, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.layernorm_eps)
        self.fn = fn

    def forward(self, x: torch.Tensor, *context: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x), *context)


class TransformerCrossAttn(nn.Module):
    """`depth` layers of [self-attn, cross-attn, feed-forward], each pre-norm with a residual."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(cfg, SelfAttention(cfg)), PreNorm(cfg, CrossAttention(cfg)),
                           PreNorm(cfg, FeedForward(cfg))])
            for _ in range(cfg.depth))

    def layer(self, i: int, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        sa, ca, ff = self.layers[i]
        x = x + sa(x)
        x = x + ca(x, context)
        return x + ff(x)


def _head(dim: int, hidden: int, n: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, n))


class SkelCFDecoder(nn.Module):
    """Coarse heads + coarse-to-fine decoder.

    forward(x_cls (B,D), tokens (B,N,D), bbox_info (B,3)) -> dict of float tensors:
    'poses_rep_enc' (B,144), 'betas_enc' (B,10), 'cam_enc' (B,3) coarse; 'layers_poses_rep',
    'layers_betas', 'layers_cam': lists over the decoder layers (the last one is the prediction).
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        mean_poses = q_to_rep(torch.tensor(MEAN_Q, dtype=torch.float64)[None]).float()
        self.register_buffer("mean_poses", mean_poses)
        self.register_buffer("mean_betas", torch.tensor(MEAN_BETAS, dtype=torch.float32)[None])
        self.register_buffer("mean_cam", torch.tensor(MEAN_CAM, dtype=torch.float32)[None])
        self.transformer = TransformerCrossAttn(cfg)
        self.cam_decoder = _head(d, cfg.head_hidden, N_CAM)
        self.betas_decoder = _head(d, cfg.head_hidden, N_BETAS)
        self.poses_decoder = _head(d, cfg.head_hidden, N_POSES_REP)
        self.to_pose_embedding = nn.Linear(N_POSES_REP + N_BBOX, d)
        self.to_betas_embedding = nn.Linear(N_BETAS + N_BBOX, d)
        self.to_cam_embedding = nn.Linear(N_CAM + N_BBOX, d)

    def embed_tokens(self, poses: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor,
                     bbox_info: torch.Tensor) -> torch.Tensor:
        """Current parameters + bbox cue -> (B, 3, D) tokens [pose, betas, cam]."""
        return torch.stack((self.to_pose_embedding(torch.cat((poses, bbox_info), -1)),
                            self.to_betas_embedding(torch.cat((betas, bbox_info), -1)),
                            self.to_cam_embedding(torch.cat((cam, bbox_info), -1))), dim=1)

    def forward(self, x_cls: torch.Tensor, tokens: torch.Tensor,
                bbox_info: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        poses = self.poses_decoder(x_cls) + self.mean_poses
        betas = self.betas_decoder(x_cls) + self.mean_betas
        cam = self.cam_decoder(x_cls) + self.mean_cam
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {
            "poses_rep_enc": poses, "betas_enc": betas, "cam_enc": cam}
        lp, lb, lc = [], [], []
        x = self.embed_tokens(poses, betas, cam, bbox_info) + self.transformer.pos_embedding
        for i in range(self.cfg.depth):
            if i > 0:
                x = self.embed_tokens(poses, betas, cam, bbox_info)
            x = self.transformer.layer(i, x, tokens)
            poses = poses + self.poses_decoder(x[:, 0])
            betas = betas + self.betas_decoder(x[:, 1])
            cam = cam + self.cam_decoder(x[:, 2])
            lp.append(poses)
            lb.append(betas)
            lc.append(cam)
        out.update(layers_poses_rep=lp, layers_betas=lb, layers_cam=lc)
        return out
