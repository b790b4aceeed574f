"""Publish + record stages in the real process graph, then replay and export of that session."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import VTEST, needs_shared
from engines.skel.dofs import DOF_NAMES
from sinks.client import PoseSubscriber
from sinks.config import PublisherConfig, RecorderConfig
from sinks.export import read_mot
from sinks.publish_stage import PublishStage
from sinks.record_stage import RecordStage
from sinks.recorder import read_session
from sinks.replay import run_replay
from sinks.schema import FrameMsg, HeartbeatMsg, decode
from sinks.synth import synthetic_packet
from stream.config import PipelineConfig, RuntimeConfig
from stream.errors import RecorderError
from stream.packet import Packet
from stream.pipeline import build_graph
from stream.source_stage import DEFAULT_OPENER
from stream.sources.config import SourceConfig
from stream.stage import Stage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPENER = "graph_helpers:open_test_source"


def ep() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class PersonsStage(Stage):
    """Stands in for detect/track/pose/smooth: adds 2 synthetic people (none on every 10th
    frame, so heartbeats and empty frames go through the graph as well)."""
    name = "persons"

    def process(self, packet: Packet) -> Packet:
        n = 0 if packet.frame.seq % 10 == 9 else 2
        packet.persons = synthetic_packet(packet.frame.stream_id, packet.frame.seq, n).persons
        return packet


def _collect(sub: PoseSubscriber, out: list, stop: threading.Event) -> None:
    while not stop.is_set():
        r = sub.recv(0.1)
        if r is not None:
            out.append(r.msg)
            if isinstance(r.msg, HeartbeatMsg) and r.msg.ended:
                return


def _run_subscribed(cfg: PipelineConfig, chain: list[Stage], opener: str = DEFAULT_OPENER):
    """Run chain -> {publish, record} while a client collects every message: (result, got)."""
    got: list = []
    stop = threading.Event()
    sub = PoseSubscriber(cfg.publisher.endpoint)
    t = threading.Thread(target=_collect, args=(sub, got, stop))
    t.start()
    try:
        result = build_graph(cfg, chain=chain, sinks=[PublishStage(cfg), RecordStage(cfg)],
                             opener=opener).run()
        t.join(10)
    finally:
        stop.set()
        t.join()
        sub.close()
    return result, got


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Run source -> persons -> {publish, record(+video)} once; share the session."""
    tmp = tmp_path_factory.mktemp("graph")
    endpoint = ep()
    cfg = PipelineConfig(
        sources=[SourceConfig(uri="test:n=60,w=64,h=48,fps=60", mode="lossless")],
        runtime=RuntimeConfig(status_line=False, summary_at_exit=False, lossless=True),
        publisher=PublisherConfig(endpoint=endpoint, wait_for_subscriber_s=5.0),
        recorder=RecorderConfig(enabled=True, directory=str(tmp), session_name="run",
                                video=True, video_gop_frames=15))
    result, got = _run_subscribed(cfg, [PersonsStage()], OPENER)
    assert result.exit_code == 0, result.errors
    return cfg, os.path.join(str(tmp), "run"), got


def test_graph_publishes_every_frame_and_records_the_session(session):
    cfg, path, got = session
    frames = [m for m in got if isinstance(m, FrameMsg)]
    assert [f.seq for f in frames] == list(range(60))  # lossless run + waited for the client
    assert isinstance(got[-1], HeartbeatMsg) and got[-1].ended
    assert all(len(f.persons) == (0 if f.seq % 10 == 9 else 2) for f in frames)
    d = read_session(path)
    assert d.complete
    rec = [decode(p) for p in d.frames()]
    assert [f.seq for f in rec] == list(range(60))
    assert "lossless: true" in d.metadata["skelstream.config"]["yaml"]
    live = {f.seq: f for f in frames}
    for f in rec:  # what was recorded is what clients got
        for a, b in zip(f.persons, live[f.seq].persons):
            np.testing.assert_array_equal(a.q, b.q)
    assert os.path.exists(os.path.join(path, "cam0.mp4"))


def test_replay_republishes_with_original_timing(session):
    cfg, path, _ = session
    endpoint = ep()
    rcfg = cfg.model_copy(update={"publisher": PublisherConfig(
        endpoint=endpoint, replay_wait_for_subscriber_s=5.0)})
    got: list = []
    stop = threading.Event()
    with PoseSubscriber(endpoint) as sub:
        t = threading.Thread(target=_collect, args=(sub, got, stop))
        t.start()
        t0 = time.monotonic()
        assert run_replay(path, rcfg, speed=2.0) == 0
        took = time.monotonic() - t0
        t.join(5)
        stop.set()
    frames = [m for m in got if isinstance(m, FrameMsg)]
    assert [f.seq for f in frames] == list(range(60))
    # 60 frames at 60 fps = ~1 s recorded -> ~0.5 s at speed 2 (plus connection set-up)
    span = (frames[-1].capture_ns - frames[0].capture_ns) / 1e9
    assert span / 2 * 0.8 < took < span / 2 + 3.0


