"""Removes a graph's frame rings from /dev/shm as soon as its parent process is gone.

Why: after `kill -9` of the whole process group nobody is left to unlink the rings (up to
hundreds of MB of RAM), and the stale-ring sweep at the next start may come much later or never.
The graph parent starts this as a tiny separate program in its own session (so a group-wide
SIGKILL spares it), holding the read end of a pipe whose write end only the parent has: EOF on it
means the parent exited or was killed. It then unlinks every /dev/shm entry whose name starts
with the graph's token and exits. On a normal exit the rings are already gone and it just exits.

Run as `python -I -S shm_watchdog.py PREFIX` (stdlib `os`/`sys` only, starts in milliseconds);
the parent side is `start(prefix)` / `stop(handle)`.
"""
from __future__ import annotations

import os
import sys

SHM_DIR = "/dev/shm"


def remove_prefixed(prefix: str, directory: str = SHM_DIR) -> list[str]:
    """Unlink every entry of `directory` whose name starts with `prefix`; returns their names."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def _wait_for_eof(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 4096):
                return
        except InterruptedError:
            continue
        except OSError:
            return


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0]:
        print("usage: shm_watchdog.py PREFIX (reads stdin until EOF)", file=sys.stderr)
        return 2
    _wait_for_eof(0)
    remove_prefixed(argv[0])
    return 0


# ------------------------------------------------------------------------------------------
# parent side
# ------------------------------------------------------------------------------------------
def start(prefix: str):
    """Start a watchdog for rings named `prefix*`; None where there is no /dev/shm (not Linux)
    or it cannot start (the stale-ring sweep at the next run still covers that case)."""
    import subprocess

    if not os.path.isdir(SHM_DIR):
        return None
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), prefix],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
    except OSError:
        return None


def stop(handle) -> None:
    """Normal end of a run: close the pipe (the watchdog sweeps, finds nothing, exits); reap it."""
    if handle is None:
        return
    try:
        handle.stdin.close()
        handle.wait(5.0)
    except Exception:  # noqa: BLE001 - best effort: an unreaped watchdog exits by itself
        pass


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
