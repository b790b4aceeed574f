"""Joint-limit-aware interacting-multiple-model (IMM) Kalman filter over (tracks, channels), in numba.

Every channel (one SKEL DoF, or one axis of the root translation) is tracked by M
constant-velocity models (default 3) with state x = [angle, angular velocity] and a scalar
measurement H = [1, 0], which differ only in their process noise: q * q_mult[m], from a *calm*
model (little noise: holding still, slow motion) through a middle one (a gait cycle) to an
*agile* one (1e5x: a 3 Hz swing). IMM (Blom & Bar-Shalom; filterpy's
`IMMEstimator`) runs them all every frame: it mixes their posteriors by the probability of
switching model, predicts and updates each, reweighs the models by how well each predicted the
measurement, and outputs the probability-weighted combination. So a joint at rest is smoothed as
hard as the calm model can, and a joint that starts moving fast is followed as soon as one
measurement says so. (A single model with Q boosted by a running normalized innovation, tried
first, could not reach RMSE <= 0.6x and jitter <= 0.25x at 30 Hz at once; two models could, but
lagged a steady 0.5 Hz swing that neither fits; three do both: BENCHMARKS.md.)

Channels are independent, so each model's P is a symmetric 2x2 block: a bank over 46 DoFs is
46 filterpy IMMs side by side. `_step_kernel` writes one IMM step out as scalar algebra (the
textbook names x, P, F, Q, R, K, S, y, mu, cbar are kept so it reads against filterpy; a test
checks it against filterpy's IMMEstimator on random data) and loops it over every
(track, channel): a frame of 10 people is ~1500 tiny filters, which as numpy array expressions
would cost more in interpreter overhead than in arithmetic.

Transition and process noise depend on the real interval dt (seconds) between frames:
F = [[1, dt], [0, 1]], Q = q * [[dt^3/3, dt^2/2], [dt^2/2, dt]] (continuous white-noise
acceleration with spectral density q, filterpy's `Q_continuous_white_noise(2, dt, q)`); the
probability of leaving a model between frames is 1 - exp(-dt * switch_rate_hz), split evenly
over the others.

Joint limits (engines/skel/dofs.py): after each step each model's estimate is projected onto the
box and its velocity component pointing out of the box is zeroed (a constrained update that
cannot overshoot or oscillate at a limit); their convex combination then stays inside too;
measurements far outside the box get a larger R; the per-DoF `limit_active` flag says where the
projection acted on the most probable model. Unbounded DoFs (pelvis) wrap: innovations and model
differences are taken on the circle and the angle is kept in [-pi, pi).

Robustness, chosen by measurement (BENCHMARKS.md): each model's measurement likelihood is a
mixture, (1 - eps) N(y; 0, S) for a genuine value plus eps / outlier_range for junk spread over
a range, the same for every model. A value no model predicts is taken for junk (its update is
weighted by P(genuine), ~0), one the agile model predicts is a real fast move and that model
gains probability; so an outlier neither moves the estimate nor switches the filter to agile,
while a reversal at 3 Hz is followed. (The hard Mahalanobis gate plus Huber weight used before
rejected real reversals at 2 Hz: 1.11x raw RMSE in `balanced`.) After `gate_max_frames` junk
values in a row, or after a frame with no value, the next is taken as it is. Also: R = sigma^2 / confidence^2, no update where a
DoF is unobserved, and velocity decay where nothing was measured (joints stop; a coasting CV
model would fly off).

A constant-acceleration model (state [angle, rate, acceleration], tried as the most agile
model) predicts a clean fast swing more closely, but at 30 Hz with 3 deg noise its acceleration
estimate is too noisy: it measured worse than constant-velocity models up to 1e5x (BENCHMARKS.md).

Published estimate: the combined posterior, or with `lookback_frames` N > 0 the look-back
estimate (`_lookback_kernel`): the posterior of N frames back, RTS-smoothed with the N newer ones
and carried forward at its smoothed rate, where the calm models lead: a steadier output, still
causal and on time.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from engines.skel.dofs import wrap_angle

_V0_STD = 2.0  # rad/s (or m/s): prior std of the velocity of a freshly started track

# planes of the bank's state (rows, capacity, channels): the combined estimate callers read and
# the count of consecutive gated measurements, then per model m, from model_base(m): its own
# x0, x1, p00, p01, p11 and its probability
X0, X1, P00, P01, P11, N_REJ = range(6)
_HEAD, _N_STATE, MU = 6, 5, 5   # per model: x (2), P (3), then its probability at plane MU
_PER_MODEL = _N_STATE + 1
_MU0_AGILE = 0.1  # prior probability of the agile models together, for a freshly started track


def model_base(m: int) -> int:
    """First state plane of model m: planes +0, +1 x (angle, rate), +2..+4 the symmetric P
    (p00, p01, p11), +5 its probability (`MU`)."""
    return _HEAD + _PER_MODEL * m


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


@njit(cache=True, inline="always")
def _predict(v, dt, q):
    """x = F x, P = F P F' + Q on v = [x0, x1, p00, p01, p11], in place: constant velocity,
    F = [[1, dt], [0, 1]], Q white acceleration of density q."""
    v[0] += dt * v[1]
    v[2] += dt * (2.0 * v[3] + dt * v[4]) + q * dt * dt * dt / 3.0
    v[3] += dt * v[4] + q * dt * dt / 2.0
    v[4] += q * dt


@njit(cache=True, inline="always")
def _update(v, y, S, r, wrap):
    """K = P H' S^-1, x = x + r K y, P = P - r K S K' + r (1 - r) (K y)(K y)' on v (as in
    `_predict`), H = [1, 0]: the update by a measurement that is genuine with probability r
    (r = 1: the Kalman update; r = 0: none)."""
    c0, c1 = v[2], v[3]                             # P H' = first column of P
    d0, d1 = c0 / S * y, c1 / S * y                 # K y
    spread = r * (1.0 - r)
    v[0] += r * d0
    v[1] += r * d1
    v[2] += -r * c0 * c0 / S + spread * d0 * d0
    v[3] += -r * c0 * c1 / S + spread * d0 * d1
    v[4] += -r * c1 * c1 / S + spread * d1 * d1
    if wrap:
        v[0] = _wrap(v[0])                          # wrapping angles stay in [-pi, pi)


@njit(cache=True, inline="always")
def _project(x0, x1, lower, upper):
    """The joint-limit box: project the angle, zero the rate that points out."""
    x0 = min(max(x0, lower), upper)
    at_bound = x0 <= lower or x0 >= upper
    if (x0 <= lower and x1 < 0.0) or (x0 >= upper and x1 > 0.0):
        x1 = 0.0
    return x0, x1, at_bound


@njit(cache=True)
def _step_kernel(s, active, accepted, t_state, t_meas, slots, t_s, z, confidence, observed,
                 q_models, switch_rate_hz, meas_var, lower, upper, wrap, inlier_scale, clutter,
                 gate_max_frames, inv_margin, coast_tau_s):
    """One IMM step for every (slot, channel): mix, predict to t_s, update with z where observed,
    reweigh the models, project onto the box, combine. In place.

    s (rows, capacity, c) state planes; active (capacity, c) bool, the bank's limit flags;
    accepted (n, c) bool out; t_state, t_meas (capacity,) s; slots (n,); t_s, confidence (n,);
    z, observed (n, c); q_models (M, c) each model's process noise; per-channel meas_var, lower,
    upper, wrap,
    inlier_scale = (1 - eps) / sqrt(2 pi), clutter = eps / outlier range (c,) (0: no outliers)."""
    n, c = z.shape
    M = q_models.shape[0]
    xm = np.empty((M, _N_STATE))   # each model's posterior x, P
    mu = np.empty(M)               # model probabilities
    cbar = np.empty(M)             # predicted model probabilities
    rs = np.empty(M)               # each model's probability that the value is genuine
    wm = np.empty(M)               # mixing weights into one model, and each model's angle
    dm = np.empty(M)               #   offset from its (on the circle if wrap)
    mixed = np.empty((M, _N_STATE))  # each model's mixed prior, then its posterior
    for i in range(n):
        k = slots[i]
        dt = max(t_s[i] - t_state[k], 0.0)             # out-of-order or equal stamps: no motion
        decay = math.exp(-dt / coast_tau_s)
        p_stay = math.exp(-dt * switch_rate_hz) if M > 1 else 1.0  # Markov chain: stay, or
        p_move = (1.0 - p_stay) / max(M - 1, 1)                    #   go to any other
        any_accepted = False
        for j in range(c):
            for m in range(M):
                b = _HEAD + _PER_MODEL * m
                for r in range(_N_STATE):
                    xm[m, r] = s[b + r, k, j]
                mu[m] = s[b + MU, k, j]
            # mixing: cbar_t = sum_i PI_it mu_i; model t starts from sum_i (PI_it mu_i / cbar_t) N_i
            for t in range(M):
                cb = 0.0
                for m in range(M):
                    cb += mu[m] * (p_stay if m == t else p_move)
                cbar[t] = cb
                ref = xm[t, 0]                          # angles averaged as offsets from one
                m0 = m1 = 0.0                           #   model's, on the circle if wrap
                for m in range(M):
                    w = mu[m] * (p_stay if m == t else p_move) / cb
                    d = xm[m, 0] - ref
                    if wrap[j]:
                        d = _wrap(d)
                    wm[m], dm[m] = w, d
                    m0 += w * d
                    m1 += w * xm[m, 1]
                p00 = p01 = p11 = 0.0
                for m in range(M):
                    w = wm[m]
                    e0, e1 = dm[m] - m0, xm[m, 1] - m1  # x_m - x_mixed
                    p00 += w * (xm[m, 2] + e0 * e0)     # P = sum w (P_m + e e')
                    p01 += w * (xm[m, 3] + e0 * e1)
                    p11 += w * (xm[m, 4] + e1 * e1)
                x0 = ref + m0
                if wrap[j]:
                    x0 = _wrap(x0)
                mixed[t, 0], mixed[t, 1], mixed[t, 2], mixed[t, 3], mixed[t, 4] = x0, m1, p00, p01, p11
                _predict(mixed[t], dt, q_models[t, j])
            zj = z[i, j]
            ok = False
            if observed[i, j] and math.isfinite(zj):
                R = _meas_var(meas_var[j], confidence[i], zj, lower[j], upper[j], inv_margin)
                # after gate_max_frames rejections in a row the value is taken as it is: a real
                # jump persists, an outlier does not
                trust = s[N_REJ, k, j] >= gate_max_frames or clutter[j] <= 0.0
                total = 0.0
                if trust:                               # Kalman: the value is genuine, L = N(y; 0, S)
                    top = -1e300                        #   (log space: a far value cannot make
                    for t in range(M):                  #   every likelihood underflow to 0)
                        y = zj - mixed[t, 0]            # y = z - H x
                        if wrap[j]:
                            y = _wrap(y)                # shortest way round: no 2 pi jumps
                        S = mixed[t, 2] + R             # S = H P H' + R
                        _update(mixed[t], y, S, 1.0, wrap[j])
                        rs[t] = 1.0
                        mu[t] = -0.5 * (y * y / S + math.log(S)) + math.log(cbar[t])  # log(L cbar)
                        top = max(top, mu[t])
                    for t in range(M):
                        mu[t] = math.exp(mu[t] - top)
                        total += mu[t]
                else:
                    scale = inlier_scale[j]
                    for t in range(M):
                        y = zj - mixed[t, 0]
                        if wrap[j]:
                            y = _wrap(y)
                        S = mixed[t, 2] + R
                        # (1 - eps) N(y; 0, S): model t explains the value as a measurement, or
                        # it is junk, eps / range, the same for every model (never 0: no underflow)
                        l_in = scale * math.exp(-0.5 * y * y / S) / math.sqrt(S)
                        L = l_in + clutter[j]
                        rs[t] = l_in / L                # P(genuine | y, model t)
                        _update(mixed[t], y, S, rs[t], wrap[j])
                        mu[t] = L * cbar[t]
                        total += mu[t]
                inlier = 0.0
                for t in range(M):
                    mu[t] /= total
                    inlier += mu[t] * rs[t]
                ok = inlier >= 0.5                      # taken as a measurement, not as junk
                s[N_REJ, k, j] = 0.0 if ok else s[N_REJ, k, j] + 1.0
            else:
                for t in range(M):                      # unseen: x = D x, P = D P D',
                    mu[t] = cbar[t]                     #   D = diag(1, decay): joints stop;
                    # the angle moves by the decaying rate's integral, v tau (1 - decay), not a
                    # full v dt before it decays: a coasted fast swing overshot its reversal
                    mixed[t, 0] -= (dt + coast_tau_s * math.expm1(-dt / coast_tau_s)) * mixed[t, 1]
                    if wrap[j]:
                        mixed[t, 0] = _wrap(mixed[t, 0])
                    mixed[t, 1] *= decay
                    mixed[t, 3] *= decay
                    mixed[t, 4] *= decay * decay
                # its next value is taken as it is: after a gap the joint is wherever it went
                # (at 2-3 Hz weighing it as junk cost 6-8 deg over the 3 frames after a gap)
                s[N_REJ, k, j] = max(s[N_REJ, k, j], gate_max_frames)
            # the joint-limit box for each model, then the probability-weighted combination
            ref = mixed[0, 0]
            m0 = m1 = 0.0
            best = 0
            for t in range(M):
                mixed[t, 0], mixed[t, 1], at_bound = _project(mixed[t, 0], mixed[t, 1], lower[j], upper[j])
                if mu[t] > mu[best]:
                    best = t
                if t == best:
                    active[k, j] = at_bound             # the flag of the most probable model
                d = mixed[t, 0] - ref
                if wrap[j]:
                    d = _wrap(d)
                m0 += mu[t] * d
                m1 += mu[t] * mixed[t, 1]
            p00 = p01 = p11 = 0.0
            for t in range(M):
                d = mixed[t, 0] - ref
                if wrap[j]:
                    d = _wrap(d)
                e0, e1 = d - m0, mixed[t, 1] - m1
                p00 += mu[t] * (mixed[t, 2] + e0 * e0)
                p01 += mu[t] * (mixed[t, 3] + e0 * e1)
                p11 += mu[t] * (mixed[t, 4] + e1 * e1)
                b = _HEAD + _PER_MODEL * t
                for r in range(_N_STATE):
                    s[b + r, k, j] = mixed[t, r]
                s[b + MU, k, j] = mu[t]
            x0 = ref + m0
            if wrap[j]:
                x0 = _wrap(x0)
            s[X0, k, j] = min(max(x0, lower[j]), upper[j])  # rounding of the convex combination
            s[X1, k, j], s[P00, k, j], s[P01, k, j], s[P11, k, j] = m1, p00, p01, p11
            accepted[i, j] = ok
            any_accepted |= ok
        t_state[k] = max(t_s[i], t_state[k])
        if any_accepted:
            t_meas[k] = t_state[k]


@njit(cache=True)
def _lookback_kernel(s, lb, lb_t, lb_n, pub, t_state, slots, measured, active, log_q, n_calm,
                     lower, upper, wrap, gate_sigma):
    """The published estimate of every slot in `slots`, written into pub (3, capacity, c):
    angle, rate, limit flag. Appends the slot's combined posterior (s planes X0..P11) and its
    typical q (exp of the probability-weighted log q of the models) to its window lb
    (L + 1, 7, capacity, c: x0, x1, p00, p01, p11, q, measured off the limits; times lb_t (L + 1, capacity), oldest first, lb_n valid entries),
    smooths the oldest entry with the newer ones (RTS, constant velocity: C = P F' P_pred^-1,
    x_s = x + C (x_s' - F x)), carries it forward to the newest time at its smoothed rate, and
    mixes it with the filtered angle: the look-back share is the probability of
    the `n_calm` calmest models, times exp(-d^2 / (2 gate_sigma^2 P00)) for a look-back estimate
    d away from the filtered one, and 0 unless every entry of the window took a measurement away
    from the joint limits (`active`, the bank's flags): the carry-forward assumes a steady rate,
    at a fast turn, a kink, a limit or through a gap the filter knows better.
    measured (len(slots), c) bool: the channels that took a measurement in this step."""
    W, M = lb.shape[0], log_q.shape[0]
    for i in range(slots.shape[0]):
        k = slots[i]
        n = min(lb_n[k] + 1, W)
        if lb_n[k] > 0 and t_state[k] <= lb_t[W - 1, k]:
            n = 1                                       # a repeated stamp: a new segment
        for e in range(W - n, W - 1):                   # shift the window one entry older
            lb_t[e, k] = lb_t[e + 1, k]
            for r in range(7):
                for j in range(lb.shape[3]):
                    lb[e, r, k, j] = lb[e + 1, r, k, j]
        lb_n[k] = n
        lb_t[W - 1, k] = t_state[k]
        for j in range(lb.shape[3]):
            lq = calm = 0.0
            for m in range(M):
                mu = s[_HEAD + _PER_MODEL * m + MU, k, j]
                lq += mu * log_q[m, j]
                if m < n_calm:
                    calm += mu
            for r in range(5):
                lb[W - 1, r, k, j] = s[r, k, j]
            lb[W - 1, 5, k, j] = math.exp(lq)
            lb[W - 1, 6, k, j] = 1.0 if (measured[i, j] and not active[k, j]) else 0.0
            share = calm
            for e in range(W - n, W):
                if lb[e, 6, k, j] < 0.5:
                    share = 0.0
            # backward pass from the newest entry to the oldest
            a0, a1 = lb[W - 1, 0, k, j], lb[W - 1, 1, k, j]  # smoothed x of the entry after e
            for e in range(W - 2, W - 1 - n, -1):
                dt = max(lb_t[e + 1, k] - lb_t[e, k], 0.0)
                q = lb[e + 1, 5, k, j]
                x0, x1 = lb[e, 0, k, j], lb[e, 1, k, j]
                p00, p01, p11 = lb[e, 2, k, j], lb[e, 3, k, j], lb[e, 4, k, j]
                # P_pred = F P F' + Q, F = [[1, dt], [0, 1]]
                f00 = p00 + dt * (2.0 * p01 + dt * p11) + q * dt * dt * dt / 3.0
                f01 = p01 + dt * p11 + q * dt * dt / 2.0
                f11 = p11 + q * dt
                det = f00 * f11 - f01 * f01
                # P F' = [[p00 + dt p01, p01], [p01 + dt p11, p11]]
                g00, g01 = p00 + dt * p01, p01
                g10, g11 = p01 + dt * p11, p11
                # C = P F' P_pred^-1
                c00 = (g00 * f11 - g01 * f01) / det
                c01 = (g01 * f00 - g00 * f01) / det
                c10 = (g10 * f11 - g11 * f01) / det
                c11 = (g11 * f00 - g10 * f01) / det
                d0 = a0 - (x0 + dt * x1)
                if wrap[j]:
                    d0 = _wrap(d0)
                d1 = a1 - x1
                a0 = x0 + c00 * d0 + c01 * d1
                a1 = x1 + c10 * d0 + c11 * d1
            x = a0 + a1 * (lb_t[W - 1, k] - lb_t[W - n, k])   # carried forward to now
            f = s[X0, k, j]
            d = x - f
            if wrap[j]:
                d = _wrap(d)
            share *= math.exp(-0.5 * d * d / (gate_sigma * gate_sigma * s[P00, k, j]))
            x = f + share * d
            if wrap[j]:
                x = _wrap(x)
            x, v, at_bound = _project(x, s[X1, k, j] + share * (a1 - s[X1, k, j]), lower[j], upper[j])
            pub[0, k, j], pub[1, k, j], pub[2, k, j] = x, v, 1.0 if (at_bound or active[k, j]) else 0.0


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


@njit(cache=True)
def _project_kernel(x, lower, upper, active):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            x[i, j, 0], x[i, j, 1], active[i, j] = _project(x[i, j, 0], x[i, j, 1], lower[j], upper[j])


def project_to_box(x: np.ndarray, lower: np.ndarray, upper: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Constrain x (n, c, 2) to lower <= angle <= upper (c,) in place; zero the rate that points
    out (the step kernel's own rule, `_project`). Returns (x, active (n, c) bool where a bound
    was hit)."""
    active = np.empty(x.shape[:2], dtype=np.bool_)
    _project_kernel(x, np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64), active)
    return x, active


# --- the per-track bank --------------------------------------------------------------------

class JointFilterBank:
    """State of many tracks' filters in preallocated slots (the stage maps tracks to slots).

    s (6 + 6 M, capacity, c): planes x0 angle (rad or m), x1 its rate (/s), p00, p01, p11 (the
    symmetric P) of the combined estimate, the count of consecutive gated measurements, then
    each of the M models' own x, P and probability (`model_base`).
    `step` runs one IMM step (mix, predict to the frame time, gated limit-aware update, reweigh,
    project, combine) for a batch of slots at once.
    """

    def __init__(self, q: np.ndarray, meas_std: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 wrap: np.ndarray, outlier_rate: float, outlier_range: np.ndarray | float,
                 gate_max_frames: int, limit_margin: float, unseen_std: np.ndarray | float = 0.5,
                 coast_tau_s: float = 0.15,
                 q_mult: np.ndarray | tuple[float, ...] = (1.0,), switch_rate_hz: float = 0.1,
                 lookback_frames: int = 0, lookback_gate_sigma: float = 2.0, capacity: int = 16):
        self.q = np.asarray(q, dtype=np.float64)                  # (c,) calmest model's spectral density
        self.meas_var = np.asarray(meas_std, dtype=np.float64) ** 2  # (c,) R at confidence 1
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.wrap = np.asarray(wrap, dtype=bool)
        # the outlier model: a value is junk with probability eps, spread evenly over the range
        eps = float(outlier_rate)
        rng = np.broadcast_to(np.asarray(outlier_range, dtype=np.float64), self.q.shape)
        self.inlier_scale = np.full(self.q.shape, (1.0 - eps) / math.sqrt(2.0 * math.pi))
        self.clutter = eps / rng
        self.coast_tau_s = float(coast_tau_s)
        # (M, c) each model's spectral density: q times its multiple (one per model, or per
        # model and channel), calm to agile
        mult = np.asarray(q_mult, dtype=np.float64)
        self.q_models = np.ascontiguousarray(self.q * (mult[:, None] if mult.ndim == 1 else mult))
        self.switch_rate_hz = float(switch_rate_hz)    # expected model switches per second
        self.unseen_var = np.square(np.broadcast_to(np.asarray(unseen_std, dtype=np.float64), self.q.shape))
        self.gate_max_frames = int(gate_max_frames)
        self.limit_margin = float(limit_margin)
        c = self.q.shape[0]
        self.rows = model_base(self.q_models.shape[0])
        self.s = np.zeros((self.rows, capacity, c))
        self.t_s = np.zeros(capacity)             # time of the state (s)
        self.t_meas_s = np.zeros(capacity)        # time of the last accepted measurement (s)
        self.active = np.zeros((capacity, c), dtype=bool)
        # the look-back window (see `_lookback_kernel`) and the published estimate it makes
        self.lookback_frames = int(lookback_frames)
        self.lookback_gate_sigma = float(lookback_gate_sigma)
        self.log_q = np.ascontiguousarray(np.log(self.q_models))
        self.lb = np.zeros((self.lookback_frames + 1, 7, capacity, c))
        self.lb_t = np.zeros((self.lookback_frames + 1, capacity))
        self.lb_n = np.zeros(capacity, dtype=np.int64)
        self.pub = np.zeros((3, capacity, c))

    @property
    def channels(self) -> int:
        return self.q.shape[0]

    def grow(self, capacity: int) -> None:
        """Make room for `capacity` slots, keeping existing state."""
        extra = capacity - self.s.shape[1]
        if extra <= 0:
            return
        self.s = np.concatenate([self.s, np.zeros((self.rows, extra, self.channels))], axis=1)
        self.t_s = np.concatenate([self.t_s, np.zeros(extra)])
        self.t_meas_s = np.concatenate([self.t_meas_s, np.zeros(extra)])
        self.active = np.concatenate([self.active, np.zeros((extra, self.channels), dtype=bool)])
        self.lb = np.concatenate([self.lb, np.zeros(self.lb.shape[:2] + (extra, self.channels))], axis=2)
        self.lb_t = np.concatenate([self.lb_t, np.zeros((self.lb_t.shape[0], extra))], axis=1)
        self.lb_n = np.concatenate([self.lb_n, np.zeros(extra, dtype=np.int64)])
        self.pub = np.concatenate([self.pub, np.zeros((3, extra, self.channels))], axis=1)

    def meas_var_for(self, z: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """R (n, c) of finite measurements z (n, c) at confidence (n,), as `step` uses it."""
        z = np.ascontiguousarray(z, dtype=np.float64)
        R = np.empty_like(z)
        _meas_var_kernel(self.meas_var, np.ascontiguousarray(confidence, dtype=np.float64), z,
                         self.lower, self.upper, 1.0 / self.limit_margin, R)
        return R

    def initialize(self, slots: np.ndarray, t_s: np.ndarray, z: np.ndarray,
                   confidence: np.ndarray, observed: np.ndarray) -> None:
        """Start slots from a measurement: x = [z projected on the box, 0] in every model (the
        calmest with probability 1 - _MU0_AGILE, the others sharing the rest)."""
        observed = observed & np.isfinite(z)
        z = np.where(np.isfinite(z), z, 0.0)
        R = self.meas_var_for(z, confidence)
        x = np.zeros((len(slots), self.channels, 2))
        x[..., 0] = np.where(self.wrap, wrap_angle(z), z)
        x, act = project_to_box(x, self.lower, self.upper)
        s = np.zeros((self.rows, len(slots), self.channels))
        s[X0], s[X1] = x[..., 0], x[..., 1]
        s[P00] = np.where(observed, R, self.unseen_var)  # unseen: wide prior, first sight wins
        s[P11] = _V0_STD ** 2
        n_models = self.q_models.shape[0]
        for m in range(n_models):
            b = model_base(m)
            s[b:b + _N_STATE] = s[X0:P11 + 1]
            s[b + MU] = 1.0 if n_models == 1 else (
                1.0 - _MU0_AGILE if m == 0 else _MU0_AGILE / (n_models - 1))
        self.s[:, slots] = s
        self.active[slots] = act
        self.t_s[slots] = t_s
        self.t_meas_s[slots] = t_s
        self.lb_n[slots] = 0
        self._publish(slots, observed)

    def _publish(self, slots: np.ndarray, measured: np.ndarray) -> None:
        """The look-back estimate of `slots` from their newest posterior (lookback_frames > 0);
        measured (n, c) bool: the channels that took a measurement this step."""
        if self.lookback_frames:
            _lookback_kernel(self.s, self.lb, self.lb_t, self.lb_n, self.pub, self.t_s,
                             np.ascontiguousarray(slots, dtype=np.int64),
                             np.ascontiguousarray(measured, dtype=np.bool_), self.active, self.log_q,
                             (self.q_models.shape[0] + 1) // 2, self.lower, self.upper, self.wrap,
                             self.lookback_gate_sigma)

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
                     self.q_models, self.switch_rate_hz, self.meas_var, self.lower,
                     self.upper, self.wrap, self.inlier_scale, self.clutter,
                     float(self.gate_max_frames), 1.0 / self.limit_margin, self.coast_tau_s)
        self._publish(slots, accepted)
        return accepted

    def state(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The published (angle (n, c), rate (n, c), limit_active (n, c) bool) of slots: the
        look-back estimate with lookback_frames > 0, else the filtered one."""
        if self.lookback_frames:
            return self.pub[0, slots], self.pub[1, slots], self.pub[2, slots] > 0.5
        return self.s[X0, slots], self.s[X1, slots], self.active[slots]

    def effective_q(self, slot: int) -> np.ndarray:
        """(c,) the process noise the combined estimate of a slot moved under in its last step:
        the models' q weighted by their probabilities (for the fixed-lag RTS pass)."""
        return sum(self.s[model_base(m) + MU, slot] * qm for m, qm in enumerate(self.q_models))


    def posterior(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """One slot's state in filterpy's layout: x (c, 2), P (c, 2, 2)."""
        x0, x1, p00, p01, p11 = self.s[:P11 + 1, slot]
        x = np.stack([x0, x1], axis=-1)
        P = np.stack([np.stack([p00, p01], -1), np.stack([p01, p11], -1)], -2)
        return x, P
