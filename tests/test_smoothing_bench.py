"""Issue 4's benchmark targets, asserted on a fixed-seed subset of bench/bench_smoothing.py."""
from __future__ import annotations

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import bench_smoothing as B  # noqa: E402


@pytest.fixture(scope="module")
def results():
    return {fps: B.evaluate(fps, seeds=[11], n_persons=3, duration_s=10.0) for fps in (30.0, 60.0)}


def _ratio(res, method, metric):
    return res[method][metric] / res["raw"][metric]


def test_no_limit_violations(results):
    for res in results.values():
        assert res["raw"]["violations"] > 0  # the raw estimates do violate: the test can fail
        for k, v in res.items():
            if k.startswith("ours"):
                assert v["violations"] == 0, k


def test_vr_lag_at_most_one_frame_at_30hz_and_beats_one_euro_at_same_lag(results):
    res = results[30.0]
    assert res["ours_vr"]["lag_frames"] <= 1.0
    assert res["one_euro_same_lag"]["lag_frames"] <= res["ours_vr"]["lag_frames"] + 0.05
    assert res["ours_vr"]["rmse_deg"] < res["one_euro_same_lag"]["rmse_deg"]


def test_rmse_and_jitter_targets(results):
    """RMSE <= 0.6x raw and jitter <= 0.25x raw at once, by every causal preset at both rates
    (and by the fixed-lag smoother)."""
    for fps, res in results.items():
        for method in ("ours_vr", "ours_balanced", "ours_analysis", "ours_rts"):
            assert _ratio(res, method, "rmse_deg") <= 0.6, (fps, method)
            assert _ratio(res, method, "acc_deg_s2") <= 0.25, (fps, method)
    # the presets are ordered by intent: vr lags least, analysis is smoothest. Since the agile
    # models follow 3 Hz swings (issue 15) the lag of vr and balanced is set by them, not by
    # the calm model: equal within 0.05 frame
    res = results[30.0]
    assert res["ours_vr"]["lag_frames"] <= res["ours_balanced"]["lag_frames"] + 0.05
    assert res["ours_balanced"]["lag_frames"] < res["ours_analysis"]["lag_frames"]
    assert res["ours_vr"]["acc_deg_s2"] > res["ours_balanced"]["acc_deg_s2"] > res["ours_analysis"]["acc_deg_s2"]


def test_cost_per_frame_ten_people():
    c = B.cost(n_persons=10, frames=300, repeats=1)
    # the budget is 0.5 ms p99 on an idle machine; shared CI cores get slack here
    assert c["ours_p50_ms"] < 1.0


# --- issue 15: the widened benchmark, a fixed-seed subset ---------------------------------------

@pytest.fixture(scope="module")
def grid():
    """30 Hz, seed 1: 0.5, 1, 2 and 3 Hz, every shape and outlier rate, both dropouts (~50 s)."""
    return B.evaluate_grid(fps_list=(30.0,), speeds=(0.5, 1.0, 2.0, 3.0), seeds=(1,), recorded=False)


@pytest.fixture(scope="module")
def real():
    """The real trajectories (video: two people of the four-camera reference and one camera's
    pipeline output; motion capture: twelve DeepMimic clips) under the same noise, at 30 and 60
    Hz, seed 1 (~10 s)."""
    return B.evaluate_grid(fps_list=(30.0, 60.0), speeds=(), seeds=(1,), one_euro=False)


@pytest.fixture(scope="module")
def walk():
    return B.walking()


def test_grid_never_worse_than_raw_and_no_violations(grid):
    """RMSE <= 0.9x raw for every causal preset at every speed, shape and outlier rate, dropouts
    included (issue 15's target; before the periodic model 13-16 of the 36 exact-swing rows were
    over it, up to 1.6x: BENCHMARKS.md). A swing whose pace wanders ("drift") is guessed one
    local period back (`smoothing.periodic_pace`): with the period found over the window alone
    its 2 Hz row read up to 0.96x. (On this seed; other seeds of the drifting swing read up to
    0.92x at 1 Hz, 0.94x at 2 Hz, and 1.02x at 3 Hz where the periodic model does not help:
    BENCHMARKS.md.)"""
    assert {r["shape"] for r in grid} == {"sine", "hold", "reversal", "drift"} and len(grid) == 48
    for r in grid:
        for m in B.CAUSAL:
            assert r[m]["violations"] == 0, (r["shape"], m)
            assert r[m]["rmse"] <= 0.9, (r["speed_hz"], r["shape"], r["outlier_rate"], m, r[m]["rmse"])


