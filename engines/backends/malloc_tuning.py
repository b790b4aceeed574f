"""Keep a process's large, short-lived buffers on glibc's heap (why: Triton latency, issue 16).

glibc serves an allocation above its mmap threshold (128 KB at start, raised adaptively) with a
fresh mmap that is faulted in page by page and unmapped when freed. A pipeline that cuts and
sends crops every frame (MBs per step) then pays those page faults on every frame, in some runs
and not others, depending on how the adaptive threshold settled: the same 4-person Triton request
added +4.9 to +5.5 ms in half the runs on an idle machine and +2.2 to +2.9 ms in the others.
With the threshold fixed at 64 MB (and freed memory kept up to 256 MB) every run took the fast
path (BENCHMARKS.md, issue 16). The Triton server and its stubs get the same settings through
their environment (`engines.backends.triton_server.server_env`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3   # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 64 << 20
TRIM_THRESHOLD_BYTES = 256 << 20
TOP_PAD_BYTES = 64 << 20
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES),
              "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES), "MALLOC_TOP_PAD_": str(TOP_PAD_BYTES)}
"""The same settings as glibc environment variables, for a process started from here (the Triton
server and its Python-backend stubs: `engines.backends.triton_server.server_env`)."""

log = logging.getLogger(__name__)
_done = False


def keep_large_allocations_on_heap() -> bool:
    """Set glibc's mmap threshold, trim threshold and top pad for this process (once). Returns
    False where there is no glibc `mallopt` (macOS, musl, Windows): nothing changes there."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(k, v) == 1 for k, v in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                                             (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                                             (M_TOP_PAD, TOP_PAD_BYTES)))
    if not ok:
        log.warning("glibc mallopt refused the allocator settings; Triton requests may run slower")
    _done = ok
    return ok
