"""Shape (betas) and root motion filters, per track slot.

- betas are one body's constant shape: a confidence-weighted running mean with Huber-clipped
  residuals; its gain starts at 1/n (a plain mean: converges in a few frames) and never drops
  below dt / time_constant, so a bad first estimate washes out within about a second.
- root translation (metres, OpenCV camera frame: x right, y down, z forward) and its velocity:
  its own two-model (IMM) constant-velocity Kalman (3 unbounded channels, own process noise and
  gate, a larger R on depth, which one image measures worst), run as extra channels of the
  joints' vectorized bank.
- root orientation is q[0:3] (pelvis DoFs, filtered on the circle by the joint filter); the
  quaternion for output is derived from the filtered q by `root_orientation_wxyz`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

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
               confidence: np.ndarray) -> None:
        """Fold betas (n, 10) measured at t_s (n,) s with confidence (n,) in; read `mean`."""
        _betas_kernel(self.mean, self.weight, self.t_s, np.ascontiguousarray(slots, dtype=np.int64),
                      np.ascontiguousarray(t_s, dtype=np.float64),
                      np.ascontiguousarray(betas, dtype=np.float64),
                      np.ascontiguousarray(confidence, dtype=np.float64),
                      self.time_constant_s, self.huber)


@njit(cache=True)
def _betas_kernel(mean, weight, t_state, slots, t_s, betas, confidence, time_constant_s, huber):
    """The running robust mean, in place, per slot (compiled: a frame is a few tiny updates)."""
    for i in range(slots.size):
        k = slots[i]
        w, conf = weight[k], confidence[i]
        fresh = w <= 0.0
        if fresh:
            gain = 1.0                                   # the first estimate is taken as is
        else:                                            # 1/n-like, never slower than an EMA
            dt = max(t_s[i] - t_state[k], 0.0)
            gain = max(conf / (w + conf), min(dt / time_constant_s, 1.0))
        for j in range(betas.shape[1]):
            r = betas[i, j] - mean[k, j]                 # residual
            if not fresh:
                r = min(max(r, -huber), huber)           # Huber: bounded pull
            mean[k, j] += gain * r
        weight[k] = w + conf
        t_state[k] = t_s[i]


def translation_channels(cfg: SmoothingConfig) -> dict[str, np.ndarray]:
    """Per-channel parameters of the root translation's two-model Kalman (3 channels,
    metres, camera frame, no limits, no wrap), in `JointFilterBank`'s argument names. The stage
    appends them to the 46 DoF channels so one vectorized step filters both."""
    return {
        "q": np.full(3, cfg.trans_process_noise()),
        "meas_std": np.array([cfg.trans_meas_noise_m, cfg.trans_meas_noise_m, cfg.trans_depth_noise_m]),
        "lower": np.full(3, -np.inf), "upper": np.full(3, np.inf),
        "wrap": np.zeros(3, dtype=bool),
        "outlier_range": np.full(3, cfg.trans_outlier_range_m),
        "unseen_std": np.full(3, 100.0),  # no translation yet: the first one is taken as is
    }


def root_quaternions(q: np.ndarray) -> np.ndarray:
    """(n, 46) filtered q -> (n, 4) float32 pelvis quaternions (w, x, y, z), w >= 0, camera frame.

    Same result as `engines.skel.kinematics.root_orientation_wxyz` (tested), written as the
    product qz(q0) qx(q1) qy(q2) of the pelvis axes because building matrices and converting
    them back costs more than the whole filter step."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty((q.shape[0], 4), dtype=np.float32)
    _root_quaternions_kernel(q[:, :3], out)
    return out


@njit(cache=True)
def _root_quaternions_kernel(pelvis, out):
    for i in range(pelvis.shape[0]):
        a, b, c = 0.5 * pelvis[i, 0], 0.5 * pelvis[i, 1], 0.5 * pelvis[i, 2]
        ca, cb, cc = math.cos(a), math.cos(b), math.cos(c)
        sa, sb, sc = math.sin(a), math.sin(b), math.sin(c)
        w = ca * cb * cc - sa * sb * sc
        x = ca * sb * cc - sa * cb * sc
        y = ca * cb * sc + sa * sb * cc
        z = sa * cb * cc + ca * sb * sc
        sign = -1.0 if w < 0.0 else 1.0                  # w >= 0: one of the two equal quaternions
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = sign * w, sign * x, sign * y, sign * z
