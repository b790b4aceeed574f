"""SKEL-CF on an NVIDIA Triton Inference Server: one more `InferenceBackend`.

What travels: crops (B, 3, 256, 192) uint8 RGB (the central 192 columns the network reads; a
quarter of the bytes of float32 crops, normalised on the server) and bbox_info (B, 3) float32;
q (B, 46), betas (B, 10), cam (B, 3) float32 come back. All persons of a frame go in one request;
Triton's dynamic batcher merges requests of many cameras and hosts into one forward pass.

Transport: gRPC (`tritonclient.grpc`), asynchronous (`submit` returns a future, so the caller
does the frame's host-side work while the crops are in flight); with the server on this machine
(`shared_memory: auto` on a loopback url) the tensors go through registered system shared memory
instead of the socket.

Faults: unreachable at start, model missing, wrong inputs -> `EngineError` (one line naming url,
model and the expected shapes). Lost mid-run -> `RemoteInferenceError` per call, which the engine
turns into a predicted frame; calls then fail fast without touching the network until the backoff
(`retry_backoff_s`, doubling to `retry_backoff_max_s`) has passed, and the first call after it
checks the server again, re-registers shared memory (a restarted server forgot it) and goes on.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import Future

import numpy as np
import torch

from engines.backends.base import InferenceBackend
from engines.skelcf.config import TritonConfig
from stream.errors import EngineError, PipelineError, require

CROP_SHAPE = (3, 256, 192)
INPUTS = (("crops", "UINT8", CROP_SHAPE), ("bbox_info", "FP32", (3,)))
OUTPUTS = (("q", 46), ("betas", 10), ("cam", 3))
EXPECTED = "crops UINT8 [-1, 3, 256, 192] and bbox_info FP32 [-1, 3] -> q, betas, cam FP32"
REPO_HINT = "write the model with python -m engines.skelcf.triton_repo"
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


class RemoteInferenceError(PipelineError):
    """One inference did not come back (server gone, timeout, restart); the frame is predicted."""


def is_loopback(url: str) -> bool:
    host = url.rsplit(":", 1)[0]
    return host in _LOOPBACK


class _ShmSlot:
    """One POSIX shared-memory region (stdlib `SharedMemory`, key '/<name>') registered with
    Triton, holding one request's inputs then its outputs; numpy views write and read it."""

    def __init__(self, client, max_batch: int):
        from multiprocessing.shared_memory import SharedMemory

        self.max_batch = max_batch
        self.in_bytes = max_batch * (int(np.prod(CROP_SHAPE)) + 3 * 4)
        self.out_bytes = max_batch * sum(n for _, n in OUTPUTS) * 4
        self.mem = SharedMemory(name=f"skelstream_{os.getpid()}_{uuid.uuid4().hex[:10]}",
                                create=True, size=self.in_bytes + self.out_bytes)
        self.name = self.mem.name
        self.register(client)

    def register(self, client) -> None:
        client.register_system_shared_memory(self.name, f"/{self.name}", self.mem.size)

    def view(self, offset: int, shape: tuple[int, ...], dtype) -> np.ndarray:
        return np.ndarray(shape, dtype=dtype, buffer=self.mem.buf, offset=offset)

    def close(self, client) -> None:
        try:
            client.unregister_system_shared_memory(self.name)
        except Exception:  # noqa: BLE001 - the server may be gone; the region is ours to free
            pass
        self.mem.close()
        self.mem.unlink()


