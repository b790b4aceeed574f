"""Synthetic SKEL joint-angle trajectories with ground truth, for the smoothing benchmark and tests.

Truth is a continuous-time function sampled at jittered frame times: gait-like cycles (hips,
knees, ankles, arm swing), fast reaches (minimum-jerk moves of shoulder and elbow into a straight
elbow), pauses (everything holds), a straight knee held on its joint limit, slow background motion
of every DoF, and a slow turn of the pelvis that crosses +-pi. Measurements imitate single-image
estimators: a few degrees of Gaussian noise, occasional large outliers (single DoFs and whole-body
flips), dropped frames (no pose), DoFs the engine could not see (stale value, dof_observed False)
and a confidence that drops when things go wrong. Raw measurements may violate joint limits.
All randomness comes from one seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.skel.dofs import DOF_BOUNDED, DOF_INDEX, DOF_LOWER, DOF_UPPER, NUM_BETAS, NUM_DOFS, wrap_angle

_I = DOF_INDEX


@dataclass
class Trajectory:
    """One person's truth and measurements on T frames (angles in radians, SKEL order)."""
    t_s: np.ndarray          # (T,) float64 s, jittered frame times
    truth: np.ndarray        # (T, 46) float64 rad, within the limits; pelvis wrapped to [-pi, pi)
    meas: np.ndarray         # (T, 46) float64 rad, what the engine reports (NaN rows = dropped)
    dropped: np.ndarray      # (T,) bool: no pose this frame (engine skipped the person)
    observed: np.ndarray     # (T, 46) bool: dof_observed
    confidence: np.ndarray   # (T,) float in (0, 1]
    trans_truth: np.ndarray  # (T, 3) m, camera frame
    trans_meas: np.ndarray   # (T, 3) m
    betas_truth: np.ndarray  # (10,)
    betas_meas: np.ndarray   # (T, 10)


