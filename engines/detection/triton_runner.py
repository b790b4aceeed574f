"""The YOLO-family detector on an NVIDIA Triton Inference Server (`detector.backend: triton`).

What travels: the letterboxed frame (1, 3, S, S) uint8 RGB (a quarter of the float32 bytes: the
served graph casts and scales it to [0, 1], see engines/detection/triton_repo.py); the raw output
(1, 4 + classes, anchors) float32 comes back and is decoded, class-filtered and NMS'd here by the
same code as a local run, so both give the same boxes. Transport, shared memory, start-up checks
and backoff: engines/backends/triton_client.py (the SKEL-CF backend's client).

A lost server costs detections, not the stream: a failed call returns no detections (the tracker
predicts its tracks), is counted in `errors`, and later calls fail fast until the backoff has
passed.
"""
from __future__ import annotations

import logging

import numpy as np

from engines.backends.triton_client import RemoteInferenceError, TensorSpec, TritonModelClient
from engines.detection.config import TritonDetectorConfig

log = logging.getLogger(__name__)
REPO_HINT = "write the model with python -m engines.detection.triton_repo --onnx <your detector>.onnx"


class TritonDetectorRunner:
    """Runner interface of engines.detection.runners: `input_hw`, `__call__(blob) -> output`,
    with `takes_uint8` (the detector then letterboxes to uint8)."""

    takes_uint8 = True

    def __init__(self, cfg: TritonDetectorConfig, size_px: int):
        self.size_px = size_px
        expected = f"images UINT8 [-1, 3, {size_px}, {size_px}] -> output0 FP32"
        self.remote = TritonModelClient(
            cfg, (TensorSpec("images", "UINT8", (3, size_px, size_px)),),
            (TensorSpec("output0", "FP32"),), 1, expected, REPO_HINT, fixed_batch_ok=True)
        self.name = self.remote.name
        self.errors = 0
        self._down = False

    def input_hw(self, default: int) -> tuple[int, int]:
        return self.size_px, self.size_px

    def __call__(self, blob: np.ndarray) -> np.ndarray | None:
        """(1, 3, S, S) uint8 -> the model's raw output; None when the server did not answer."""
        try:
            out = self.remote.submit([np.ascontiguousarray(blob, dtype=np.uint8)]).result()[0]
        except RemoteInferenceError as exc:
            self.errors += 1
            if not self._down:
                log.warning("%s; no detections until it answers (the tracker predicts)", exc)
            self._down = True
            return None
        if self._down:
            self._down = False
            log.warning("the detector on Triton at %s answers again", self.remote.cfg.url)
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        self.remote.close()
