"""Every exit path leaves no process and no shared memory behind: Ctrl-C, SIGTERM under load,
a second Ctrl-C, and kill -9 of the parent (children notice and exit)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graph_helpers import read_collected

DRIVER = Path(__file__).with_name("graph_driver.py")
pytestmark = pytest.mark.skipif(not Path("/proc").is_dir() or not Path("/dev/shm").is_dir(),
                                reason="needs Linux /proc and /dev/shm")


def _procs_where(field: int, value: int) -> list[int]:
    """Pids whose /proc/PID/stat field (after the name: 1 = parent pid, 2 = process group)
    equals `value`."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[field]) == value:
                pids.append(int(d))
    return pids


def _children(pid: int) -> list[int]:
    return _procs_where(1, pid)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _start(tmp_path: Path, mode: str, delay: float = 0.005, own_group: bool = False):
    out = tmp_path / "out.txt"
    proc = subprocess.Popen([sys.executable, str(DRIVER), str(out), mode, str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=DRIVER.parent.parent, start_new_session=own_group)
    token = proc.stdout.readline().split()[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= 10:
            break
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("graph never produced frames")
    return proc, out, token, _children(proc.pid)


def _shm(token: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(token)]


def _wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize("sig,mode", [(signal.SIGINT, "live"), (signal.SIGTERM, "lossless")])
def test_signal_drains_closes_files_and_cleans_up(tmp_path: Path, sig, mode):
    proc, out, token, kids = _start(tmp_path, mode)
    assert len(kids) >= 3 and _shm(token)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "EXIT 0" in stdout and "run summary:" in stderr and "Traceback" not in stderr
    pk, ends, closed = read_collected(out)
    assert ends == ["cam0"] and closed            # the sink flushed the stream and closed
    seqs = [p[1] for p in pk]
    if mode == "lossless":                        # queues drained: nothing lost under load
        assert seqs == list(range(len(seqs)))
    assert _wait_gone(kids) == [] and _shm(token) == []


def test_second_ctrl_c_aborts_a_long_drain(tmp_path: Path):
    proc, out, token, kids = _start(tmp_path, "lossless", delay=0.3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 5
    assert read_collected(out)[2]                 # close() still ran
    assert _wait_gone(kids) == [] and _shm(token) == []


def test_parent_kill_9_children_exit_and_unlink_shm(tmp_path: Path):
    proc, out, token, kids = _start(tmp_path, "live")
    assert _shm(token)
    proc.kill()
    proc.wait(10)
    assert _wait_gone(kids) == []
    deadline = time.monotonic() + 10
    while _shm(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _shm(token) == []
    assert read_collected(out)[2]                 # the sink closed its file on the way out


def _shm_in_use(pids: list[int]) -> set[str]:
    """Named /dev/shm entries these processes map (rings, named semaphores), unlinked ones aside."""
    names = set()
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/dev/shm/") \
                    and not parts[5].endswith("(deleted)"):
                names.add(parts[5])
    return names


def test_kill_9_of_the_whole_run_leaves_nothing_in_dev_shm(tmp_path: Path):
    """kill -9 of the whole process group: the ring goes within seconds (watchdog), no named
    semaphore is ever made, and after the next run starts nothing of the killed run is left."""
    # lossless: a loaded machine cannot make the strict check stage see a lapped frame and crash
    proc, out, token, kids = _start(tmp_path, "lossless", own_group=True)
    group = _procs_where(2, proc.pid)  # the parent, its stages, the resource tracker
    time.sleep(0.5)  # every stage has mapped what it uses
    used = _shm_in_use(group)
    assert any(p.startswith(f"/dev/shm/{token}") for p in used), used
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert _wait_gone(group) == []
    deadline = time.monotonic() + 5
    while _shm(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _shm(token) == [], "the ring outlived the killed run"
    (tmp_path / "next").mkdir()
    nxt, _, _, nxt_kids = _start(tmp_path / "next", "lossless")
    nxt.send_signal(signal.SIGINT)
    nxt.communicate(timeout=30)
    assert _wait_gone(nxt_kids) == []
    left = sorted(p for p in used if os.path.exists(p))
    assert left == [], f"left in /dev/shm by the killed run: {left}"
    watchdogs = [d for d in os.listdir("/proc") if d.isdigit() and token in
                 _cmdline(int(d))]
    assert watchdogs == []  # the watchdog exited too


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