SHORTFALLS = {(30.0, 0.0): None, (30.0, 0.02): ("mocap kick", "mocap spinkick"),
              (60.0, 0.0): ("mocap spinkick",)}
"""(fps, outlier rate) -> the real clips (None: all) where <= 0.9x raw is not met (BENCHMARKS.md,
issue 15): a turn of 40-60 deg within one 30 Hz frame, as a kick, a punch or a landing make, is
weighed as possible junk, and at 30 Hz without outliers no fixed linear causal filter reaches
0.9x raw on the fastest clips even when fitted to the answer (test_the_fastest_real_clips_...)."""


def _short(r) -> bool:
    clips = SHORTFALLS.get((r["fps"], r["outlier_rate"]), ())
    return clips is None or r["shape"] in clips


def test_real_trajectories_never_worse_than_raw_where_measured_so(real):
    """On real motion, <= 0.9x raw for every causal preset, except the SHORTFALLS (next test):
    all 60 Hz rows but one, and every 30 Hz row with outliers but two."""
    assert sum(not _short(r) for r in real) >= 60
    for r in real:
        for m in B.CAUSAL:
            assert r[m]["violations"] == 0
            if not _short(r):
                assert r[m]["rmse"] <= 0.9, (r["fps"], r["shape"], r["outlier_rate"], m, r[m]["rmse"])


def test_vr_learns_a_clean_stream_and_follows_its_fast_turns(real):
    """vr learns each person's junk rate (`outlier_rate_memory_s`): on the real trajectories at 30
    Hz without junk it reads at most 1.16x raw (with the rate fixed at its prior 1.27x, spinkick;
    BENCHMARKS.md issue 15, tenth pass), and with the rate fixed the fastest clips are clearly
    worse: a 40-60 deg turn within one frame is weighed as junk."""
    clean = {r["shape"]: r["vr"]["rmse"] for r in real if r["fps"] == 30.0 and r["outlier_rate"] == 0}
    assert max(clean.values()) <= 1.16, clean
    fixed = B.evaluate_grid(fps_list=(30.0,), speeds=(), outliers=((0.0, 0.0),), seeds=(1,),
                            methods=("vr",), one_euro=False,
                            clips=("reference multi_p0", "mocap spinkick"), outlier_rate_memory_s=0.0)
    for r in fixed:
        assert r["vr"]["rmse"] > clean[r["shape"]] + 0.1, (r["shape"], r["vr"]["rmse"], clean[r["shape"]])


def test_balanced_and_analysis_learn_a_clean_stream_too(real):
    """balanced and analysis learn each person's junk rate as well (balanced within a frame or two
    as vr, analysis over ~20 frames: its prior is worth 1000 values, vr's 50; test_smoothing_
    filter.py has why): on the clean real trajectories at 30 Hz every clip reads no worse than
    with the rate fixed at its prior, and the fast ones clearly better (analysis multi_p0 1.19 ->
    1.10x raw, run 0.92 -> 0.87, spinkick 1.21 -> 1.17: BENCHMARKS.md, issue 15 fourteenth
    pass)."""
    methods = ("balanced", "analysis")
    clean = {r["shape"]: r for r in real if r["fps"] == 30.0 and r["outlier_rate"] == 0}
    fixed = B.evaluate_grid(fps_list=(30.0,), speeds=(), outliers=((0.0, 0.0),), seeds=(1,),
                            methods=methods, one_euro=False, outlier_rate_memory_s=0.0,
                            clips=("reference multi_p0", "mocap run", "mocap spinkick", "mocap walk"))
    for r in fixed:
        for m in methods:
            now, before = clean[r["shape"]][m]["rmse"], r[m]["rmse"]
            assert now <= before + 0.005, (r["shape"], m, now, before)
            if r["shape"] != "mocap walk":
                assert now <= before - 0.03, (r["shape"], m, now, before)


def test_the_agile_model_keeps_a_share_where_a_fast_turn_is_weighed(real):
    """analysis, which learns its junk rate slowly, gives its most agile model at least 2 % of the
    prior where a value is weighed (`maneuver_prior_min`): after a calm stretch the chain left it
    ~0.3 %, and a real turn the calm models miss was explained as junk. On the clean real
    trajectories at 30 Hz every clip reads no worse than without the floor, the fast ones better
    (multi_p0 1.10 -> 1.04x raw, kick 1.02 -> 0.99, spinkick 1.17 -> 1.14: BENCHMARKS.md, issue
    15 fourteenth pass). vr and balanced learn their junk rate within a frame or two and need no
    floor (test_smoothing_filter.py: with one the known answer's outlier drags them)."""
    clean = {r["shape"]: r for r in real if r["fps"] == 30.0 and r["outlier_rate"] == 0}
    gain = {"reference multi_p0": 0.03, "mocap spinkick": 0.015, "mocap kick": 0.015, "mocap walk": -0.005}
    without = B.evaluate_grid(fps_list=(30.0,), speeds=(), outliers=((0.0, 0.0),), seeds=(1,),
                              methods=("analysis",), one_euro=False, maneuver_prior_min=0.0,
                              clips=tuple(gain))
    for r in without:
        now, before = clean[r["shape"]]["analysis"]["rmse"], r["analysis"]["rmse"]
        assert now <= before - gain[r["shape"]], (r["shape"], now, before)