def _min_jerk(s: np.ndarray) -> np.ndarray:
    """0 -> 1 minimum-jerk profile for s in [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10.0 - 15.0 * s + 6.0 * s * s)


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, n: int, amp: float, cutoff_hz: float
                  ) -> np.ndarray:
    """(len(t), n) band-limited random motion: a sum of random sinusoids below cutoff_hz."""
    out = np.zeros((t.size, n))
    for _ in range(4):
        f = rng.uniform(0.05, cutoff_hz, n)
        ph = rng.uniform(0, 2 * np.pi, n)
        out += np.sin(2 * np.pi * f * t[:, None] + ph)
    return amp * out / 2.0


def truth_at(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(len(t), 46) ground-truth angles at times t (s): the motion scenario of one person."""
    T = t.size
    mid = np.where(DOF_BOUNDED, 0.5 * (np.nan_to_num(DOF_LOWER) + np.nan_to_num(DOF_UPPER)), 0.0)
    half = np.where(DOF_BOUNDED, 0.5 * (DOF_UPPER - DOF_LOWER), 1.0)
    # a relaxed standing pose near the middle of each range, plus slow background motion
    q = np.tile(mid + 0.15 * half * rng.uniform(-1, 1, NUM_DOFS), (T, 1))
    q += _smooth_noise(rng, t, NUM_DOFS, 0.12 * half, 0.5)
    dur = t[-1] - t[0] + 1e-9
    u = (t - t[0]) / dur
    # gait in the first 45 % (walking), pause 45-55 %, reaches 55-100 %
    walk = (u < 0.45).astype(float) * _min_jerk((u * dur) / 0.5)  # ramps in over 0.5 s
    f_gait = rng.uniform(0.8, 1.1)
    ph = 2 * np.pi * f_gait * t
    for side, sgn in (("r", 1.0), ("l", -1.0)):
        s = np.sin(ph + (0 if sgn > 0 else np.pi))
        q[:, _I[f"hip_flexion_{side}"]] = walk * (0.25 + 0.45 * s) + (1 - walk) * 0.05
        # knee: straight (on its 0 limit) for part of the cycle, flexed up to ~1.1 rad in swing
        knee = 0.55 * np.sin(ph + (0.6 if sgn > 0 else 0.6 + np.pi)) + 0.3
        q[:, _I[f"knee_angle_{side}"]] = np.maximum(walk * knee, 0.0)
        q[:, _I[f"ankle_angle_{side}"]] = walk * 0.3 * np.sin(ph + 1.2 + (0 if sgn > 0 else np.pi))
        arm = f"shoulder_{side}_x"
        q[:, _I[arm]] = np.clip(q[:, _I[arm]] * (1 - walk) + walk * (-0.35 * s * sgn), DOF_LOWER[_I[arm]], DOF_UPPER[_I[arm]])
    # pause: freeze everything between 45 % and 55 %
    pause = (u >= 0.45) & (u < 0.55)
    if pause.any():
        q[pause] = q[np.argmax(pause)]
    # fast reaches: right then left arm, 0.3 s minimum-jerk out to a straight elbow, hold, back
    reach_t0 = t[0] + dur * np.array([0.58, 0.70, 0.82, 0.92])
    for k, t0 in enumerate(reach_t0):
        side = "r" if k % 2 == 0 else "l"
        move = rng.uniform(0.25, 0.35)
        hold = rng.uniform(0.3, 0.6)
        out = _min_jerk((t - t0) / move) - _min_jerk((t - t0 - move - hold) / move)
        e, sx = _I[f"elbow_flexion_{side}"], _I[f"shoulder_{side}_x"]
        q[:, e] = q[:, e] * (1 - out)  # elbow straightens onto its 0 limit and stays there
        q[:, sx] = q[:, sx] + out * (1.2 if side == "r" else -1.2)
    # pelvis: upright (tilt ~ pi, the y-down camera convention) and a slow turn across +-pi
    q[:, 0] = np.pi + 0.05 * np.sin(2 * np.pi * 0.3 * t)
    q[:, 1] = 0.05 * np.sin(2 * np.pi * 0.2 * t + 1.0)
    q[:, 2] = 2.6 + 0.5 * (t - t[0])
    q = np.clip(q, DOF_LOWER, DOF_UPPER)
    q[:, :3] = wrap_angle(q[:, :3])
    return q


def frame_times(rng: np.random.Generator, fps: float, duration_s: float, jitter_frac: float = 0.15
                ) -> np.ndarray:
    """(T,) increasing frame times with uniform jitter of +-jitter_frac of a period."""
    n = int(round(duration_s * fps))
    t = np.arange(n) / fps + rng.uniform(-jitter_frac, jitter_frac, n) / fps
    return np.maximum.accumulate(t) + 1.0


