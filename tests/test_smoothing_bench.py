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
    """30 Hz, seed 1: 0.5, 1, 2 and 3 Hz, every shape and outlier rate, both dropouts (~40 s)."""
    return B.evaluate_grid(fps_list=(30.0,), speeds=(0.5, 1.0, 2.0, 3.0), seeds=(1,), recorded=False)


@pytest.fixture(scope="module")
def real():
    """The real trajectories (two people of the four-camera reference, one camera's pipeline
    output) under the same noise, at 30 and 60 Hz, seed 1."""
    return B.evaluate_grid(fps_list=(30.0, 60.0), speeds=(), seeds=(1,), one_euro=False)


@pytest.fixture(scope="module")
def walk():
    return B.walking()


def test_grid_never_worse_than_raw_and_no_violations(grid):
    """RMSE <= 0.9x raw for every causal preset at every speed, shape and outlier rate, dropouts
    included (issue 15's target; before the periodic model 13-16 of these 36 rows were over it,
    up to 1.6x: BENCHMARKS.md)."""
    for r in grid:
        for m in B.CAUSAL:
            assert r[m]["violations"] == 0, (r["shape"], m)
            assert r[m]["rmse"] <= 0.9, (r["speed_hz"], r["shape"], r["outlier_rate"], m, r[m]["rmse"])


def test_real_trajectories_never_worse_than_raw_where_measured_so(real):
    """On real motion: <= 0.9x raw at 60 Hz frames, and at 30 Hz wherever there are outliers;
    at 30 Hz without outliers the fast real turns are not met (next test)."""
    for r in real:
        if r["fps"] == 30.0 and r["outlier_rate"] == 0:
            continue
        for m in B.CAUSAL:
            assert r[m]["violations"] == 0
            assert r[m]["rmse"] <= 0.9, (r["fps"], r["shape"], r["outlier_rate"], m, r[m]["rmse"])


@pytest.mark.xfail(strict=True, reason="not met: at 30 Hz without outliers the real trajectories "
                   "read 0.97-1.24x raw (a turn of 24 deg within one frame is lagged; "
                   "BENCHMARKS.md, issue 15)")
def test_real_trajectories_at_30hz_without_outliers(real):
    for r in real:
        if r["fps"] == 30.0 and r["outlier_rate"] == 0:
            for m in B.CAUSAL:
                assert r[m]["rmse"] <= 0.9, (r["shape"], m, r[m]["rmse"])


def test_grid_better_than_one_euro_at_the_same_lag_at_every_speed(grid):
    """Pooled per speed, vr beats One Euro tuned to the best RMSE at no more lag than vr's
    (where no setting of the grid is that quick, as at 0.5 Hz, One Euro's quickest: it then
    lags more too)."""
    for f in {r["speed_hz"] for r in grid}:
        rows = [r for r in grid if r["speed_hz"] == f]
        ours = sum(r["vr"]["rmse"] for r in rows) / len(rows)
        oe = sum(r["one_euro"]["rmse"] for r in rows) / len(rows)
        assert ours < oe, (f, ours, oe)


def test_walking_rmse_and_lag_targets(walk):
    """Issue 15's walking case (1 Hz knee, 3 deg noise, 2 % outliers of 30 deg, 30 Hz): vr RMSE
    <= 0.6x raw, lag <= 1 frame; balanced RMSE <= 0.55x."""
    assert walk["vr"]["rmse"] <= 0.6 and walk["vr"]["lag_frames"] <= 1.0
    assert walk["balanced"]["rmse"] <= 0.55


def test_walking_vr_jitter_target(walk):
    """vr publishes the look-back estimate (lookback_frames 2): jitter <= 0.3x raw with RMSE <=
    0.6x and lag <= 1 frame at once (the filtered estimate alone: 0.47x)."""
    assert walk["vr"]["jitter"] <= 0.3
    assert walk["vr"]["rmse"] <= 0.6 and walk["vr"]["lag_frames"] <= 1.0


def test_walking_balanced_jitter_target(walk):
    """balanced (no look-back): jitter <= 0.25x raw with RMSE <= 0.55x, since the periodic prior
    (the filtered estimate alone, before it: 0.40x)."""
    assert walk["balanced"]["jitter"] <= 0.25
    assert walk["balanced"]["rmse"] <= 0.55
