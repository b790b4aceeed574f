"""PyTorch backend: CUDA FP16 with one CUDA graph per batch bucket, or CPU FP32.

Why CUDA graphs: at batch 1 a ViT-H forward launches ~600 kernels; replaying a captured graph
removes the per-launch CPU cost, which otherwise dominates batch-1 latency. A batch is padded up to
the next bucket (1, 2, 4, 8, 16, 32) so a handful of graphs cover every batch size; the padding rows
are wasted work, bounded by 2x, and cheaper than a graph per size.
"""
from __future__ import annotations

import torch
from torch import nn

from engines.backends.base import InferenceBackend, chunks
from stream.errors import DependencyError

BUCKETS = (1, 2, 4, 8, 16, 32)


def _split_forward(net: nn.Module):
    """(core, post): `core` is the capturable device part, `post` the rest, run eagerly in float32.

    For SkelCFNet the 6D -> Euler conversion is split off: it indexes with host index lists (not
    capturable in a CUDA graph) and atan2/asin of FP16 values would lose ~1e-3 rad."""
    if hasattr(net, "decoder") and hasattr(net, "forward_features"):
        from engines.skelcf.rotations import rep_to_q

        def core(crops, info):
            tokens = net.forward_features(crops)
            out = net.decoder(tokens.mean(1), tokens, info)
            return out["layers_poses_rep"][-1], out["layers_betas"][-1], out["layers_cam"][-1]

        def post(rep, betas, cam):
            return rep_to_q(rep.float()), betas.float(), cam.float()
        return core, post
    fn = getattr(net, "forward_export", None) or net.forward
    return fn, (lambda *outs: tuple(o.float() for o in outs))


class TorchBackend(InferenceBackend):
    """net: an nn.Module with forward_export(crops, bbox_info) -> (q, betas, cam).

    device 'cuda' runs FP16 weights/activations (outputs cast back to float32); 'cpu' runs FP32.
    cuda_graphs: capture per bucket on first use (CUDA only)."""

    def __init__(self, net: nn.Module, device: str = "cuda", fp16: bool = True,
                 cuda_graphs: bool = True, buckets: tuple[int, ...] = BUCKETS):
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise DependencyError("backend 'torch' on CUDA needs a CUDA build of PyTorch and a GPU; "
                                  "install torch with CUDA or set pose.skelcf.backend to 'onnxruntime'")
        on_gpu = self.device.type == "cuda"
        self.input_dtype = torch.float16 if (on_gpu and fp16) else torch.float32
        self.name = "torch-cuda" if on_gpu else "torch-cpu"
        self.net = net.eval().to(self.device, self.input_dtype)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self._fn, self._post = _split_forward(self.net)
        self.buckets = tuple(sorted(buckets))
        self.max_batch = self.buckets[-1]
        self.cuda_graphs = cuda_graphs and on_gpu
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, tuple]] = {}

    def _bucket(self, b: int) -> int:
        return next(k for k in self.buckets if k >= b)

    def _capture(self, k: int):
        crops = torch.zeros((k, 3, 256, 256), dtype=self.input_dtype, device=self.device)
        info = torch.zeros((k, 3), dtype=self.input_dtype, device=self.device)
        info[:, 2] = 0.5
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):  # warm up kernels/autotuning outside the capture
                self._fn(crops, info)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            outs = self._fn(crops, info)
        self._graphs[k] = (graph, crops, info, outs)
        return self._graphs[k]

    @torch.inference_mode()
    def _run(self, crops: torch.Tensor, info: torch.Tensor):
        b = crops.shape[0]
        if not self.cuda_graphs:
            return self._post(*self._fn(crops.to(self.device, self.input_dtype),
                                        info.to(self.device, self.input_dtype)))
        k = self._bucket(b)
        graph, s_crops, s_info, outs = self._graphs.get(k) or self._capture(k)
        s_crops[:b].copy_(crops)
        s_info[:b].copy_(info)
        if b < k:  # padding rows: a valid box so the decoder sees finite inputs
            s_info[b:, 2] = 0.5
        graph.replay()
        # post makes new tensors, so a later replay cannot overwrite what this call returned
        return self._post(*(o[:b].clone() for o in outs))

    def infer(self, crops, bbox_info):
        parts = [self._run(crops[s], bbox_info[s]) for s in chunks(crops.shape[0], self.max_batch)]
        if len(parts) == 1:
            return parts[0]
        return tuple(torch.cat([p[i] for p in parts]) for i in range(3))

    def close(self) -> None:
        self._graphs.clear()
        self.net = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
