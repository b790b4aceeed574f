"""Synthetic multi-person sequences with known identities, and MOT scoring with motmetrics.

A scene is a list of walkers, each a piecewise-linear path of (time s, centre x px, foot y px) with a
height; the detector model adds box noise, misses, score noise and clutter, and hides a walker
while another one in front covers most of it (occlusion by depth = foot y).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import motmetrics as mm
import numpy as np

W, H = 640, 480


@dataclass
class Walker:
    gid: int
    keys: list[tuple[float, float, float]]   # (t_s, cx_px, foot_y_px), t increasing
    height_px: float = 160.0
    aspect: float = 0.4

    def box(self, t: float) -> np.ndarray | None:
        ts = [k[0] for k in self.keys]
        if t < ts[0] or t > ts[-1]:
            return None
        cx = np.interp(t, ts, [k[1] for k in self.keys])
        fy = np.interp(t, ts, [k[2] for k in self.keys])
        h = self.height_px * (0.6 + 0.4 * fy / H)  # farther (higher) = smaller
        w = self.aspect * h
        return np.array([cx - w / 2, fy - h, cx + w / 2, fy])


@dataclass
class Scene:
    walkers: list[Walker]
    duration_s: float
    fps: float = 30.0
    jitter_frac: float = 0.0       # frame interval jitter (fraction of 1/fps)
    drop_prob: float = 0.0         # frames the camera drops (bigger gaps)
    box_noise_rel: float = 0.03
    miss_prob: float = 0.03
    clutter_per_frame: float = 0.3
    occlusion_cover: float = 0.6   # a walker covered this much by a nearer one is not detected
    seed: int = 0
    times: list[float] = field(default_factory=list)

    def frames(self):
        """Yield (t_s, gt_ids, gt_boxes (G,4), det_boxes (N,4), det_scores (N,))."""
        rng = np.random.default_rng(self.seed)
        t = 0.0
        dt0 = 1.0 / self.fps
        while t <= self.duration_s:
            gts = [(w.gid, w.box(t), w) for w in self.walkers]
            gts = [(g, b, w) for g, b, w in gts if b is not None and _visible_frac(b) > 0.3]
            ids = [g for g, _, _ in gts]
            gboxes = np.array([_clip(b) for _, b, _ in gts]).reshape(-1, 4)
            dets, scores = [], []
            for k, (g, b, w) in enumerate(gts):
                if _covered(b, [bb for j, (_, bb, _) in enumerate(gts) if j != k]) > self.occlusion_cover:
                    continue
                if rng.random() < self.miss_prob:
                    continue
                h = b[3] - b[1]
                nb = _clip(b + rng.normal(0, self.box_noise_rel * h, 4))
                if nb[2] - nb[0] < 4 or nb[3] - nb[1] < 4:
                    continue
                dets.append(nb)
                # partly hidden people get lower scores, like real detectors
                scores.append(float(np.clip(rng.normal(0.8, 0.1) - 0.5 * _covered(b, [x for _, x, _ in gts if x is not b]), 0.05, 1.0)))
            for _ in range(rng.poisson(self.clutter_per_frame)):
                cx, cy = rng.uniform(0, W), rng.uniform(0, H)
                s = rng.uniform(20, 80)
                dets.append(np.array([cx - s / 2, cy - s, cx + s / 2, cy + s]))
                scores.append(float(rng.uniform(0.1, 0.45)))
            yield t, ids, gboxes, np.array(dets).reshape(-1, 4), np.array(scores)
            step = dt0 * (1.0 + self.jitter_frac * rng.uniform(-1, 1))
            if rng.random() < self.drop_prob:
                step += dt0 * rng.integers(1, 4)
            t += step


def _clip(b: np.ndarray) -> np.ndarray:
    return np.array([np.clip(b[0], 0, W), np.clip(b[1], 0, H), np.clip(b[2], 0, W), np.clip(b[3], 0, H)])


def _visible_frac(b: np.ndarray) -> float:
    c = _clip(b)
    return float(max(c[2] - c[0], 0) * max(c[3] - c[1], 0) / ((b[2] - b[0]) * (b[3] - b[1])))


def _covered(b: np.ndarray, others: list[np.ndarray]) -> float:
    """Fraction of b covered by nearer boxes (larger foot y = nearer)."""
    best = 0.0
    area = (b[2] - b[0]) * (b[3] - b[1])
    for o in others:
        if o[3] <= b[3]:
            continue
        iw = max(0.0, min(b[2], o[2]) - max(b[0], o[0]))
        ih = max(0.0, min(b[3], o[3]) - max(b[1], o[1]))
        best = max(best, iw * ih / area)
    return best


def score_tracker(scene: Scene, step) -> dict:
    """Run `step(t, dets, scores) -> (ids, boxes)` over the scene; motmetrics summary as a dict."""
    acc = mm.MOTAccumulator(auto_id=True)
    for t, gids, gboxes, dets, scores in scene.frames():
        hids, hboxes = step(t, dets, scores)
        dist = _iou_distance(gboxes, np.asarray(hboxes, float).reshape(-1, 4), max_dist=0.5)
        acc.update(list(gids), [int(i) for i in hids], dist)
    mh = mm.metrics.create()
    s = mh.compute(acc, metrics=["idf1", "mota", "num_switches", "num_fragmentations", "num_unique_objects",
                                 "mostly_tracked", "num_false_positives", "num_misses"], name="s")
    return {k: float(s[k].iloc[0]) for k in s.columns}


def _iou_distance(a: np.ndarray, b: np.ndarray, max_dist: float) -> np.ndarray:
    """1 - IoU, NaN beyond max_dist (motmetrics' convention; its own helper uses np.asfarray,
    which NumPy 2 removed, so this is written out here, independent of the tracker's IoU)."""
    d = np.full((len(a), len(b)), np.nan)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            iw = max(0.0, min(x[2], y[2]) - max(x[0], y[0]))
            ih = max(0.0, min(x[3], y[3]) - max(x[1], y[1]))
            inter = iw * ih
            union = (x[2] - x[0]) * (x[3] - x[1]) + (y[2] - y[0]) * (y[3] - y[1]) - inter
            dist = 1.0 - inter / union
            if dist <= max_dist:
                d[i, j] = dist
    return d


# -- scenes ---------------------------------------------------------------------------------------
def crossing(seed: int = 0, fps: float = 30.0) -> Scene:
    """Two walkers cross in opposite directions at different depths; both stay detectable."""
    return Scene([Walker(1, [(0, 80, 330), (4, 560, 330)]),
                  Walker(2, [(0, 560, 400), (4, 80, 400)])], 4.0, fps=fps, occlusion_cover=1.01, seed=seed)


def occlusion(seed: int = 0) -> Scene:
    """A walker passes behind a nearer, standing one: hidden for a few frames."""
    return Scene([Walker(1, [(0, 100, 380), (4, 560, 380)]),
                  Walker(2, [(0, 330, 420), (4, 330, 420)], height_px=200, aspect=0.5)],
                 4.0, occlusion_cover=0.6, seed=seed)


def enter_leave(seed: int = 0) -> Scene:
    """Walkers enter at one border and leave at the other, at staggered times."""
    ws = [Walker(1, [(0.0, -60, 350), (3.0, 700, 350)]),
          Walker(2, [(1.0, 700, 420), (4.5, -60, 420)]),
          Walker(3, [(2.5, 320, 300), (5.5, 320, 300)])]   # appears and disappears in place
    return Scene(ws, 6.0, seed=seed)


def stop_and_go(seed: int = 0) -> Scene:
    """Walk, stand still for a second, walk on; a second walker passes in front while standing."""
    return Scene([Walker(1, [(0, 100, 330), (1.5, 300, 330), (2.5, 300, 330), (4, 520, 330)]),
                  Walker(2, [(0.5, 600, 440), (3.5, 40, 440)])], 4.0, seed=seed)


def variable_rate(seed: int = 0) -> Scene:
    """Three walkers, frame interval jittering +-50 % and dropped frames."""
    return Scene([Walker(1, [(0, 60, 330), (5, 580, 330)]),
                  Walker(2, [(0, 580, 380), (5, 60, 380)]),
                  Walker(3, [(0, 320, 440), (2.5, 200, 440), (5, 400, 440)])],
                 5.0, jitter_frac=0.5, drop_prob=0.1, seed=seed)
