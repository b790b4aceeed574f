"""One model on an NVIDIA Triton Inference Server, as every remote network here uses it.

Shared by the SKEL-CF backend (`triton_backend.py`) and the detector runner
(`engines/detection/triton_runner.py`): start-up checks that name url, model and the expected
inputs; one asynchronous gRPC request per call (`submit` returns a future); the tensors through
registered shared memory when the server shares the machine (system, POSIX) or the GPU (CUDA,
`tritonclient.utils.cuda_shared_memory`), else on the wire; fail-fast backoff while the server is
gone and re-registration of the regions when it returns (a restarted server forgot them).

Memory kinds (`shared_memory` in the config):
- 'system': a POSIX region per request slot holding the inputs then the outputs;
- 'cuda': the inputs and the outputs each in a cudaMalloc'd region exported by CUDA IPC; inputs
  already on the GPU (torch CUDA tensors) are copied device-to-device, outputs come back as
  torch CUDA tensors (DLPack views, cloned) with no host round trip;
- 'auto': 'cuda' when the url is on this machine, the caller's tensors live on a GPU and
  tritonclient's CUDA utilities import (they need the cuda-python package); 'system' on any
  other loopback url; the wire otherwise.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.errors import EngineError, PipelineError, require

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")
NP_DTYPES = {"UINT8": np.uint8, "FP32": np.float32, "FP16": np.float16, "INT32": np.int32,
             "INT64": np.int64}


class RemoteInferenceError(PipelineError):
    """One inference did not come back (server gone, timeout, restart); the caller degrades
    (a predicted frame, no detections) instead of stopping."""


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: Triton datatype and the shape of one batch item (no batch axis);
    an output's shape may be None (read from the server's metadata at start-up)."""
    name: str
    datatype: str = "FP32"
    shape: tuple[int, ...] | None = None

    def item_bytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(NP_DTYPES[self.datatype]).itemsize


def is_loopback(url: str) -> bool:
    return url.rsplit(":", 1)[0] in _LOOPBACK


def first_line(exc: BaseException) -> str:
    msg = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return " ".join(str(msg).split())[:200]


def cuda_shm_module():
    """tritonclient's CUDA shared-memory utilities, or None where they cannot run (no
    cuda-python package, no CUDA device)."""
    try:
        import torch
        if not torch.cuda.is_available():
            return None
        import tritonclient.utils.cuda_shared_memory as cudashm
    except (ImportError, RuntimeError):  # the module raises RuntimeError without cuda-python
        return None
    return cudashm


def choose_memory(setting: str, url: str, data_on_gpu: bool) -> str:
    """'system', 'cuda' or 'none' for a config's `shared_memory` ('auto' decides here)."""
    if setting != "auto":
        return setting
    if not is_loopback(url):
        return "none"
    if data_on_gpu and cuda_shm_module() is not None:
        return "cuda"
    return "system"


class _SystemSlot:
    """One POSIX shared-memory region (stdlib `SharedMemory`, key '/<name>') registered with
    Triton, holding one request's inputs then its outputs; numpy views write and read it."""

    def __init__(self, client, in_bytes: int, out_bytes: int):
        from multiprocessing.shared_memory import SharedMemory

        self.in_bytes, self.out_bytes = in_bytes, out_bytes
        self.mem = SharedMemory(name=f"skelstream_{os.getpid()}_{uuid.uuid4().hex[:10]}",
                                create=True, size=in_bytes + out_bytes)
        self.name = self.out_name = self.mem.name
        self.out_base = in_bytes  # outputs follow the inputs in the one region
        self.register(client)

    def register(self, client) -> None:
        client.register_system_shared_memory(self.name, f"/{self.name}", self.mem.size)

    def write(self, arrays: list[np.ndarray]) -> list[int]:
        """Copy the inputs in, one after the other; returns their offsets."""
        offsets, off = [], 0
        for a in arrays:
            np.ndarray(a.shape, a.dtype, buffer=self.mem.buf, offset=off)[...] = _host(a)
            offsets.append(off)
            off += a.nbytes
        return offsets

    def read(self, offset: int, shape: tuple[int, ...], dtype) -> np.ndarray:
        return np.ndarray(shape, dtype=dtype, buffer=self.mem.buf, offset=self.out_base + offset).copy()

    def unregister(self, client) -> None:
        client.unregister_system_shared_memory(self.name)

    def free(self) -> None:
        self.mem.close()
        self.mem.unlink()


