"""Joint-limit-aware constant-velocity Kalman filter over (tracks, channels), compiled with numba.

Every channel (one SKEL DoF, or one axis of the root translation) is an independent
constant-velocity model with state x = [angle, angular velocity] and a scalar measurement
H = [1, 0]. Independence makes P block-diagonal with symmetric 2x2 blocks, so a filter over
46 DoFs is 46 filterpy `KalmanFilter(dim_x=2, dim_z=1)`s run side by side. `_step_kernel`
writes one such filter's predict and update out as scalar algebra (the textbook names x, P, F,
Q, R, K, S, y are kept so it reads against filterpy; a test checks it against filterpy on random
data) and loops it over every (track, channel). Compiled because a frame of 10 people is ~500
tiny filters: as numpy array expressions the ~70 calls per frame cost ~100 us of interpreter
overhead whatever the size; the loop costs a few microseconds.

Transition and process noise depend on the real interval dt (seconds) between frames:
F = [[1, dt], [0, 1]], Q = q * [[dt^3/3, dt^2/2], [dt^2/2, dt]] (continuous white-noise
acceleration with spectral density q, filterpy's `Q_continuous_white_noise(2, dt, q)`).

Joint limits (engines/skel/dofs.py): after each step the estimate is projected onto the box
and the velocity component pointing out of the box is zeroed (a constrained update that cannot
overshoot or oscillate at a limit); measurements far outside the box get a larger R; the
per-DoF `limit_active` flag says where the projection acted. Unbounded DoFs (pelvis) wrap:
innovations are taken on the circle and the angle is kept in [-pi, pi).

Robustness: a Mahalanobis gate (y^2 / S > gate^2: the measurement is skipped, at most
`gate_max_frames` times in a row), a Huber weight below the gate (R grows with the distance, so
one bad value pulls less), R = sigma^2 / confidence^2, no update where a DoF is unobserved,
velocity decay where nothing was measured (joints stop; a coasting CV model would fly off), and
Q scaled by a running normalized innovation squared (>= 1): a DoF that starts a fast move gets a
responsive model within a few frames while one at rest stays smooth.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from engines.skel.dofs import wrap_angle

_V0_STD = 2.0  # rad/s (or m/s): prior std of the velocity of a freshly started track
_NIS_CAP = 100.0  # one wild innovation must not boost Q without bound

# planes of the bank's state (_ROWS, capacity, channels)
X0, X1, P00, P01, P11, NIS, N_REJ = range(7)
_ROWS = 7


# --- one filter step, compiled -----------------------------------------------------------------

@njit(cache=True, inline="always")
def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@njit(cache=True, inline="always")
def _meas_var(base_var: float, confidence: float, z: float, lower: float, upper: float,
              inv_margin: float) -> float:
    """R = sigma^2 / confidence^2, times 1 + (distance outside the limits / margin)^2 (the
    distance is 0 inside the box and for an unbounded channel)."""
    outside = max(lower - z, 0.0) + max(z - upper, 0.0)
    return base_var / (confidence * confidence) * (1.0 + (outside * inv_margin) ** 2)


@njit(cache=True)
def _meas_var_kernel(meas_var, confidence, z, lower, upper, inv_margin, out):
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = _meas_var(meas_var[j], confidence[i], z[i, j], lower[j], upper[j], inv_margin)


@njit(cache=True)
def _step_kernel(s, active, accepted, t_state, t_meas, slots, t_s, z, confidence, observed,
                 q, meas_var, lower, upper, wrap, gate2, gate_max_frames, inv_huber2,
                 inv_margin, q_boost_max, q_boost_tau_s, coast_tau_s):
    """Predict every (slot, channel) to t_s and update it with z where observed, in place.

    s (7, capacity, c) state planes; active (capacity, c) bool, the bank's limit flags;
    accepted (n, c) bool out; t_state, t_meas (capacity,) s; slots (n,); t_s, confidence (n,);
    z, observed (n, c); per-channel q,
    meas_var, lower, upper, wrap, gate2 (c,)."""
    n, c = z.shape
    for i in range(n):
        k = slots[i]
        dt = max(t_s[i] - t_state[k], 0.0)             # out-of-order or equal stamps: no motion
        coast_decay = math.exp(-dt / coast_tau_s)
        nis_gain = 1.0 - math.exp(-dt / q_boost_tau_s)
        any_accepted = False
        for j in range(c):
            x0, x1 = s[X0, k, j], s[X1, k, j]
            p00, p01, p11 = s[P00, k, j], s[P01, k, j], s[P11, k, j]
            nis = s[NIS, k, j]
            # predict: x = F x, P = F P F' + Q; Q boosted while innovations run large
            qj = q[j] * min(max(nis, 1.0), q_boost_max)
            x0 += dt * x1
            p00 += dt * (2.0 * p01 + dt * p11) + qj * dt * dt * dt / 3.0
            p01 += dt * p11 + qj * dt * dt / 2.0
            p11 += qj * dt
            zj = z[i, j]
            ok = False
            if observed[i, j] and math.isfinite(zj):
                R = _meas_var(meas_var[j], confidence[i], zj, lower[j], upper[j], inv_margin)
                y = zj - x0                               # y = z - H x
                if wrap[j]:
                    y = _wrap(y)                          # shortest way round: no 2 pi jumps
                S = p00 + R                               # S = H P H' + R
                d2 = y * y / S                            # Mahalanobis distance^2 (1 dof)
                if d2 > gate2[j] and s[N_REJ, k, j] < gate_max_frames:
                    s[N_REJ, k, j] += 1.0                 # gated: an outlier, skip it
                else:
                    s[N_REJ, k, j] = 0.0
                    # Huber: beyond huber_sigma R grows with the distance, bounding the pull
                    S = p00 + max(math.sqrt(d2 * inv_huber2), 1.0) * R
                    k0, k1 = p00 / S, p01 / S             # K = P H' S^-1
                    x0 += k0 * y                          # x = x + K y
                    x1 += k1 * y
                    p11 -= k1 * p01                       # P = (I - K H) P
                    p01 *= 1.0 - k0
                    p00 *= 1.0 - k0
                    if wrap[j]:
                        x0 = _wrap(x0)                    # wrapping angles stay in [-pi, pi)
                    ok = True
                nis += nis_gain * (min(d2, _NIS_CAP) - nis)  # running mean of d2 where measured
            else:
                x1 *= coast_decay                         # unseen: x = D x, P = D P D',
                p01 *= coast_decay                        #   D = diag(1, decay): joints stop
                p11 *= coast_decay * coast_decay
            # the joint-limit box: project the angle, zero the rate that points out
            x0 = min(max(x0, lower[j]), upper[j])
            at_lo, at_hi = x0 <= lower[j], x0 >= upper[j]
            if (at_lo and x1 < 0.0) or (at_hi and x1 > 0.0):
                x1 = 0.0
            active[k, j] = at_lo or at_hi
            accepted[i, j] = ok
            any_accepted |= ok
            s[X0, k, j], s[X1, k, j] = x0, x1
            s[P00, k, j], s[P01, k, j], s[P11, k, j] = p00, p01, p11
            s[NIS, k, j] = nis
        t_state[k] = max(t_s[i], t_state[k])
        if any_accepted:
            t_meas[k] = t_state[k]


# --- matrix forms, for the fixed-lag smoother (tracking/rts.py) --------------------------------

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


def project_to_box(x: np.ndarray, lower: np.ndarray, upper: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Constrain x (n, c, 2) to lower <= angle <= upper (c,) in place; zero the rate that points
    out. Returns (x, active (n, c) bool where a bound was hit)."""
    x[..., 0] = np.minimum(np.maximum(x[..., 0], lower), upper)
    at_lo = x[..., 0] <= lower
    at_hi = x[..., 0] >= upper
    v = x[..., 1]
    x[..., 1] = np.where((at_lo & (v < 0.0)) | (at_hi & (v > 0.0)), 0.0, v)
    return x, at_lo | at_hi


