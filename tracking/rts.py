"""Fixed-lag Rauch-Tung-Striebel smoothing over a short window, for recordings.

A causal filter must guess where a joint is going; with N frames of delay allowed, the backward
RTS pass uses those N future measurements too, so jitter drops further at no cost in lag (the
output is simply late by N frames). Works on the posteriors the causal `JointFilterBank` already
computed; its result is projected onto the joint-limit box again like the causal estimate.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from engines.skel.dofs import wrap_angle
from tracking.joint_filter import cv_process_noise, cv_transition, project_to_box


def rts_smooth(xs: np.ndarray, Ps: np.ndarray, dts: np.ndarray, q: np.ndarray,
               wrap: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Backward RTS pass over T posteriors of one track.

    xs (T, c, 2), Ps (T, c, 2, 2): filtered estimates; dts (T,) seconds, dts[k] = t_k - t_{k-1}
    (dts[0] unused); q (c,) process noise spectral density, or (T, c) with q[k] the one the
    step from k-1 to k moved under (the IMM's probability-weighted q). Returns smoothed (xs, Ps).
    """
    q = np.asarray(q, dtype=np.float64)
    T = xs.shape[0]
    x_s, P_s = xs.copy(), Ps.copy()
    for k in range(T - 2, -1, -1):
        F = cv_transition(dts[k + 1:k + 2])[0]                 # F_{k+1} (1, 2, 2)
        Q = cv_process_noise(dts[k + 1:k + 2], q if q.ndim == 1 else q[k + 1:k + 2])[0]  # Q_{k+1} (c, 2, 2)
        x_pred = (F @ xs[k][..., None])[..., 0]                # x_{k+1|k} = F x_k
        P_pred = F @ Ps[k] @ F.swapaxes(-1, -2) + Q            # P_{k+1|k} = F P_k F' + Q
        C = Ps[k] @ F.swapaxes(-1, -2) @ np.linalg.inv(P_pred)  # C = P_k F' P_{k+1|k}^-1 (2x2)
        dx = x_s[k + 1] - x_pred                               # smoothed minus predicted
        if wrap is not None:
            dx[..., 0] = np.where(wrap, wrap_angle(dx[..., 0]), dx[..., 0])
        x_s[k] = xs[k] + (C @ dx[..., None])[..., 0]           # x_s = x + C (x_s' - x_pred)
        P_s[k] = Ps[k] + C @ (P_s[k + 1] - P_pred) @ C.swapaxes(-1, -2)  # P_s = P + C (P_s' - P_pred) C'
        if wrap is not None:
            x_s[k, :, 0] = np.where(wrap, wrap_angle(x_s[k, :, 0]), x_s[k, :, 0])
    return x_s, P_s


class FixedLagHistory:
    """The last `lag + 1` posteriors (t, x, P, q) of one track, and the smoothed value at a past time."""

    def __init__(self, lag_frames: int):
        self.lag_frames = int(lag_frames)
        self.t_s: deque[float] = deque(maxlen=lag_frames + 1)
        self.x: deque[np.ndarray] = deque(maxlen=lag_frames + 1)
        self.P: deque[np.ndarray] = deque(maxlen=lag_frames + 1)
        self.q: deque[np.ndarray] = deque(maxlen=lag_frames + 1)

    def append(self, t_s: float, x: np.ndarray, P: np.ndarray, q: np.ndarray) -> None:
        """Store one posterior: x (c, 2), P (c, 2, 2) at t_s seconds, reached under process
        noise q (c,)."""
        if self.t_s and t_s <= self.t_s[-1]:
            # a restarted or duplicated timestamp: a new segment, the past no longer chains to it
            self.t_s.clear(), self.x.clear(), self.P.clear(), self.q.clear()
        self.t_s.append(t_s)
        self.x.append(x.copy())
        self.P.append(P.copy())
        self.q.append(np.array(q, dtype=np.float64))

    def smoothed_at(self, t_s: float, lower: np.ndarray, upper: np.ndarray,
                    wrap: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(angle (c,), rate (c,)) smoothed with every newer posterior; None if t_s is not held."""
        ts = np.fromiter(self.t_s, dtype=np.float64)
        hit = np.flatnonzero(ts == t_s)
        if hit.size == 0:
            return None
        k0 = int(hit[0])
        xs = np.stack(list(self.x)[k0:])
        Ps = np.stack(list(self.P)[k0:])
        qs = np.stack(list(self.q)[k0:])
        dts = np.diff(ts[k0:], prepend=ts[k0])
        x_s, _ = rts_smooth(xs, Ps, dts, qs, wrap)
        x0, _ = project_to_box(x_s[:1], lower, upper)
        return x0[0, :, 0], x0[0, :, 1]