LOW_FPS_CLIPS = ("mocap kick", "mocap spinkick", "reference multi_p0", "mocap walk")


def test_at_15_fps_real_fast_turns_are_weighed_for_the_longer_frame():
    """At 15 frames/s (the multi-person default's pose rate on 2 cores can be this low) a real
    fast turn lands further from every motion model's guess than at 30 Hz, and the junk prior
    tuned at 30 Hz took it for junk: up to 2.2x raw RMSE on the fast real clips (analysis
    spinkick). With the prior scaled to the frame interval (`smoothing.tuned_fps`: (interval x
    30)^-2) each fast clip gains, clean and with 2 % junk, over 0.1x in analysis (which learns its
    own junk rate slowly) and over 0.05x in vr and balanced (which learn it within a frame or two:
    kick clean 1.18 -> 1.10x), while the walk's junk is still rejected (<= 0.65x raw). Still over
    raw: analysis up to 1.55x, vr and balanced <= 1.15x (balanced read 1.55x while it learned its
    junk rate as slowly as analysis: BENCHMARKS.md, issue 15 thirteenth to sixteenth passes).
    (The agile model's prior floor, scaled to the interval the same way, is left out of both
    runs: unscaled at 15 frames/s it would take part of this gain itself.)"""
    methods = ("vr", "balanced", "analysis")
    kw = dict(fps_list=(15.0,), speeds=(), outliers=((0.0, 0.0), (0.02, 30.0)), seeds=(1,),
              methods=methods, one_euro=False, clips=LOW_FPS_CLIPS, maneuver_prior_min=0.0)
    scaled = {(r["shape"], r["outlier_rate"]): r for r in B.evaluate_grid(**kw)}
    fixed = {(r["shape"], r["outlier_rate"]): r for r in B.evaluate_grid(**kw, tuned_fps=0.0)}
    for (clip, rate), r in scaled.items():
        for m in methods:
            assert r[m]["violations"] == 0
            now, before = r[m]["rmse"], fixed[(clip, rate)][m]["rmse"]
            if clip == "mocap walk":
                assert now <= before + 0.03 and (rate == 0.0 or now <= 0.65), (clip, rate, m, now, before)
            else:
                assert now <= before - (0.1 if m == "analysis" else 0.05), (clip, rate, m, now, before)
                assert m == "analysis" or now <= 1.15, (clip, rate, m, now)


def test_at_15_fps_a_slow_swing_is_found_over_the_longer_window():
    """A 0.5 Hz swing (a 2 s period) repeats only over `LONG_WINDOW_S`: at 15 frames/s its clean
    rows read 0.95-1.02x raw before (no period found in 2.4 s), now <= 0.8x in every preset."""
    rows = B.evaluate_grid(fps_list=(15.0,), speeds=(0.5,), shapes=("sine", "hold", "reversal"),
                           outliers=((0.0, 0.0),), seeds=(1, 2), one_euro=False, recorded=False)
    for r in rows:
        for m in B.CAUSAL:
            assert r[m]["rmse"] <= 0.8, (r["shape"], m, r[m]["rmse"])


@pytest.mark.xfail(strict=True, reason="not met: at 30 Hz without outliers the real trajectories "
                   "read up to 1.12x raw in vr, 1.13x in balanced and 1.17x in analysis (the 1.12 "
                   "is cam02 pipeline, whose truth holds a 55 deg one-frame knee drop the "
                   "four-camera reference does not: issue 15 eighteenth pass), kick and spinkick "
                   "with 2 % outliers up to 0.98x, spinkick at 60 Hz 0.91x (BENCHMARKS.md, issue 15)")
def test_real_trajectories_shortfalls(real):
    for r in real:
        if _short(r):
            for m in B.CAUSAL:
                assert r[m]["rmse"] <= 0.9, (r["fps"], r["shape"], r["outlier_rate"], m, r[m]["rmse"])


