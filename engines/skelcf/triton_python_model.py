"""Triton Python-backend model: SKEL-CF in PyTorch, uint8 crops normalised on the server.

`engines.skelcf.triton_repo --python-backend` copies this file to `<repo>/<model>/1/model.py`.
It runs where no TensorRT/ONNX backend does (a CPU-only server, the nvidia-pytriton tritonserver in
the tests) and is the reference the ONNX models of the same repository must agree with.

config.pbtxt parameters (string values): `checkpoint` (best.pth or a state dict), `variant`
(vit_h / vit_b / tiny), `code_path` (os.pathsep-separated folders prepended to sys.path: this
checkout and the site-packages holding torch, since the stub's interpreter is not a venv's),
`threads` (torch intra-op threads, 0 = torch's default), `device` ('cpu' or 'cuda'), `fp16`
('1' = half-precision weights on CUDA, as the local torch backend runs there).

Inputs per request: crops (B, 3, 256, 192) UINT8 RGB (the central 192 columns of the 256 square
crop: all the network reads), bbox_info (B, 3) FP32. Outputs: q (B, 46) rad, betas (B, 10),
cam (B, 3). With dynamic batching Triton hands several requests to one `execute`: they are
concatenated into one forward pass and split again.
"""
from __future__ import annotations

import json
import os
import sys

try:  # only inside Triton's stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - imported for reading/copying outside Triton
    pb_utils = None

OUTPUTS = ("q", "betas", "cam")


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        for p in reversed([p for p in params.get("code_path", "").split(os.pathsep) if p]):
            if p not in sys.path:
                sys.path.insert(0, p)
        import torch

        from engines.skelcf.checkpoint import load_skelcf
        from engines.skelcf.model import build_skelcf
        from engines.skelcf.preprocess import UInt8Input

        threads = int(params.get("threads", "0") or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(params.get("device", "cpu") or "cpu")
        net = build_skelcf(params.get("variant", "vit_h"))
        load_skelcf(net, params["checkpoint"])
        fp16 = params.get("fp16", "0") == "1" and self.device.type == "cuda"
        self.model = UInt8Input(net.to(self.device), fp16=fp16).eval()

    def execute(self, requests):
        # tensors cross the stub by DLPack, not numpy: the stub's numpy bridge is built for
        # numpy 1 and hands numpy 2 empty buffers
        torch = self.torch
        from torch.utils.dlpack import from_dlpack, to_dlpack

        crops, infos, sizes = [], [], []
        for r in requests:
            c = from_dlpack(pb_utils.get_input_tensor_by_name(r, "crops").to_dlpack())
            crops.append(c)
            infos.append(from_dlpack(pb_utils.get_input_tensor_by_name(r, "bbox_info").to_dlpack()))
            sizes.append(c.shape[0])
        with torch.inference_mode():  # one request (no batch merged): no concatenating copy
            c, i = (crops[0], infos[0]) if len(crops) == 1 else (torch.cat(crops), torch.cat(infos))
            outs = self.model(c.to(self.device), i.to(self.device))
        outs = [o.float().contiguous() for o in outs]
        responses, start = [], 0
        for n in sizes:
            tensors = [pb_utils.Tensor.from_dlpack(name, to_dlpack(o[start:start + n].contiguous()))
                       for name, o in zip(OUTPUTS, outs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses

    def finalize(self) -> None:
        self.model = None
