"""Settings of the joint-angle smoother (owner: smoothing).

One knob for intent: `preset` ('vr' low lag, 'balanced', 'analysis' smooth) sets a
`responsiveness` in [0, 1] that picks the process noise of the calmest constant-velocity model on
a log scale (the agile ones have up to `maneuver_q_ratio` times more: tracking/joint_filter.py);
`responsiveness` overrides the preset, `per_dof` overrides single DoFs by name.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from stream.config_base import StrictModel

PRESET_RESPONSIVENESS: dict[str, float] = {"vr": 0.35, "balanced": 0.35, "analysis": 0.15}
"""responsiveness of each preset; 0 = smoothest, 1 = follows the measurements almost raw. balanced
shares vr's filter and differs in its noise margin only (PRESET_NOISE_MARGIN)."""
PRESET_Q_RATIO: dict[str, float] = {"vr": 1.0e4, "balanced": 1.0e4, "analysis": 2.5e4}
"""maneuver_q_ratio of each preset: analysis's calm model is calmer, so its most agile one needs a
larger multiple to follow a 3 Hz swing (about the agile model of vr; issue 15, BENCHMARKS.md)."""
PRESET_OUTLIER_PRIOR_VALUES: dict[str, float] = {"vr": 50.0, "balanced": 50.0, "analysis": 1000.0}
"""outlier_rate_prior_values of each preset: how many of a person's values (a whole person gives
~46 a frame) the prior outlier_rate is worth against what their own values show. vr and balanced
learn within a frame or two, analysis over ~20 frames (0.7 s at 30 Hz). Learned that fast, a
calm filter takes the 30 deg outlier at the turn of a 2 Hz swing 0.77 s into a clean track for
motion (issue 15's known answer: balanced's old responsiveness 0.25 with four models, 15 deg
off); at vr's responsiveness 0.35 it stays junk (0.5 deg off). balanced learned over ~20 frames
with 0.25 until the sixteenth pass, and at 15 frames/s (the multi-person default's pose rate can
be this low) read up to 1.56x raw RMSE on fast real motion; with vr's filter 1.12x (BENCHMARKS.md,
issue 15 fourteenth and sixteenth passes)."""
PRESET_MANEUVER_PRIOR_MIN: dict[str, float] = {"vr": 0.0, "balanced": 0.0, "analysis": 0.02}
"""maneuver_prior_min of each preset: the most agile model's least prior share where a value is
weighed. analysis, which learns its junk rate slowly: every clean real clip at 30 Hz reads better
(multi_p0 1.10 -> 1.04x raw, worst 1.20 -> 1.17); 0.05 gained more there but let junk through on
the synthetic streams. vr and balanced learn their junk rate within a frame or two; with a floor
of 0.02 the known answer's outlier drags them 10-11 deg (0.5 without; issue 15, BENCHMARKS.md
fourteenth and sixteenth passes)."""
PRESET_NOISE_MARGIN: dict[str, float] = {"vr": 1.25, "balanced": 1.5, "analysis": 1.5}
"""meas_noise_margin of each preset: R is this x the noise variance learned. 1.0 is the least
RMSE on most rows, but steadier output needs more: balanced's walking jitter read 0.28x raw at
1.0 (issue 15's target 0.25x), and vr at 1.0 lost to One Euro on one real clip. balanced is vr's
filter with this margin 1.5 instead of 1.25: walking jitter 0.23x raw, vr 0.25x (BENCHMARKS.md)."""
PRESET_MODELS_LOOKBACK: dict[str, tuple[int, int]] = {"vr": (5, 0), "balanced": (5, 0), "analysis": (4, 0)}
"""(motion_models, lookback_frames) of each preset. vr published the look-back estimate (2 frames)
to meet its walking jitter target (0.3x raw); with each person's noise level and junk rate learned
since, its filtered estimate meets it alone (0.25x), and the look-back's constant-rate carry-forward
cost the real clips: off, the real rows at 15-30 Hz read better (clean 30 Hz worst 1.14 -> 1.12x
raw, mean 0.94 -> 0.90; 15 frames/s worst 1.20 -> 1.12x), the swings no worse. Its fifth model
keeps a walking swing in the calm half: walking jitter 0.25x with five, 0.27x with four (issue 15,
BENCHMARKS.md fifteenth pass). balanced shares vr's five."""

