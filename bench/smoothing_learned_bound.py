"""Could a motion prior learned from motion capture take the real clips under 0.9x raw at 30 Hz?

The fifth and sixth passes of issue 15 (BENCHMARKS.md) bound fixed linear filters and switching
rules; the one lever left untried was a prior learned from real motion. This trains one and
measures it on clips it never saw, so the figure says what such a prior could do here, not what
it remembers:

- a small MLP (two hidden layers of 64, GELU) per DoF: from the 11 newest differences of the
  measurement (raw held through dropouts, each minus the newest) and the 3 newest frame intervals
  to the correction truth - newest measurement. It is causal: it sees nothing after the frame;
- leave-group-out over the 15 real clips (video and motion capture, four folds): trained on the
  others' noise draws (seeds 100-123), scored on this clip's benchmark draws (seeds 1-8);
- two trainings: on clean draws only ("clean prior"), and on the benchmark's three outlier
  rates mixed (0, 2 % x 30 deg, 5 % x 40 deg: "mixed prior"), which is what a filter that must
  also reject junk would have to learn;
- "mixed + ours": the mixed prior with our vr estimate (its last 3 values, minus the newest
  measurement) as 3 more inputs, so it can learn when to trust the filter and when the raw.
Ours (vr) in the same run, from bench_smoothing.

RMSE x raw, 30 Hz, 3 deg noise, jittered stamps. A computation, not a timing.

Usage: .venv/bin/python bench/smoothing_learned_bound.py   (~3 min on 2 cores)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_smoothing as B  # noqa: E402

TAPS = 12                      # newest measurement + 11 differences to the ones before it
SCALE = np.deg2rad(3.0)        # features and target in units of the measurement noise
FPS = 30.0
TRAIN_SEEDS = tuple(range(100, 124))
RAW_ONLY = slice(0, TAPS + 2)  # the measurement and frame-interval inputs, without ours
FOLDS = 4


def features(trajs: list, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 17) causal features and (N,) targets (truth - newest measurement) of the moving DoFs:
    11 measurement differences, 3 frame intervals, then our vr estimate's last 3 values (all
    minus the newest measurement, in noise units)."""
    X, y = [], []
    ours = B.run_ours(trajs, B.SmoothingConfig(preset="vr"))
    for tr, held, est in zip(trajs, B.run_raw(trajs), ours):
        k = np.arange(TAPS, held.shape[0])
        dt = np.stack([tr.t_s[k] - tr.t_s[k - i] for i in range(1, 4)], 1) * FPS
        for j in np.flatnonzero(sel):
            z = held[:, j]
            d = np.stack([z[k - i] - z[k] for i in range(1, TAPS)], 1) / SCALE
            e = np.stack([est[k - i, j] - z[k] for i in range(3)], 1) / SCALE
            X.append(np.concatenate([d, dt, e], 1))
            y.append((tr.truth[k, j] - z[k]) / SCALE)
    return np.concatenate(X).astype(np.float32), np.concatenate(y).astype(np.float32)


def train(X: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 15) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 64), torch.nn.GELU(), torch.nn.Linear(64, 64),
                              torch.nn.GELU(), torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), 3e-3, weight_decay=1e-4)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(Xt.shape[0])
        for b in range(0, Xt.shape[0], 2048):
            idx = perm[b:b + 2048]
            loss = ((net(Xt[idx]).squeeze(1) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def ratio(net: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        e = net(torch.from_numpy(X)).squeeze(1).numpy() - y
    return float(np.sqrt(np.mean(e ** 2) / np.mean(y ** 2)))


def main() -> None:
    clips = B.REAL_CLIPS
    train_sets = {(c, o): features(*B.recorded_set(FPS, o, seeds=TRAIN_SEEDS, clip=c))
                  for c in clips for o in B.OUTLIERS}
    rows = {}
    for f in range(FOLDS):
        held_out = clips[f::FOLDS]
        rest = [c for c in clips if c not in held_out]
        nets = {}
        for name, rates, cols in (("clean", B.OUTLIERS[:1], RAW_ONLY), ("mixed", B.OUTLIERS, RAW_ONLY),
                                  ("mixed + ours", B.OUTLIERS, slice(None))):
            X = np.concatenate([train_sets[c, o][0][:, cols] for c in rest for o in rates])
            y = np.concatenate([train_sets[c, o][1] for c in rest for o in rates])
            nets[name] = (train(X, y), cols)
        for c in held_out:
            for o in B.OUTLIERS:
                trajs, sel = B.recorded_set(FPS, o, clip=c)
                X, y = features(trajs, sel)
                raw = B.metrics(B.run_raw(trajs), trajs, dofs=sel)["rmse_deg"]
                ours = B.metrics(B.run_ours(trajs, B.SmoothingConfig(preset="vr")), trajs, dofs=sel)["rmse_deg"]
                rows[c, o[0]] = tuple(ratio(net, X[:, cols], y) for net, cols in nets.values()) + (ours / raw,)
        print(f"fold {f + 1}/{FOLDS} done", file=sys.stderr, flush=True)
    print("| clip | clean prior: 0 % | mixed prior: 0 % / 2 % / 5 % | mixed + ours: 0 % / 2 % / 5 % "
          "| ours (vr): 0 % / 2 % / 5 % |")
    print("|---|---:|---:|---:|---:|")
    for c in clips:
        r = [rows[c, o[0]] for o in B.OUTLIERS]
        cells = [f"{r[0][0]:.2f}"] + [" / ".join(f"{r[k][i]:.2f}" for k in range(3)) for i in (1, 2, 3)]
        print(f"| {c} | " + " | ".join(cells) + " |")
    for i, name in enumerate(("clean prior", "mixed prior", "mixed + ours", "ours (vr)")):
        clean = [rows[c, 0.0][i] for c in clips]
        print(f"{name}: clean 30 Hz rows over 0.9x raw: {sum(v > 0.9 for v in clean)} of {len(clips)}, "
              f"worst {max(clean):.2f}")
    for i, name in ((1, "mixed prior"), (2, "mixed + ours"), (3, "ours (vr)")):
        dirty = [rows[c, o[0]][i] for c in clips for o in B.OUTLIERS[1:]]
        print(f"{name}: rows with outliers over 0.9x raw: {sum(v > 0.9 for v in dirty)} of {len(dirty)}, "
              f"mean {np.mean(dirty):.2f}")


if __name__ == "__main__":
    main()
