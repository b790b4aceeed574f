"""Triton Python-backend model: the detector's uint8 ONNX (engines/detection/triton_repo.py) run
by onnxruntime on the CPU, for a server without the ONNX Runtime / TensorRT backends (the
nvidia-pytriton tritonserver the tests start). `triton_repo --backends python` copies this file to
`<repo>/yolo_py/1/model.py` beside `model.onnx`.

config.pbtxt parameters (string values): `code_path` (os.pathsep-separated folders prepended to
sys.path: the site-packages holding onnxruntime and torch, since the stub's interpreter is not a
venv's), `threads` (onnxruntime intra-op threads). Requests merged by the dynamic batcher are
concatenated into one run and split again.
"""
from __future__ import annotations

import json
import os
import sys

try:  # only inside Triton's stub
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - imported for reading/copying outside Triton
    pb_utils = None


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        for p in reversed([p for p in params.get("code_path", "").split(os.pathsep) if p]):
            if p not in sys.path:
                sys.path.insert(0, p)
        import onnxruntime as ort
        import torch

        self.torch = torch
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("threads", "1") or 1)
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        # tensors cross the stub by DLPack (through torch), not numpy: the stub's numpy bridge is
        # built for numpy 1 and hands numpy 2 empty buffers
        torch = self.torch
        from torch.utils.dlpack import from_dlpack, to_dlpack

        images = [from_dlpack(pb_utils.get_input_tensor_by_name(r, "images").to_dlpack()) for r in requests]
        sizes = [int(i.shape[0]) for i in images]
        batch = images[0] if len(images) == 1 else torch.cat(images)
        out = torch.from_numpy(self.session.run(["output0"], {"images": batch.numpy()})[0])
        responses, start = [], 0
        for n in sizes:
            part = out[start:start + n].contiguous()
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor.from_dlpack("output0", to_dlpack(part))]))
            start += n
        return responses

    def finalize(self) -> None:
        self.session = None