def test_replay_of_truncated_session_and_cli(session, tmp_path):
    _, path, _ = session
    cut = tmp_path / "cut.mcap"
    data = open(os.path.join(path, "poses.mcap"), "rb").read()
    cut.write_bytes(data[: len(data) * 2 // 3])
    endpoint = ep()
    r = subprocess.run([sys.executable, "run_stream.py", "--replay", str(cut), "--speed", "50",
                        "--set", f"publisher.endpoint={endpoint}",
                        "--set", "publisher.replay_wait_for_subscriber_s=0"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "truncated" in r.stderr and "sinks.recorder recover" in r.stderr
    cut.write_bytes(data[:20])
    r = subprocess.run([sys.executable, "run_stream.py", "--replay", str(cut)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1


def test_missing_session_is_recorder_error(tmp_path):
    with pytest.raises(RecorderError, match="no recording"):
        run_replay(str(tmp_path / "nope"), PipelineConfig(), 1.0)


def test_export_mot_csv_parquet(session, tmp_path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    _, path, _ = session
    export = [sys.executable, "-m", "sinks.export", path, "--out", str(tmp_path)]
    # synthetic people are not upright: no floor to estimate, so .mot needs a given camera pose
    r = subprocess.run(export, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "camera_pose.height_m" in r.stderr and "python -m sinks.world_frame" in r.stderr
    assert (tmp_path / "poses.parquet").exists() and not (tmp_path / "cam0_track1.mot").exists()
    r = subprocess.run([sys.executable, "-m", "sinks.world_frame", path, "--stream", "cam0",
                        "--height-m", "1.2", "--pitch-deg", "10"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(export + ["--opensim-model", "skel"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    frames = [decode(p) for p in read_session(path).frames()]
    cols, rows = read_mot(str(tmp_path / "cam0_track1.mot"))
    assert cols == ["time", "pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx",
                    "pelvis_ty", "pelvis_tz", *DOF_NAMES[3:]]
    header = (tmp_path / "cam0_track1.mot").read_text().split("endheader")[0]
    assert "inDegrees=yes" in header and f"nRows={len(rows)}" in header
    with_p1 = [f for f in frames if f.persons]
    assert len(rows) == len(with_p1) == 54
    # a file source: time is the clip's presentation time (capture time only for live sources)
    assert all(f.media_pts_s is not None for f in with_p1)
    np.testing.assert_allclose(rows[:, 0], [f.media_pts_s for f in with_p1], atol=1e-6)
    np.testing.assert_allclose(rows[:, 7:], np.rad2deg([f.persons[0].q[3:] for f in with_p1]),
                               atol=1e-4)
    table = pq.read_table(tmp_path / "poses.parquet")
    assert table.num_rows == 108
    assert table.schema.field("knee_angle_r_rad").metadata[b"unit"] == b"rad"
    knee = table.column("knee_angle_r_rad").to_numpy()
    np.testing.assert_allclose(knee[1], frames[0].persons[1].q[6])
    csv = pacsv.read_csv(tmp_path / "poses.csv")
    assert csv.num_rows == 108 and csv.column_names == table.column_names


def test_record_stage_unwritable_directory_is_user_error(tmp_path):
    (tmp_path / "f").write_text("x")
    cfg = PipelineConfig(recorder=RecorderConfig(enabled=True, directory=str(tmp_path / "f")))
    with pytest.raises(RecorderError):
        RecordStage(cfg).setup()


def test_a_source_failing_in_its_process_leaves_no_empty_session(tmp_path):
    """A file that exists passes the parent's check but cannot be decoded: the run exits 2 and
    the recorder, which never got a frame, removes the session folder it had opened."""
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(os.urandom(4096))
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=str(bad))],
        runtime=RuntimeConfig(status_line=False, summary_at_exit=False),
        recorder=RecorderConfig(enabled=True, directory=str(tmp_path / "sessions"),
                                session_name="run", ros2=True))
    result = build_graph(cfg, chain=[], sinks=[RecordStage(cfg)]).run()
    assert result.exit_code == 2 and "source:cam0" in result.errors[0], result.errors
    assert not (tmp_path / "sessions" / "run").exists()


def test_record_stage_buffer_drops_oldest_without_blocking(tmp_path):
    cfg = PipelineConfig(recorder=RecorderConfig(enabled=True, directory=str(tmp_path),
                                                 queue_frames=4))
    st = RecordStage(cfg)
    st.setup()
    try:
        with st._cv:  # hold the writer back: process() must still return at once
            t0 = time.perf_counter()
            for i in range(50):
                st.process(synthetic_packet("cam0", i, 1))
            took = time.perf_counter() - t0
    finally:
        st.close()
    assert took < 1.0 and st.buffer_drops == 46
    d = read_session(os.path.join(str(tmp_path), os.listdir(tmp_path)[0]))
    assert [decode(p).seq for p in d.frames()] == [46, 47, 48, 49]


_RUN = """
import sys
sys.path.insert(0, "tests")
from test_sinks_stages import PersonsStage, OPENER
from sinks.config import RecorderConfig, PublisherConfig
from sinks.record_stage import RecordStage
from stream.config import PipelineConfig, RuntimeConfig
from stream.pipeline import build_graph
from stream.sources.config import SourceConfig
if __name__ == "__main__":
    cfg = PipelineConfig(
        sources=[SourceConfig(uri="test:n=100000,w=64,h=48,fps=100,live=1")],
        runtime=RuntimeConfig(status_line=False, summary_at_exit=False),
        publisher=PublisherConfig(enabled=False),
        recorder=RecorderConfig(enabled=True, directory=sys.argv[1], session_name="k",
                                flush_interval_s=0.5, video=True, video_gop_frames=20))
    build_graph(cfg, chain=[PersonsStage()], sinks=[RecordStage(cfg)], opener=OPENER).run()
"""


def test_kill_9_of_the_whole_run_loses_under_1s(tmp_path):
    import signal

    from sinks.recorder import recover

    script = tmp_path / "run.py"
    script.write_text(_RUN)
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=REPO,
                         start_new_session=True, stderr=subprocess.PIPE, text=True)
    mcap = tmp_path / "k" / "poses.mcap"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not mcap.exists() or mcap.stat().st_size < 20_000):
        time.sleep(0.1)  # wait until frames really flow (spawned stages import slowly)
    time.sleep(1.5)
    kill_utc = time.time_ns()
    os.killpg(p.pid, signal.SIGKILL)  # the parent and every stage process at once
    p.wait(10)
    for name in os.listdir("/dev/shm"):  # this run's frame ring: its shm watchdog (own session,
        if name.startswith(f"sk{p.pid:x}"):  # spared by killpg) may be unlinking it right now
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join("/dev/shm", name))
    assert mcap.exists(), p.stderr.read()
    n = recover(str(tmp_path / "k"))
    frames = [decode(x) for x in read_session(str(tmp_path / "k")).frames()]
    assert n == len(frames) + 1 and len(frames) > 50
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs)
    lost_s = (kill_utc - frames[-1].capture_utc_ns) / 1e9
    assert lost_s < 1.0, f"lost {lost_s:.2f} s of poses"
    import av  # the fragmented MP4 keeps every finished fragment

    with av.open(str(tmp_path / "k" / "cam0.mp4")) as c:
        pts = [f.pts for f in c.decode(video=0)]
    assert len(pts) > 20 and pts == sorted(pts)


@needs_shared(VTEST)
def test_one_message_per_frame_over_zeromq_and_in_the_recording(tmp_path):
    """The tracker's end-of-stream packet (REMOVED events for the last tracks, the last frame's
    seq) is applied downstream but neither published nor recorded: `seq` never repeats."""
    from tracking.stage import DetectTrackStage

    endpoint = ep()
    n_frames = 40
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=str(VTEST), mode="lossless", pace="fast", max_frames=n_frames)],
        runtime=RuntimeConfig(status_line=False, summary_at_exit=False, lossless=True),
        publisher=PublisherConfig(endpoint=endpoint, wait_for_subscriber_s=5.0),
        recorder=RecorderConfig(enabled=True, directory=str(tmp_path), session_name="run"))
    res, got = _run_subscribed(cfg, [DetectTrackStage(cfg)])
    assert res.exit_code == 0, res.errors
    assert isinstance(got[-1], HeartbeatMsg) and got[-1].ended
    seqs = [m.seq for m in got if isinstance(m, FrameMsg)]
    assert seqs and seqs[-1] == n_frames - 1       # vtest has walkers in view at the end
    assert seqs == sorted(set(seqs))               # no frame published twice
    assert all(0 <= s < n_frames for s in seqs)
    recorded = [decode(d) for d in read_session(str(tmp_path / "run")).frames()]
    assert [m.seq for m in recorded] == list(range(n_frames))  # every frame once, nothing more
