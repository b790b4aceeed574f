"""Load a run's configuration: YAML file -> CLI sources -> `--set` overrides -> validated model.

Every problem becomes one `ConfigError` line that names the key and what is allowed, e.g.
`unknown config key 'runtime.queue_sz'; allowed keys under 'runtime': queue_size, ring_slots, ...`.
Override values are parsed as YAML, so `--set runtime.queue_size=4` is an int, `...=true` a bool,
`...=[1,2]` a list and `...=null` None.
"""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from stream.config import PipelineConfig
from stream.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "default.yaml"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML config file into a dict (empty file -> {})."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{path}' not found; pass an existing YAML file to --config "
                          f"(examples in {REPO / 'configs'})")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file '{path}' is not valid YAML ({problem} at{where}); "
                          "fix the syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' cannot be read ({exc}); check its permissions "
                          "and encoding") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections (sources:, "
                          f"runtime:, ...), not a {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """`a.b.0.c=value` -> (['a', 'b', 0, 'c'], YAML-typed value)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set '{text}' must look like KEY=VALUE with a dotted key, e.g. "
                          "runtime.queue_size=4 or sources.0.uri=clip.mp4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not valid YAML (e.g. 'a: b: c'): take it as a plain string
    path: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
    return path, value


def apply_override(data: dict[str, Any], path: list[str | int], value: Any) -> None:
    """Set one value in the raw config dict, creating sections and appending list items
    (index == current length) as needed."""
    node: Any = data
    dotted = ".".join(map(str, path))
    for i, part in enumerate(path):
        last = i == len(path) - 1
        nxt_default: Any = [] if (not last and isinstance(path[i + 1], int)) else {}
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ConfigError(f"--set {dotted}: '{_dotted(path[:i])}' is not a list, so "
                                  f"index {part} makes no sense")
            if part > len(node):
                raise ConfigError(f"--set {dotted}: index {part} is past the end of "
                                  f"'{_dotted(path[:i])}' ({len(node)} items); use {len(node)} "
                                  "to append")
            if part == len(node):
                node.append(value if last else nxt_default)
            elif last:
                node[part] = value
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: '{_dotted(path[:i])}' is a value, not a "
                                  "section")
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = nxt_default
                node = node[part]


def _dotted(path: list[str | int] | tuple) -> str:
    return ".".join(map(str, path)) or "<top level>"


def _model_at(path: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the key at `path` (for listing allowed keys)."""
    model: Any = PipelineConfig
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def explain(exc: ValidationError) -> str:
    """First validation error as one line naming the key and what is allowed."""
    err = exc.errors()[0]
    loc = tuple(err.get("loc", ()))
    key = _dotted(loc)
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent else "?"
        return (f"unknown config key '{key}'; allowed keys under '{_dotted(loc[:-1])}': "
                f"{allowed}")
    got = err.get("input")
    # a validator's own message may already quote the value: say it once
    shown = isinstance(got, (dict, list)) or f"(got {got!r})" in err["msg"]
    got_txt = "" if shown else f" (got {got!r})"
    return f"invalid config value for '{key}': {err['msg']}{got_txt}"


def validate(data: dict[str, Any]) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(exc)) from None


def load_config(path: str | Path | None = None, overrides: list[str] = (),
                sources: list[str] = (), lossless: bool = False) -> PipelineConfig:
    """Build the run's config.

    path: YAML file; None -> configs/default.yaml if present, else built-in defaults.
    sources: URIs from --source; they replace the file's sources (each copies the settings of
        the file's first source except what belongs to that input: its stream id, `loop` and
        `max_frames`; stream ids default to cam0, cam1, ...).
    overrides: `KEY=VALUE` strings from --set, applied after sources.
    lossless: every source in lossless mode (files: every frame, no drops)."""
    if path is None:
        data = read_yaml(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else {}
    else:
        data = read_yaml(path)
    if sources:
        base = data.get("sources") or [{}]
        base0 = dict(base[0]) if isinstance(base, list) and base and isinstance(base[0], dict) else {}
        for key in ("stream_id", "loop", "max_frames"):  # the file's own input, not a style
            base0.pop(key, None)
        data["sources"] = [{**base0, "uri": uri} for uri in sources]
    for text in overrides:
        apply_override(data, *parse_override(text))
    if lossless:
        apply_override(data, ["runtime", "lossless"], True)
    return validate(data)


def dump_config(cfg: PipelineConfig) -> str:
    """The effective config as YAML (what --print-config shows)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
