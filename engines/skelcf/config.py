"""Settings of the SKEL-CF engine (owner: skelcf)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from stream.config_base import StrictModel, TritonClientConfig


class TritonConfig(TritonClientConfig):
    """SKEL-CF on Triton (`backend: triton`). Crops travel as uint8 (normalised on the server),
    all persons of a frame in one request."""
    model_name: str = "skelcf_trt"       # triton_repo names: skelcf_trt, skelcf_onnx, skelcf_py
    max_batch: int = Field(32, ge=1, le=1024)        # persons per request (the model's max_batch_size)
    # cut the crops on the GPU and hand them to the server there (CUDA shared memory, client and
    # server on one GPU); false: crops on the CPU
    crops_on_gpu: bool = False
    # keep this process's per-frame crop buffers on glibc's heap instead of fresh mmaps (page
    # faults every frame: +2-3 ms per request in half the runs; engines/backends/malloc_tuning.py)
    tune_malloc: bool = True


class SkelCFConfig(StrictModel):
    checkpoint: str | None = None  # path to the official best.pth
    variant: Literal["vit_h", "vit_b", "tiny"] = "vit_h"
    backend: Literal["auto", "tensorrt", "torch", "onnxruntime", "triton"] = "auto"
    triton: TritonConfig = TritonConfig()  # used by backend 'triton' only
    # The official best.pth pickles its training cfg as an OmegaConf object, which torch's safe
    # loader (weights_only=True) refuses. true = full unpickling (runs code from the file: only
    # for files from a source you trust; needs the omegaconf package).
    allow_unsafe_checkpoint: bool = False
    # Separate FLNet weights (official cam_model_cleaned.ckpt, ['state_dict']); None = take
    # cam_model.* from `checkpoint` when present.
    flnet_checkpoint: str | None = None
    # 'auto' = CUDA when PyTorch sees a GPU, else CPU
    device: Literal["auto", "cuda", "cpu"] = "auto"
    # ONNX exports and TensorRT engines/timing caches (keyed by model hash, TensorRT, GPU, precision)
    cache_dir: str = ".cache/skelcf"
    # FLNet re-estimates the focal length of a stream this often (a fixed camera's focal does not
    # change; a zooming one does); SkelCFEngine.refresh_focal() forces it at the next frame
    flnet_refresh_s: float = Field(300.0, gt=0.0)
