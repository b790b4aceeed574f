"""Settings of the SKEL-CF engine (owner: skelcf)."""
from __future__ import annotations

from typing import Literal

from stream.config_base import StrictModel


class SkelCFConfig(StrictModel):
    checkpoint: str | None = None  # path to the official best.pth
    variant: Literal["vit_h", "vit_b", "tiny"] = "vit_h"
    backend: Literal["auto", "tensorrt", "torch", "onnxruntime"] = "auto"
