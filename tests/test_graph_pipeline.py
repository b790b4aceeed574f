"""Pipeline assembly from a PipelineConfig: registry import, disabled and missing stages."""
from __future__ import annotations

from pathlib import Path

import pytest

from graph_helpers import OPENER, read_collected
from stream.config import PipelineConfig
from stream.errors import ConfigError, PipelineError
from stream.pipeline import build_graph, build_stages, enabled_stages, stream_ids

REG = {"detect_track": "graph_helpers:CfgStage", "pose": "graph_helpers:CfgStage",
       "smooth": "no_such_module_xyz:Stage", "publish": "graph_helpers:CfgSink",
       "record": "graph_helpers:CfgSink", "preview": "graph_helpers:CfgSink"}


def cfg(tmp_path: Path, **over) -> PipelineConfig:
    data = {"sources": [{"uri": "test:n=25", "mode": "lossless"},
                        {"uri": "test:n=20", "mode": "lossless", "stream_id": "side"}],
            "runtime": {"status_line": False, "summary_at_exit": False},
            "recorder": {"enabled": True, "directory": str(tmp_path)}}
    data.update(over)
    return PipelineConfig.model_validate(data)


def test_enabled_stages_follow_config(tmp_path: Path):
    c = cfg(tmp_path)
    assert enabled_stages(c) == ["detect_track", "pose", "smooth", "publish", "record"]
    c2 = cfg(tmp_path, smoothing={"enabled": False}, publisher={"enabled": False},
             preview={"video_path": "x.mp4"})
    assert enabled_stages(c2) == ["detect_track", "pose", "record", "preview"]
    assert stream_ids(c) == ["cam0", "side"]


def test_duplicate_stream_ids_are_a_config_error(tmp_path: Path):
    c = cfg(tmp_path, sources=[{"uri": "a", "stream_id": "x"}, {"uri": "b", "stream_id": "x"}])
    with pytest.raises(ConfigError, match="stream_id"):
        stream_ids(c)


def test_missing_stage_module_is_an_error_unless_allowed(tmp_path: Path):
    with pytest.raises(PipelineError, match="smooth.*cannot be imported.*reinstall"):
        build_stages(cfg(tmp_path), REG)
    warnings: list[str] = []
    chain, sinks = build_stages(cfg(tmp_path), REG, allow_missing=True, warn=warnings.append)
    assert [s.name for s in chain] == ["detect_track", "pose"]
    assert [s.name for s in sinks] == ["publish", "record"]
    assert len(warnings) == 1 and "smooth" in warnings[0]


def test_built_graph_runs_chain_and_fans_out_to_sinks(tmp_path: Path):
    c = cfg(tmp_path)
    chain, sinks = build_stages(c, REG, allow_missing=True, warn=lambda m: None)
    g = build_graph(c, chain, sinks, opener=OPENER)
    assert [n for n in g.nodes] == ["source:cam0", "source:side", "detect_track", "pose",
                                    "publish", "record"]
    assert g.nodes["pose"].to == ["publish", "record"]
    res = g.run()
    assert res.exit_code == 0, res.errors
    for sink in ("publish", "record"):
        pk, ends, closed = read_collected(tmp_path / f"{sink}.txt")
        assert sorted(ends) == ["cam0", "side"] and closed
        assert [p[1] for p in pk if p[0] == "cam0"] == list(range(25))
        assert [p[1] for p in pk if p[0] == "side"] == list(range(20))
        assert {"detect_track", "pose"} <= set(pk[0][6])


def test_runtime_lossless_switches_every_source(tmp_path: Path):
    c = cfg(tmp_path, sources=[{"uri": "test:n=5"}], runtime={"lossless": True})
    g = build_graph(c, [], [], opener=OPENER)
    assert g.lossless and g.nodes["source:cam0"].stage.cfg.mode == "lossless"


def test_stage_queue_sizes_set_one_stage_and_name_known_stages(tmp_path: Path):
    """The default config keeps one frame in front of the pose stage (latency first) and two
    elsewhere; a misspelt stage name or a zero size is a config error, not a silent default."""
    c = cfg(tmp_path, runtime={"status_line": False, "summary_at_exit": False,
                               "stage_queue_sizes": {"pose": 1}})
    chain, sinks = build_stages(c, REG, allow_missing=True, warn=lambda m: None)
    g = build_graph(c, chain, sinks, opener=OPENER)
    res = g.run()
    assert res.exit_code == 0, res.errors
    assert g.nodes["pose"].inq.maxsize == 1 and g.nodes["detect_track"].inq.maxsize == 2
    assert g.nodes["publish"].inq.maxsize == 2
    bad = cfg(tmp_path, runtime={"stage_queue_sizes": {"poes": 1}})
    with pytest.raises(ConfigError, match="poes"):
        build_graph(bad, chain, sinks, opener=OPENER)
    with pytest.raises(ValueError, match="1..1024"):
        cfg(tmp_path, runtime={"stage_queue_sizes": {"pose": 0}})
