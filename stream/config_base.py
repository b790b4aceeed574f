"""Base for every config model: unknown keys and wrong types are errors, values are frozen."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TritonClientConfig(StrictModel):
    """A model on an NVIDIA Triton Inference Server, see docs/DEPLOYMENT.md: the settings every
    Triton client here shares (the SKEL-CF backend, the detector runner)."""
    url: str = "127.0.0.1:8001"          # gRPC host:port of tritonserver
    model_name: str = ""                 # set by each client's config
    model_version: str = ""              # "" = the server's policy (latest)
    connect_timeout_s: float = Field(10.0, gt=0.0)   # start-up checks (live, model ready, shapes)
    request_timeout_s: float = Field(2.0, gt=0.0)    # one inference; beyond it the frame degrades
    # 'auto' = CUDA shared memory when `url` is on this machine and the tensors are made on a GPU
    # (needs tritonclient[cuda]), system shared memory on any other loopback url, else the wire
    shared_memory: Literal["auto", "system", "cuda", "none"] = "auto"
    cuda_device: int = Field(0, ge=0)                # GPU of the CUDA shared-memory regions
    retry_backoff_s: float = Field(0.25, gt=0.0)     # first retry after a failure; doubles ...
    retry_backoff_max_s: float = Field(5.0, gt=0.0)  # ... up to this while the server is gone
