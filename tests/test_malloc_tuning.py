"""engines/backends/malloc_tuning.py: after the call, a large buffer allocated and freed every
frame comes back from the heap instead of a fresh mmap faulted in page by page (issue 16)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

CHILD = """
import ctypes, ctypes.util, resource, sys
sys.path.insert(0, {repo!r})
if {tune}:
    from engines.backends.malloc_tuning import keep_large_allocations_on_heap
    assert keep_large_allocations_on_heap()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 40 << 20                              # over glibc's 32 MB cap on its adaptive threshold


def frame():                                 # a buffer written and freed every 'frame'
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)


frame()                                      # warm-up: the first touch faults either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    frame()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(tune: bool) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), tune=tune)],
                         capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt: Linux only")
def test_large_buffers_stay_on_the_heap():
    untuned, tuned = _faults(False), _faults(True)
    pages = 20 * (40 << 20) // 4096
    assert untuned > 0.5 * pages, (untuned, pages)     # a fresh mmap every time: every page faults
    assert tuned < 0.05 * pages, (tuned, pages)        # reused heap: almost none


def test_server_environment_carries_the_same_settings(monkeypatch):
    """The server's environment gets the client's allocator settings; a user's own value wins."""
    from engines.backends import malloc_tuning
    from engines.backends.triton_server import pytriton_dist, server_env
    from stream.errors import DependencyError

    try:
        pytriton_dist()
    except DependencyError as exc:
        pytest.skip(str(exc))

    for key in malloc_tuning.MALLOC_ENV:
        monkeypatch.delenv(key, raising=False)
    env = server_env()
    assert {k: env[k] for k in malloc_tuning.MALLOC_ENV} == {
        "MALLOC_MMAP_THRESHOLD_": str(malloc_tuning.MMAP_THRESHOLD_BYTES),
        "MALLOC_TRIM_THRESHOLD_": str(malloc_tuning.TRIM_THRESHOLD_BYTES),
        "MALLOC_TOP_PAD_": str(malloc_tuning.TOP_PAD_BYTES)}
    monkeypatch.setenv("MALLOC_TOP_PAD_", "12345")
    assert server_env()["MALLOC_TOP_PAD_"] == "12345"