# white-noise-acceleration spectral density (rad^2/s^3) at responsiveness 0 and 1
_JOINT_Q_RANGE = (0.01, 100.0)
# the same for the root translation (m^2/s^3)
_TRANS_Q_RANGE = (1.0e-4, 1.0)


class DofOverride(StrictModel):
    """Per-DoF tuning; None keeps the stream-wide value."""
    responsiveness: float | None = Field(None, ge=0.0, le=1.0)
    meas_noise_rad: float | None = Field(None, gt=0.0)


class SmoothingConfig(StrictModel):
    enabled: bool = True
    preset: Literal["vr", "balanced", "analysis"] = "balanced"
    responsiveness: float | None = Field(None, ge=0.0, le=1.0)
    """Overrides the preset: 0 = smoothest, 1 = least lag."""
    meas_noise_rad: float = Field(0.055, gt=0.0)
    """Std of a full-confidence engine angle (radians); R = meas_noise_rad^2 / confidence^2. With
    meas_noise_memory_s > 0 the value each person starts from."""
    meas_noise_memory_s: float = Field(2.0, ge=0.0)
    """> 0: each person's noise level is learned from their own values (the running median, over
    all DoFs, of what is left of the motion once a polynomial is taken out of five values in a
    row) over about this long, starting from meas_noise_rad: it scales meas_noise_rad (and the
    per_dof values) of that person. With a fixed R an engine 3x quieter than meas_noise_rad was
    smoothed to up to 1.75x raw RMSE on a walk and 3x on a real clip with fast turns (issue 15,
    BENCHMARKS.md). 0: meas_noise_rad throughout."""
    meas_noise_margin: float | None = Field(None, gt=0.0)
    """None = the preset's. R = this x the noise variance learned: above 1 smooths beyond the
    least-RMSE weighting, for a steadier output."""
    per_dof: dict[str, DofOverride] = Field(default_factory=dict)
    """DoF name (engines.skel.dofs.DOF_NAMES) -> override."""
    outlier_rate: float = Field(0.02, ge=0.0, lt=1.0)
    """Prior probability that one DoF's value in one frame is junk (a mis-detected limb). Each
    motion model weighs 'a measurement it predicted' against 'junk spread over outlier_range_rad':
    a value no model explains is skipped, one the agile model explains is a real fast move."""
    outlier_rate_memory_s: float = Field(10.0, ge=0.0)
    """> 0: outlier_rate is a prior, and each person's own rate is learned from the share of their
    values taken as junk over about this long (never below a tenth of outlier_rate; every preset
    learns it, at the pace of its outlier_rate_prior_values); 0: outlier_rate throughout.
    Learned, a clean stream stops weighing fast turns as junk (real motion at 30 Hz without junk:
    vr up to 1.27x raw RMSE with the rate fixed, 1.15x learned) and a noisy one keeps its guard
    (issue 15, BENCHMARKS.md)."""
    outlier_rate_prior_values: float | None = Field(None, gt=0.0)
    """None = the preset's. With outlier_rate_memory_s > 0: outlier_rate counts as this many of a
    person's values against the share of their own taken as junk, so more learns more slowly
    (safer at a track's start, slower to follow a clean stream's fast turns)."""
    tuned_fps: float = Field(30.0, ge=0.0)
    """The lowest frame rate the presets are tuned for (they hold from 30 to 60 Hz). At a lower
    pose rate (the multi-person default runs at 15-25 frames/s on 2 cores) a frame further apart
    weighs junk at outlier_rate x (its interval x this)^-2, since within it a real joint turns
    further from every model's guess, and the look-back spans no more than lookback_frames + 0.5
    of this rate's frames. At 15 frames/s the 30 Hz tuning read up to 2.4x raw RMSE on real fast
    motion (balanced), 1.67x (vr) (issue 15, BENCHMARKS.md). 0: the same at any frame rate."""
    outlier_range_rad: float = Field(1.0, gt=0.0)
    """Spread of junk values (radians): the outlier density is outlier_rate / outlier_range_rad."""
    motion_models: int | None = Field(None, ge=1, le=6)
    """None = the preset's. Constant-velocity models the IMM filter runs side by side, from calm to agile (1 = a
    single Kalman filter): more models follow a wider range of speeds, each costs one more
    filter per DoF."""
    maneuver_q_ratio: float | None = Field(None, ge=1.0)
    """None = the preset's. Process noise of the most agile constant-velocity model / that of the calmest one; the
    models between are spaced geometrically. The filter holds still with the calm one and
    follows a reach with the agile one."""
    maneuver_switch_rate_hz: float = Field(0.3, gt=0.0)
    """Expected switches between calm and agile motion per second (the IMM's Markov
    transition): lower trusts the current model longer."""
    maneuver_prior_min: float | None = Field(None, ge=0.0, lt=1.0)
    """None = the preset's. Where a value is weighed, the most agile model has at least this share
    of the models' prior probability: after a calm stretch the Markov chain (maneuver_switch_rate_hz)
    leaves it so little that a real fast turn the calm models miss is taken for junk rather than
    for motion. 0: the chain's own."""
    unobserved_guess_std_rad: float = Field(0.8, ge=0.0)
    """The engine's value of an angle it did not observe (dof_observed False: a limb out of
    sight or pointing at the camera) pulls the held estimate as a measurement this uncertain
    (rad, for one guess every 1/30 s: at 60 Hz each counts half as much, so the pull per second
    is the same at any frame rate); the angle stays flagged predicted. A person with nothing
    observed takes no value. 0: ignored, the estimate is held."""
    gate_max_frames: int = Field(1, ge=0)
    """After this many consecutive rejections (or after a frame without a measurement) a DoF takes
    the measurement as it is: outliers are single frames, a real jump persists."""
    limit_margin_rad: float = Field(0.05, gt=0.0)
    """Measurements this far outside a joint limit get 2x the variance; it grows quadratically."""
    confidence_floor: float = Field(0.1, gt=0.0, le=1.0)
    """Lowest confidence used in R, so R stays finite."""
    score_full_trust: float = Field(0.5, gt=0.0, le=1.0)
    """Detection score at and above which the box is trusted fully (R not inflated by the score)."""
    max_coast_s: float = Field(0.5, gt=0.0)
    """Persons without a fresh measurement (no pose, or a pose with nothing observed) are
    predicted for at most this long after their last accepted one, then output without pose; a
    track whose last accepted measurement is older than this restarts from its next one."""
    coast_velocity_time_constant_s: float = Field(0.07, gt=0.0)
    """Unmeasured DoFs (coasting, unseen, gated) lose velocity with this time constant: joints stop."""
    periodic_coast: bool = True
    """A DoF that repeats itself (a gait cycle, jumping jacks; its period found from its own last
    2.4 s, or 3.2 s for a slow swing, tracking/joint_filter.py) takes its angle one and two
    periods back as a prior, and coasts through a gap along it. Off, or where nothing repeats,
    it coasts on its decaying rate."""
    periodic_pace: bool = True
    """...one *local* period back: a swing whose pace wanders (a person's does, by 10-20 %) drifts
    off the period found over 2.4 s within a cycle or two; the local period is fitted to the
    last 0.3 s of values (tracking/joint_filter.py `_follow_pace`). Off: the period found."""
    betas_time_constant_s: float = Field(1.0, gt=0.0)
    """Memory of the betas running mean: a plain mean at first, never slower than an EMA of this
    time constant, so a bad first estimate is forgotten within about this long."""
    betas_huber_sigma: float = Field(0.3, gt=0.0)
    """Betas residuals beyond this many units are down-weighted (Huber) as outliers."""
    trans_meas_noise_m: float = Field(0.02, gt=0.0)
    """Std of the engine's root translation across the image (x, y), metres."""
    trans_depth_noise_m: float = Field(0.10, gt=0.0)
    """Std of the engine's root depth (z), metres; depth from one image is the weakest axis."""
    trans_outlier_range_m: float = Field(2.0, gt=0.0)
    """Spread of junk root translations (metres), as outlier_range_rad: a jump of metres in one
    frame is skipped."""
    lookback_frames: int | None = Field(None, ge=0, le=8)
    """None = the preset's (0 in every preset). 0 = publish the filtered estimate. N > 0: publish
    the estimate of N frames back, RTS-smoothed with the N newer measurements and carried forward
    to this frame at its smoothed rate, where the calm models lead: still causal and on time
    (nothing is held back), a steadier rate, so less jitter for some RMSE on fast real motion
    (BENCHMARKS.md, issue 15). No further back than N + 0.5 frames at tuned_fps: at a lower pose
    rate, fewer frames."""
    lookback_gate_sigma: float = Field(2.0, gt=0.0)
    """The look-back estimate gives way to the filtered one as it departs from it by more than
    this many of the filter's standard deviations (a kink or a turn the carry-forward misses)."""
    fixed_lag_frames: int = Field(0, ge=0, le=120)
    """0 = causal (live). N > 0: fixed-lag RTS smoothing over N frames; output is N frames late."""

    @field_validator("per_dof")
    @classmethod
    def _known_dofs(cls, v: dict[str, DofOverride]) -> dict[str, DofOverride]:
        from engines.skel.dofs import DOF_NAMES

        unknown = sorted(set(v) - set(DOF_NAMES))
        if unknown:
            raise ValueError(f"smoothing.per_dof: unknown DoF name(s) {unknown}; "
                             f"use names from engines/skel/dofs.py, e.g. 'knee_angle_r'")
        return v

    @property
    def effective_motion_models(self) -> int:
        return PRESET_MODELS_LOOKBACK[self.preset][0] if self.motion_models is None else self.motion_models

    @property
    def effective_outlier_prior_values(self) -> float:
        return (PRESET_OUTLIER_PRIOR_VALUES[self.preset] if self.outlier_rate_prior_values is None
                else self.outlier_rate_prior_values)

    @property
    def effective_maneuver_prior_min(self) -> float:
        return PRESET_MANEUVER_PRIOR_MIN[self.preset] if self.maneuver_prior_min is None else self.maneuver_prior_min

    @property
    def effective_noise_margin(self) -> float:
        return PRESET_NOISE_MARGIN[self.preset] if self.meas_noise_margin is None else self.meas_noise_margin

    @property
    def effective_lookback_frames(self) -> int:
        return PRESET_MODELS_LOOKBACK[self.preset][1] if self.lookback_frames is None else self.lookback_frames

    @property
    def effective_responsiveness(self) -> float:
        return PRESET_RESPONSIVENESS[self.preset] if self.responsiveness is None else self.responsiveness

    def joint_process_noise(self) -> np.ndarray:
        """(46,) float64 white-noise-acceleration spectral density per DoF, rad^2/s^3."""
        from engines.skel.dofs import DOF_INDEX, NUM_DOFS

        r = np.full(NUM_DOFS, self.effective_responsiveness)
        for name, o in self.per_dof.items():
            if o.responsiveness is not None:
                r[DOF_INDEX[name]] = o.responsiveness
        return _log_interp(_JOINT_Q_RANGE, r)

    def model_q_multipliers(self) -> np.ndarray:
        """(motion_models,) each model's process noise as a multiple of the calmest one's."""
        ratio = PRESET_Q_RATIO[self.preset] if self.maneuver_q_ratio is None else self.maneuver_q_ratio
        return ratio ** np.linspace(0.0, 1.0, self.effective_motion_models)

    def joint_meas_noise(self) -> np.ndarray:
        """(46,) float64 measurement std per DoF at full confidence, radians."""
        from engines.skel.dofs import DOF_INDEX, NUM_DOFS

        s = np.full(NUM_DOFS, self.meas_noise_rad)
        for name, o in self.per_dof.items():
            if o.meas_noise_rad is not None:
                s[DOF_INDEX[name]] = o.meas_noise_rad
        return s

    def trans_process_noise(self) -> float:
        """White-noise-acceleration spectral density of the root translation, m^2/s^3."""
        return float(_log_interp(_TRANS_Q_RANGE, np.array(self.effective_responsiveness)))


def _log_interp(lo_hi: tuple[float, float], r: np.ndarray) -> np.ndarray:
    lo, hi = lo_hi
    return np.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * np.asarray(r, dtype=np.float64))
