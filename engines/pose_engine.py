"""The interface every pose engine implements (landmark fitting on CPU, SKEL-CF on GPU).

An engine fills the pose fields of each `Person` in place, so the smoothing stage and the sinks
never care which engine ran.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from stream.packet import Intrinsics, Person


class PoseEngine(ABC):
    model_id: str = "unknown"

    @abstractmethod
    def estimate(self, image_bgr: np.ndarray, persons: list[Person], intrinsics: Intrinsics,
                 stream_id: str) -> dict[str, int]:
        """Fill q, betas, trans_m, pose_confidence, dof_observed, model_id (and fit_residual) of
        every person, using `person.crop_box_xyxy` (fallback `box_xyxy`) on the (H, W, 3) uint8 BGR
        frame. All persons of a frame go through as one batch where the engine can batch.
        Returns sub-step timings in ns (e.g. {'preprocess': ..., 'infer': ...})."""

    def forget(self, stream_id: str, track_id: int) -> None:
        """Drop per-person state (warm starts, segment lengths) of a removed track."""

    def close(self) -> None:
        """Release models and device memory."""


def default_intrinsics(width: int, height: int, vfov_deg: float = 60.0) -> Intrinsics:
    """A pinhole guess for a webcam when nothing better is known (60 deg vertical FOV)."""
    f = 0.5 * height / np.tan(np.deg2rad(vfov_deg) / 2.0)
    return Intrinsics(fx=float(f), fy=float(f), cx=width / 2.0, cy=height / 2.0, source="default")
