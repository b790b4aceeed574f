"""GPU check of the SKEL-CF modules: golden parity on CUDA (FP32, SDPA CUDA kernels), FP16 vs FP32
drift of vit_h with random weights, FLNet golden on CUDA. Prints one line per check; exits 1 on failure.

    SKELSTREAM_SHARED=<dir holding skelcf/golden> python3 bench/skelcf_model_gpu_check.py
Needs only torch, numpy, opencv (no pydantic), so it runs with a GPU machine's stock python3.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.skelcf.checkpoint import load_flnet, load_skelcf  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402

GOLDEN = Path(os.environ.get("SKELSTREAM_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "skelcf" / "golden"


def main() -> int:
    dev = torch.device("cuda")
    print("device", torch.cuda.get_device_name(0), "torch", torch.__version__)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ok = True
    net = build_skelcf("tiny")
    load_skelcf(net, GOLDEN / "skelcf_small.pth")
    net = net.eval().to(dev)
    io = np.load(GOLDEN / "skelcf_small_io.npz")
    with torch.no_grad():
        out = net(torch.from_numpy(io["crops"]).to(dev), torch.from_numpy(io["bbox_info"]).to(dev))
    pairs = {"backbone_tokens": "tokens", "pd_enc_poses": "q_enc", "pd_dec_poses": "q", "pd_dec_betas": "betas",
             "pd_dec_cam": "cam"}
    worst = max(float(np.abs(out[v].cpu().numpy() - io[k]).max()) for k, v in pairs.items())
    ok &= worst <= 1e-5
    print(f"golden small on CUDA fp32: max |diff| {worst:.2e} (atol 1e-5) {'OK' if worst <= 1e-5 else 'FAIL'}")

    fl = load_flnet(GOLDEN / "flnet_small.pth").to(dev)
    fio = np.load(GOLDEN / "flnet_small_io.npz")
    with torch.no_grad():
        o = fl(torch.from_numpy(fio["image_letterboxed"]).to(dev)).cpu().numpy()
    err = float(np.abs(o - fio["out"]).max())
    ok &= err <= 1e-4
    print(f"golden FLNet on CUDA fp32: max |diff| {err:.2e} {'OK' if err <= 1e-4 else 'FAIL'}")

    torch.manual_seed(0)
    big = build_skelcf("vit_h").eval().to(dev)
    g = torch.Generator(device=dev).manual_seed(1)
    crops = torch.randn(8, 3, 256, 256, device=dev, generator=g)
    info = torch.tensor([[0.05, -0.02, 0.4]], device=dev).repeat(8, 1)
    with torch.no_grad():
        q32, b32, c32 = big.forward_export(crops, info)
        q16, b16, c16 = big.half().forward_export(crops.half(), info.half())
    dq = float((q16.float() - q32).abs().max())
    finite = bool(torch.isfinite(q16).all() and torch.isfinite(c16).all())
    ok &= finite
    print(f"vit_h random weights fp16 vs fp32, batch 8: max |dq| {dq:.2e} rad, max |dcam| "
          f"{float((c16.float() - c32).abs().max()):.2e}, finite {finite}")
    print("ALL OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