def synth_person(seed: int, fps: float = 30.0, duration_s: float = 12.0, noise_deg: float = 3.0,
                 outlier_rate: float = 0.01, flip_rate: float = 0.005, drop_rate: float = 0.02,
                 unseen_rate: float = 0.01, t: np.ndarray | None = None) -> Trajectory:
    """One person's trajectory: see the module docstring. Rates are per frame (per DoF for
    outliers and unseen segments); noise_deg is the std of the Gaussian angle noise. Pass the
    frame times `t` (s) to put several people on one stream's clock."""
    rng = np.random.default_rng(seed)
    if t is None:
        t = frame_times(rng, fps, duration_s)
    truth = truth_at(t, rng)
    T = t.size
    noise = np.deg2rad(noise_deg) * rng.uniform(0.7, 1.3, NUM_DOFS)
    meas = truth + rng.normal(0.0, 1.0, (T, NUM_DOFS)) * noise
    conf = np.clip(rng.normal(0.85, 0.08, T), 0.3, 1.0)
    # single-DoF outliers (15-40 deg)
    out = rng.random((T, NUM_DOFS)) < outlier_rate
    meas += out * rng.choice([-1.0, 1.0], (T, NUM_DOFS)) * np.deg2rad(rng.uniform(15, 40, (T, NUM_DOFS)))
    # whole-body flips: a bad frame, large errors everywhere, lower confidence
    flip = rng.random(T) < flip_rate
    meas[flip] += rng.normal(0, np.deg2rad(25), (int(flip.sum()), NUM_DOFS))
    conf[flip] *= 0.6
    # unseen DoFs: the engine holds its previous value for 3-15 frames
    observed = np.ones((T, NUM_DOFS), dtype=bool)
    starts = np.argwhere(rng.random((T, NUM_DOFS)) < unseen_rate / 8.0)
    for k, d in starts:
        n = rng.integers(3, 16)
        observed[k:k + n, d] = False
    for k in range(1, T):
        meas[k] = np.where(observed[k], meas[k], meas[k - 1])
    meas[:, :3] = wrap_angle(meas[:, :3])
    # dropped frames in bursts of 1-6
    dropped = np.zeros(T, dtype=bool)
    for k in np.flatnonzero(rng.random(T) < drop_rate / 3.0):
        dropped[k:k + rng.integers(1, 7)] = True
    dropped[:3] = False
    meas[dropped] = np.nan
    # root translation: walking across at ~1 m/s while gait, then standing; depth noisier
    u = (t - t[0]) / (t[-1] - t[0])
    x = -1.0 + 1.1 * np.minimum(u, 0.45) / 0.45 * (t[-1] - t[0]) * 0.45 / 5.0
    trans_truth = np.stack([x, 0.1 + 0.02 * np.sin(2 * np.pi * 1.8 * t), 3.5 + 0.3 * np.sin(0.4 * t)], 1)
    trans_meas = trans_truth + rng.normal(0, 1, (T, 3)) * np.array([0.02, 0.02, 0.10])
    betas_truth = rng.normal(0, 1, NUM_BETAS)
    betas_meas = betas_truth + rng.normal(0, 0.15, (T, NUM_BETAS))
    return Trajectory(t, truth, meas, dropped, observed, conf, trans_truth, trans_meas,
                      betas_truth, betas_meas)


def synth_stream(seed: int, n_persons: int, fps: float = 30.0, duration_s: float = 12.0,
                 **kw) -> list[Trajectory]:
    """n_persons trajectories sharing one stream's jittered frame clock."""
    t = frame_times(np.random.default_rng(seed), fps, duration_s)
    return [synth_person(seed * 1000 + i + 1, t=t, **kw) for i in range(n_persons)]


# --- swing scenarios: one kind of motion at one speed, for the widened benchmark ----------------

SWING_DOFS: dict[str, tuple[float, float]] = {
    "knee_angle_r": (0.0, 1.2), "knee_angle_l": (0.0, 1.2),
    "hip_flexion_r": (-0.2, 0.8), "hip_flexion_l": (-0.2, 0.8),
    "elbow_flexion_r": (0.1, 1.3), "elbow_flexion_l": (0.1, 1.3),
    "shoulder_r_x": (-0.6, 0.6), "shoulder_l_x": (-0.6, 0.6),
}
"""DoFs that swing in a swing scenario and the range (rad) each covers: a knee 0-1.2 rad (the
issue's jumping-jack knee), hips, elbows, arms. The other DoFs stand still near mid-range."""

SHAPES = ("sine", "hold", "reversal", "drift")
"""sine: smooth back and forth; hold: a sine over a wider range clipped at the lower end, so the
DoF rests on its range's end (the knee and elbow on their 0 joint limit) for a third of each cycle;
reversal: a triangle wave, constant speed and an instant turn (the hardest case for a
constant-velocity model); drift: a sine whose pace and reach wander as a person's do (DRIFT_*),
so that no filter passes the grid by assuming every swing repeats exactly."""