class TritonBackend(InferenceBackend):
    """SKEL-CF served by Triton at `cfg.url` as `cfg.model_name` (see engines.skelcf.triton_repo).

    input_dtype is uint8: CropPreprocessor then hands over un-normalised (B, 3, 256, 192) crops.
    Counters: `requests`, `errors`, `bytes_sent` (tensor bytes put on the wire or in shm)."""

    input_dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, cfg: TritonConfig):
        grpc = require("tritonclient.grpc", "triton", "the triton backend")
        self.cfg = cfg
        self.max_batch = cfg.max_batch
        self._grpc = grpc
        self.client = grpc.InferenceServerClient(cfg.url)
        self.use_shm = cfg.shared_memory == "system" or (
            cfg.shared_memory == "auto" and is_loopback(cfg.url))
        self.name = "triton-shm" if self.use_shm else "triton-grpc"
        self.requests = self.errors = self.bytes_sent = 0
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._recheck = False
        self._lock = threading.Lock()
        self._free: list[_ShmSlot] = []
        self._slots: list[_ShmSlot] = []
        self.check_server()

    # -- start-up checks --------------------------------------------------------------------------
    def check_server(self) -> None:
        """Live server, ready model, the inputs this backend sends; else one EngineError line."""
        cfg, t = self.cfg, self.cfg.connect_timeout_s
        try:
            self.client.is_server_live(client_timeout=t)
        except Exception as exc:  # noqa: BLE001 - InferenceServerException or grpc errors
            raise EngineError(f"Triton at {cfg.url} is unreachable ({_first_line(exc)}); start "
                              f"tritonserver there or fix pose.skelcf.triton.url") from None
        try:
            ready = self.client.is_model_ready(cfg.model_name, cfg.model_version, client_timeout=t)
        except Exception as exc:  # noqa: BLE001
            ready, _ = False, exc
        if not ready:
            raise EngineError(f"model '{cfg.model_name}' is not ready on Triton at {cfg.url} "
                              f"(models there: {self._model_names()}); it must take {EXPECTED}: "
                              f"{REPO_HINT}") from None
        meta = self.client.get_model_metadata(cfg.model_name, cfg.model_version, as_json=True,
                                              client_timeout=t)
        got = {i["name"]: (i["datatype"], [int(d) for d in i["shape"]]) for i in meta["inputs"]}
        for name, dtype, shape in INPUTS:
            want = (dtype, [-1, *shape])
            if got.get(name) != want:
                seen = ", ".join(f"{k} {v[0]} {v[1]}" for k, v in got.items())
                raise EngineError(f"model '{cfg.model_name}' on Triton at {cfg.url} takes {seen}; "
                                  f"expected {EXPECTED}: {REPO_HINT}")
        if self.use_shm:
            self._register_shm()

    def _model_names(self) -> str:
        try:
            idx = self.client.get_model_repository_index(as_json=True)
            return ", ".join(sorted(m["name"] for m in idx.get("models", []))) or "none"
        except Exception:  # noqa: BLE001
            return "unknown"

    def _register_shm(self) -> None:
        with self._lock:
            if not self._slots:
                self._slots = [_ShmSlot(self.client, self.max_batch) for _ in range(2)]
                self._free = list(self._slots)
            else:
                for s in self._slots:
                    s.register(self.client)

    # -- inference ----------------------------------------------------------------------------------
    def submit(self, crops: torch.Tensor, bbox_info: torch.Tensor) -> Future:
        """Send one request (B <= max_batch); the future gives (q, betas, cam) torch tensors or
        raises RemoteInferenceError. Fails fast while backing off after a failure."""
        fut: Future = Future()
        now = time.monotonic()
        if now < self._retry_at:
            fut.set_exception(RemoteInferenceError(
                f"Triton at {self.cfg.url} failed; retrying in {self._retry_at - now:.1f} s"))
            return fut
        try:
            if self._recheck:  # the server may be a new process: check it, re-register shm
                self.check_server() if not self.use_shm else self._recheck_shm()
                self._recheck = False
            self._send(np.ascontiguousarray(crops.cpu().numpy()),
                       np.ascontiguousarray(bbox_info.detach().float().cpu().numpy()), fut)
        except Exception as exc:  # noqa: BLE001 - anything on the way out is a failed request
            self._failed(fut, exc)
        return fut

    def _recheck_shm(self) -> None:
        self.client.is_server_live(client_timeout=self.cfg.connect_timeout_s)
        for s in self._slots:
            try:
                self.client.unregister_system_shared_memory(s.name)
            except Exception:  # noqa: BLE001 - a restarted server does not know it
                pass
        self._register_shm()

    def _send(self, crops: np.ndarray, info: np.ndarray, fut: Future) -> None:
        g, b = self._grpc, crops.shape[0]
        if crops.dtype != np.uint8 or crops.shape[1:] != CROP_SHAPE:
            raise EngineError(f"the triton backend takes uint8 crops (B, 3, 256, 192), got "
                              f"{crops.dtype} {crops.shape}")
        inputs = [g.InferInput("crops", list(crops.shape), "UINT8"),
                  g.InferInput("bbox_info", list(info.shape), "FP32")]
        outputs = [g.InferRequestedOutput(n) for n, _ in OUTPUTS]
        slot = None
        if self.use_shm:
            with self._lock:
                slot = self._free.pop() if self._free else None
        if slot is not None:
            slot.view(0, crops.shape, np.uint8)[...] = crops
            slot.view(crops.nbytes, info.shape, np.float32)[...] = info
            inputs[0].set_shared_memory(slot.name, crops.nbytes, 0)
            inputs[1].set_shared_memory(slot.name, info.nbytes, crops.nbytes)
            off = slot.in_bytes
            for o, (_, n) in zip(outputs, OUTPUTS):
                o.set_shared_memory(slot.name, b * n * 4, off)
                off += self.max_batch * n * 4
        else:
            inputs[0].set_data_from_numpy(crops)
            inputs[1].set_data_from_numpy(info)
        self.bytes_sent += crops.nbytes + info.nbytes
        self.requests += 1

        def done(result, error) -> None:
            try:
                if error is not None:
                    raise RemoteInferenceError(f"Triton at {self.cfg.url}: {_first_line(error)}")
                if slot is not None:
                    outs, off = [], slot.in_bytes
                    for _, n in OUTPUTS:
                        outs.append(torch.from_numpy(slot.view(off, (b, n), np.float32).copy()))
                        off += self.max_batch * n * 4
                else:
                    outs = [torch.from_numpy(result.as_numpy(n).copy()) for n, _ in OUTPUTS]
                self._backoff_s = 0.0
                fut.set_result(tuple(outs))
            except Exception as exc:  # noqa: BLE001
                self._failed(fut, exc)
            finally:
                if slot is not None:
                    with self._lock:
                        self._free.append(slot)

        self.client.async_infer(self.cfg.model_name, inputs, done, self.cfg.model_version,
                                outputs=outputs, client_timeout=self.cfg.request_timeout_s)

    def _failed(self, fut: Future, exc: BaseException) -> None:
        """Count, back off (doubling), and flag a re-check of the server for the next try."""
        self.errors += 1
        self._backoff_s = min(max(self._backoff_s * 2, self.cfg.retry_backoff_s),
                              self.cfg.retry_backoff_max_s)
        self._retry_at = time.monotonic() + self._backoff_s
        self._recheck = True
        if not fut.done():
            err = exc if isinstance(exc, RemoteInferenceError) else RemoteInferenceError(
                f"Triton at {self.cfg.url}: {_first_line(exc)}")
            fut.set_exception(err)

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
        """The server's cumulative counts for this model: requests, executions (dynamic batching
        merged requests when executions < requests), inferences (persons), and ns spent queued
        and computing (input copy + model + output copy) over all requests."""
        st = self.client.get_inference_statistics(self.cfg.model_name, self.cfg.model_version,
                                                  as_json=True)["model_stats"][0]
        inf = st.get("inference_stats", {})

        def ns(key: str) -> int:
            return int(inf.get(key, {}).get("ns", 0))
        return {"requests": int(inf.get("success", {}).get("count", 0)),
                "executions": int(st.get("execution_count", 0)),
                "inferences": int(st.get("inference_count", 0)),
                "queue_ns": ns("queue"),
                "compute_ns": ns("compute_input") + ns("compute_infer") + ns("compute_output")}

    def close(self) -> None:
        for s in self._slots:
            s.close(self.client)
        self._slots, self._free = [], []
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass


def _first_line(exc: BaseException) -> str:
    msg = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return " ".join(str(msg).split())[:200]