# --- the per-track bank --------------------------------------------------------------------

class JointFilterBank:
    """State of many tracks' filters in preallocated slots (the stage maps tracks to slots).

    s (7, capacity, c): planes x0 angle (rad or m), x1 its rate (/s), p00, p01, p11 (the
    symmetric P), the running NIS and the count of consecutive gated measurements. `step` runs
    predict to the frame time, the gated, limit-aware update and the box projection for a batch
    of slots at once.
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
        self.gate2 = np.square(np.broadcast_to(np.asarray(gate_sigma, dtype=np.float64), self.q.shape)).copy()
        self.huber2 = float(huber_sigma) ** 2
        self.coast_tau_s = float(coast_tau_s)
        self.q_boost_max = float(q_boost_max)
        self.q_boost_tau_s = float(q_boost_tau_s)
        self.unseen_var = np.square(np.broadcast_to(np.asarray(unseen_std, dtype=np.float64), self.q.shape))
        self.gate_max_frames = int(gate_max_frames)
        self.limit_margin = float(limit_margin)
        c = self.q.shape[0]
        self.s = np.zeros((_ROWS, capacity, c))
        self.t_s = np.zeros(capacity)             # time of the state (s)
        self.t_meas_s = np.zeros(capacity)        # time of the last accepted measurement (s)
        self.active = np.zeros((capacity, c), dtype=bool)

    @property
    def channels(self) -> int:
        return self.q.shape[0]

    def grow(self, capacity: int) -> None:
        """Make room for `capacity` slots, keeping existing state."""
        extra = capacity - self.s.shape[1]
        if extra <= 0:
            return
        self.s = np.concatenate([self.s, np.zeros((_ROWS, extra, self.channels))], axis=1)
        self.t_s = np.concatenate([self.t_s, np.zeros(extra)])
        self.t_meas_s = np.concatenate([self.t_meas_s, np.zeros(extra)])
        self.active = np.concatenate([self.active, np.zeros((extra, self.channels), dtype=bool)])

    def meas_var_for(self, z: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """R (n, c) of finite measurements z (n, c) at confidence (n,), as `step` uses it."""
        z = np.ascontiguousarray(z, dtype=np.float64)
        R = np.empty_like(z)
        _meas_var_kernel(self.meas_var, np.ascontiguousarray(confidence, dtype=np.float64), z,
                         self.lower, self.upper, 1.0 / self.limit_margin, R)
        return R

    def initialize(self, slots: np.ndarray, t_s: np.ndarray, z: np.ndarray,
                   confidence: np.ndarray, observed: np.ndarray) -> None:
        """Start slots from a measurement: x = [z projected on the box, 0]."""
        observed = observed & np.isfinite(z)
        z = np.where(np.isfinite(z), z, 0.0)
        R = self.meas_var_for(z, confidence)
        x = np.zeros((len(slots), self.channels, 2))
        x[..., 0] = np.where(self.wrap, wrap_angle(z), z)
        x, act = project_to_box(x, self.lower, self.upper)
        s = np.zeros((_ROWS, len(slots), self.channels))
        s[X0], s[X1] = x[..., 0], x[..., 1]
        s[P00] = np.where(observed, R, self.unseen_var)  # unseen: wide prior, first sight wins
        s[P11] = _V0_STD ** 2
        s[NIS] = 1.0
        self.s[:, slots] = s
        self.active[slots] = act
        self.t_s[slots] = t_s
        self.t_meas_s[slots] = t_s

    def step(self, slots: np.ndarray, t_s: np.ndarray, z: np.ndarray, confidence: np.ndarray,
             observed: np.ndarray) -> np.ndarray:
        """Predict to t_s (n,) s, then update with z (n, c) where `observed` (n, c) bool.
        confidence (n,) in (0, 1] scales R. Returns accepted (n, c) bool (False = gated/unseen)."""
        accepted = np.empty((len(slots), self.channels), dtype=bool)
        _step_kernel(self.s, self.active, accepted, self.t_s, self.t_meas_s,
                     np.ascontiguousarray(slots, dtype=np.int64),
                     np.ascontiguousarray(t_s, dtype=np.float64),
                     np.ascontiguousarray(z, dtype=np.float64),
                     np.ascontiguousarray(confidence, dtype=np.float64),
                     np.ascontiguousarray(observed, dtype=np.bool_),
                     self.q, self.meas_var, self.lower, self.upper, self.wrap, self.gate2,
                     float(self.gate_max_frames), 1.0 / self.huber2, 1.0 / self.limit_margin,
                     self.q_boost_max, self.q_boost_tau_s, self.coast_tau_s)
        return accepted

    def state(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(angle (n, c), rate (n, c), limit_active (n, c) bool) of slots."""
        return self.s[X0, slots], self.s[X1, slots], self.active[slots]

    def posterior(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """One slot's state in filterpy's layout: x (c, 2), P (c, 2, 2)."""
        x0, x1, p00, p01, p11 = self.s[:P11 + 1, slot]
        x = np.stack([x0, x1], axis=-1)
        P = np.stack([np.stack([p00, p01], -1), np.stack([p01, p11], -1)], -2)
        return x, P
