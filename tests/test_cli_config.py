"""Config loading: YAML files, --source, --set overrides with YAML types, one-line errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from stream.config_loader import (DEFAULT_CONFIG, apply_override, load_config, parse_override,
                                  read_yaml)
from stream.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates(path: Path):
    load_config(path)


def test_default_config_is_used_without_arguments():
    assert DEFAULT_CONFIG.is_file()
    assert load_config() == load_config(DEFAULT_CONFIG)


@pytest.mark.parametrize("text,path,value", [
    ("runtime.queue_size=4", ["runtime", "queue_size"], 4),
    ("runtime.status_line=false", ["runtime", "status_line"], False),
    ("pose.focal_px=1200.5", ["pose", "focal_px"], 1200.5),
    ("pose.focal_px=null", ["pose", "focal_px"], None),
    ("sources.0.uri=rtsp://h:554/a?b=c", ["sources", 0, "uri"], "rtsp://h:554/a?b=c"),
    ("a.b=[1, 2]", ["a", "b"], [1, 2]),
])
def test_override_values_are_yaml_typed(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("bad", ["runtime.queue_size", "=3", "a..b=1"])
def test_malformed_override_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override(bad)


def test_list_index_overrides_and_append():
    data = {"sources": [{"uri": "a"}]}
    apply_override(data, ["sources", 0, "pace"], "fast")
    apply_override(data, ["sources", 1, "uri"], "b")
    assert data == {"sources": [{"uri": "a", "pace": "fast"}, {"uri": "b"}]}
    with pytest.raises(ConfigError, match="index 5 is past the end of 'sources'"):
        apply_override(data, ["sources", 5, "uri"], "c")


def test_sources_from_cli_replace_config_sources_and_keep_settings(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("sources:\n  - uri: x.mp4\n    pace: fast\n    stream_id: main\n"
                 "    loop: true\n    max_frames: 600\n")
    cfg = load_config(f, ["sources.1.mode=lossless"], ["a.mp4", "b.mp4"])
    assert [s.uri for s in cfg.sources] == ["a.mp4", "b.mp4"]
    assert [s.pace for s in cfg.sources] == ["fast", "fast"]
    assert [s.stream_id for s in cfg.sources] == [None, None]
    # looping and the frame cap belong to the file's own clip, not to the user's --source
    assert [(s.loop, s.max_frames) for s in cfg.sources] == [(False, 0), (False, 0)]
    assert [s.mode for s in cfg.sources] == ["live", "lossless"]
    assert load_config(f, lossless=True).runtime.lossless


@pytest.mark.parametrize("override,message", [
    ("runtime.queue_sz=3", "unknown config key 'runtime.queue_sz'; allowed keys under "
                           "'runtime': queue_size, ring_slots"),
    ("sources.0.mode=fastest", "invalid config value for 'sources.0.mode': Input should be "
                               "'live' or 'lossless' (got 'fastest')"),
    ("runtime.queue_size=0", "invalid config value for 'runtime.queue_size': Input should be "
                             "greater than or equal to 1 (got 0)"),
    ("sources.0.bogus=1", "unknown config key 'sources.0.bogus'; allowed keys under "
                          "'sources.0': uri, stream_id"),
    ("bogus=1", "unknown config key 'bogus'; allowed keys under '<top level>': sources"),
])
def test_bad_keys_and_values_name_the_key_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT_CONFIG, [override])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_value_quoted_by_its_validator_is_shown_once():
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT_CONFIG, ["publisher.endpoint=udp://1.2.3.4:5"])
    assert str(err.value).count("(got 'udp://1.2.3.4:5')") == 1
    assert "must start with tcp:// or ipc://" in str(err.value)


def test_config_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file .* not found"):
        read_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime:\n  queue_size: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML .* line 3"):
        read_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        read_yaml(scalar)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty).runtime.queue_size == 2
