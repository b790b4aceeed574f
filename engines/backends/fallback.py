"""`auto` choices that try the fastest engine first and fall back, saying so once."""
from __future__ import annotations

import logging
from typing import Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def with_fallback(primary: Callable[[], T], fallback: Callable[[], T], what: str, instead: str) -> T:
    """`primary()`, or `fallback()` after ONE warning when primary raises anything (a TensorRT
    build can fail in the parser, the builder, AutoCast, or on an unsupported version; none of
    those should stop a run that another backend can serve)."""
    try:
        return primary()
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        log.warning("%s unavailable (%s: %s); using %s instead", what, type(exc).__name__, first, instead)
    return fallback()