def test_the_fastest_real_clips_are_beyond_any_fixed_linear_filter_at_30hz(real):
    """Why the clean 30 Hz rows are a shortfall and not a tuning miss: the best causal linear
    filter (8 taps and a constant, least squares fitted to the truth itself, bench_smoothing.
    oracle_linear) stays above 0.9x raw on kick, run and spinkick (and the reference multi_p0),
    while it is well under on slow motion (walk, crawl), so the bound can tell them apart."""
    bound = {r["shape"]: r["oracle_linear"] for r in real if r["fps"] == 30.0 and r["outlier_rate"] == 0}
    for clip in ("mocap kick", "mocap run", "mocap spinkick", "reference multi_p0"):
        assert bound[clip] > 0.9, (clip, bound[clip])
    for clip in ("mocap walk", "mocap crawl"):
        assert bound[clip] < 0.8, (clip, bound[clip])


def test_real_trajectories_better_than_one_euro_at_the_same_lag():
    """Pooled over a clip's three outlier rates at 30 Hz, vr beats One Euro tuned to the best
    RMSE at no more lag than vr's, on every real clip (~17 s). One camera's pipeline output
    (cam02) is the close one: 0.80 vs 0.80 (0.82 vs 0.80 before vr learned each person's junk
    rate; BENCHMARKS.md issue 15, tenth pass)."""
    rows = B.evaluate_grid(fps_list=(30.0,), speeds=(), seeds=(1,), methods=("vr",))
    for clip in B.REAL_CLIPS:
        mine = [r for r in rows if r["shape"] == clip]
        ours = sum(r["vr"]["rmse"] for r in mine) / len(mine)
        oe = sum(r["one_euro"]["rmse"] for r in mine) / len(mine)
        assert ours < oe, (clip, ours, oe)


def test_grid_better_than_one_euro_at_the_same_lag_at_every_speed(grid):
    """Pooled per speed, vr beats One Euro tuned to the best RMSE at no more lag than vr's
    (where no setting of the grid is that quick, as at 0.5 Hz, One Euro's quickest: it then
    lags more too)."""
    for f in {r["speed_hz"] for r in grid}:
        rows = [r for r in grid if r["speed_hz"] == f]
        ours = sum(r["vr"]["rmse"] for r in rows) / len(rows)
        oe = sum(r["one_euro"]["rmse"] for r in rows) / len(rows)
        assert ours < oe, (f, ours, oe)


@pytest.fixture(scope="module")
def noise_rows():
    """Engines at 1 and 6 deg of noise (the grid's 3 deg is what meas_noise_rad says), 30 Hz,
    seeds 1-2 (one seed's 2 Hz reversal at 1 deg reads 0.91x in vr), swings and the walking
    clip (~25 s)."""
    return B.noise_levels(noises=(1.0, 6.0), seeds=(1, 2), clips=("mocap walk",))


def test_quieter_and_noisier_engines_never_worse_than_raw(noise_rows):
    """Each person's noise is learned (smoothing.meas_noise_memory_s): at 1 and 6 deg every swing
    row reads <= 0.9x raw for every causal preset, and the clean walk at 1 deg under 0.9x. With R
    fixed at meas_noise_rad the 1 deg rows are smoothed too hard: swings up to ~1.3x raw, the
    walk ~1.7x (BENCHMARKS.md, issue 15)."""
    swings = [r for r in noise_rows if r["speed_hz"] is not None]
    assert len(swings) == 32
    walk = next(r for r in noise_rows if r["shape"] == "mocap walk" and r["noise_deg"] == 1.0
                and r["outlier_rate"] == 0.0)
    for m in B.CAUSAL:
        for r in noise_rows:
            assert r[m]["violations"] == 0
        for r in swings:
            assert r[m]["rmse"] <= 0.9, (r["noise_deg"], r["speed_hz"], r["shape"], r["outlier_rate"], m,
                                         r[m]["rmse"])
        assert max(r[m + "_fixed"]["rmse"] for r in swings if r["noise_deg"] == 1.0) > 1.0, m
        assert walk[m]["rmse"] < 0.9 and walk[m + "_fixed"]["rmse"] > 1.5, (m, walk[m], walk[m + "_fixed"])


def test_walking_rmse_and_lag_targets(walk):
    """Issue 15's walking case (1 Hz knee, 3 deg noise, 2 % outliers of 30 deg, 30 Hz): vr RMSE
    <= 0.6x raw, lag <= 1 frame; balanced RMSE <= 0.55x."""
    assert walk["vr"]["rmse"] <= 0.6 and walk["vr"]["lag_frames"] <= 1.0
    assert walk["balanced"]["rmse"] <= 0.55


