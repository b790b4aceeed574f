"""The One Euro filter (Casiez, Roussel, Vogel, CHI 2012): the real-time baseline we compare with.

An adaptive low-pass: the cutoff rises with the (filtered) speed, so slow motion is smoothed and
fast motion follows with little lag. Vectorized over channels, variable dt. It knows nothing about
joint limits, outliers or the circle, which is exactly what the benchmark shows.
"""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass with this cutoff over dt."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """One Euro over (c,) channels. min_cutoff_hz: cutoff at rest; beta: cutoff gain per unit
    speed (1/rad); d_cutoff_hz: cutoff of the speed estimate. Units of x: radians (any)."""

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.0, d_cutoff_hz: float = 1.0):
        if min_cutoff_hz <= 0.0 or d_cutoff_hz <= 0.0 or beta < 0.0:
            raise ValueError("OneEuroFilter: min_cutoff_hz and d_cutoff_hz must be > 0, beta >= 0")
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.d_cutoff_hz = float(d_cutoff_hz)
        self.x_hat: np.ndarray | None = None
        self.dx_hat: np.ndarray | None = None
        self.t_s: float | None = None

    def reset(self) -> None:
        self.x_hat = self.dx_hat = self.t_s = None

    def __call__(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Filter one sample x (c,) taken at t_s seconds; NaN channels hold their last value."""
        x = np.asarray(x, dtype=np.float64)
        if self.x_hat is None:
            self.x_hat = np.where(np.isfinite(x), x, 0.0)
            self.dx_hat = np.zeros_like(self.x_hat)
            self.t_s = t_s
            return self.x_hat.copy()
        dt = max(t_s - self.t_s, 1e-6)
        self.t_s = t_s
        seen = np.isfinite(x)
        x = np.where(seen, x, self.x_hat)
        dx = (x - self.x_hat) / dt
        self.dx_hat = self.dx_hat + _alpha(self.d_cutoff_hz, dt) * (dx - self.dx_hat)
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self.dx_hat)
        self.x_hat = self.x_hat + _alpha(cutoff, dt) * (x - self.x_hat)
        return self.x_hat.copy()