class _CudaSlot:
    """Two CUDA IPC regions on `device_id` (inputs, outputs) registered with Triton. Calls, as in
    tritonclient.utils.cuda_shared_memory (2.46 and upstream main): create_shared_memory_region
    (cudaMalloc + cudaIpcGetMemHandle), get_raw_handle, set_shared_memory_region(_from_dlpack)
    (consecutive from offset 0), as_shared_memory_tensor (a DLPack view at offset 0),
    destroy_shared_memory_region; the server side: register/unregister_cuda_shared_memory."""

    def __init__(self, client, in_bytes: int, out_bytes: int, device_id: int):
        self.cudashm = cuda_shm_module()
        if self.cudashm is None:
            raise EngineError("shared_memory 'cuda' needs a CUDA device and tritonclient's CUDA "
                              "utilities: pip install 'tritonclient[grpc,cuda]' (cuda-python)")
        self.in_bytes, self.out_bytes, self.device_id = in_bytes, out_bytes, device_id
        tag = f"skelstream_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        self.name, self.out_name = f"{tag}_in", f"{tag}_out"
        self.out_base = 0  # outputs have their own region
        self.h_in = self.cudashm.create_shared_memory_region(self.name, in_bytes, device_id)
        self.h_out = self.cudashm.create_shared_memory_region(self.out_name, out_bytes, device_id)
        self.register(client)

    def register(self, client) -> None:
        for name, h, size in ((self.name, self.h_in, self.in_bytes),
                              (self.out_name, self.h_out, self.out_bytes)):
            client.register_cuda_shared_memory(name, self.cudashm.get_raw_handle(h),
                                               self.device_id, size)

    def write(self, arrays: list[Any]) -> list[int]:
        if all(isinstance(a, np.ndarray) for a in arrays):
            self.cudashm.set_shared_memory_region(self.h_in, arrays)
        else:  # torch tensors (on the GPU: copied device to device)
            self.cudashm.set_shared_memory_region_from_dlpack(self.h_in, [a.contiguous() for a in arrays])
        offsets, off = [], 0
        for a in arrays:
            offsets.append(off)
            off += _nbytes(a)
        return offsets

    def read(self, offset: int, shape: tuple[int, ...], dtype):
        """A torch CUDA tensor (cloned: the region is reused by the next request)."""
        import torch
        item = np.dtype(dtype).itemsize
        dt = {np.float32: "FP32", np.float16: "FP16"}[np.dtype(dtype).type]
        flat = torch.from_dlpack(self.cudashm.as_shared_memory_tensor(
            self.h_out, dt, [self.out_bytes // item]))
        start = offset // item
        return flat[start:start + int(np.prod(shape))].reshape(shape).clone()

    def unregister(self, client) -> None:
        client.unregister_cuda_shared_memory(self.name)
        client.unregister_cuda_shared_memory(self.out_name)

    def free(self) -> None:
        for h in (self.h_in, self.h_out):
            self.cudashm.destroy_shared_memory_region(h)


def _host(a) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.detach().cpu().numpy()


def _nbytes(a) -> int:
    return a.nbytes if isinstance(a, np.ndarray) else a.numel() * a.element_size()


class TritonModelClient:
    """`cfg.model_name` on the Triton server at `cfg.url` (any config with url, model_name,
    model_version, connect/request timeouts, shared_memory, retry backoffs, cuda_device).

    inputs/outputs: TensorSpec of each tensor; `expected` and `hint` go into the start-up errors.
    fixed_batch_ok: also accept a model without batching whose tensors have a fixed first axis
    of 1 (max_batch_size 0, a detector exported for batch 1); the requests then hold one item.
    Counters: `requests`, `errors`, `bytes_sent` (input tensor bytes, on the wire or in shm)."""

    def __init__(self, cfg, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                 max_batch: int, expected: str, hint: str, data_on_gpu: bool = False,
                 fixed_batch_ok: bool = False):
        self.fixed_batch_ok = fixed_batch_ok
        grpc = require("tritonclient.grpc", "triton", "a Triton backend")
        self.cfg, self.inputs, self.outputs = cfg, tuple(inputs), tuple(outputs)
        self.max_batch, self.expected, self.hint = max_batch, expected, hint
        self._grpc = grpc
        self.client = grpc.InferenceServerClient(cfg.url)
        self.memory = choose_memory(cfg.shared_memory, cfg.url, data_on_gpu)
        self.requests = self.errors = self.bytes_sent = 0
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._recheck = False
        self._lock = threading.Lock()
        self._free: list = []
        self._slots: list = []
        self.check_server()

    # -- start-up checks --------------------------------------------------------------------------
    def check_server(self) -> None:
        """Live server, ready model, the inputs this client sends; else one EngineError line."""
        cfg, t = self.cfg, self.cfg.connect_timeout_s
        try:
            self.client.is_server_live(client_timeout=t)
        except Exception as exc:  # noqa: BLE001 - InferenceServerException or grpc errors
            raise EngineError(f"Triton at {cfg.url} is unreachable ({first_line(exc)}); start "
                              f"tritonserver there or fix the url in the config") from None
        try:
            ready = self.client.is_model_ready(cfg.model_name, cfg.model_version, client_timeout=t)
        except Exception:  # noqa: BLE001
            ready = False
        if not ready:
            raise EngineError(f"model '{cfg.model_name}' is not ready on Triton at {cfg.url} "
                              f"(models there: {self._model_names()}); it must take "
                              f"{self.expected}: {self.hint}") from None
        meta = self.client.get_model_metadata(cfg.model_name, cfg.model_version, as_json=True,
                                              client_timeout=t)
        got = {i["name"]: (i["datatype"], [int(d) for d in i["shape"]]) for i in meta["inputs"]}
        batch_dims = (-1, 1) if self.fixed_batch_ok else (-1,)
        for spec in self.inputs:
            dtype, shape = got.get(spec.name, ("", []))
            if dtype != spec.datatype or (shape or [None])[0] not in batch_dims \
                    or shape[1:] != list(spec.shape):
                seen = ", ".join(f"{k} {v[0]} {v[1]}" for k, v in got.items())
                raise EngineError(f"model '{cfg.model_name}' on Triton at {cfg.url} takes {seen}; "
                                  f"expected {self.expected}: {self.hint}")
        out_meta = {o["name"]: [int(d) for d in o["shape"]][1:] for o in meta["outputs"]}
        specs = []
        for spec in self.outputs:
            if spec.name not in out_meta:
                raise EngineError(f"model '{cfg.model_name}' on Triton at {cfg.url} has outputs "
                                  f"{sorted(out_meta)}; expected {self.expected}: {self.hint}")
            specs.append(spec if spec.shape is not None else TensorSpec(
                spec.name, spec.datatype, tuple(out_meta[spec.name])))
        self.outputs = tuple(specs)
        if self.memory != "none" and any(d < 0 for s in self.outputs for d in s.shape):
            self.memory = "none"  # an output of unknown size cannot be given a region
        if self.memory != "none":
            self._register_shm()

    @property
    def name(self) -> str:
        return {"system": "triton-shm", "cuda": "triton-cudashm"}.get(self.memory, "triton-grpc")

    def _model_names(self) -> str:
        try:
            idx = self.client.get_model_repository_index(as_json=True)
            return ", ".join(sorted(m["name"] for m in idx.get("models", []))) or "none"
        except Exception:  # noqa: BLE001
            return "unknown"

    def _new_slot(self):
        in_bytes = self.max_batch * sum(s.item_bytes() for s in self.inputs)
        out_bytes = self.max_batch * sum(s.item_bytes() for s in self.outputs)
        if self.memory == "cuda":
            return _CudaSlot(self.client, in_bytes, out_bytes, getattr(self.cfg, "cuda_device", 0))
        return _SystemSlot(self.client, in_bytes, out_bytes)

    def _register_shm(self) -> None:
        with self._lock:
            if not self._slots:
                self._slots = [self._new_slot() for _ in range(2)]
                self._free = list(self._slots)
            else:
                for s in self._slots:
                    s.register(self.client)

    def _recheck_shm(self) -> None:
        self.client.is_server_live(client_timeout=self.cfg.connect_timeout_s)
        for s in self._slots:
            try:
                s.unregister(self.client)
            except Exception:  # noqa: BLE001 - a restarted server does not know it
                pass
        self._register_shm()

    # -- inference ----------------------------------------------------------------------------------
    def submit(self, arrays: list) -> Future:
        """One request: `arrays` in the order of `inputs` (numpy, or torch tensors; batch <=
        max_batch). The future gives the outputs in the order of `outputs` (numpy; torch CUDA
        tensors with CUDA shared memory) or raises RemoteInferenceError. Fails fast while
        backing off after a failure."""
        fut: Future = Future()
        now = time.monotonic()
        if now < self._retry_at:
            fut.set_exception(RemoteInferenceError(
                f"Triton at {self.cfg.url} failed; retrying in {self._retry_at - now:.1f} s"))
            return fut
        try:
            if self._recheck:  # the server may be a new process: check it, re-register shm
                self.check_server() if self.memory == "none" else self._recheck_shm()
                self._recheck = False
            self._send(arrays, fut)
        except Exception as exc:  # noqa: BLE001 - anything on the way out is a failed request
            self._failed(fut, exc)
        return fut

    def _send(self, arrays: list, fut: Future) -> None:
        g, b = self._grpc, int(arrays[0].shape[0])
        for a, spec in zip(arrays, self.inputs):
            if tuple(a.shape[1:]) != spec.shape:
                raise EngineError(f"input {spec.name} must be (B, {', '.join(map(str, spec.shape))}), "
                                  f"got {tuple(a.shape)}")
        inputs = [g.InferInput(s.name, [b, *s.shape], s.datatype) for s in self.inputs]
        outputs = [g.InferRequestedOutput(s.name) for s in self.outputs]
        slot = None
        if self.memory != "none":
            with self._lock:
                slot = self._free.pop() if self._free else None
        if slot is not None:
            for inp, off, a in zip(inputs, slot.write(arrays), arrays):
                inp.set_shared_memory(slot.name, _nbytes(a), off)
            off = 0
            for o, s in zip(outputs, self.outputs):
                o.set_shared_memory(slot.out_name, b * s.item_bytes(), slot.out_base + off)
                off += self.max_batch * s.item_bytes()
        else:
            for inp, a, s in zip(inputs, arrays, self.inputs):
                inp.set_data_from_numpy(np.ascontiguousarray(_host(a), dtype=NP_DTYPES[s.datatype]))
        self.bytes_sent += sum(_nbytes(a) for a in arrays)
        self.requests += 1

        def done(result, error) -> None:
            try:
                if error is not None:
                    raise RemoteInferenceError(f"Triton at {self.cfg.url}: {first_line(error)}")
                if slot is not None:
                    outs, off = [], 0
                    for s in self.outputs:
                        outs.append(slot.read(off, (b, *s.shape), NP_DTYPES[s.datatype]))
                        off += self.max_batch * s.item_bytes()
                else:
                    outs = [result.as_numpy(s.name).copy() for s in self.outputs]
                self._backoff_s = 0.0
                fut.set_result(outs)
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
                f"Triton at {self.cfg.url}: {first_line(exc)}")
            fut.set_exception(err)

    def execution_stats(self) -> dict[str, int]:
        """The server's cumulative counts for this model: requests, executions (dynamic batching
        merged requests when executions < requests), inferences (batch items), and ns spent
        queued and computing (input copy + model + output copy) over all requests."""
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
            try:
                s.unregister(self.client)
            except Exception:  # noqa: BLE001 - the server may be gone; the region is ours to free
                pass
            s.free()
        self._slots, self._free = [], []
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass
