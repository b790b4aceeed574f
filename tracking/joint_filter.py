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
rejected real reversals at 2 Hz: 1.11x raw RMSE in `balanced`.) eps is a prior: with
`outlier_memory_s` each track learns its own rate, the share of its values taken as junk over
about that long (eps counting as `outlier_prior_values` values, JUNK_PRIOR_VALUES by default; never
below JUNK_FLOOR x eps), so a clean stream stops weighing a real 40-60 deg turn within one 30 Hz
frame as junk (BENCHMARKS.md).
eps is for frames up to `tuned_frame_s` apart (1/30 s); a longer frame weighs junk at eps x
(tuned_frame_s / dt)^2: within it a real joint turns further from every model's guess (a punching
elbow 70 deg in 67 ms), and at 15 frames/s the prior tuned at 30 Hz made the fast real clips up
to 2.4x raw RMSE (balanced; 1.7x scaled: BENCHMARKS.md, issue 15 thirteenth pass).
After `gate_max_frames` junk values in a row, or after a frame with no value, the next is taken as
it is. R = sigma^2 / confidence^2, and sigma is each track's own with `noise_memory_s`
(`_learn_noise`): a running median, over its channels, of the noise left in five values in a row
once a polynomial is taken out, scaling the configured sigma, so an engine quieter than the
configured one is not smoothed flat (a fixed sigma made a 1 deg engine's walk 1.75x raw RMSE) nor
a noisier one followed raw (BENCHMARKS.md). Also: no update where a
DoF is unobserved, and velocity decay where nothing was measured (joints stop; a coasting CV
model would fly off), faster for the agile models (time constant times (q_calm / q_m)^(1/4)).

Motion that repeats itself (`periodic`: gait, jumping jacks, running arms;
the periodic section below): each DoF's recent angles are kept, and its period is looked for
every PERIOD_REFRESH_S. Where one is found, the DoF's angle one (and two) periods back is a
second opinion: fused into every model's prior as a pseudo-measurement of variance
miss_var - R (miss_var: the running spread of measurements about it), divided by its belief =
evidence share x P(the swing still repeats) (`_periodic_prior`, a two-state Markov chain updated
by how the periodic guess and the motion models each predicted the value, so a swing that stops
is let go within frames); and a DoF without a value coasts to it (`_periodic_coast`) instead of
on its decaying rate. At 2-3 Hz a constant-velocity model can neither filter a swing below raw
nor guess it through a dropout; the periodic guess can (BENCHMARKS.md, issue 15). "A period
back" is the *local* period (`_follow_pace`): a person's pace wanders by 10-20 %, and a guess one
whole-window period back then misses a 2-3 Hz knee by ~17 deg; the local period is fitted by least
squares to the last PACE_TIME_S of values, and used only by as much as it is surely not noise.

A constant-acceleration model (state [angle, rate, acceleration], tried as the most agile
model) predicts a clean fast swing more closely, but at 30 Hz with 3 deg noise its acceleration
estimate is too noisy: it measured worse than constant-velocity models up to 1e5x (BENCHMARKS.md).

Published estimate: the combined posterior, or with `lookback_frames` N > 0 the look-back
estimate (`_lookback_kernel`): the posterior of N frames back, RTS-smoothed with the N newer ones
and carried forward at its smoothed rate, where the calm models lead: a steadier output, still
causal and on time. N frames of `tuned_frame_s` at most: at a lower frame rate, fewer frames.
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
AGILE_COAST_EXP = 0.25  # model m's coast time constant: coast_tau_s * (q_calm / q_m) ** this
PERIOD_REFRESH_S = 0.5  # a measured DoF looks for its period again this often
MISS_TIME_S = 0.5       # memory of the spread of measurements about the periodic guess
REPEAT_MAX_ODDS = 10.0  # one value changes the odds that a swing still repeats by at most this
REPEAT_SWITCH_HZ = 1.0  # expected starts and stops of a repeating swing per second
PRIOR_FLOOR = 0.1       # the periodic prior is never trusted more than 10x a measurement
PACE_TIME_S = 0.3       # memory of the phase misses the local period is fitted to
PACE_MAX_SHIFT = 0.25   # the local period stays within this share of the period found
PACE_MIN_RATE = 1.0     # rad/s: slower than this one period back, a value tells no phase
PACE_GATE = 3.0         # a value further than this many spreads from the guess tells no phase
PACE_SURE = 1.0         # the local period is used by as much as its shift exceeds this many stds
JUNK_PRIOR_VALUES = 50.0  # a track's learned junk rate starts at eps, worth this many values (default)
JUNK_FLOOR = 0.1          # ...and never falls below this share of eps (a long clean stream)
JUNK_INTERVAL_EXP = 2.0   # a frame dt apart, longer than tuned_frame_s: eps x (tuned_frame_s / dt)^this
# each slot's own measurement noise (`noise_memory_s` > 0; `_learn_noise`): per (slot, channel)
# its last NZ_HOLD values taken (a ring: NZ_Z, their times NZ_T, 1/confidence^2 NZ_W, the oldest
# at NZ_HEAD) and how many values it takes before its next sample (NZ_DUE); per slot (planes of
# `noise_slot`) the running median of the noise samples of all its channels (NS_MED, in units of
# each channel's configured R at confidence 1), how many samples it has seen (NS_K), and its last
# NZ_HOLD frame times (NS_T), weights (NS_W) and how many are held (NS_N): most channels take a
# value every frame, so their divided difference's weights are the slot's, found once a frame
# (`_noise_weights`)
NZ_HOLD = 4
NZ_Z, NZ_T, NZ_W, NZ_DUE, NZ_HEAD = 0, NZ_HOLD, 2 * NZ_HOLD, 3 * NZ_HOLD, 3 * NZ_HOLD + 1
NZ_LEN = 3 * NZ_HOLD + 2
NS_MED, NS_K, NS_T, NS_W, NS_N = 0, 1, 2, 2 + NZ_HOLD, 2 + 2 * NZ_HOLD
NS_LEN = 3 + 2 * NZ_HOLD
MEDIAN_CHI2_1 = 0.454936423119572  # median of a chi-square of 1 degree of freedom
NOISE_GAIN = 2.3328        # 1 / (2 x the density of log chi2_1 at its median): the median's step
NOISE_PRIOR_SAMPLES = 4.0  # the first steps are NOISE_GAIN / (this + samples seen): fast at first
NOISE_TAKE_EVERY = 2       # the channels that feed the estimate: every this many
NOISE_SPAN_S = 0.5         # values further apart than this tell motion more than noise
NOISE_RANGE = (0.01, 16.0)  # the learned R stays within these multiples of the configured one


def model_base(m: int) -> int:
    """First state plane of model m: planes +0, +1 x (angle, rate), +2..+4 the symmetric P
    (p00, p01, p11), +5 its probability (`MU`)."""
    return _HEAD + _PER_MODEL * m


@njit(cache=True, inline="always")
def _wrap(a: float) -> float:
    # (an angle already in range as it is: the float modulo was ~8 % of the step kernel)
    if -math.pi <= a < math.pi:
        return a
    return (a + math.pi) % (2.0 * math.pi) - math.pi


# --- periodic motion: each slot's recent angles and the period of a DoF -----------------------
#
# (In this file, not a module of its own: numba's on-disk cache of `_step_kernel` does not notice
# a change in another file it calls into.)
#
# A knee in a gait cycle, arms in jumping jacks, a running arm: much of human motion repeats. At
# 2-3 Hz a constant-velocity model can neither filter such a swing below raw nor guess it through
# a 1-6 frame dropout (up to 60 % of a period; no decaying-rate coast, even from the true state,
# beats holding the last value by more than 8 %: `bench/smoothing_gap_oracle.py`). The DoF's own
# recent past knows better: if its filtered angle repeats with period T, the angle at t is close
# to the angle at t - T.
#
# Per bank slot a ring of the filter's combined angle and its times (`history_push`,
# `history_at`). `estimate_period` resamples a DoF's last WINDOW_S seconds (LONG_WINDOW_S where
# nothing repeats in those) on a 30 Hz grid; the period is the first local maximum of the
# normalised autocorrelation, inside the lags searched (MIN_PERIOD_S to 2/3 of the window), that
# reaches MIN_EVIDENCE after the autocorrelation fell to DECORRELATED (a ramp or a slow drift
# correlates at every short lag). Its height is the evidence. The step kernel uses it as a prior
# and to coast (`_periodic_prior`, `_periodic_coast`).

WINDOW_S = 2.4          # history looked at for the period (periods up to 2/3 of it: >= 0.63 Hz)
LONG_WINDOW_S = 3.2     # ...and where nothing repeats in it, this much (>= 0.47 Hz: a slow swing)
MIN_PERIOD_S = 0.2      # faster than 5 Hz is not human motion, it is noise
HINT_RANGE = (0.75, 1.33)  # the period found last time is searched for again within these multiples
GRID_DT_S = 1.0 / 30.0  # the period is found on a 30 Hz grid (cost independent of the frame rate)
MIN_EVIDENCE = 0.6      # autocorrelation below this: no period; from it to FULL_EVIDENCE the
FULL_EVIDENCE = 0.9     #   periodic guess's share grows from 0 to 1
DECORRELATED = 0.0      # ... but only after the autocorrelation fell to this (half a period away)
HISTORY_LEN = 210       # entries per slot: LONG_WINDOW_S at up to ~65 fps
_MAX_GRID = int(LONG_WINDOW_S / GRID_DT_S) + 2
_BACK = 2 * _MAX_GRID + 1  # scratch: the grid, its running energies, then the history resampled
GRID_SCRATCH = _BACK + _MAX_GRID


GUESS_FRAME_S = 1.0 / 30.0
"""The frame interval `unobserved_guess_std_rad` is the uncertainty of a guess at: a guess every
half as long is worth half as much, so the pull per second is the same at 15 as at 60 Hz."""


@njit(cache=True, inline="always")
def _junk_scale(weighed: float, junk: float, prior: float) -> float:
    """A track's learned junk rate / eps from its counts (values weighed as possible junk, and
    those taken as junk / eps): eps worth `prior` values, never below JUNK_FLOOR."""
    return max((prior + junk) / (prior + weighed), JUNK_FLOOR)


@njit(cache=True, inline="always")
def _floor_agile(cbar, M, share):
    """Give the most agile of the M models at least `share` of the prior probabilities cbar,
    taking it from the others in proportion (in place). After a calm stretch the Markov chain
    leaves it ~0.3 %, and a real turn that the calm models miss by 10-20 sigma is then explained
    as junk sooner than by it: balanced's clean real rows read up to 1.20x raw (issue 15)."""
    if M < 2:
        return
    total = 0.0
    for t in range(M):
        total += cbar[t]
    want = share * total
    rest = total - cbar[M - 1]
    if cbar[M - 1] >= want or rest <= 0.0:
        return
    f = (total - want) / rest
    for t in range(M - 1):
        cbar[t] *= f
    cbar[M - 1] = want


@njit(cache=True, inline="always")
def _noise_scale(noise_slot, k, margin):
    """The R of slot k's learning channels as a multiple of their configured R: margin x the
    learned noise variance (`_learn_noise`), within NOISE_RANGE."""
    return min(max(margin * noise_slot[NS_MED, k] / MEDIAN_CHI2_1, NOISE_RANGE[0]), NOISE_RANGE[1])


@njit(cache=True, inline="always")
def _divided_difference_weights(ts, ws, cf):
    """cf[a] = 1 / prod_{b != a} (ts[a] - ts[b]): the weights of the divided difference of order
    NZ_HOLD over the NZ_HOLD + 1 times ts; returns its variance per unit R, sum cf^2 ws."""
    den = 0.0
    for a in range(NZ_HOLD + 1):
        prod = 1.0
        for b in range(NZ_HOLD + 1):
            if b != a:
                prod *= ts[a] - ts[b]
        cf[a] = 1.0 / prod
        den += cf[a] * cf[a] * ws[a]
    return den


@njit(cache=True)
def _noise_weights(noise_slot, k, t, w, ts, ws, cf):
    """The divided difference's weights cf for a value at time t (weight w) after slot k's last
    NZ_HOLD frames; returns its variance per unit R, 0 where the slot has not had NZ_HOLD
    frames within NOISE_SPAN_S (each channel then finds its own)."""
    if noise_slot[NS_N, k] < NZ_HOLD or t <= noise_slot[NS_T + NZ_HOLD - 1, k] \
            or t - noise_slot[NS_T, k] > NOISE_SPAN_S:
        return 0.0
    for a in range(NZ_HOLD):
        ts[a], ws[a] = noise_slot[NS_T + a, k], noise_slot[NS_W + a, k]
    ts[NZ_HOLD], ws[NZ_HOLD] = t, w
    return _divided_difference_weights(ts, ws, cf)


@njit(cache=True)
def _noise_frame(noise_slot, k, t, w):
    """Append the frame (time t, weight w) to slot k's last frames."""
    n = int(noise_slot[NS_N, k])
    if n > 0 and t <= noise_slot[NS_T + n - 1, k]:
        return
    if n == NZ_HOLD:
        for a in range(NZ_HOLD - 1):
            noise_slot[NS_T + a, k] = noise_slot[NS_T + a + 1, k]
            noise_slot[NS_W + a, k] = noise_slot[NS_W + a + 1, k]
        n -= 1
    noise_slot[NS_T + n, k], noise_slot[NS_W + n, k] = t, w
    noise_slot[NS_N, k] = n + 1


@njit(cache=True, inline="always")
def _learn_noise(noise, noise_slot, k, j, z, t, w, wrap, meas_var, floor_per_s, slot_den, cf_slot,
                 cf, ts, ws):
    """Take a value z of (slot k, channel j) at time t (weight w = 1 / confidence^2) into the
    slot's noise estimate. Once a value in NZ_HOLD + 1 (staggered over the channels, so no frame
    takes them all), with the NZ_HOLD values before it, the divided difference of order NZ_HOLD
    (what is left of smooth motion once a polynomial of that degree is taken out: at 30 Hz under
    0.1 deg for a 1 Hz knee swing, against 8 sigma of noise) is a sample of the noise,
    e = d^2 / var(d) in units of the channel's configured R at confidence 1 (a chi-square of 1
    dof times the slot's scale where the motion is smooth)."""
    head = int(noise[k, j, NZ_HEAD])
    due = noise[k, j, NZ_DUE]                   # values to go before the next sample
    newest, oldest = noise[k, j, NZ_T + _ring(head - 1, NZ_HOLD)], noise[k, j, NZ_T + head]
    if t <= newest or t - oldest > NOISE_SPAN_S:
        # a repeated stamp, or values too far apart (motion, not noise, over that long): the
        # values before this one make no sample; start over
        due = NZ_HOLD + j % (NZ_HOLD + 1)
    elif due <= 0.0:
        _noise_sample(noise, noise_slot, k, j, z, t, w, wrap, meas_var, floor_per_s, slot_den,
                      cf_slot, cf, ts, ws)
        due = NZ_HOLD + 1
    noise[k, j, NZ_Z + head], noise[k, j, NZ_T + head], noise[k, j, NZ_W + head] = z, t, w
    noise[k, j, NZ_HEAD] = _ring(head + 1, NZ_HOLD)
    noise[k, j, NZ_DUE] = due - 1.0


@njit(cache=True)
def _noise_sample(noise, noise_slot, k, j, z, t, w, wrap, meas_var, floor_per_s, slot_den, cf_slot,
                  cf, ts, ws):
    """The sample of `_learn_noise` from (slot k, channel j)'s NZ_HOLD values (a ring, oldest at
    its head) and z. The running median over all the slot's channels stands for the scale: a
    step of NOISE_GAIN / (NOISE_PRIOR_SAMPLES + samples) in log, never below NOISE_GAIN x
    floor_per_s x the time the values span, up when the sample is above it, down when below, so
    a sharp turn or a missed junk value moves it by one step at most. slot_den > 0: the slot's
    weights cf_slot (`_noise_weights`) serve a channel whose values are those of the slot's
    last frames; cf, ts, ws: scratch for a channel's own."""
    head = int(noise[k, j, NZ_HEAD])
    t_old = noise[k, j, NZ_T + head]
    if slot_den > 0.0 and t_old == noise_slot[NS_T, k] \
            and noise[k, j, NZ_T + _ring(head - 1, NZ_HOLD)] == noise_slot[NS_T + NZ_HOLD - 1, k]:
        den, use = slot_den, cf_slot            # the slot's frames: its weights
    else:
        for a in range(NZ_HOLD):
            e = _ring(head + a, NZ_HOLD)
            ts[a], ws[a] = noise[k, j, NZ_T + e], noise[k, j, NZ_W + e]
        ts[NZ_HOLD], ws[NZ_HOLD] = t, w
        den, use = _divided_difference_weights(ts, ws, cf), cf
    num = 0.0
    for a in range(NZ_HOLD):                    # relative to the newest value
        d = noise[k, j, NZ_Z + _ring(head + a, NZ_HOLD)] - z
        num += use[a] * (_wrap(d) if wrap else d)
    e = num * num / (den * meas_var)
    if e > 1e-9:                                # (a value the engine holds exactly still tells
        kk = noise_slot[NS_K, k]                #   nothing)
        step = NOISE_GAIN * max(1.0 / (NOISE_PRIOR_SAMPLES + kk), (t - t_old) * floor_per_s)
        f = math.exp(step)
        noise_slot[NS_MED, k] *= f if e > noise_slot[NS_MED, k] else 1.0 / f
        noise_slot[NS_K, k] = kk + 1.0


@njit(cache=True, inline="always")
def _ring(i: int, H: int) -> int:
    """i modulo H for i in [-H, 2H) (every ring index here): without the integer division of
    `%` (the period search reads the ring ~100 times per look)."""
    return i - H if i >= H else (i + H if i < 0 else i)


@njit(cache=True)
def history_push(hist_t, hist_x, hist_n, hist_head, s_x0, slots, t_state):
    """Append each slot's combined angle s_x0 (capacity, c) at its time t_state (capacity,) to
    the ring (hist_t (capacity, H), hist_x (capacity, c, H): a channel's past is contiguous, for
    the period search that reads ~100 entries of it; hist_n / hist_head (capacity,): valid
    entries and the next write position). A stamp not newer than the newest entry replaces it
    (a repeated or out-of-order frame)."""
    H = hist_t.shape[1]
    for i in range(slots.shape[0]):
        k = slots[i]
        n, head = hist_n[k], hist_head[k]
        if n > 0 and t_state[k] <= hist_t[k, _ring(head - 1, H)]:
            e = _ring(head - 1, H)
        else:
            e = head
            hist_head[k] = _ring(head + 1, H)
            hist_n[k] = min(n + 1, H)
        hist_t[k, e] = t_state[k]
        for j in range(hist_x.shape[1]):
            hist_x[k, j, e] = s_x0[k, j]


@njit(cache=True)
def history_at(hist_t, hist_x, n, head, k, j, tau, wrap):
    """(angle, rate) of slot k's channel j at time tau, linear between ring entries; (nan, nan)
    outside the ring."""
    H = hist_t.shape[1]
    if n < 2 or tau < hist_t[k, _ring(head - n, H)] or tau > hist_t[k, _ring(head - 1, H)]:
        return math.nan, math.nan
    lo, hi = 0, n - 1                       # entries oldest (0) to newest (n - 1): bisect for
    while hi - lo > 1:                      #   t[lo] <= tau <= t[hi], hi = lo + 1
        mid = (lo + hi) // 2
        if hist_t[k, _ring(head - n + mid, H)] <= tau:
            lo = mid
        else:
            hi = mid
    i0, i1 = _ring(head - n + lo, H), _ring(head - n + hi, H)
    t0, t1 = hist_t[k, i0], hist_t[k, i1]
    x0, d = hist_x[k, j, i0], hist_x[k, j, i1] - hist_x[k, j, i0]
    if wrap:
        d = _wrap(d)
    if t1 <= t0:
        return hist_x[k, j, i1], 0.0
    a = x0 + d * (tau - t0) / (t1 - t0)
    return (_wrap(a) if wrap else a), d / (t1 - t0)


@njit(cache=True)
def estimate_period(hist_t, hist_x, n, head, k, j, t_end, wrap, min_std, hint, grid):
    """(period s, evidence in [0, 1], mean squared difference between the history and itself a
    period later) of slot k's channel j from its history up to t_end: the first peak of the
    normalised autocorrelation at or above MIN_EVIDENCE (refined by a parabola); zeros when the
    DoF moved less than min_std or repeats nothing. hint: the period found last time (0: none),
    searched around first. grid: scratch array of at least GRID_SCRATCH floats.

    Over the last WINDOW_S, and where nothing repeats there (or the hint is too long for it)
    over LONG_WINDOW_S: a 0.5 Hz swing needs the longer one, but a swing whose pace wanders is
    found more sharply over the shorter (one window of 3.2 s: 3 Hz drifting swings 0.02-0.04x
    raw worse; BENCHMARKS.md issue 15)."""
    if n < 8:
        return 0.0, 0.0, 0.0
    H = hist_t.shape[1]
    span = t_end - hist_t[k, _ring(head - n, H)]
    back = grid[_BACK:]                 # the history resampled backwards from t_end, once for
    e = n - 1                           #   both windows (the long one extends the short one)
    while e > 0 and hist_t[k, _ring(head - n + e, H)] > t_end:
        e -= 1
    prev, have = math.nan, 0
    if hint <= 0.0 or HINT_RANGE[1] * hint < WINDOW_S * 2.0 / 3.0:   # (2/3: the longest lag searched)
        N = _grid_len(span, WINDOW_S)
        e, prev = _resample_back(hist_t, hist_x, n, head, k, j, t_end, wrap, back, 0, N, e, prev)
        have = N
        T, r, msd = _period_in_window(back, N, min_std, hint, grid)
        if r > 0.0 or span <= WINDOW_S:
            return T, r, msd
        hint = 0.0
    N = _grid_len(span, LONG_WINDOW_S)
    _resample_back(hist_t, hist_x, n, head, k, j, t_end, wrap, back, have, N, e, prev)
    return _period_in_window(back, N, min_std, hint, grid)


@njit(cache=True, inline="always")
def _grid_len(span: float, window: float) -> int:
    """Points of the 30 Hz grid over the last `window` seconds of a history `span` long."""
    return min(int((min(span, window)) / GRID_DT_S) + 1, _MAX_GRID)


@njit(cache=True)
def _resample_back(hist_t, hist_x, n, head, k, j, t_end, wrap, back, g_from, g_to, e, prev):
    """back[g] = slot k's channel j at t_end - g GRID_DT_S for g in g_from..g_to - 1, linear
    between ring entries (a circular channel unwrapped as it goes), going on from ring entry e
    (oldest 0) and the value before, prev (NaN: none); returns (e, prev) to go on from."""
    H = hist_t.shape[1]
    for g in range(g_from, g_to):
        tau = t_end - g * GRID_DT_S
        while e > 1 and hist_t[k, _ring(head - n + e - 1, H)] > tau:
            e -= 1
        i1, i0 = _ring(head - n + e, H), _ring(head - n + e - 1, H)
        t0, t1 = hist_t[k, i0], hist_t[k, i1]
        d = hist_x[k, j, i1] - hist_x[k, j, i0]
        if wrap:
            d = _wrap(d)
        a = 0.0 if t1 <= t0 else min(max((tau - t0) / (t1 - t0), 0.0), 1.0)
        x = hist_x[k, j, i0] + a * d
        if wrap and prev == prev:
            x = prev + _wrap(x - prev)
        back[g] = x
        prev = x
    return e, prev


@njit(cache=True)
def _period_in_window(back, N, min_std, hint, grid):
    """`estimate_period` over the newest N points of the resampled history `back` (newest
    first)."""
    if N < 2 * int(MIN_PERIOD_S / GRID_DT_S) + 2:
        return 0.0, 0.0, 0.0
    for g in range(N):                  # oldest first
        grid[g] = back[N - 1 - g]
    mean = 0.0
    for g in range(N):
        mean += grid[g]
    mean /= N
    var = 0.0
    for g in range(N):
        grid[g] -= mean
        var += grid[g] * grid[g]
    if var / N < min_std * min_std:
        return 0.0, 0.0, 0.0
    sq = grid[N:]                       # sq[g] = sum of grid[:g] ** 2: each lag's energies in O(1)
    sq[0] = 0.0
    for g in range(N):
        sq[g + 1] = sq[g] + grid[g] * grid[g]
    lo, hi = int(math.ceil(MIN_PERIOD_S / GRID_DT_S)), N - N // 3   # overlap >= half a period
    if hint > 0.0:                      # near the period found last time, if it is still there
        L0 = max(lo, int(HINT_RANGE[0] * hint / GRID_DT_S))
        L1 = min(hi, int(HINT_RANGE[1] * hint / GRID_DT_S) + 1)
        if L1 > L0 + 1:
            lowest = _autocorr(grid, sq, N, int(round(0.5 * hint / GRID_DT_S)))
            T, r, msd = _first_peak(grid, sq, N, L0, L1, lowest)
            if r > 0.0:
                return T, r, msd
    return _first_peak(grid, sq, N, lo, hi, 2.0)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _autocorr(grid, sq, N, L):
    """Normalised autocorrelation of grid[:N] (mean removed) at lag L. (The sum in any order,
    over two slices: vectorized, a third of the time of a look's ~60 lags in order; the result
    moves by ~1e-15 of itself.)"""
    a, b = grid[:N - L], grid[L:N]
    sxy = 0.0
    for g in range(N - L):
        sxy += a[g] * b[g]
    sxx, syy = sq[N - L], sq[N] - sq[L]
    return sxy / math.sqrt(sxx * syy) if sxx > 0.0 and syy > 0.0 else 0.0


@njit(cache=True)
def _first_peak(grid, sq, N, lo, hi, lowest):
    """(period s, autocorrelation, mean squared difference at that lag) of the first local
    maximum of the autocorrelation over lags lo..hi that reaches MIN_EVIDENCE after it fell to
    DECORRELATED (`lowest`: the least value seen before lo); zeros if none."""
    r_prev2 = r_prev = -2.0
    for L in range(lo, hi + 1):     # a maximum must be inside the range, not on its ends
        r = _autocorr(grid, sq, N, L)
        # a local maximum at L - 1 that is strong enough: the first repeat (a ramp or a slow
        # drift correlates at every short lag, so only after the signal decorrelated)
        if lo < L - 1 < hi and lowest <= DECORRELATED and r_prev >= MIN_EVIDENCE and r_prev >= r_prev2 \
                and r_prev >= r:
            den = r_prev2 - 2.0 * r_prev + r
            shift = 0.5 * (r_prev2 - r) / den if den < 0.0 else 0.0
            msd = 0.0                                   # how far a period back misses
            for g in range(N - L + 1):
                msd += (grid[g + L - 1] - grid[g]) ** 2
            return (L - 1 + shift) * GRID_DT_S, min(r_prev, 1.0), msd / (N - L + 1)
        if r > -2.0:
            lowest = min(lowest, r)
        r_prev2, r_prev = r_prev, r
    return 0.0, 0.0, 0.0


@njit(cache=True, inline="always")
def evidence_share(evidence: float) -> float:
    """How much the periodic guess is believed for a period's evidence (0..1)."""
    return min(max((evidence - MIN_EVIDENCE) / (FULL_EVIDENCE - MIN_EVIDENCE), 0.0), 1.0)


def new_history(capacity: int, channels: int) -> dict[str, np.ndarray]:
    """Empty rings and per-channel gap state for `capacity` slots."""
    return {"t": np.zeros((capacity, HISTORY_LEN)), "x": np.zeros((capacity, channels, HISTORY_LEN)),
            "n": np.zeros(capacity, dtype=np.int64), "head": np.zeros(capacity, dtype=np.int64),
            # per (slot, channel): the period last found and its evidence; the time of the last
            # history entry before the current gap (NaN while measured); when to look again
            # (`_refresh_period`); the variance of a measurement about the periodic guess; and
            # P(the swing still repeats) (`_periodic_prior`)
            "period": np.zeros((capacity, channels)), "evidence": np.zeros((capacity, channels)),
            "gap_from": np.full((capacity, channels), np.nan),
            "found_at": np.full((capacity, channels), np.nan), "miss_var": np.zeros((capacity, channels)),
            "repeats": np.zeros((capacity, channels)),
            # the local period (`_follow_pace`: a swing whose pace wanders is a few frames off a
            # whole-window period within a cycle or two): its least-squares sums, sum v (x one
            # period back - z) and sum v^2; the part of its shift the guess uses; and the shift
            # fitted, from the period found
            "pace": np.zeros((capacity, channels, 4))}


def grow_history(h: dict[str, np.ndarray], extra: int) -> None:
    """Add `extra` empty slots in place."""
    fresh = new_history(extra, h["x"].shape[1])
    for key in h:
        h[key] = np.concatenate([h[key], fresh[key]])


def reset_history(h: dict[str, np.ndarray], slots: np.ndarray) -> None:
    """Forget the past of `slots` (a new track in a reused slot)."""
    h["n"][slots] = 0
    h["head"][slots] = 0
    h["evidence"][slots] = 0.0
    h["gap_from"][slots] = np.nan
    h["found_at"][slots] = np.nan
    h["pace"][slots] = 0.0


# --- one filter step, compiled -----------------------------------------------------------------

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
def _refresh_period(k, j, wrap, min_std, R, hist_t, hist_x, hist_n, hist_head, period, evidence,
                    found_at, miss_var, repeats, pace, grid):
    """Look for (slot k, channel j)'s period in its history up to its newest entry
    (the periodic section above). A period found where there was none starts its miss variance
    (a measurement's spread about the periodic guess) from the history's own repeat error."""
    n, head = hist_n[k], hist_head[k]
    t_end = hist_t[k, _ring(head - 1, hist_t.shape[1])]
    had = evidence_share(evidence[k, j]) > 0.0
    local = period[k, j] + pace[k, j, 3]
    period[k, j], evidence[k, j], msd = estimate_period(hist_t, hist_x, n, head, k, j, t_end, wrap,
                                                        min_std, period[k, j] if had else 0.0, grid)
    # the next look in PERIOD_REFRESH_S, staggered over channels and slots (one slot's DoFs all
    # looking in the same frame would make that frame slow)
    # looking again after twice as long where nothing repeats
    found_at[k, j] = t_end - PERIOD_REFRESH_S * ((j + 3 * k) % 8) / 8.0
    if evidence[k, j] < MIN_EVIDENCE:
        found_at[k, j] += PERIOD_REFRESH_S
    if not had:
        miss_var[k, j] = msd + R
        repeats[k, j] = 0.5
        pace[k, j, 3] = 0.0              # (its least-squares sums fade within PACE_TIME_S)
    elif pace[k, j, 1] > 0.0:           # followed (`_follow_pace`): the local period goes on
        lim = PACE_MAX_SHIFT * period[k, j]  #   where it was
        moved = min(max(local - period[k, j], -lim), lim) - pace[k, j, 3]
        pace[k, j, 3] += moved
        pace[k, j, 2] += moved          # (the part used, until `_follow_pace` weighs it again)
    return t_end


@njit(cache=True)
def _periodic_guess(k, j, t, t_last, wrap, hist_t, hist_x, hist_n, hist_head, period, evidence, pace):
    """(angle, rate, share): the DoF one period before t (the mean with two periods before where
    the history reaches back that far: half the noise), read from history no newer than t_last,
    and how much to believe it (0: no period, or t - period is after t_last)."""
    w = evidence_share(evidence[k, j])
    T = period[k, j] + pace[k, j, 2]                    # the local period
    tau = t - T
    if w <= 0.0 or tau > t_last:
        return math.nan, math.nan, 0.0
    xp, vp = history_at(hist_t, hist_x, hist_n[k], hist_head[k], k, j, tau, wrap)
    if xp != xp:
        return math.nan, math.nan, 0.0
    x2, v2 = history_at(hist_t, hist_x, hist_n[k], hist_head[k], k, j, tau - T, wrap)
    if x2 == x2:                                        # two periods back too: half the noise
        d = x2 - xp
        if wrap:
            d = _wrap(d)
        xp += 0.5 * d
        if wrap:
            xp = _wrap(xp)
        vp = 0.5 * (vp + v2)
    return xp, vp, w


@njit(cache=True, inline="always")
def _follow_pace(mixed, cbar, M, k, j, t, dt, z, R, V, wrap, hist_t, hist_x, hist_n, hist_head,
                 period, pace):
    """Fit the local period to where, one period back, the DoF was where the values say it is
    now (for the next frames' guesses): a swing whose pace wanders drifts off a period found
    over the whole window within a cycle or two. Least squares over the last PACE_TIME_S of
    values on a flank (moving at least PACE_MIN_RATE one period back, the same way as the
    models expect now): the miss e = x(t - T) - z ~ v s for a shift s of T, with a prior
    pulling s to the period found (std PACE_MAX_SHIFT / 2 of it), within PACE_MAX_SHIFT."""
    keep = math.exp(-dt / PACE_TIME_S)
    pace[k, j, 0] *= keep
    pace[k, j, 1] *= keep
    T = period[k, j] + pace[k, j, 3]
    xq, vq = history_at(hist_t, hist_x, hist_n[k], hist_head[k], k, j, t - T, wrap)
    if xq != xq or abs(vq) < PACE_MIN_RATE:
        return
    v_now = 0.0
    for m in range(M):
        v_now += cbar[m] * mixed[m, 1]
    if v_now * vq <= 0.0:
        return
    e = xq - z                                          # x(t - T - s) ~ xq - vq s = z
    if wrap:
        e = _wrap(e)
    if e * e > PACE_GATE * PACE_GATE * (V + R):         # junk, or the swing went elsewhere
        return
    pace[k, j, 0] += vq * e
    pace[k, j, 1] += vq * vq
    lim = PACE_MAX_SHIFT * period[k, j]
    b0 = R / (0.25 * lim * lim)                         # the prior, as a sum of v^2
    step = (pace[k, j, 0] - b0 * pace[k, j, 3]) / (pace[k, j, 1] + b0)
    new = min(max(pace[k, j, 3] + step, -lim), lim)
    pace[k, j, 0] -= (new - pace[k, j, 3]) * pace[k, j, 1]    # the misses as at the new shift
    pace[k, j, 3] = new
    # an exact repeat's shift is noise about 0: the guess takes only what lies beyond it
    sure = PACE_SURE * math.sqrt(R / (pace[k, j, 1] + b0))
    pace[k, j, 2] = max(abs(new) - sure, 0.0) * (1.0 if new > 0.0 else -1.0)


@njit(cache=True)
def _periodic_prior(mixed, cbar, M, k, j, t, dt, z, R, wrap, clutter, hist_t, hist_x, hist_n,
                    hist_head, period, evidence, miss_var, repeats, pace, follow_pace):
    """Fuse the DoF's angle one period back into every model's prior (a pseudo-measurement of
    variance miss_var - R, divided by how much it is believed), before the real measurement z.
    Believed by the period's evidence times `repeats`, the probability that the swing still
    repeats: a two-state Markov chain updated by how well the periodic guess predicted z against
    how well the motion models did (each plus the junk density), so a swing that stops is let go
    within a few frames. Returns the guess (NaN: none)."""
    xp, vp, w = _periodic_guess(k, j, t, t, wrap, hist_t, hist_x, hist_n, hist_head, period, evidence,
                                pace)
    if w <= 0.0:
        return math.nan
    if follow_pace:
        _follow_pace(mixed, cbar, M, k, j, t, dt, z, R, max(miss_var[k, j], R), wrap, hist_t, hist_x,
                     hist_n, hist_head, period, pace)
    y = z - xp
    if wrap:
        y = _wrap(y)
    V = max(miss_var[k, j], R)
    l_rep = math.exp(-0.5 * y * y / V) / math.sqrt(2.0 * math.pi * V) + clutter + 1e-300
    l_cv = clutter + 1e-300
    for m in range(M):
        ym = z - mixed[m, 0]
        if wrap:
            ym = _wrap(ym)
        S = mixed[m, 2] + R
        l_cv += cbar[m] * math.exp(-0.5 * ym * ym / S) / math.sqrt(2.0 * math.pi * S)
    h = -math.expm1(-dt * REPEAT_SWITCH_HZ)
    p = repeats[k, j] * (1.0 - h) + (1.0 - repeats[k, j]) * h
    # one frame moves the odds by at most REPEAT_MAX_ODDS: a single junk value the agile model
    # half-explains must not end a swing, a few frames of a real stop do
    ratio = min(max(l_rep / l_cv, 1.0 / REPEAT_MAX_ODDS), REPEAT_MAX_ODDS)
    p = p * ratio / (p * ratio + 1.0 - p)
    repeats[k, j] = p
    wp = w * p
    if wp > 1e-3:
        Rp = max(miss_var[k, j] - R, PRIOR_FLOOR * R) / wp
        for m in range(M):
            d = xp - mixed[m, 0]
            if wrap:
                d = _wrap(d)
            _update(mixed[m], d, mixed[m, 2] + Rp, 1.0, wrap)
    return xp


@njit(cache=True)
def _periodic_coast(mixed, M, k, j, t, wrap, min_std, R, hist_t, hist_x, hist_n, hist_head, period,
                    evidence, gap_from, found_at, miss_var, repeats, pace, grid):
    """Move every model's coasted state of (slot k, channel j) toward the DoF's own angle and
    rate one period back, by the evidence that it repeats (the periodic section above). The
    period is looked for again at the gap's first frame; a gap longer than a period keeps
    coasting from where the periodic guess left it."""
    if gap_from[k, j] != gap_from[k, j]:                # first frame of this gap
        gap_from[k, j] = _refresh_period(k, j, wrap, min_std, R, hist_t, hist_x, hist_n, hist_head,
                                         period, evidence, found_at, miss_var, repeats, pace, grid)
    xp, vp, w = _periodic_guess(k, j, t, gap_from[k, j], wrap, hist_t, hist_x, hist_n, hist_head,
                                period, evidence, pace)
    if w <= 0.0 or repeats[k, j] < 0.5:                # no period, or the swing stopped
        return
    for m in range(M):
        d = xp - mixed[m, 0]
        if wrap:
            d = _wrap(d)
        mixed[m, 0] += w * d
        if wrap:
            mixed[m, 0] = _wrap(mixed[m, 0])
        mixed[m, 1] += w * (vp - mixed[m, 1])


@njit(cache=True)
def _step_kernel(s, active, accepted, t_state, t_meas, slots, t_s, z, confidence, observed,
                 q_models, switch_rate_hz, meas_var, lower, upper, wrap, inlier_scale, clutter,
                 gate_max_frames, inv_margin, coast_tau_s, periodic, follow_pace, hist_t, hist_x,
                 hist_n, hist_head, period, evidence, gap_from, found_at, miss_var, repeats, pace,
                 grid, junk, eps, junk_memory_s, junk_prior, noise, noise_slot, noise_learns,
                 noise_takes, noise_floor_per_s, noise_margin, tuned_frame_s, agile_prior_min,
                 guess_var):
    """One IMM step for every (slot, channel): mix, predict to t_s, update with z where observed,
    reweigh the models, project onto the box, combine. In place.

    s (rows, capacity, c) state planes; active (capacity, c) bool, the bank's limit flags;
    accepted (n, c) bool out; t_state, t_meas (capacity,) s; slots (n,); t_s, confidence (n,);
    z, observed (n, c); q_models (M, c) each model's process noise; per-channel meas_var, lower,
    upper, wrap,
    inlier_scale = (1 - eps) / sqrt(2 pi), clutter = eps / outlier range (c,) (0: no outliers).
    periodic: coast a DoF that repeats itself by its history one period back
    (the periodic section above: hist_* its ring; period, evidence, gap_from, found_at, miss_var
    (capacity, c) what it found; pace the local period (`_follow_pace`, with follow_pace);
    grid scratch), and take that guess as a prior where measured.
    junk (2, capacity): each slot's values weighed as possible junk, and those taken as junk / eps,
    forgotten over junk_memory_s (0: eps throughout), eps counting as junk_prior values; the
    slot's junk density is clutter times its learned rate / eps. The channels where noise_learns
    (c,) bool take meas_var times their slot's learned scale (`_learn_noise`: noise (capacity, c,
    NZ_LEN) each channel's last values taken, noise_slot (NS_LEN, capacity) the slot's running
    median, its samples and last frames, noise_floor_per_s the median's least step per second; R
    is noise_margin x the variance learned). tuned_frame_s > 0: at frame intervals dt longer than
    it, eps is scaled by (tuned_frame_s / dt)^JUNK_INTERVAL_EXP (the models' calibration to the
    frame rate: see the module docstring). agile_prior_min: where a value is weighed, the most
    agile model has at least this share of the models' prior probability (`_floor_agile`), scaled
    like eps at a longer frame (the agile model's own spread grows with it). guess_var (c,): where
    a channel is not observed but z holds the engine's guess of it, that guess updates each
    coasted model as a value of this variance (0: ignored), with no model weighing, junk or noise
    learning, and the channel is not accepted (it stays flagged predicted)."""
    n, c = z.shape
    M = q_models.shape[0]
    xm = np.empty((M, _N_STATE))   # each model's posterior x, P
    mu = np.empty(M)               # model probabilities
    cbar = np.empty(M)             # predicted model probabilities
    rs = np.empty(M)               # each model's probability that the value is genuine
    dm = np.empty(M)               # each model's angle as an offset from model 0's
    mixed = np.empty((M, _N_STATE))  # each model's mixed prior, then its posterior
    cf_slot = np.empty(NZ_HOLD + 1)  # the noise's divided-difference weights: the slot's,
    cf = np.empty(NZ_HOLD + 1)       #   a channel's own
    ts = np.empty(NZ_HOLD + 1)
    ws = np.empty(NZ_HOLD + 1)
    learns = noise_floor_per_s > 0.0  # (0: no channel takes part, `JointFilterBank`)
    for i in range(n):
        k = slots[i]
        dt = max(t_s[i] - t_state[k], 0.0)             # out-of-order or equal stamps: no motion
        p_stay = math.exp(-dt * switch_rate_hz) if M > 1 else 1.0  # Markov chain: stay, or
        p_move = (1.0 - p_stay) / max(M - 1, 1)                    #   go to any other
        any_accepted = False
        n_junk = 0                                     # this frame's values taken as junk, of
        n_weighed = 0                                  #   those weighed as possible junk
        # the junk rate this frame's values are weighed with / eps: the track's own (1: eps
        # throughout), less for a frame longer than tuned_frame_s (real turns land further)
        junk_weight = _junk_scale(junk[0, k], junk[1, k], junk_prior) if junk_memory_s > 0.0 else 1.0
        interval_scale = 1.0                           # (also the agile model's floor's)
        if dt > tuned_frame_s > 0.0:
            interval_scale = (tuned_frame_s / dt) ** JUNK_INTERVAL_EXP
            junk_weight *= interval_scale
        r_scale = _noise_scale(noise_slot, k, noise_margin)  # the track's own R / the configured
        w_frame = 1.0 / (confidence[i] * confidence[i])
        slot_den = _noise_weights(noise_slot, k, t_s[i], w_frame, ts, ws, cf_slot) if learns else 0.0
        for j in range(c):
            for m in range(M):
                b = _HEAD + _PER_MODEL * m
                for r in range(_N_STATE):
                    xm[m, r] = s[b + r, k, j]
                mu[m] = s[b + MU, k, j]
            # mixing: cbar_t = sum_i PI_it mu_i; model t starts from sum_i (PI_it mu_i / cbar_t) N_i.
            # PI_it = p_move + (p_stay - p_move) [i = t], so every model's mixture is one set of
            # sums over the models plus its own term: O(M), not O(M^2). Angles are offsets from
            # model 0's (on the circle if wrap); the second moments are taken about that angle.
            ref = xm[0, 0]
            s_mu = a0 = a1 = b00 = b01 = b11 = 0.0
            for m in range(M):
                d = xm[m, 0] - ref
                if wrap[j]:
                    d = _wrap(d)
                dm[m] = d
                u = mu[m]
                s_mu += u
                a0 += u * d
                a1 += u * xm[m, 1]
                b00 += u * (xm[m, 2] + d * d)
                b01 += u * (xm[m, 3] + d * xm[m, 1])
                b11 += u * (xm[m, 4] + xm[m, 1] * xm[m, 1])
            own = p_stay - p_move
            for t in range(M):
                u = own * mu[t]
                cb = p_move * s_mu + u
                cbar[t] = cb
                if cb > 0.0:
                    d, x1 = dm[t], xm[t, 1]
                    m0 = (p_move * a0 + u * d) / cb
                    m1 = (p_move * a1 + u * x1) / cb
                    p00 = (p_move * b00 + u * (xm[t, 2] + d * d)) / cb - m0 * m0
                    p01 = (p_move * b01 + u * (xm[t, 3] + d * x1)) / cb - m0 * m1
                    p11 = (p_move * b11 + u * (xm[t, 4] + x1 * x1)) / cb - m1 * m1
                    x0 = ref + m0
                    if wrap[j]:
                        x0 = _wrap(x0)
                    mixed[t, 0], mixed[t, 1], mixed[t, 2], mixed[t, 3], mixed[t, 4] = x0, m1, p00, p01, p11
                else:                                   # nothing flows into model t: as it was
                    for r in range(_N_STATE):
                        mixed[t, r] = xm[t, r]
                _predict(mixed[t], dt, q_models[t, j])
            zj = z[i, j]
            ok = False
            if observed[i, j] and math.isfinite(zj):
                if agile_prior_min > 0.0:
                    _floor_agile(cbar, M, agile_prior_min * interval_scale)
                var_j = meas_var[j] * r_scale if noise_learns[j] else meas_var[j]
                R = _meas_var(var_j, confidence[i], zj, lower[j], upper[j], inv_margin)
                # after gate_max_frames rejections in a row the value is taken as it is: a real
                # jump persists, an outlier does not
                trust = s[N_REJ, k, j] >= gate_max_frames or clutter[j] <= 0.0
                xp = math.nan
                if periodic and hist_n[k] > 0 and not trust:
                    # a DoF that repeats itself: its angle a period ago is a prior as well (not
                    # for a value taken as it is: the joint went somewhere else)
                    if not (t_s[i] - found_at[k, j] < PERIOD_REFRESH_S):
                        _refresh_period(k, j, wrap[j], math.sqrt(meas_var[j]), R, hist_t, hist_x,
                                        hist_n, hist_head, period, evidence, found_at, miss_var,
                                        repeats, pace, grid)
                    if evidence[k, j] > MIN_EVIDENCE:
                        xp = _periodic_prior(mixed, cbar, M, k, j, t_s[i], dt, zj, R, wrap[j],
                                             clutter[j], hist_t, hist_x, hist_n, hist_head, period,
                                             evidence, miss_var, repeats, pace, follow_pace)
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
                        L = l_in + clutter[j] * junk_weight
                        rs[t] = l_in / L                # P(genuine | y, model t)
                        _update(mixed[t], y, S, rs[t], wrap[j])
                        mu[t] = L * cbar[t]
                        total += mu[t]
                inlier = 0.0
                for t in range(M):
                    mu[t] /= total
                    inlier += mu[t] * rs[t]
                ok = inlier >= 0.5                      # taken as a measurement, not as junk
                if not trust:
                    n_junk += 0 if ok else 1
                    n_weighed += 1
                s[N_REJ, k, j] = 0.0 if ok else s[N_REJ, k, j] + 1.0
                gap_from[k, j] = math.nan
                if ok and noise_takes[j]:              # (junk would tell the noise too large)
                    _learn_noise(noise, noise_slot, k, j, zj, t_s[i], w_frame, wrap[j], meas_var[j],
                                 noise_floor_per_s, slot_den, cf_slot, cf, ts, ws)
                if ok and xp == xp:                     # the measurement's miss, a running mean
                    y = zj - xp
                    if wrap[j]:
                        y = _wrap(y)
                    miss_var[k, j] += -math.expm1(-dt / MISS_TIME_S) * (y * y - miss_var[k, j])
            else:
                for t in range(M):                      # unseen: x = D x, P = D P D',
                    mu[t] = cbar[t]                     #   D = diag(1, dec): joints stop;
                    # the angle moves by the decaying rate's integral, v tau (1 - dec), not a
                    # full v dt before it decays: a coasted fast swing overshot its reversal
                    tau = coast_tau_s * (q_models[0, j] / q_models[t, j]) ** AGILE_COAST_EXP
                    dec = math.exp(-dt / tau)
                    mixed[t, 0] -= (dt + tau * math.expm1(-dt / tau)) * mixed[t, 1]
                    if wrap[j]:
                        mixed[t, 0] = _wrap(mixed[t, 0])
                    mixed[t, 1] *= dec
                    mixed[t, 3] *= dec
                    mixed[t, 4] *= dec * dec
                if periodic and hist_n[k] > 0:
                    _periodic_coast(mixed, M, k, j, t_s[i], wrap[j], math.sqrt(meas_var[j]),
                                    meas_var[j], hist_t, hist_x, hist_n, hist_head, period, evidence,
                                    gap_from, found_at, miss_var, repeats, pace, grid)
                gv = guess_var[j]
                if gv > 0.0 and math.isfinite(zj) and dt > 0.0:
                    # the engine's guess of an angle it did not see: a weak pull, no model
                    # weighing; its variance is per GUESS_FRAME_S, so the pull per second does
                    # not depend on the frame rate
                    g = gv * GUESS_FRAME_S / min(dt, 4.0 * GUESS_FRAME_S)
                    for t in range(M):
                        y = zj - mixed[t, 0]
                        if wrap[j]:
                            y = _wrap(y)
                        _update(mixed[t], y, mixed[t, 2] + g, 1.0, wrap[j])
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
        if junk_memory_s > 0.0:                        # counts that forget over junk_memory_s
            fade = math.exp(-dt / junk_memory_s)
            junk[0, k] = junk[0, k] * fade + n_weighed
            junk[1, k] = junk[1, k] * fade + n_junk / eps
        if learns:
            _noise_frame(noise_slot, k, t_s[i], w_frame)
        t_state[k] = max(t_s[i], t_state[k])
        if any_accepted:
            t_meas[k] = t_state[k]


@njit(cache=True)
def _lookback_kernel(s, lb, lb_t, lb_n, pub, t_state, slots, measured, active, log_q, n_calm,
                     lower, upper, wrap, gate_sigma, span_s):
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
    measured (len(slots), c) bool: the channels that took a measurement in this step. span_s > 0:
    the entries used reach no further back than that (at 15 frames/s two frames back is 133 ms,
    and the carry-forward over it read 0.05x raw worse on the real clips than one)."""
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
        if span_s > 0.0:                                # no further back than span_s
            while n > 1 and t_state[k] - lb_t[W - n, k] > span_s:
                n -= 1
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
    project, combine) for a batch of slots at once. noise (slot, channel) and noise_slot (per
    slot): each slot's own measurement noise level (`_learn_noise`).
    """

    def __init__(self, q: np.ndarray, meas_std: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 wrap: np.ndarray, outlier_rate: float, outlier_range: np.ndarray | float,
                 gate_max_frames: int, limit_margin: float, unseen_std: np.ndarray | float = 0.5,
                 coast_tau_s: float = 0.15,
                 q_mult: np.ndarray | tuple[float, ...] = (1.0,), switch_rate_hz: float = 0.1,
                 lookback_frames: int = 0, lookback_gate_sigma: float = 2.0,
                 coast_periodic: bool = False, follow_pace: bool = False, capacity: int = 16,
                 outlier_memory_s: float = 0.0, outlier_prior_values: float = JUNK_PRIOR_VALUES,
                 noise_memory_s: float = 0.0,
                 noise_channels: int | None = None, noise_margin: float = 1.0,
                 tuned_frame_s: float = 0.0, agile_prior_min: float = 0.0, guess_std: float = 0.0):
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
        self.eps = eps
        # the frame interval the tuning is for (0: any): eps is for frames this long or shorter,
        # and the look-back spans no more than lookback_frames + 0.5 of them
        self.tuned_frame_s = float(tuned_frame_s)
        # each slot's own junk rate (`outlier_memory_s` > 0): its values weighed as possible junk,
        # and those taken as junk / eps, both forgotten over outlier_memory_s; eps counts as
        # outlier_prior_values values (more: a track learns its rate more slowly)
        self.junk = np.zeros((2, capacity))
        self.outlier_memory_s = float(outlier_memory_s)
        self.outlier_prior_values = float(outlier_prior_values)
        # each slot's own R (`noise_memory_s` > 0: `_learn_noise`): one scale on meas_std,
        # learned from the first `noise_channels` channels (None: all) and applied to them, R
        # being noise_margin x the noise variance learned
        self.noise_memory_s = float(noise_memory_s)
        self.noise_margin = float(noise_margin)
        c = self.q.shape[0]
        n_learn = c if noise_channels is None else int(noise_channels)
        self.noise_learns = np.arange(c) < (n_learn if self.noise_memory_s > 0.0 else 0)
        # every other one feeds it: the scale is the slot's, and half the channels give plenty
        # of samples (one every NZ_HOLD + 1 values each) for half the cost
        self.noise_takes = self.noise_learns & (np.arange(c) % NOISE_TAKE_EVERY == 0)
        n_takes = int(self.noise_takes.sum())
        self.noise_floor_per_s = (1.0 / (self.noise_memory_s * max(n_takes, 1))
                                  if self.noise_memory_s > 0.0 else 0.0)
        self.noise = self._fresh_noise(capacity)
        self.noise_slot = self._fresh_noise_slot(capacity)
        self.coast_tau_s = float(coast_tau_s)
        # (M, c) each model's spectral density: q times its multiple (one per model, or per
        # model and channel), calm to agile
        mult = np.asarray(q_mult, dtype=np.float64)
        self.q_models = np.ascontiguousarray(self.q * (mult[:, None] if mult.ndim == 1 else mult))
        self.switch_rate_hz = float(switch_rate_hz)    # expected model switches per second
        self.agile_prior_min = float(agile_prior_min)  # the agile model's least prior share
        self.unseen_var = np.square(np.broadcast_to(np.asarray(unseen_std, dtype=np.float64), self.q.shape))
        self.guess_var = np.full(self.q.shape, float(guess_std) ** 2)
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
        self.lookback_span_s = (self.lookback_frames + 0.5) * self.tuned_frame_s
        self.log_q = np.ascontiguousarray(np.log(self.q_models))
        self.lb = np.zeros((self.lookback_frames + 1, 7, capacity, c))
        self.lb_t = np.zeros((self.lookback_frames + 1, capacity))
        self.lb_n = np.zeros(capacity, dtype=np.int64)
        self.pub = np.zeros((3, capacity, c))
        # each slot's recent angles, for coasting a DoF that repeats itself (the periodic section)
        self.coast_periodic = bool(coast_periodic)
        self.follow_pace = bool(follow_pace)
        self.hist = new_history(capacity, c)
        self._grid = np.empty(GRID_SCRATCH)

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
        self.junk = np.concatenate([self.junk, np.zeros((2, extra))], axis=1)
        self.noise = np.concatenate([self.noise, self._fresh_noise(extra)])
        self.noise_slot = np.concatenate([self.noise_slot, self._fresh_noise_slot(extra)], axis=1)
        self.pub = np.concatenate([self.pub, np.zeros((3, extra, self.channels))], axis=1)
        grow_history(self.hist, extra)

    def _fresh_noise(self, n: int) -> np.ndarray:
        """(n, c, NZ_LEN) the noise state of new slots' channels: no values (times -inf), so the
        first value starts the channel over (`_learn_noise` sets when its first sample is due)."""
        fresh = np.zeros((n, self.q.shape[0], NZ_LEN))
        fresh[..., NZ_T:NZ_T + NZ_HOLD] = -np.inf
        return fresh

    def _fresh_noise_slot(self, n: int) -> np.ndarray:
        """(NS_LEN, n) the noise state of new slots: the median at the configured R, nothing seen."""
        fresh = np.zeros((NS_LEN, n))
        fresh[NS_MED] = MEDIAN_CHI2_1 / self.noise_margin
        return fresh

    def noise_std(self, slots: np.ndarray) -> np.ndarray:
        """(n, c) the std of a full-confidence value each slot's channels are weighed with now:
        meas_std, times the square root of the slot's learned scale where a channel learns."""
        scale = np.array([_noise_scale(self.noise_slot, k, self.noise_margin)
                          for k in np.atleast_1d(slots)])
        return np.sqrt(np.where(self.noise_learns, scale[:, None], 1.0) * self.meas_var)

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
        self.junk[:, slots] = 0.0
        self.noise[slots] = self._fresh_noise(len(slots))
        self.noise_slot[:, slots] = self._fresh_noise_slot(len(slots))
        reset_history(self.hist, slots)
        self._publish(slots, observed)

    def _publish(self, slots: np.ndarray, measured: np.ndarray) -> None:
        """The look-back estimate of `slots` from their newest posterior (lookback_frames > 0);
        measured (n, c) bool: the channels that took a measurement this step. Also appends the
        posterior angle to the slots' history (periodic coasting)."""
        if self.coast_periodic:
            h = self.hist
            history_push(h["t"], h["x"], h["n"], h["head"], self.s[X0],
                         np.ascontiguousarray(slots, dtype=np.int64), self.t_s)
        if self.lookback_frames:
            _lookback_kernel(self.s, self.lb, self.lb_t, self.lb_n, self.pub, self.t_s,
                             np.ascontiguousarray(slots, dtype=np.int64),
                             np.ascontiguousarray(measured, dtype=np.bool_), self.active, self.log_q,
                             (self.q_models.shape[0] + 1) // 2, self.lower, self.upper, self.wrap,
                             self.lookback_gate_sigma, self.lookback_span_s)

    def step(self, slots: np.ndarray, t_s: np.ndarray, z: np.ndarray, confidence: np.ndarray,
             observed: np.ndarray) -> np.ndarray:
        """Predict to t_s (n,) s, then update with z (n, c) where `observed` (n, c) bool.
        confidence (n,) in (0, 1] scales R. Returns accepted (n, c) bool (False = gated/unseen)."""
        accepted = np.empty((len(slots), self.channels), dtype=bool)
        h = self.hist
        _step_kernel(self.s, self.active, accepted, self.t_s, self.t_meas_s,
                     np.ascontiguousarray(slots, dtype=np.int64),
                     np.ascontiguousarray(t_s, dtype=np.float64),
                     np.ascontiguousarray(z, dtype=np.float64),
                     np.ascontiguousarray(confidence, dtype=np.float64),
                     np.ascontiguousarray(observed, dtype=np.bool_),
                     self.q_models, self.switch_rate_hz, self.meas_var, self.lower,
                     self.upper, self.wrap, self.inlier_scale, self.clutter,
                     float(self.gate_max_frames), 1.0 / self.limit_margin, self.coast_tau_s,
                     self.coast_periodic, self.follow_pace, h["t"], h["x"], h["n"], h["head"],
                     h["period"], h["evidence"], h["gap_from"], h["found_at"], h["miss_var"],
                     h["repeats"], h["pace"], self._grid, self.junk, max(self.eps, 1e-12),
                     self.outlier_memory_s, self.outlier_prior_values, self.noise, self.noise_slot,
                     self.noise_learns, self.noise_takes, self.noise_floor_per_s, self.noise_margin,
                     self.tuned_frame_s, self.agile_prior_min, self.guess_var)
        self._publish(slots, accepted)
        return accepted

    def state(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The published (angle (n, c), rate (n, c), limit_active (n, c) bool) of slots: the
        look-back estimate with lookback_frames > 0, else the filtered one."""
        if self.lookback_frames:
            pub = self.pub[:, slots]                    # (one gather, not three)
            return pub[0], pub[1], pub[2] > 0.5
        return self.s[X0, slots], self.s[X1, slots], self.active[slots]

    def junk_rate(self, slots: np.ndarray) -> np.ndarray:
        """(n,) the probability of junk each slot's values are weighed with now: outlier_rate,
        or with outlier_memory_s the rate learned from the slot's own values (as `_step_kernel`),
        at frames up to tuned_frame_s apart (a longer one scales it down)."""
        if self.outlier_memory_s <= 0.0:
            return np.full(len(slots), self.eps)
        return self.eps * np.array([_junk_scale(w, j, self.outlier_prior_values) for w, j in self.junk[:, slots].T])

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
