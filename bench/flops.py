"""Analytic FLOPs per crop of the SKEL-CF network (ViTPose backbone + coarse-to-fine decoder).

Used to compute the compute floor of GPU inference: floor_s = FLOPs / measured FP16 matmul rate.
FLOPs = 2 x multiply-adds of the matmuls/convs (elementwise ops, norms and softmax are listed
apart; they are < 1 % and bandwidth-bound). The analytic count is cross-checked against
torch.utils.flop_counter run on the meta device (no weights allocated, so vit_h is instant).

    .venv/bin/python bench/flops.py [--tflops 989]   # --tflops: matmul rate to turn FLOPs into a floor
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.skelcf.decoder import N_BBOX, N_BETAS, N_CAM, N_POSES_REP, DecoderConfig  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402
from engines.skelcf.vit import ViTConfig  # noqa: E402


def vit_macs(c: ViTConfig) -> dict[str, int]:
    """Multiply-adds of the backbone for one 256x192 crop."""
    n, d = c.num_tokens, c.embed_dim
    hidden = int(d * c.mlp_ratio)
    patch = n * d * c.in_chans * c.patch_size_px ** 2
    per_block = {
        "qkv": n * d * 3 * d,
        "attn (QK^T + AV)": 2 * n * n * d,
        "proj": n * d * d,
        "mlp": 2 * n * d * hidden,
    }
    out = {"patch_embed": patch}
    out.update({f"blocks.{k}": v * c.depth for k, v in per_block.items()})
    return out


def decoder_macs(c: DecoderConfig, n_ctx: int) -> dict[str, int]:
    """Multiply-adds of coarse heads + decoder for one crop (3 query tokens, n_ctx image tokens)."""
    t, d, inner = 3, c.dim, c.heads * c.dim_head
    head = d * c.head_hidden * 3 + c.head_hidden * (N_POSES_REP + N_BETAS + N_CAM)
    embed = d * (N_POSES_REP + N_BETAS + N_CAM + 3 * N_BBOX)
    per_layer = {
        "self_attn": t * d * 3 * inner + 2 * t * t * inner + t * inner * d,
        "cross_attn q/out": t * d * inner + t * inner * d,
        "cross_attn kv(context)": n_ctx * d * 2 * inner,
        "cross_attn QK^T + AV": 2 * t * n_ctx * inner,
        "feed_forward": 2 * t * d * c.mlp_dim,
        "heads + re-embed": head + embed,
    }
    out = {"coarse heads": head, "x_cls mean": 0}
    out.update({f"layers.{k}": v * c.depth for k, v in per_layer.items()})
    return out


def counted_flops(variant: str) -> int:
    """FLOPs torch's own counter sees for forward_export (batch 1, meta device)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = build_skelcf(variant).eval()
        crops, bbox = torch.empty(1, 3, 256, 256), torch.empty(1, 3)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net.forward_export(crops, bbox)
    return int(fc.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tflops", type=float, default=None, help="FP16 matmul rate (TFLOP/s) for the floor column")
    ap.add_argument("--detail", action="store_true", help="per-part breakdown")
    args = ap.parse_args()
    rows = []
    for variant in ("vit_h", "vit_b", "tiny"):
        with torch.device("meta"):
            net = build_skelcf(variant)
        vb = vit_macs(net.vit_cfg)
        dm = decoder_macs(net.dec_cfg, net.vit_cfg.num_tokens)
        bb, dec = 2 * sum(vb.values()), 2 * sum(dm.values())
        params = sum(p.numel() for p in net.parameters())
        rows.append((variant, params, bb, dec, counted_flops(variant)))
        if args.detail:
            print(f"\n{variant}:")
            for k, v in {**vb, **dm}.items():
                print(f"  {k:30s} {2 * v / 1e9:10.4f} GFLOP")
    hdr = f"{'variant':8s} {'params (M)':>11s} {'backbone GFLOP':>15s} {'decoder GFLOP':>14s} {'total GFLOP':>12s} {'torch counter':>14s}"
    if args.tflops:
        hdr += f" {'floor us/crop':>14s} {'floor crops/s':>14s}"
    print(hdr)
    for variant, params, bb, dec, counted in rows:
        line = f"{variant:8s} {params / 1e6:11.1f} {bb / 1e9:15.3f} {dec / 1e9:14.3f} {(bb + dec) / 1e9:12.3f} {counted / 1e9:14.3f}"
        if args.tflops:
            floor = (bb + dec) / (args.tflops * 1e12)
            line += f" {floor * 1e6:14.1f} {1 / floor:14.0f}"
        print(line)
    print("FLOPs per crop = 2 x multiply-adds of matmuls/convs; 'torch counter' = torch.utils.flop_counter on forward_export.")


if __name__ == "__main__":
    main()
