"""ONNX Runtime backend: CPU, or the CUDA execution provider when the installed onnxruntime has it.

On CUDA the torch device tensors are bound directly (IOBinding) so crops never visit the host.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engines.backends.base import InferenceBackend, chunks
from stream.errors import DependencyError, EngineError, require

OUTPUTS = ("q", "betas", "cam")
OUT_DIMS = (46, 10, 3)


def ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


class OrtBackend(InferenceBackend):
    """onnx_path: the graph from engines.skelcf.export (inputs crops/bbox_info, FP32).
    device 'cpu' or 'cuda'; threads: intra-op threads on CPU (0 = onnxruntime's default)."""

    def __init__(self, onnx_path: str | Path, device: str = "cpu", threads: int = 0,
                 max_batch: int = 32):
        ort = require("onnxruntime", "onnx", "the onnxruntime backend")
        if not Path(onnx_path).is_file():
            raise EngineError(f"ONNX model {onnx_path} does not exist; export it with "
                              f"python -m engines.skelcf.export --out {onnx_path}")
        self.device = torch.device(device)
        on_gpu = self.device.type == "cuda"
        if on_gpu and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DependencyError("backend 'onnxruntime' on CUDA needs onnxruntime-gpu; "
                                  "install it with: pip install onnxruntime-gpu")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # idle worker threads spinning after each run steal the cores the other pipeline stages
        # (and a torch backend in the same process) need
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if on_gpu else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise EngineError(f"onnxruntime cannot load {onnx_path} ({str(exc).splitlines()[0]}); "
                              f"re-export it with python -m engines.skelcf.export") from None
        self.name = "onnxruntime-cuda" if on_gpu else "onnxruntime-cpu"
        self.input_dtype = torch.float32
        self.max_batch = max_batch

    def _run_cpu(self, crops: torch.Tensor, info: torch.Tensor):
        feeds = {"crops": np.ascontiguousarray(crops.detach().float().cpu().numpy()),
                 "bbox_info": np.ascontiguousarray(info.detach().float().cpu().numpy())}
        return [torch.from_numpy(o) for o in self.session.run(list(OUTPUTS), feeds)]

    def _run_cuda(self, crops: torch.Tensor, info: torch.Tensor):
        crops = crops.float().contiguous()
        info = info.float().contiguous()
        b = crops.shape[0]
        outs = [torch.empty((b, d), dtype=torch.float32, device=self.device) for d in OUT_DIMS]
        io = self.session.io_binding()
        dev_id = self.device.index or 0
        for name, t in (("crops", crops), ("bbox_info", info)):
            io.bind_input(name, "cuda", dev_id, np.float32, tuple(t.shape), t.data_ptr())
        for name, t in zip(OUTPUTS, outs):
            io.bind_output(name, "cuda", dev_id, np.float32, tuple(t.shape), t.data_ptr())
        torch.cuda.current_stream().synchronize()  # ORT runs on its own stream
        self.session.run_with_iobinding(io)
        io.synchronize_outputs()  # ORT finished writing the torch buffers before they are read
        return outs

    def infer(self, crops, bbox_info):
        run = self._run_cuda if self.device.type == "cuda" else self._run_cpu
        parts = [run(crops[s], bbox_info[s]) for s in chunks(crops.shape[0], self.max_batch)]
        return tuple(torch.cat([p[i] for p in parts]) for i in range(3))

    def close(self) -> None:
        self.session = None
