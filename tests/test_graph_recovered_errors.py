"""Errors a stage recovers from (Stage.take_error_count) reach its `errors` figure and the status
line, and do not stop the run (real graph, real processes)."""
from __future__ import annotations

import io
from pathlib import Path

from graph_helpers import OPENER, CollectSink, RecoveringStage, read_collected
from stream.config import RuntimeConfig
from stream.graph import Graph
from stream.source_stage import SourceStage
from stream.sources.config import SourceConfig


def test_recovered_errors_are_counted_and_the_stream_flows(tmp_path: Path):
    out = tmp_path / "out.txt"
    status = io.StringIO()
    g = Graph(RuntimeConfig(status_line=True, summary_at_exit=True, metrics_interval_s=0.1,
                            drain_timeout_s=10), lossless=True, status_stream=status)
    g.add(SourceStage(SourceConfig(uri="test:n=20,w=32,h=24", mode="lossless", stream_id="a"),
                      "a", 8, OPENER), to=["recover"])
    g.add(RecoveringStage("recover"), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    assert res.stats["recover"]["errors"] == 10
    assert len(read_collected(out)[0]) == 20  # every frame still went on
    row = next(ln.split() for ln in status.getvalue().splitlines() if ln.startswith("recover "))
    assert row[5] == "10"  # the summary's err column (the status line shows "err N" the same way)
