"""Recorder: writer vs reader, kill -9 mid-write + recover, disk full/low, bad paths, video pts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from sinks.recorder import META_TOPIC, SessionRecorder, read_session, recover, resolve_session
from sinks.schema import MetaMsg, decode
from sinks.synth import synthetic_packet
from stream.errors import RecorderError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _record(directory, n=30, persons=2, **kw) -> SessionRecorder:
    with SessionRecorder(str(directory), "s", config_yaml="runtime: {}\n", **kw) as rec:
        for i in range(n):
            rec.write_packet(synthetic_packet("cam0", i, persons))
            rec.write_packet(synthetic_packet("cam1", i, 1))
    return rec


def test_writer_reader_round_trip(tmp_path):
    from mcap.reader import make_reader

    rec = _record(tmp_path, n=30)
    d = read_session(rec.path)
    assert d.complete
    assert {"skelstream.config", "skelstream.versions", "skelstream.meta",
            "skelstream.stats"} <= set(d.metadata)
    assert d.metadata["skelstream.config"]["yaml"].startswith("runtime")
    assert d.metadata["skelstream.versions"]["mcap"]
    assert isinstance(decode(d.messages[0][2]), MetaMsg) and d.messages[0][0] == META_TOPIC
    frames = [decode(p) for p in d.frames()]
    assert [f.seq for f in frames if f.stream == "cam0"] == list(range(30))
    ref = synthetic_packet("cam0", 7, 2)
    np.testing.assert_allclose([f for f in frames if f.stream == "cam0"][7].persons[1].q,
                               ref.persons[1].q)
    with open(resolve_session(rec.path), "rb") as f:  # a standard MCAP reader agrees
        summary = make_reader(f).get_summary()
        assert summary.statistics.message_count == 61
        topics = {c.topic for c in summary.channels.values()}
    assert topics == {"/meta", "/cam0/pose", "/cam1/pose"}


def test_unwritable_path_is_recorder_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecorderError, match="recorder.directory") as ei:
        SessionRecorder(str(blocker / "sessions")).open()
    assert "\n" not in str(ei.value)


def test_existing_session_is_not_overwritten(tmp_path):
    _record(tmp_path, n=2)
    with pytest.raises(RecorderError, match="session_name"):
        SessionRecorder(str(tmp_path), "s").open()


def test_low_disk_space_refuses_start_and_stops_cleanly(tmp_path, capsys):
    with pytest.raises(RecorderError, match="min_free_disk_mb"):
        SessionRecorder(str(tmp_path), "a", min_free_disk_mb=1e12).open()
    rec = SessionRecorder(str(tmp_path), "b", min_free_disk_mb=1.0).open()
    for i in range(5):
        assert rec.write_packet(synthetic_packet("cam0", i, 1))
    rec.min_free_mb, rec._next_disk = 1e12, 0.0  # the disk "fills up" mid-session
    assert rec.write_packet(synthetic_packet("cam0", 5, 1)) is False
    assert rec.write_packet(synthetic_packet("cam0", 6, 1)) is False
    rec.close()
    assert "recording stopped" in capsys.readouterr().err
    d = read_session(rec.path)
    assert d.complete  # stopped cleanly: footer written
    assert [decode(p).seq for p in d.frames()] == [0, 1, 2, 3, 4, 5]
    assert "min_free_disk_mb" in d.metadata["skelstream.stats"]["stopped_reason"]


def test_a_session_without_frames_leaves_no_folder(tmp_path, capsys):
    SessionRecorder(str(tmp_path), "empty").open().close()
    assert not (tmp_path / "empty").exists()
    with pytest.raises(RecorderError, match="min_free_disk_mb"):
        SessionRecorder(str(tmp_path), "full", min_free_disk_mb=1e12).open()
    assert not (tmp_path / "full").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's own file")
    SessionRecorder(str(tmp_path), "mine").open().close()
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]  # only what the recorder made goes
    _record(tmp_path, n=1)
    assert read_session(str(tmp_path / "s")).complete  # one frame: the session stays


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_real_disk_full_stops_with_warning_and_recovers(tiny_tmpfs, tmp_path, capsys):
    rec = SessionRecorder(str(tiny_tmpfs), "s", flush_interval_s=0.001,
                          chunk_size_bytes=4096).open()
    n = 0
    while rec.write_packet(synthetic_packet("cam0", n, 4)):
        n += 1
        assert n < 100_000
    rec.close()
    assert "recording stopped" in capsys.readouterr().err
    out = str(tmp_path / "recovered.mcap")
    got = recover(rec.path, out=out)  # the full disk keeps the file; recover elsewhere
    assert got > 10
    d = read_session(out)
    assert d.complete and [decode(p).seq for p in d.frames()] == list(range(got - 1))


_WRITER = textwrap.dedent("""
    import sys, time
    from sinks.recorder import SessionRecorder
    from sinks.synth import synthetic_packet
    rec = SessionRecorder(sys.argv[1], "s", flush_interval_s=0.5).open()
    print("open", flush=True)
    i = 0
    while True:
        rec.write_packet(synthetic_packet("cam0", i, 4))
        i += 1
        time.sleep(0.005)
""")


def test_kill_9_mid_write_loses_under_1s_and_recovers(tmp_path):
    from mcap.reader import make_reader

    p = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], cwd=REPO,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "open"
    time.sleep(2.0)
    kill_utc = time.time_ns()
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    path = os.path.join(tmp_path, "s", "poses.mcap")
    with open(path, "rb") as f, pytest.raises(Exception):
        list(make_reader(f).iter_messages())  # no footer: a plain reader gives up
    d = read_session(path)
    assert not d.complete and len(d.messages) > 50
    n = recover(path)
    with open(path, "rb") as f:
        msgs = list(make_reader(f).iter_messages())
    assert len(msgs) == n
    frames = [decode(m[2].data) for m in msgs if m[1].topic != META_TOPIC]
    seqs = [f.seq for f in frames]
    assert seqs == list(range(len(seqs)))  # every complete message, in order, nothing torn
    lost_s = (kill_utc - frames[-1].capture_utc_ns) / 1e9
    assert lost_s < 1.0, f"lost {lost_s:.2f} s of poses"


def test_video_pts_line_up_with_pose_capture_times(tmp_path):
    import av

    rec = SessionRecorder(str(tmp_path), "v", video=True, video_gop_frames=10).open()
    for i in range(40):
        pkt = synthetic_packet("cam0", i, 1, width=96, height=64)
        img = np.full((64, 96, 3), (i * 6) % 256, np.uint8)
        rec.write_packet(pkt, img)
        time.sleep(0.004)
    rec.close()
    d = read_session(rec.path)
    info = d.metadata["skelstream.video.cam0"]
    t0 = int(info["t0_capture_ns"])
    by_time = {(f.capture_ns - t0) // 1000: f.seq for f in map(decode, d.frames())}
    with av.open(os.path.join(rec.path, info["file"])) as c:
        decoded = [(fr.pts, fr.to_ndarray(format="gray").mean()) for fr in c.decode(video=0)]
    assert len(decoded) == 40
    for pts, mean in decoded:
        seq = by_time[pts]  # exact pts -> the pose frame captured at that instant
        assert abs(mean - (seq * 6) % 256) < 3
