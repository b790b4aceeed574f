"""Build the process graph from a `PipelineConfig`: sources -> detect_track -> pose -> smooth -> sinks.

Stage classes are imported by dotted path from a small registry, so this module depends on no
stage implementation; each is constructed as `cls(config: PipelineConfig)` in the parent (cheap,
picklable) and opens its models/sockets/files in `setup()` inside its own process.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

from stream.config import PipelineConfig
from stream.errors import ConfigError, PipelineError, SourceError
from stream.graph import Graph
from stream.source_stage import DEFAULT_OPENER, SourceStage
from stream.stage import Stage

# name -> "module:Class"; the chain runs in this order, then fans out to every enabled sink
CHAIN: dict[str, str] = {
    "detect_track": "tracking.stage:DetectTrackStage",
    "pose": "engines.pose_stage:PoseStage",
    "smooth": "tracking.smoothing_stage:SmoothingStage",
}
SINKS: dict[str, str] = {
    "publish": "sinks.publish_stage:PublishStage",
    "record": "sinks.record_stage:RecordStage",
    "preview": "sinks.preview_stage:PreviewStage",
    "vmc": "sinks.vmc_stage:VmcStage",
    "viewer": "sinks.viewer_stage:ViewerStage",
}
REGISTRY: dict[str, str] = {**CHAIN, **SINKS}


def load_object(spec: str, what: str = "object") -> Any:
    """Import `module:attr` (or `module.attr`)."""
    mod_name, sep, attr = spec.partition(":")
    if not sep:
        mod_name, _, attr = spec.rpartition(".")
    module = importlib.import_module(mod_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"{what} '{spec}': module '{mod_name}' has no '{attr}'") from None


def enabled_stages(cfg: PipelineConfig) -> list[str]:
    """Registry names the config switches on, chain first, then sinks."""
    on = {
        "detect_track": True,
        "pose": True,
        "smooth": bool(getattr(cfg.smoothing, "enabled", True)),
        "publish": bool(getattr(cfg.publisher, "enabled", True)),
        "record": bool(getattr(cfg.recorder, "enabled", False)),
        "preview": bool(getattr(cfg.preview, "window", False)
                        or getattr(cfg.preview, "video_path", None)),
        "vmc": bool(getattr(getattr(cfg, "vmc", None), "enabled", False)),
        "viewer": bool(getattr(getattr(cfg, "viewer", None), "enabled", False)),
    }
    return [name for name in REGISTRY if on[name]]


def stream_ids(cfg: PipelineConfig) -> list[str]:
    """Each source's stream id: its own, or cam0, cam1, ... in config order (unique)."""
    ids = [s.stream_id or f"cam{i}" for i, s in enumerate(cfg.sources)]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ConfigError(f"sources share the stream_id {sorted(dup)}; give each source its own "
                          "sources.N.stream_id")
    return ids


def is_lossless(cfg: PipelineConfig) -> bool:
    return cfg.runtime.lossless or any(s.mode == "lossless" for s in cfg.sources)


def build_stages(cfg: PipelineConfig, registry: dict[str, str] | None = None,
                 allow_missing: bool = False,
                 warn: Callable[[str], None] | None = None) -> tuple[list[Stage], list[Stage]]:
    """Instantiate the enabled stages: (chain stages in order, sink stages).

    A stage whose module cannot be imported is an error (a broken install); `allow_missing` skips
    it with a warning instead, for tests that assemble partial graphs from their own registry."""
    registry = REGISTRY if registry is None else registry
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    chain: list[Stage] = []
    sinks: list[Stage] = []
    for name in enabled_stages(cfg):
        if name not in registry:
            continue
        try:
            cls = load_object(registry[name], what=f"stage '{name}'")
        except ImportError as exc:
            if not allow_missing:
                raise PipelineError(f"stage '{name}' ({registry[name]}) cannot be imported: "
                                    f"{exc}; reinstall with `pip install -e .`") from exc
            warn(f"stage '{name}' skipped: {registry[name]} not importable ({exc})")
            continue
        stage = cls(cfg)
        stage.name = name
        (sinks if name in SINKS else chain).append(stage)
    return chain, sinks


def check_sources(cfg: PipelineConfig) -> list[str]:
    """Cheap checks of every source in the parent (missing file, unknown scheme, no webcam node),
    so a bad --source fails in a moment instead of after every stage has loaded its models.
    Returns one line per bad source, `source:<stream id>: <problem and fix>`."""
    from stream.sources.factory import check_source

    problems = []
    for sid, src_cfg in zip(stream_ids(cfg), cfg.sources):
        try:
            check_source(src_cfg)
        except SourceError as exc:
            problems.append(f"source:{sid}: {exc}")
    return problems


def build_graph(cfg: PipelineConfig, chain: list[Stage] | None = None,
                sinks: list[Stage] | None = None, opener: str = DEFAULT_OPENER,
                status_stream=None) -> Graph:
    """Wire sources -> chain (in order) -> every sink. `chain`/`sinks` default to the registry."""
    unknown = sorted(set(cfg.runtime.stage_queue_sizes) - set(REGISTRY))
    if unknown:
        raise ConfigError(f"runtime.stage_queue_sizes names unknown stages {', '.join(unknown)}; "
                          f"stages are {', '.join(REGISTRY)}")
    problems = check_sources(cfg) if opener == DEFAULT_OPENER else []  # tests: own URI forms
    if problems:
        more = f" (and {len(problems) - 1} more bad sources)" if len(problems) > 1 else ""
        raise SourceError(problems[0] + more)
    if chain is None or sinks is None:
        c, s = build_stages(cfg)
        chain = c if chain is None else chain
        sinks = s if sinks is None else sinks
    if not chain and not sinks:
        print("warning: no stage consumes the frames (all disabled or missing); sources only",
              file=sys.stderr)
    lossless = is_lossless(cfg)
    graph = Graph(cfg.runtime, lossless=lossless, status_stream=status_stream)
    first = [chain[0].name] if chain else [s.name for s in sinks]
    for sid, src_cfg in zip(stream_ids(cfg), cfg.sources):
        if cfg.runtime.lossless and src_cfg.mode != "lossless":
            src_cfg = src_cfg.model_copy(update={"mode": "lossless"})
        graph.add(SourceStage(src_cfg, sid, cfg.runtime.ring_slots, opener), to=first)
    for i, stage in enumerate(chain):
        nxt = [chain[i + 1].name] if i + 1 < len(chain) else [s.name for s in sinks]
        graph.add(stage, to=nxt)
    for stage in sinks:
        graph.add(stage, to=[])
    return graph
