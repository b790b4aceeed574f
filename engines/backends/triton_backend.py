"""SKEL-CF on an NVIDIA Triton Inference Server: one more `InferenceBackend`.

What travels: crops (B, 3, 256, 192) uint8 RGB (the central 192 columns the network reads; a
quarter of the bytes of float32 crops, normalised on the server) and bbox_info (B, 3) float32;
q (B, 46), betas (B, 10), cam (B, 3) float32 come back. All persons of a frame go in one request;
Triton's dynamic batcher merges requests of many cameras and hosts into one forward pass.

Transport (engines/backends/triton_client.py): gRPC (`tritonclient.grpc`), asynchronous (`submit`
returns a future, so the caller does the frame's host-side work while the crops are in flight);
with the server on this machine (`shared_memory: auto` on a loopback url) the tensors go through
registered system shared memory instead of the socket, or CUDA shared memory when the crops are
made on a GPU the server shares (`shared_memory: cuda`, or auto with `crops_on_gpu`).

Faults: unreachable at start, model missing, wrong inputs -> `EngineError` (one line naming url,
model and the expected shapes). Lost mid-run -> `RemoteInferenceError` per call, which the engine
turns into a predicted frame; calls then fail fast without touching the network until the backoff
(`retry_backoff_s`, doubling to `retry_backoff_max_s`) has passed, and the first call after it
checks the server again, re-registers shared memory (a restarted server forgot it) and goes on.
"""
from __future__ import annotations

from concurrent.futures import Future

import torch

from engines.backends.base import InferenceBackend
from engines.backends.malloc_tuning import keep_large_allocations_on_heap
from engines.backends.triton_client import (RemoteInferenceError, TensorSpec,  # noqa: F401 - re-exported
                                            TritonModelClient, is_loopback)
from engines.skelcf.config import TritonConfig

CROP_SHAPE = (3, 256, 192)
INPUTS = (TensorSpec("crops", "UINT8", CROP_SHAPE), TensorSpec("bbox_info", "FP32", (3,)))
OUTPUTS = (TensorSpec("q", "FP32", (46,)), TensorSpec("betas", "FP32", (10,)),
           TensorSpec("cam", "FP32", (3,)))
EXPECTED = "crops UINT8 [-1, 3, 256, 192] and bbox_info FP32 [-1, 3] -> q, betas, cam FP32"
REPO_HINT = "write the model with python -m engines.skelcf.triton_repo"
__all__ = ["TritonBackend", "RemoteInferenceError", "is_loopback"]


class TritonBackend(InferenceBackend):
    """SKEL-CF served by Triton at `cfg.url` as `cfg.model_name` (see engines.skelcf.triton_repo).

    input_dtype is uint8: CropPreprocessor then hands over un-normalised (B, 3, 256, 192) crops
    on `device` (the GPU when `cfg.crops_on_gpu` and CUDA shared memory carries them).
    Counters: `requests`, `errors`, `bytes_sent` (tensor bytes put on the wire or in shm)."""

    input_dtype = torch.uint8

    def __init__(self, cfg: TritonConfig):
        self.cfg = cfg
        self.max_batch = cfg.max_batch
        if cfg.tune_malloc:
            keep_large_allocations_on_heap()
        on_gpu = cfg.crops_on_gpu and torch.cuda.is_available()
        self.remote = TritonModelClient(cfg, INPUTS, OUTPUTS, cfg.max_batch, EXPECTED, REPO_HINT,
                                        data_on_gpu=on_gpu)
        self.client = self.remote.client
        self.use_shm = self.remote.memory != "none"
        self.name = self.remote.name
        # crops stay on the GPU only when CUDA shared memory takes them from there
        self.device = torch.device("cuda", cfg.cuda_device) if self.remote.memory == "cuda" \
            else torch.device("cpu")

    requests = property(lambda self: self.remote.requests)
    errors = property(lambda self: self.remote.errors)
    bytes_sent = property(lambda self: self.remote.bytes_sent)

    def check_server(self) -> None:
        self.remote.check_server()

    # -- inference ----------------------------------------------------------------------------------
    def submit(self, crops: torch.Tensor, bbox_info: torch.Tensor) -> Future:
        """Send one request (B <= max_batch); the future gives (q, betas, cam) torch tensors
        (float32; on the GPU with CUDA shared memory) or raises RemoteInferenceError. Fails
        fast while backing off after a failure."""
        if self.remote.memory == "cuda":
            arrays = [crops.to(self.device).contiguous(), bbox_info.to(self.device).float().contiguous()]
        else:
            arrays = [crops.cpu().numpy(), bbox_info.detach().float().cpu().numpy()]
        inner = self.remote.submit(arrays)
        fut: Future = Future()

        def relay(f: Future) -> None:
            exc = f.exception()
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(tuple(o if isinstance(o, torch.Tensor) else torch.from_numpy(o)
                                     for o in f.result()))
        inner.add_done_callback(relay)
        return fut

    def infer(self, crops, bbox_info):
        futs = [self.submit(crops[i:i + self.max_batch], bbox_info[i:i + self.max_batch])
                for i in range(0, crops.shape[0], self.max_batch)]
        parts = [f.result() for f in futs]
        return tuple(torch.cat([p[i] for p in parts]) for i in range(3))

    def warmup(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        for b in batch_sizes:
            self.infer(torch.zeros((b, *CROP_SHAPE), dtype=torch.uint8),
                       torch.tensor([[0.0, 0.0, 0.5]] * b))

    def execution_stats(self) -> dict[str, int]:
        """The server's cumulative counts for this model (see TritonModelClient.execution_stats)."""
        return self.remote.execution_stats()

    def close(self) -> None:
        self.remote.close()
