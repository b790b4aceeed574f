"""run_stream.py as a user runs it: help, one-line errors with exit 2, and real runs."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, VTEST, needs_shared

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run_stream.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env or ENV)


def assert_user_error(res: subprocess.CompletedProcess, fragment: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], res.stderr
    assert "Traceback" not in res.stderr


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_help_explains_the_options():
    res = run("--help")
    assert res.returncode == 0
    for needle in ("--config FILE", "--source URI", "--set KEY=VALUE", "--lossless",
                   "--replay SESSION", "--speed X", "examples:", "exit codes"):
        assert needle in res.stdout


def test_unknown_key_and_bad_value_are_one_line_errors():
    assert_user_error(run("--set", "runtime.queue_sz=3"), "unknown config key 'runtime.queue_sz'")
    assert_user_error(run("--set", "sources.0.pace=slow"),
                      "'sources.0.pace': Input should be 'native' or 'fast'")
    assert_user_error(run("--config", "does/not/exist.yaml"), "not found")


def test_print_config_shows_sources_and_overrides():
    res = run("--source", "a.mp4", "--source", "b.mp4", "--set", "runtime.queue_size=5",
              "--lossless", "--print-config")
    assert res.returncode == 0, res.stderr
    assert "uri: a.mp4" in res.stdout and "uri: b.mp4" in res.stdout
    assert "queue_size: 5" in res.stdout and "lossless: true" in res.stdout


def test_replay_speed_must_be_positive():
    assert_user_error(run("--replay", "x", "--speed", "0"), "--speed must be > 0")


@pytest.mark.skipif(has_module("sinks.replay"), reason="replay is installed")
def test_replay_without_module_is_a_clear_error():
    res = run("--replay", "sessions/x")
    assert res.returncode == 1 and "error: replay is not available" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.skipif(not has_module("stream.sources.factory"), reason="sources not built yet")
def test_missing_file_source_is_a_user_error(tmp_path: Path):
    res = run("--source", str(tmp_path / "missing.mp4"), "--set", "runtime.status_line=false",
              "--set", "recorder.enabled=false")
    assert_user_error(res, "source:cam0")


def test_missing_source_fails_before_any_stage_starts(tmp_path: Path, capsys):
    """Checked in the parent before any model loads: within 2 s (in this process, so the
    interpreter's start-up is not counted), and no session folder is left behind."""
    import time

    from stream.cli import main

    t0 = time.monotonic()
    code = main(["--source", str(tmp_path / "nonexistent.mp4"), "--set", "recorder.enabled=true",
                 "--set", f"recorder.directory={tmp_path / 'sessions'}",
                 "--set", "runtime.status_line=false", "--set", "runtime.summary_at_exit=false"])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith("error: source:cam0: video file not found")
    assert took < 2.0, f"took {took:.1f} s: the stages started before the source was checked"
    assert not (tmp_path / "sessions").exists() or not os.listdir(tmp_path / "sessions")


@needs_shared(VTEST)
@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not has_module("stream.sources.factory"), reason="sources not built yet")
def test_vtest_lossless_processes_every_frame():
    """The whole default chain (whatever stages exist) over all 795 frames, nothing dropped."""
    res = run("--source", str(VTEST), "--lossless", "--set", "publisher.enabled=false",
              "--set", "runtime.status_line=false", "--set", "recorder.enabled=false",
              timeout=1100)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = {m.group(1): [int(v) for v in m.groups()[1:]] for m in
            re.finditer(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", res.stderr, re.M)}
    assert rows["source:cam0"][:2] == [795, 795], res.stderr[-3000:]
    assert len(rows) >= 2, "no stage downstream of the source ran"
    for name, (n_in, _, drops, stale, errors) in rows.items():
        # >= : a stage's flush() may add end-of-stream packets after the last frame
        assert n_in >= 795 and drops == 0 and stale == 0 and errors == 0, (name, rows[name])


@pytest.mark.skipif(not has_module("sinks.replay"), reason="replay not built yet")
def test_replay_of_a_missing_session_is_a_user_error(tmp_path: Path):
    res = run("--replay", str(tmp_path / "no_session"), "--set",
              "publisher.endpoint=tcp://127.0.0.1:0")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in res.stderr


def test_default_command_publishes_joint_angles_and_records(tmp_path: Path):
    """The README's first command as a user runs it (default config, the bundled demo clip): a
    subscriber gets frames with a tracked person whose 46 angles respect the joint limits, and
    the session file holds the same frames.

    The source runs lossless: live at the clip's 60 fps the pose stage (BlazePose full, p50 ~70 ms
    on 2 cores) keeps one frame in four when idle and one in ten under CI load (30 of 300), so a
    count of posed frames would measure the machine, not the pipeline. Live dropping has its own
    tests (test_graph_run, test_graph_ring_queue)."""
    import numpy as np

    from engines.skel.dofs import DOF_LOWER, DOF_UPPER
    from sinks.client import PoseSubscriber
    from sinks.recorder import read_session
    from sinks.schema import FrameMsg, decode
    from stream.sources.factory import sample_clip_path

    if sample_clip_path() is None:
        pytest.skip("pose2sim demo clip not installed (pip install --no-deps pose2sim==0.10.49)")
    if os.path.exists("/dev/video0"):
        pytest.skip("a webcam is present: 'sample' would use it instead of the demo clip")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    sub = PoseSubscriber(endpoint, timeout_s=0.2)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run_stream.py"), "--set", "sources.0.max_frames=100",
         "--set", "sources.0.mode=lossless",
         "--set", f"publisher.endpoint={endpoint}", "--set", f"recorder.directory={tmp_path}",
         "--set", "recorder.session_name=demo", "--set", "runtime.status_line=false"],
        cwd=REPO, stderr=subprocess.PIPE, text=True, env=ENV)
    frames: list[FrameMsg] = []
    try:
        while proc.poll() is None:
            r = sub.recv()
            if r is not None and isinstance(r.msg, FrameMsg):
                frames.append(r.msg)
        while (r := sub.recv(timeout_s=0.5)) is not None:
            if isinstance(r.msg, FrameMsg):
                frames.append(r.msg)
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 0, err[-3000:]
    posed = [p for f in frames for p in f.persons if p.q is not None]
    assert len(posed) >= 80, (len(frames), err[-2000:])
    q = np.stack([p.q for p in posed])
    assert np.all(q >= DOF_LOWER - 1e-4) and np.all(q <= DOF_UPPER + 1e-4)
    assert len({p.track_id for p in posed}) <= 3            # one subject, a stable id
    knees = np.degrees(q[:, sub.dof_index["knee_angle_r"]])
    assert knees.max() - knees.min() > 5                    # the subject moves: not a frozen prior
    session = read_session(str(tmp_path / "demo"))
    recorded = [decode(d) for d in session.frames()]
    assert session.complete and len(recorded) >= len(frames) > 0
