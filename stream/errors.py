"""One exception tree. Messages are one line: what is wrong and what to do about it.

`UserError` subclasses are problems the user can fix (bad config, missing file, unreachable
camera): the CLI prints `error: <message>` and exits non-zero without a traceback.
"""
from __future__ import annotations


class PipelineError(Exception):
    """Base of every error this project raises on purpose."""


class UserError(PipelineError):
    """Caused by input the user controls; printed as one line, no traceback."""


class ConfigError(UserError):
    """Invalid configuration value, unknown key, unreadable config file."""


class SourceError(UserError):
    """A video source cannot be opened or read (missing file, unreachable host, no webcam)."""


class EngineError(UserError):
    """A model/engine cannot be built or loaded (missing weights, bad checkpoint, missing extra)."""


class DependencyError(UserError):
    """An optional dependency is missing; the message names the extra to install."""


class RecorderError(UserError):
    """A recording cannot be written or read (unwritable path, disk full, truncated file)."""


class TransportError(UserError):
    """Publishing/subscribing failed (endpoint in use, bad keys, wrong schema version)."""


class StageCrashed(PipelineError):
    """A stage process died; carries the stage name and its error text."""

    def __init__(self, stage: str, detail: str):
        super().__init__(f"stage '{stage}' crashed: {detail}")
        self.stage = stage
        self.detail = detail


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise DependencyError naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(
            f"{purpose} needs the Python package '{module}' ({exc}); "
            f"install it with: pip install -e '.[{extra}]'") from None
