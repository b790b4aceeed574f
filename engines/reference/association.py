"""Which candidate in each view is the same person: epipolar agreement across all views.

Each view brings a few followed people (`views.detect_views(..., people=n)`); a person is a
choice of one candidate per view. Every choice is scored by the median symmetric epipolar
distance of its confident landmarks over all view pairs (lag 0: the views' offsets are a few
frames, people are metres apart); the best choice is taken, its candidates removed, and so on.
"""
from __future__ import annotations

import itertools

import numpy as np

from engines.reference.calibration import Camera
from engines.reference.sync import epipolar_px, fundamental
from engines.reference.views import ViewLandmarks


def _pair_cost(F: np.ndarray, xa, ca, xb, cb, min_confidence: float = 0.5) -> float:
    ok = (ca >= min_confidence) & (cb >= min_confidence) & np.isfinite(xa).all(-1) & np.isfinite(xb).all(-1)
    if ok.sum() < 20:
        return np.inf
    return float(np.median(epipolar_px(F, xa[ok], xb[ok])))


def associate(cameras: list[Camera], candidates: list[ViewLandmarks], max_people: int = 2,
              max_cost_px: float = 60.0) -> list[ViewLandmarks]:
    """candidates[i]: the i-th followed person of every view. Returns one ViewLandmarks per
    person found in all views (at most max_people, best agreement first)."""
    v_n, c_n = len(cameras), len(candidates)
    und = [np.stack([cameras[v].undistort(c.pixels[:, :, v]) for v in range(v_n)], axis=2) for c in candidates]
    fm = {(a, b): fundamental(cameras[a], cameras[b]) for a in range(v_n) for b in range(a + 1, v_n)}
    pair = {}
    for (a, b), F in fm.items():
        for i in range(c_n):
            for j in range(c_n):
                pair[a, b, i, j] = _pair_cost(F, und[i][:, :, a], candidates[i].confidence[:, :, a],
                                              und[j][:, :, b], candidates[j].confidence[:, :, b])
    used: set[tuple[int, int]] = set()
    people = []
    for _ in range(max_people):
        best, best_cost = None, np.inf
        for choice in itertools.product(range(c_n), repeat=v_n):
            if any((v, c) in used for v, c in enumerate(choice)):
                continue
            cost = np.mean([pair[a, b, choice[a], choice[b]] for a, b in fm])
            if cost < best_cost:
                best, best_cost = choice, cost
        if best is None or best_cost > max_cost_px:
            break
        used.update(enumerate(best))
        pick = [candidates[c] for c in best]
        people.append(ViewLandmarks(
            np.stack([p.pixels[:, :, v] for v, p in enumerate(pick)], axis=2),
            np.stack([p.confidence[:, :, v] for v, p in enumerate(pick)], axis=2),
            np.stack([p.world_m[:, :, v] for v, p in enumerate(pick)], axis=2)))
    return people
