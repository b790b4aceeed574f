"""Triangulation, time-offset estimation and left/right repair on synthetic calibrated rigs."""
from __future__ import annotations

import numpy as np

from engines.reference.lr_repair import SWAP, apply_swaps, find_swaps
from engines.reference.sync import align, estimate_offsets
from engines.reference.triangulation import triangulate
from reference_helpers import ring_of_cameras, walking_points


def _observe(cams, pts):
    """(T, K, 3) -> (T, K, V, 2) distorted pixels, confidence 1."""
    px = np.stack([c.project(pts) for c in cams], axis=2)
    return px, np.ones(px.shape[:3])


def test_triangulation_is_exact_without_noise():
    cams = ring_of_cameras()
    pts = walking_points(10)
    px, conf = _observe(cams, pts)
    tri = triangulate(cams, px, conf)
    np.testing.assert_allclose(tri.points_m, pts, atol=1e-4)       # 0.1 mm (undistortion iterations)
    assert np.nanmax(tri.reproj_px) < 0.05
    assert tri.used.all()


def test_triangulation_error_bound_with_noise_and_an_outlier_view():
    """2 px noise on 4 cameras at ~4 m: 3D error under a centimetre; one view's grossly wrong
    detection (80 px off) is dropped instead of dragging the point."""
    rng = np.random.default_rng(3)
    cams = ring_of_cameras()
    pts = walking_points(30)
    px, conf = _observe(cams, pts)
    px = px + rng.normal(0, 2.0, px.shape)
    tri = triangulate(cams, px, conf)
    err = np.linalg.norm(tri.points_m - pts, axis=-1)
    assert np.mean(err) < 0.007 and np.max(err) < 0.03          # 2 px at 4 m, f 1680: 4.8 mm per view
    joint = tri.joint_error_px()
    assert joint.shape == (33,) and np.all((joint > 0.5) & (joint < 4.0))   # ~ noise level
    bad = px.copy()
    bad[:, 5, 2] += 80.0
    tri_bad = triangulate(cams, bad, conf)
    assert not tri_bad.used[:, 5, 2].any() and tri_bad.used[:, 4, 2].all()
    assert np.linalg.norm(tri_bad.points_m[:, 5] - pts[:, 5], axis=-1).max() < 0.02
    # confidence below the threshold counts as not seen
    low = conf.copy()
    low[:, :, 1] = 0.1
    assert not triangulate(cams, px, low).used[:, :, 1].any()


def test_time_offset_found_on_a_shifted_copy():
    cams = ring_of_cameras()
    pts = walking_points(90)
    px, conf = _observe(cams, pts)
    shifted = px.copy()
    shift = {1: 0, 2: 4, 3: -2}
    for v, s in shift.items():               # view v's frame t + s shows the world at frame t
        shifted[:, :, v] = np.roll(px[:, :, v], s, axis=0)
    und = np.stack([cams[v].undistort(shifted[:, :, v]) for v in range(4)], axis=2)
    off = estimate_offsets(cams, und, conf, max_lag=8)
    assert off.tolist() == [0, 0, 4, -2]
    aligned = align(shifted, off)
    ok = np.isfinite(aligned).all(axis=(1, 2, 3))
    np.testing.assert_allclose(aligned[ok], px[ok])
    assert off.tolist() != estimate_offsets(cams, np.stack([cams[v].undistort(px[:, :, v]) for v in range(4)], 2),
                                            conf, max_lag=8).tolist()


def test_left_right_slip_of_one_view_is_found_and_undone():
    """BlazePose-ordered points; view 1 labels left as right on frames 10-24: exactly those frames
    are flagged, and triangulating the repaired labels recovers the true points."""
    rng = np.random.default_rng(5)
    cams = ring_of_cameras()
    pts = walking_points(40, seed=2)
    px, conf = _observe(cams, pts)
    px = px + rng.normal(0, 1.5, px.shape)
    slipped = px.copy()
    slipped[10:25, :, 1] = px[10:25][:, SWAP, 1]
    und = np.stack([cams[v].undistort(slipped[:, :, v]) for v in range(4)], axis=2)
    swapped = find_swaps(cams, slipped, conf, und)
    expect = np.zeros_like(swapped)
    expect[10:25, 1] = True
    np.testing.assert_array_equal(swapped, expect)
    fixed = apply_swaps(slipped, swapped)
    np.testing.assert_allclose(fixed, px)
    assert not find_swaps(cams, px, conf, np.stack([cams[v].undistort(px[:, :, v]) for v in range(4)], 2)).any()


def test_people_are_matched_across_views_whatever_order_each_view_found_them_in():
    from engines.reference.association import associate
    from engines.reference.views import ViewLandmarks

    rng = np.random.default_rng(9)
    cams = ring_of_cameras()
    a = walking_points(40, seed=1) + [0.8, 0.0, 0.0]
    b = walking_points(40, seed=2) - [0.8, 0.3, 0.0]
    c = walking_points(40, seed=3) + [0.0, 1.5, 0.0]         # a bystander seen by two views only
    order = [(0, 1, 2), (1, 0, 2), (2, 1, 0), (1, 2, 0)]     # candidate i of view v -> person
    people = (a, b, c)
    cands = []
    for i in range(3):
        px = np.full((40, 33, 4, 2), np.nan)
        conf = np.zeros((40, 33, 4))
        for v in range(4):
            p = order[v][i]
            if p == 2 and v in (0, 3):
                continue
            px[:, :, v] = cams[v].project(people[p]) + rng.normal(0, 1.0, (40, 33, 2))
            conf[:, :, v] = 0.9
        cands.append(ViewLandmarks(px, conf, np.full((40, 33, 4, 3), np.nan)))
    found = associate(cams, cands, max_people=3)
    assert len(found) == 2                                    # the bystander is in two views only
    truth = [cams[v].project(a) for v in range(4)], [cams[v].project(b) for v in range(4)]
    got = sorted(found, key=lambda f: np.nanmean(f.pixels[:, :, 0, 0]))
    want = sorted(truth, key=lambda t: t[0][..., 0].mean())
    for f, t in zip(got, want):
        for v in range(4):
            assert np.nanmax(np.abs(f.pixels[:, :, v] - t[v])) < 6.0
