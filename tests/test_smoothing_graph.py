"""The `smooth` stage in the real process graph: source -> synthetic pose -> smooth -> sink,
separate processes, shared memory, pickled packets; physical invariants on what comes out."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from conftest import REPO
from graph_helpers import OPENER
from smoothing_helpers import PoseLogSink, SynthPoseStage
from stream.config import PipelineConfig, RuntimeConfig
from stream.graph import Graph
from stream.source_stage import SourceStage
from stream.sources.config import SourceConfig
from tracking.smoothing_stage import SmoothingStage

sys.path.insert(0, str(REPO / "bench"))
from motion_synth import synth_person  # noqa: E402

from engines.skel.dofs import DOF_BOUNDED, DOF_LOWER, DOF_UPPER, wrap_angle  # noqa: E402

N = 90


def test_smooth_stage_in_real_graph(tmp_path: Path):
    rt = RuntimeConfig(status_line=False, summary_at_exit=False, metrics_interval_s=0.2)
    g = Graph(rt, lossless=True)
    src = SourceStage(SourceConfig(uri=f"test:n={N},w=32,h=24", mode="lossless", stream_id="a"),
                      "a", 8, OPENER)
    g.add(src, to=["pose"])
    g.add(SynthPoseStage("pose", N), to=["smooth"])
    g.add(SmoothingStage(PipelineConfig()), to=["log"])
    g.add(PoseLogSink(str(tmp_path), "log"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    files = sorted(tmp_path.glob("a_*.npz"))
    assert len(files) == N                                   # lossless: every frame came out
    out = [np.load(f) for f in files]
    q = np.stack([o["q"] for o in out]).astype(np.float64)  # (T, 2, 46)
    assert np.all(np.isfinite(q))
    lo, hi = DOF_LOWER.astype(np.float32), DOF_UPPER.astype(np.float32)
    assert np.all((q >= lo) & (q <= hi))                     # joint limits respected
    pts = np.array([float(o["media_pts_s"]) for o in out])
    assert np.all(np.diff(pts) > 0)                          # in order
    quat = np.stack([o["quat"] for o in out])
    np.testing.assert_allclose(np.linalg.norm(quat, axis=-1), 1.0, atol=1e-5)
    # better than the raw input against the known truth
    trajs = [synth_person(seed, t=np.arange(N) / 30.0, drop_rate=0.0) for seed in (21, 22)]
    truth = np.stack([tr.truth for tr in trajs], 1)
    meas = np.stack([tr.meas for tr in trajs], 1)

    def rmse(a):
        e = a[10:] - truth[10:]
        e[..., ~DOF_BOUNDED] = wrap_angle(e[..., ~DOF_BOUNDED])
        return np.sqrt(np.mean(e ** 2))

    assert rmse(q) < 0.8 * rmse(meas)