DRIFT_PACE_STD = 0.15
"""drift: the swing's frequency wanders by about this share of itself (std; slow, < 0.3 Hz)."""
DRIFT_REACH = (0.6, 1.0)
"""drift: the share of the DoF's range the swing reaches, wandering between these."""


def swing_truth(t: np.ndarray, freq_hz: float, shape: str, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """(len(t), 46) truth and (46,) bool mask of the swinging DoFs: SWING_DOFS at freq_hz in
    `shape`, each with a random phase; the rest still near mid-range (pelvis upright)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown swing shape {shape!r}; one of {SHAPES}")
    mid = np.where(DOF_BOUNDED, 0.5 * (np.nan_to_num(DOF_LOWER) + np.nan_to_num(DOF_UPPER)), 0.0)
    half = np.where(DOF_BOUNDED, 0.5 * (DOF_UPPER - DOF_LOWER), 1.0)
    q = np.tile(mid + 0.15 * half * rng.uniform(-1, 1, NUM_DOFS), (t.size, 1))
    q[:, 0], q[:, 1], q[:, 2] = np.pi, 0.0, 0.3
    moving = np.zeros(NUM_DOFS, dtype=bool)
    for name, (lo, hi) in SWING_DOFS.items():
        ph = 2 * np.pi * freq_hz * (t - t[0]) + rng.uniform(0, 2 * np.pi)
        if shape == "sine":
            u = 0.5 - 0.5 * np.cos(ph)
        elif shape == "drift":
            pace = 1.0 + DRIFT_PACE_STD * _smooth_noise(rng, t - t[0], 1, 1.0, 0.3)[:, 0]
            ph = ph[0] + 2 * np.pi * freq_hz * np.concatenate([[0.0], np.cumsum(np.diff(t) * pace[1:])])
            lo_r, hi_r = DRIFT_REACH
            reach = lo_r + (hi_r - lo_r) * (0.5 + 0.5 * np.tanh(_smooth_noise(rng, t - t[0], 1, 1.5, 0.3)[:, 0]))
            u = reach * (0.5 - 0.5 * np.cos(ph))
        elif shape == "hold":
            u = np.maximum(1.5 * (0.5 - 0.5 * np.cos(ph)) - 0.5, 0.0)
        else:
            u = 2.0 * np.abs((ph / (2 * np.pi)) % 1.0 - 0.5)
        q[:, _I[name]] = lo + (hi - lo) * u
        moving[_I[name]] = True
    q = np.clip(q, DOF_LOWER, DOF_UPPER)
    q[:, :3] = wrap_angle(q[:, :3])
    return q, moving


def corrupt(rng: np.random.Generator, t: np.ndarray, truth: np.ndarray, noise_deg: float,
            outlier_rate: float, outlier_deg: float, drop_rate: float = 0.0,
            blank_rate: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What an engine reports for `truth` (T, 46): Gaussian noise (std noise_deg), single-DoF
    outliers of +-outlier_deg at outlier_rate per DoF and frame, and two kinds of dropout in
    bursts of 1-6 frames: no pose at all (drop_rate) and a pose with nothing observed (blank_rate:
    the last pose held, every DoF unobserved, confidence 0, as the landmark engine sends when it
    finds nobody in the crop). Returns meas (NaN rows = dropped), dropped, observed, confidence."""
    T = t.size
    meas = truth + rng.normal(0.0, np.deg2rad(noise_deg), truth.shape)
    out = rng.random(truth.shape) < outlier_rate
    meas += out * rng.choice([-1.0, 1.0], truth.shape) * np.deg2rad(outlier_deg)
    meas[:, :3] = wrap_angle(meas[:, :3])
    conf = np.clip(rng.normal(0.85, 0.08, T), 0.3, 1.0)
    observed = np.ones(truth.shape, dtype=bool)
    dropped = np.zeros(T, dtype=bool)
    for rate, blank in ((drop_rate, False), (blank_rate, True)):
        for k in np.flatnonzero(rng.random(T) < rate / 3.5):
            k = max(k, 3)
            n = int(rng.integers(1, 7))
            if blank:
                observed[k:k + n] = False
                conf[k:k + n] = 0.0
            else:
                dropped[k:k + n] = True
    for k in range(1, T):                  # unobserved: the engine repeats its last pose
        meas[k] = np.where(observed[k], meas[k], meas[k - 1])
    meas[dropped] = np.nan
    return meas, dropped, observed, conf


def _from_truth(rng: np.random.Generator, t: np.ndarray, truth: np.ndarray, **noise) -> Trajectory:
    meas, dropped, observed, conf = corrupt(rng, t, truth, **noise)
    T = t.size
    trans = np.tile([0.0, 0.1, 3.5], (T, 1))
    betas = rng.normal(0, 1, NUM_BETAS)
    return Trajectory(t, truth, meas, dropped, observed, conf, trans,
                      trans + rng.normal(0, 1, (T, 3)) * np.array([0.02, 0.02, 0.10]),
                      betas, betas + rng.normal(0, 0.15, (T, NUM_BETAS)))


def swing_person(seed: int, freq_hz: float, shape: str = "sine", fps: float = 30.0,
                 duration_s: float = 8.0, noise_deg: float = 3.0, outlier_rate: float = 0.02,
                 outlier_deg: float = 30.0, drop_rate: float = 0.0, blank_rate: float = 0.0,
                 jitter_frac: float = 0.15) -> tuple[Trajectory, np.ndarray]:
    """One person swinging SWING_DOFS (see `swing_truth`), measured as `corrupt` says.
    Returns the trajectory and the (46,) mask of the swinging DoFs (the ones to score)."""
    rng = np.random.default_rng(seed)
    t = frame_times(rng, fps, duration_s, jitter_frac)
    truth, moving = swing_truth(t, freq_hz, shape, rng)
    return _from_truth(rng, t, truth, noise_deg=noise_deg, outlier_rate=outlier_rate,
                       outlier_deg=outlier_deg, drop_rate=drop_rate, blank_rate=blank_rate), moving


# --- a real recorded trajectory with synthetic noise on top -------------------------------------

RECORDED = Path(__file__).resolve().parent / "data" / "pose2sim_demo_cam02_rts.npz"
"""46 joint angles of the one person in Pose2Sim's Demo_SinglePerson cam02.mp4 (100 frames at
60 fps, track 2), as the pipeline recorded them with configs/offline_analysis.yaml (landmark
engine, `analysis` preset, fixed-lag RTS over 5 frames):

    python run_stream.py --config configs/offline_analysis.yaml --source <Pose2Sim>/Demo_SinglePerson/videos/cam02.mp4

then the track's q read back from the MCAP session (sinks.replay.load_frames)."""


REFERENCE = Path(__file__).resolve().parent / "data" / "pose2sim_reference_q.npz"
"""46 joint angles per frame of the three people of Pose2Sim's Demo_SinglePerson and
Demo_MultiPerson from the four-camera reference (engines/reference: triangulated BlazePose,
Pose2Sim's filter, the SKEL fit on the 3D keypoints), 100 frames at 60 fps each: real motion
without any one view's depth errors. Made by bench/make_reference_trajectories.py."""

MOCAP = Path(__file__).resolve().parent / "data" / "deepmimic_mocap_q.npz"
"""Marker-based motion capture: hip, knee and elbow flexion of the DeepMimic clips the pybullet
wheel ships (walking, running, jumps, kicks, a punch, dances, crawling, getting up), at 120 Hz.
Made by bench/make_mocap_trajectories.py."""

MOCAP_TUNING = ("mocap walk", "mocap kick")
"""The motion-capture clips smoothing settings may be chosen on (one slow, one fast); the others
are held out and only reported."""
MOCAP_HELD_OUT = tuple(f"mocap {n}" for n in (
    "run", "jump", "punch", "spinkick", "cartwheel", "dance_a", "dance_b", "crawl", "getup_faceup",
    "getup_facedown"))

RECORDED_CLIPS = ("cam02 pipeline", "reference single_p0", "reference multi_p0")
"""The real trajectories the benchmark uses: one camera's pipeline output (RECORDED) and two
people of the four-camera reference (REFERENCE). Its third, `multi_p1` (the man lifting a leg in
Demo_MultiPerson), is left out: the reference loses him (hip flexion steps of up to 55 deg in one
60 Hz frame, 15 left/right slips per view repaired, reprojection 15 px), which is no motion a
filter should follow."""


def save_clips(path: Path, clips: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write named (q (T, 46) radians, t_s (T,)) trajectories in the layout `load_recorded` reads
    ('q/<name>' as float32, 't_s/<name>'): what bench/make_reference_trajectories.py and
    bench/make_mocap_trajectories.py make."""
    arrays = {}
    for name, (q, t_s) in clips.items():
        arrays[f"q/{name}"], arrays[f"t_s/{name}"] = np.asarray(q, np.float32), t_s
    path.parent.mkdir(exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}")


def load_recorded(clip: str = RECORDED_CLIPS[0]) -> tuple[np.ndarray, np.ndarray]:
    """(q (T, 46) radians, t_s (T,)) of one of RECORDED_CLIPS, MOCAP_TUNING or MOCAP_HELD_OUT
    (or 'reference multi_p1')."""
    if clip == RECORDED_CLIPS[0]:
        rec = np.load(RECORDED)
        return rec["q"].astype(np.float64), rec["t_s"]
    if clip.startswith("mocap "):
        name, rec = clip.removeprefix("mocap "), np.load(MOCAP)
    else:
        name, rec = clip.removeprefix("reference "), np.load(REFERENCE)
    if f"q/{name}" not in rec:
        raise ValueError(f"unknown recorded clip {clip!r}; one of {RECORDED_CLIPS + MOCAP_TUNING + MOCAP_HELD_OUT}"
                         " or 'reference multi_p1'")
    return rec[f"q/{name}"].astype(np.float64), rec[f"t_s/{name}"]


def recorded_person(seed: int, fps: float = 60.0, noise_deg: float = 3.0, outlier_rate: float = 0.02,
                    outlier_deg: float = 30.0, drop_rate: float = 0.0, blank_rate: float = 0.0,
                    jitter_frac: float = 0.15, clip: str = RECORDED_CLIPS[0]
                    ) -> tuple[Trajectory, np.ndarray]:
    """A recorded trajectory (RECORDED_CLIPS) as truth (linearly interpolated at jittered frame
    times at `fps`), measured as `corrupt` says. Returns it and the (46,) mask of the DoFs that
    move in it (bounded DoFs whose std over the clip is over 2 deg)."""
    q, t_rec = load_recorded(clip)
    rng = np.random.default_rng(seed)
    t = frame_times(rng, fps, t_rec[-1] - t_rec[0], jitter_frac) - 1.0 + t_rec[0]
    t = np.clip(t, t_rec[0], t_rec[-1])
    unwrapped = q.copy()
    unwrapped[:, ~DOF_BOUNDED] = np.unwrap(q[:, ~DOF_BOUNDED], axis=0)
    truth = np.stack([np.interp(t, t_rec, unwrapped[:, j]) for j in range(NUM_DOFS)], axis=1)
    truth = np.clip(truth, DOF_LOWER, DOF_UPPER)
    truth[:, ~DOF_BOUNDED] = wrap_angle(truth[:, ~DOF_BOUNDED])
    moving = DOF_BOUNDED & (np.rad2deg(q.std(axis=0)) > 2.0)
    return _from_truth(rng, t - t[0] + 1.0, truth, noise_deg=noise_deg, outlier_rate=outlier_rate,
                       outlier_deg=outlier_deg, drop_rate=drop_rate, blank_rate=blank_rate), moving
