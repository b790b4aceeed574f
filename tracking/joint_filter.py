"""Joint-limit-aware constant-velocity Kalman filter over (tracks, channels), vectorized.

Every channel (one SKEL DoF, or one axis of the root translation) is an independent
constant-velocity model with state x = [angle, angular velocity] and a scalar measurement
H = [1, 0]. Independence makes P block-diagonal with 2x2 blocks, so a filter over 46 DoFs is
46 filterpy `KalmanFilter(dim_x=2, dim_z=1)`s run side by side; the arrays carry them all at
once: x (n, c, 2), P (n, c, 2, 2). The textbook names (x, P, F, Q, R, H, K, S, y) are kept so
the code reads against filterpy; tests check x, P against filterpy on random data.

Transition and process noise depend on the real interval dt (seconds) between frames:
F = [[1, dt], [0, 1]], Q = q * [[dt^3/3, dt^2/2], [dt^2/2, dt]] (continuous white-noise
acceleration with spectral density q, filterpy's `Q_continuous_white_noise(2, dt, q)`).

Joint limits (engines/skel/dofs.py): after each step the estimate is projected onto the box
and the velocity component pointing out of the box is zeroed (a constrained update that cannot
overshoot or oscillate at a limit); measurements far outside the box get a larger R; the
per-DoF `limit_active` flag says where the projection acted. Unbounded DoFs (pelvis) wrap:
innovations are taken on the circle and the angle is kept in [-pi, pi).

Robustness, in `JointFilterBank.step`: a Mahalanobis gate (y^2 / S > gate^2: the measurement is
skipped, at most `gate_max_frames` times in a row), a Huber weight below the gate (R grows with
the distance, so one bad value pulls less), R = sigma^2 / confidence^2, no update where a DoF is
unobserved, velocity decay where nothing was measured (joints stop; a coasting CV model would
fly off), and Q scaled by a running normalized innovation squared (>= 1): a DoF that starts a
fast move gets a responsive model within a few frames while one at rest stays smooth.
"""
from __future__ import annotations

import numpy as np

from engines.skel.dofs import wrap_angle

_V0_STD = 2.0  # rad/s (or m/s): prior std of the velocity of a freshly started track
_NIS_CAP = 100.0  # one wild innovation must not boost Q without bound


# --- the filter equations (stateless: arrays in, arrays out) ---------------------------------

def cv_transition(dt: np.ndarray) -> np.ndarray:
    """(n,) seconds -> F (n, 1, 2, 2): x_k = F x_{k-1} for a constant-velocity model."""
    dt = np.asarray(dt, dtype=np.float64)
    F = np.zeros(dt.shape + (1, 2, 2))
    F[..., 0, 0, 0] = 1.0
    F[..., 0, 0, 1] = dt
    F[..., 0, 1, 1] = 1.0
    return F