def test_walking_vr_jitter_target(walk):
    """vr: jitter <= 0.3x raw with RMSE <= 0.6x and lag <= 1 frame at once. Its filtered estimate
    read 0.47x when the look-back (lookback_frames 2) was added to meet this; with each person's
    noise level and junk rate learned since, it reads 0.25x alone, and the look-back, which cost
    the real clips up to 0.04x raw RMSE, is off (BENCHMARKS.md, issue 15 fifteenth pass)."""
    assert walk["vr"]["jitter"] <= 0.3
    assert walk["vr"]["rmse"] <= 0.6 and walk["vr"]["lag_frames"] <= 1.0


def test_walking_balanced_jitter_target(walk):
    """balanced (no look-back): jitter <= 0.25x raw with RMSE <= 0.55x, since the periodic prior
    (the filtered estimate alone, before it: 0.40x)."""
    assert walk["balanced"]["jitter"] <= 0.25
    assert walk["balanced"]["rmse"] <= 0.55


# --- the motion-capture trajectories (bench/make_mocap_trajectories.py) ----------------------

def test_mocap_clips_are_human_motion_in_skel_dofs():
    """bench/data/deepmimic_mocap_q.npz: walking is a gait (knee bent 55-80 deg once per
    ~1.3 s stride, hip flexion -15..40 deg), a kick's knee turns by >= 35 deg in one 30 Hz
    frame; only hip, knee and elbow flexion move, all inside the joint limits."""
    import numpy as np
    from motion_synth import MOCAP_HELD_OUT, MOCAP_TUNING, load_recorded

    from engines.skel.dofs import DOF_INDEX, DOF_LOWER, DOF_UPPER, DOF_NAMES
    moving = {f"{j}_{s}" for j in ("hip_flexion", "knee_angle") for s in "rl"} | {"elbow_flexion_r", "elbow_flexion_l"}
    for clip in MOCAP_TUNING + MOCAP_HELD_OUT:
        q, t = load_recorded(clip)
        assert np.all(q >= DOF_LOWER - 1e-6) and np.all(q <= DOF_UPPER + 1e-6), clip
        still = [n for i, n in enumerate(DOF_NAMES) if np.ptp(q[:, i]) > 1e-6]
        assert set(still) <= moving, (clip, still)
        assert np.allclose(np.diff(t), 1 / 120.0)
    q, t = load_recorded("mocap walk")
    knee, hip = np.rad2deg(q[:, DOF_INDEX["knee_angle_r"]]), np.rad2deg(q[:, DOF_INDEX["hip_flexion_r"]])
    assert 55 < knee.max() < 80 and knee.min() < 10
    assert -15 < hip.min() < 0 < 25 < hip.max() < 40
    x = knee - knee.mean()
    ac = np.correlate(x, x, "full")[x.size - 1:]
    lag = np.argmax(ac[60:240]) + 60                     # 0.5-2 s
    assert 1.1 < lag / 120.0 < 1.4
    q, t = load_recorded("mocap kick")
    step = np.abs(np.diff(q[::4, DOF_INDEX["knee_angle_r"]]))   # 120 Hz -> 30 Hz frames
    assert np.rad2deg(step.max()) >= 35


def test_mocap_hip_flexion_sign():
    """A thigh swung forward (about the humanoid's z axis, x forward, y up) is hip flexion > 0,
    and a bent knee (negative on the humanoid) is SKEL's positive knee angle."""
    import numpy as np
    from make_mocap_trajectories import clip_q
    from scipy.spatial.transform import Rotation

    from engines.skel.dofs import DOF_INDEX
    frames = np.zeros((3, 44))
    frames[:, 0] = 1 / 30.0
    frames[:, 4] = frames[:, 12] = frames[:, 8] = 1.0      # identity root, chest, neck
    for c in (21, 25, 35, 39, 30):                          # ankles, shoulders, left hip
        frames[:, c] = 1.0
    xyzw = Rotation.from_euler("z", [[10.0], [20.0], [30.0]], degrees=True).as_quat()
    frames[:, 16:20] = xyzw[:, [3, 0, 1, 2]]                # right hip, w first
    frames[:, 20] = -np.deg2rad([5.0, 15.0, 25.0])          # right knee bent
    q, t = clip_q(frames, cycle=False)
    np.testing.assert_allclose(np.rad2deg(q[[0, 4, 8], DOF_INDEX["hip_flexion_r"]]), [10, 20, 30], atol=1e-6)
    np.testing.assert_allclose(np.rad2deg(q[[0, 4, 8], DOF_INDEX["knee_angle_r"]]), [5, 15, 25], atol=1e-6)
