"""Shape (betas) and root motion filters, per track slot.

- betas are one body's constant shape: a confidence-weighted running mean with Huber-clipped
  residuals; its gain starts at 1/n (a plain mean: converges in a few frames) and never drops
  below dt / time_constant, so a bad first estimate washes out within about a second.
- root translation (metres, OpenCV camera frame: x right, y down, z forward) and its velocity:
  its own constant-velocity Kalman (3 unbounded channels, own process noise and gate, a larger R
  on depth, which one image measures worst), run as extra channels of the joints' vectorized bank.
- root orientation is q[0:3] (pelvis DoFs, filtered on the circle by the joint filter); the
  quaternion for output is derived from the filtered q by `root_orientation_wxyz`.
"""
from __future__ import annotations

import numpy as np

from engines.skel.dofs import NUM_BETAS
from tracking.smoothing_config import SmoothingConfig


class BetasBank:
    """Running robust mean of betas per slot: mean (capacity, 10), weight (capacity,)."""

    def __init__(self, time_constant_s: float, huber: float, capacity: int = 16):
        self.time_constant_s = float(time_constant_s)
        self.huber = float(huber)
        self.mean = np.zeros((capacity, NUM_BETAS))
        self.weight = np.zeros(capacity)      # accumulated confidence; 0 = no estimate yet
        self.t_s = np.zeros(capacity)

    def grow(self, capacity: int) -> None:
        extra = capacity - self.mean.shape[0]
        if extra > 0:
            self.mean = np.concatenate([self.mean, np.zeros((extra, NUM_BETAS))])
            self.weight = np.concatenate([self.weight, np.zeros(extra)])
            self.t_s = np.concatenate([self.t_s, np.zeros(extra)])

    def reset(self, slots: np.ndarray) -> None:
        self.weight[slots] = 0.0

    def update(self, slots: np.ndarray, t_s: np.ndarray, betas: np.ndarray,
               confidence: np.ndarray) -> np.ndarray:
        """Fold betas (n, 10) measured at t_s (n,) s with confidence (n,) in; returns (n, 10)."""
        w = self.weight[slots]
        fresh = w <= 0.0
        dt = np.maximum(t_s - self.t_s[slots], 0.0)
        gain = np.maximum(confidence / (w + confidence), np.minimum(dt / self.time_constant_s, 1.0))
        gain = np.where(fresh, 1.0, gain)[:, None]
        r = betas - self.mean[slots]                     # residual
        r = np.where(fresh[:, None], r, np.clip(r, -self.huber, self.huber))  # Huber: bounded pull
        self.mean[slots] = self.mean[slots] + gain * r
        self.weight[slots] = w + confidence
        self.t_s[slots] = t_s
        return self.mean[slots]


def translation_channels(cfg: SmoothingConfig) -> dict[str, np.ndarray]:
    """Per-channel parameters of the root translation's constant-velocity Kalman (3 channels,
    metres, camera frame, no limits, no wrap), in `JointFilterBank`'s argument names. The stage
    appends them to the 46 DoF channels so one vectorized step filters both."""
    return {
        "q": np.full(3, cfg.trans_process_noise()),
        "meas_std": np.array([cfg.trans_meas_noise_m, cfg.trans_meas_noise_m, cfg.trans_depth_noise_m]),
        "lower": np.full(3, -np.inf), "upper": np.full(3, np.inf),
        "wrap": np.zeros(3, dtype=bool),
        "gate_sigma": np.full(3, cfg.trans_gate_sigma),
        "unseen_std": np.full(3, 100.0),  # no translation yet: the first one is taken as is
    }


def root_quaternions(q: np.ndarray) -> np.ndarray:
    """(n, 46) filtered q -> (n, 4) float32 pelvis quaternions (w, x, y, z), w >= 0, camera frame.

    Same result as `engines.skel.kinematics.root_orientation_wxyz` (tested), written as the
    product qz(q0) qx(q1) qy(q2) of the pelvis axes because building matrices and converting
    them back costs more than the whole filter step."""
    h = 0.5 * np.asarray(q[..., :3], dtype=np.float64)
    c, s = np.cos(h), np.sin(h)
    ca, cb, cc = c[..., 0], c[..., 1], c[..., 2]
    sa, sb, sc = s[..., 0], s[..., 1], s[..., 2]
    wxyz = np.stack([ca * cb * cc - sa * sb * sc,
                     ca * sb * cc - sa * cb * sc,
                     ca * cb * sc + sa * sb * cc,
                     sa * cb * cc + ca * sb * sc], axis=-1)
    wxyz *= np.where(wxyz[..., :1] < 0.0, -1.0, 1.0)
    return wxyz.astype(np.float32)