def cv_process_noise(dt: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(n,) seconds, (c,) or (n, c) spectral density -> Q (n, c, 2, 2), continuous white-noise
    acceleration integrated over dt (exact for any dt, so coasting steps compose)."""
    dt = np.asarray(dt, dtype=np.float64)[:, None]
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), (dt.shape[0], np.shape(q)[-1]))
    Q = np.empty(q.shape + (2, 2))
    Q[..., 0, 0] = q * dt ** 3 / 3.0
    Q[..., 0, 1] = q * dt ** 2 / 2.0
    Q[..., 1, 0] = Q[..., 0, 1]
    Q[..., 1, 1] = q * dt
    return Q


def predict(x: np.ndarray, P: np.ndarray, dt: np.ndarray, q: np.ndarray, inplace: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Kalman predict. x (n, c, 2), P (n, c, 2, 2), dt (n,) s, q (c,) or (n, c).

    F P F' is written out for the 2x2 blocks: batched 2x2 matmuls cost more than the algebra.
    inplace=True overwrites x and P (the bank passes its own gathered copies)."""
    if not inplace:
        x, P = x.copy(), P.copy()
    dt = np.asarray(dt, dtype=np.float64)[:, None]   # F = [[1, dt], [0, 1]]
    x[..., 0] += dt * x[..., 1]                      # x = F x
    qdt = q * dt                                     # Q = q [[dt^3/3, dt^2/2], [dt^2/2, dt]]
    p01, p11 = P[..., 0, 1], P[..., 1, 1]
    P[..., 0, 0] += dt * (2.0 * p01 + dt * p11) + qdt * dt * dt / 3.0  # P = F P F' + Q
    p01 += dt * p11 + qdt * dt / 2.0                 # (p01, p11 are views into P)
    P[..., 1, 0] = p01
    p11 += qdt
    return x, P


def update(x: np.ndarray, P: np.ndarray, z: np.ndarray, R: np.ndarray, mask: np.ndarray,
           wrap: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Kalman update with H = [1, 0] per channel; channels where `mask` is False keep the prior
    (filterpy's `update(None)`). z, R, mask (n, c); wrap (c,) bool: innovation on the circle."""
    y, S = innovation(x, P, z, R, wrap)         # y = z - H x ; S = H P H' + R
    return correct(x.copy(), P.copy(), y, S, mask, wrap)


def correct(x: np.ndarray, P: np.ndarray, y: np.ndarray, S: np.ndarray, mask: np.ndarray,
            wrap: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The update in place, given the innovation y (n, c) and its variance S (n, c)."""
    k0 = P[..., 0, 0] * mask / S                # K = P H' S^-1 (S is 1x1 per channel);
    k1 = P[..., 1, 0] * mask / S                #   no measurement -> no gain
    x[..., 0] += k0 * y                         # x = x + K y
    x[..., 1] += k1 * y
    P[..., 1, 1] -= k1 * P[..., 0, 1]           # P = (I - K H) P, row 1 before row 0 changes
    P[..., 0, 1] *= 1.0 - k0
    P[..., 0, 0] *= 1.0 - k0
    P[..., 1, 0] = P[..., 0, 1]                 # = P10 - k1 P00, equal in exact arithmetic
    if wrap is not None:
        w = np.flatnonzero(wrap)
        x[..., w, 0] = wrap_angle(x[..., w, 0])  # keep wrapping angles in [-pi, pi)
    return x, P


def innovation(x: np.ndarray, P: np.ndarray, z: np.ndarray, R: np.ndarray,
               wrap: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """y (n, c) residual (on the circle where `wrap`) and its variance S (n, c)."""
    y = z - x[..., 0]                           # y = z - H x
    if wrap is not None:
        w = np.flatnonzero(wrap)
        y[..., w] = wrap_angle(y[..., w])       # shortest way round: no 2 pi jumps
    S = P[..., 0, 0] + R                        # S = H P H' + R
    return y, S


def project_to_box(x: np.ndarray, lower: np.ndarray, upper: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Constrain x (n, c, 2) to lower <= angle <= upper (c,); zero the velocity that points out.
    Returns (x, active) with active (n, c) bool where a bound was hit."""
    x[..., 0] = np.minimum(np.maximum(x[..., 0], lower), upper)  # x = argmin_box |x - x_post|
    at_lo = x[..., 0] <= lower
    at_hi = x[..., 0] >= upper
    v = x[..., 1]
    x[..., 1] = np.where((at_lo & (v < 0.0)) | (at_hi & (v > 0.0)), 0.0, v)  # no outward motion
    return x, at_lo | at_hi


def damp_velocity(x: np.ndarray, P: np.ndarray, dt: np.ndarray, tau_s: float,
                  mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Decay the velocity of unmeasured channels (mask (n, c); None = all) by exp(-dt / tau_s).

    Without measurements a constant-velocity model extrapolates a noisy velocity for as long as
    it coasts; joints stop, so an unseen DoF should slow down and hold. x' = D x, P' = D P D'
    with D = diag(1, d)."""
    d = np.exp(-np.asarray(dt, dtype=np.float64) / tau_s)[:, None]
    if mask is not None:
        d = np.where(mask, d, 1.0)
    x[..., 1] *= d                              # x = D x
    P[..., 0, 1] *= d                           # P = D P D'
    P[..., 1, 0] *= d
    P[..., 1, 1] *= d * d
    return x, P


# --- the per-track bank --------------------------------------------------------------------

class JointFilterBank:
    """State of many tracks' filters in preallocated slots (the stage maps tracks to slots).

    x (capacity, c, 2): angle (rad or m) and its rate (/s); P (capacity, c, 2, 2).
    `step` runs predict to the frame time, a gated, limit-aware update and the box projection
    for a batch of slots at once.
    """

    def __init__(self, q: np.ndarray, meas_std: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 wrap: np.ndarray, gate_sigma: np.ndarray | float, gate_max_frames: int,
                 limit_margin: float, unseen_std: np.ndarray | float = 0.5,
                 huber_sigma: float = 2.5, coast_tau_s: float = 0.15, q_boost_max: float = 1.0,
                 q_boost_tau_s: float = 0.05, capacity: int = 16):
        self.q = np.asarray(q, dtype=np.float64)                  # (c,) spectral density
        self.meas_var = np.asarray(meas_std, dtype=np.float64) ** 2  # (c,) R at confidence 1
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.wrap = np.asarray(wrap, dtype=bool)
        self.bounded = np.isfinite(self.lower) | np.isfinite(self.upper)
        self.gate2 = np.square(np.broadcast_to(np.asarray(gate_sigma, dtype=np.float64), self.q.shape))
        self.huber2 = float(huber_sigma) ** 2
        self.coast_tau_s = float(coast_tau_s)
        self.q_boost_max = float(q_boost_max)
        self.q_boost_tau_s = float(q_boost_tau_s)
        self.unseen_var = np.square(np.broadcast_to(np.asarray(unseen_std, dtype=np.float64), self.q.shape))
        self.gate_max_frames = int(gate_max_frames)
        self.limit_margin = float(limit_margin)
        c = self.q.shape[0]
        self.x = np.zeros((capacity, c, 2))
        self.P = np.zeros((capacity, c, 2, 2))
        self.t_s = np.zeros(capacity)             # time of the state (s)
        self.t_meas_s = np.zeros(capacity)        # time of the last accepted measurement (s)
        self.n_rejected = np.zeros((capacity, c), dtype=np.int32)
        self.active = np.zeros((capacity, c), dtype=bool)
        self.nis = np.ones((capacity, c))         # running normalized innovation squared

    @property
    def channels(self) -> int:
        return self.q.shape[0]

    def grow(self, capacity: int) -> None:
        """Make room for `capacity` slots, keeping existing state."""
        extra = capacity - self.x.shape[0]
        if extra <= 0:
            return
        c = self.channels
        self.x = np.concatenate([self.x, np.zeros((extra, c, 2))])
        self.P = np.concatenate([self.P, np.zeros((extra, c, 2, 2))])
        self.t_s = np.concatenate([self.t_s, np.zeros(extra)])
        self.t_meas_s = np.concatenate([self.t_meas_s, np.zeros(extra)])
        self.n_rejected = np.concatenate([self.n_rejected, np.zeros((extra, c), dtype=np.int32)])
        self.active = np.concatenate([self.active, np.zeros((extra, c), dtype=bool)])
        self.nis = np.concatenate([self.nis, np.ones((extra, c))])

    def meas_var_for(self, z: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """R (n, c): base variance / confidence^2, times 1 + (distance outside limits / margin)^2."""
        R = self.meas_var / np.square(confidence)[:, None]
        outside = np.maximum(self.lower - z, 0.0) + np.maximum(z - self.upper, 0.0)  # 0 if unbounded
        return R * (1.0 + np.square(outside / self.limit_margin))

    def initialize(self, slots: np.ndarray, t_s: np.ndarray, z: np.ndarray,
                   confidence: np.ndarray, observed: np.ndarray) -> None:
        """Start slots from a measurement: x = [z projected on the box, 0]."""
        observed = observed & np.isfinite(z)
        z = np.where(np.isfinite(z), z, 0.0)
        R = self.meas_var_for(z, confidence)
        x = np.zeros((len(slots), self.channels, 2))
        x[..., 0] = np.where(self.wrap, wrap_angle(z), z)
        P = np.zeros((len(slots), self.channels, 2, 2))
        P[..., 0, 0] = np.where(observed, R, self.unseen_var)  # unseen: wide prior, first sight wins
        P[..., 1, 1] = _V0_STD ** 2
        x, act = project_to_box(x, self.lower, self.upper)
        self.x[slots], self.P[slots], self.active[slots] = x, P, act & self.bounded
        self.t_s[slots] = t_s
        self.t_meas_s[slots] = t_s
        self.n_rejected[slots] = 0
        self.nis[slots] = 1.0

    def predict(self, slots: np.ndarray, t_s: np.ndarray) -> None:
        """Move slots to time t_s (n,) seconds; no measurement (coasting)."""
        dt = np.maximum(t_s - self.t_s[slots], 0.0)  # out-of-order or equal stamps: no motion
        x, P = predict(self.x[slots], self.P[slots], dt, self.q, inplace=True)
        x, P = damp_velocity(x, P, dt, self.coast_tau_s, None)
        x, act = project_to_box(x, self.lower, self.upper)
        self.x[slots], self.P[slots], self.active[slots] = x, P, act & self.bounded
        self.t_s[slots] = np.maximum(t_s, self.t_s[slots])

    def step(self, slots: np.ndarray, t_s: np.ndarray, z: np.ndarray, confidence: np.ndarray,
             observed: np.ndarray) -> np.ndarray:
        """Predict to t_s (n,) s, then update with z (n, c) where `observed` (n, c) bool.
        confidence (n,) in (0, 1] scales R. Returns accepted (n, c) bool (False = gated/unseen)."""
        dt = np.maximum(t_s - self.t_s[slots], 0.0)
        nis = self.nis[slots]
        q = self.q * np.clip(nis, 1.0, self.q_boost_max)  # innovations too big: the model is failing
        x, P = predict(self.x[slots], self.P[slots], dt, q, inplace=True)
        observed = observed & np.isfinite(z)
        z = np.where(observed, z, 0.0)
        R = self.meas_var_for(z, confidence)
        y, S = innovation(x, P, z, R, self.wrap)
        d2 = np.square(y) / S                              # Mahalanobis distance^2 (1 dof)
        n_rej = self.n_rejected[slots]
        gated = observed & (d2 > self.gate2) & (n_rej < self.gate_max_frames)
        accepted = observed & ~gated
        # Huber: beyond huber2 the measurement's variance grows with its distance, bounding its pull
        w = np.sqrt(np.maximum(d2, self.huber2) / self.huber2)
        S = S + (w - 1.0) * R                              # S = H P H' + w R  (Huber weight 1/w)
        x, P = correct(x, P, y, S, accepted, self.wrap)
        x, P = damp_velocity(x, P, dt, self.coast_tau_s, ~observed)
        a = 1.0 - np.exp(-dt / self.q_boost_tau_s)[:, None]
        self.nis[slots] = np.where(observed, nis + a * (np.minimum(d2, _NIS_CAP) - nis), nis)
        x, act = project_to_box(x, self.lower, self.upper)
        self.x[slots], self.P[slots], self.active[slots] = x, P, act & self.bounded
        self.n_rejected[slots] = np.where(gated, n_rej + 1, np.where(accepted, 0, n_rej))
        self.t_s[slots] = np.maximum(t_s, self.t_s[slots])
        self.t_meas_s[slots] = np.where(accepted.any(axis=1), self.t_s[slots], self.t_meas_s[slots])
        return accepted

    def state(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(angle (n, c), rate (n, c), limit_active (n, c) bool) of slots."""
        x = self.x[slots]
        return x[..., 0], x[..., 1], self.active[slots]
