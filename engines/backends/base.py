"""The one interface every SKEL-CF inference backend implements.

`infer(crops, bbox_info) -> (q, betas, cam)` takes and returns torch tensors that stay on the
backend's device, so preprocessing (also on that device) hands crops over without a host round trip.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class InferenceBackend(ABC):
    """A SKEL-CF network ready to run.

    name: 'torch-cuda', 'torch-cpu', 'onnxruntime-cpu', 'onnxruntime-cuda' or 'tensorrt'.
    device: where `infer` wants its inputs. input_dtype: dtype the crops should have.
    """
    name: str = "unknown"
    device: torch.device = torch.device("cpu")
    input_dtype: torch.dtype = torch.float32
    max_batch: int = 32

    @abstractmethod
    def infer(self, crops: torch.Tensor, bbox_info: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """crops (B, 3, 256, 256) RGB ImageNet-normalized, bbox_info (B, 3) float32 ->
        q (B, 46) float32 rad (SKEL order), betas (B, 10) float32, cam (B, 3) float32 (s, tx, ty).
        Any B >= 1: batches above `max_batch` are run in chunks."""

    def warmup(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Run once per batch size so the first real frame does not pay for allocation/capture."""
        for b in batch_sizes:
            crops = torch.zeros((b, 3, 256, 256), dtype=self.input_dtype, device=self.device)
            info = torch.zeros((b, 3), dtype=torch.float32, device=self.device)
            info[:, 2] = 0.5
            self.infer(crops, info)

    def close(self) -> None:
        """Release device memory and engines."""

    def __enter__(self) -> "InferenceBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def chunks(b: int, max_batch: int) -> list[slice]:
    """Slices covering 0..b in pieces of at most max_batch."""
    return [slice(i, min(i + max_batch, b)) for i in range(0, b, max_batch)]
