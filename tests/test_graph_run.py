"""The graph runtime end to end with real processes, shared memory and test stages."""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np

from graph_helpers import (OPENER, CheckStage, CollectSink, CommSink, CrashStage, DropOddStage,
                           read_collected)
from stream.config import RuntimeConfig
from stream.graph import Graph
from stream.source_stage import SourceStage
from stream.sources.config import SourceConfig

RT = dict(status_line=False, summary_at_exit=False, metrics_interval_s=0.2, drain_timeout_s=10)


def source(uri: str, sid: str, mode: str = "lossless", slots: int = 8) -> SourceStage:
    return SourceStage(SourceConfig(uri=uri, mode=mode, stream_id=sid), sid, slots, OPENER)


def leftovers(g: Graph) -> list[str]:
    """Rings of this graph still in /dev/shm, and child processes still alive."""
    shm = [n for n in os.listdir("/dev/shm") if n.startswith(g._token)]
    alive = [n.name for n in g.nodes.values() if n.proc is not None and n.proc.is_alive()]
    return shm + alive + [p.name for p in mp.active_children()
                          if p.name.startswith("skelstream-")]


def test_lossless_two_sources_every_frame_in_order(tmp_path: Path):
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT), lossless=True)
    g.add(source("test:n=60,w=96,h=64", "a"), to=["check"])
    g.add(source("test:n=45,w=32,h=24,into=1", "b"), to=["check"])  # decodes into the slot
    g.add(CheckStage("check"), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    pk, ends, closed = read_collected(out)
    for sid, n in (("a", 60), ("b", 45)):
        mine = [p for p in pk if p[0] == sid]
        assert [p[1] for p in mine] == list(range(n))           # every frame, in order
        assert [p[2] for p in mine] == [0] * (n - 1) + [1]      # FrameInfo.last on the last one
        assert all(p[5] == 1 for p in mine)                     # pixels were the right frame
        assert set(mine[0][6]) >= {f"source:{sid}", "check"}    # per-stage timings recorded
        cap = np.array([p[3] for p in mine])
        assert (np.diff(cap) > 0).all()                         # capture timestamps monotonic
    assert sorted(ends) == ["a", "b"] and closed
    assert res.stats["check"]["frames_in"] == 105 and res.stats["check"]["drops"] == 0
    assert res.stats["source:a"]["frames_out"] == 60
    assert leftovers(g) == []


def test_lossless_ring_smaller_than_backlog_never_tears(tmp_path: Path):
    """A slow reader with a 4-slot ring: the source must wait, never overwrite a frame in use."""
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT, queue_size=8), lossless=True)
    g.add(source("test:n=40,w=64,h=48", "a", slots=4), to=["fast"])
    g.add(CheckStage("fast"), to=["slow"])
    g.add(CheckStage("slow", delay_s=0.01), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    pk, _, _ = read_collected(out)
    assert [p[1] for p in pk] == list(range(40))
    assert res.stats["slow"]["stale"] == 0 and res.stats["fast"]["stale"] == 0


def test_lossless_packets_consumed_mid_chain_release_their_slots(tmp_path: Path):
    """A stage that consumes packets must not leave the source waiting for their slots."""
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT, queue_size=2), lossless=True)
    g.add(source("test:n=60,w=64,h=48,into=1", "a", slots=4), to=["check1"])
    g.add(CheckStage("check1"), to=["drop_odd"])
    g.add(DropOddStage("drop_odd", drop_from=30), to=["check2"])
    g.add(CheckStage("check2", delay_s=0.002), to=["collect"])
    g.add(CollectSink(str(out), "collect", needs_image=True))
    res = g.run()
    assert res.exit_code == 0, res.errors
    pk, ends, closed = read_collected(out)
    assert [p[1] for p in pk] == list(range(0, 30, 2)) and ends == ["a"] and closed
    assert res.stats["check2"]["stale"] == 0


def test_live_slow_stage_drops_oldest_and_counts(tmp_path: Path):
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT, queue_size=2), lossless=False)
    g.add(source("test:n=150,w=64,h=48,fps=150,live=1", "cam0", mode="live", slots=16),
          to=["slow"])
    g.add(CheckStage("slow", delay_s=0.03, strict=False), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    pk, ends, closed = read_collected(out)
    seqs = [p[1] for p in pk]
    drops = res.stats["slow"]["drops"] + res.stats["slow"]["stale"]
    assert drops > 50                                   # ~1 s at 150 fps into a ~33 fps stage
    assert len(seqs) + drops == 150                     # every frame delivered or counted
    assert seqs == sorted(seqs) and seqs[-1] >= 140     # oldest dropped: the newest get through
    assert all(p[5] == 1 for p in pk)                   # nothing torn got through
    lat_ms = np.array([p[4] for p in pk]) / 1e6
    assert np.percentile(lat_ms, 50) < 200              # bounded by the queue, not the backlog
    assert ends == ["cam0"] and closed


def _paced_folder_run(tmp_path: Path, wait_s: float, name: str):
    """A 30 fps image folder played live into a stage whose first frame takes 0.6 s (a model's
    warm-up): what the collector got and the stage's drops."""
    import cv2

    from graph_helpers import stamp

    folder = tmp_path / "frames"
    if not folder.exists():
        folder.mkdir()
        for i in range(30):
            cv2.imwrite(str(folder / f"{i:03d}.png"), stamp(i, 48, 64))
    out = tmp_path / f"{name}.txt"
    g = Graph(RuntimeConfig(**RT, queue_size=4), lossless=False)
    cfg = SourceConfig(uri=str(folder), mode="live", stream_id="f", fps=30.0,
                       first_frame_wait_s=wait_s)
    g.add(SourceStage(cfg, "f", 8), to=["warm"])
    g.add(CheckStage("warm", first_delay_s=0.6, strict=False), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    return read_collected(out)[0], res.stats["warm"]["drops"] + res.stats["warm"]["stale"]


def test_file_played_live_starts_its_clock_after_its_first_frame(tmp_path: Path):
    """A file played live holds its clock until its first frame is through every image-reading
    stage (`first_frame_wait_s`): a stage warming up on that frame costs the clip nothing.
    Without the wait, the frames paced out meanwhile (~18 at 30 fps) were dropped."""
    pk, drops = _paced_folder_run(tmp_path, 10.0, "wait")
    assert [p[1] for p in pk] == list(range(30)) and drops == 0
    cap = np.array([p[3] for p in pk]) / 1e9
    assert cap[1] - cap[0] > 0.55                  # frame 1 came after the warm-up, then 30 fps
    assert abs((cap[-1] - cap[1]) / 28 - 1 / 30) < 0.01
    pk, drops = _paced_folder_run(tmp_path, 0.0, "no_wait")
    assert drops >= 8 and len(pk) + drops == 30


def test_ring_wait_done_waits_for_every_consumer_or_times_out():
    from stream.shm_ring import ShmRing

    name = f"skeltest{os.getpid()}wd"
    with ShmRing.create(name, 4, 8, 8) as ring:
        ring.write(np.zeros((8, 8, 3), np.uint8))
        never = lambda: False  # noqa: E731
        assert not ring.wait_done(0, [0, 1], never, timeout_s=0.05)
        ring.mark_done(0, 0)
        assert not ring.wait_done(0, [0, 1], never, timeout_s=0.05)   # consumer 1 not yet
        ring.mark_done(1, 0)
        assert ring.wait_done(0, [0, 1], never, timeout_s=0.05)
        assert ring.wait_done(0, [], never, timeout_s=0.0)            # nobody reads images
        assert not ring.wait_done(1, [0], lambda: True, timeout_s=5.0)  # aborted


def test_live_ring_lapped_under_a_slow_reader_is_dropped_not_torn(tmp_path: Path):
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT, queue_size=4), lossless=False)
    g.add(source("test:n=120,w=64,h=48,fps=200,live=1", "cam0", mode="live", slots=4),
          to=["slow"])
    g.add(CheckStage("slow", delay_s=0.03, strict=False), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    pk, _, _ = read_collected(out)
    assert res.stats["slow"]["stale"] > 0
    assert all(p[5] == 1 for p in pk)


def test_fan_out_reaches_every_sink(tmp_path: Path):
    g = Graph(RuntimeConfig(**RT), lossless=True)
    g.add(source("test:n=30", "a"), to=["check"])
    g.add(CheckStage("check"), to=["s1", "s2"])
    g.add(CollectSink(str(tmp_path / "1.txt"), "s1"))
    g.add(CollectSink(str(tmp_path / "2.txt"), "s2", needs_image=True))
    assert g.run().exit_code == 0
    for f in ("1.txt", "2.txt"):
        pk, ends, closed = read_collected(tmp_path / f)
        assert [p[1] for p in pk] == list(range(30)) and ends == ["a"] and closed


def test_each_stage_process_carries_its_stage_name(tmp_path: Path):
    """top / ps / /proc/PID/comm show the stage, not "python" (Linux keeps 15 bytes)."""
    g = Graph(RuntimeConfig(**RT), lossless=True)
    g.add(source("test:n=3", "a"), to=["pose", "a_rather_long_stage_name"])
    g.add(CommSink(str(tmp_path / "short.txt"), "pose"))
    g.add(CommSink(str(tmp_path / "long.txt"), "a_rather_long_stage_name"))
    assert g.run().exit_code == 0
    assert (tmp_path / "short.txt").read_text() == "pose"
    assert (tmp_path / "long.txt").read_text() == "a_rather_long_s"


def test_crash_stops_run_names_stage_and_cleans_up(tmp_path: Path):
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT), lossless=True)
    g.add(source("test:n=200", "a"), to=["pose"])
    g.add(CrashStage("pose", crash_at=5), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 1
    assert any("stage 'pose' crashed" in e and "boom at seq 5" in e for e in res.errors)
    assert read_collected(out)[2]  # the sink still closed its file
    assert leftovers(g) == []


def test_hard_crash_is_reported_with_exit_code(tmp_path: Path):
    g = Graph(RuntimeConfig(**RT), lossless=True)
    g.add(source("test:n=200", "a"), to=["pose"])
    g.add(CrashStage("pose", crash_at=3, hard=True), to=["collect"])
    g.add(CollectSink(str(tmp_path / "o.txt"), "collect"))
    res = g.run()
    assert res.exit_code == 1
    assert any("stage 'pose' crashed: exited with code 9" in e for e in res.errors)
    assert leftovers(g) == []


def test_crashed_stage_is_restarted_when_configured(tmp_path: Path):
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT, restart_crashed_stages=True, max_restarts=2), lossless=True)
    g.add(source("test:n=80", "a"), to=["pose"])
    g.add(CrashStage("pose", crash_at=10, marker=str(tmp_path / "m")), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    assert res.stats["pose"]["restarts"] == 1
    assert any("stage 'pose' crashed (RuntimeError: boom at seq 10" in w and "restart 1/2" in w
               for w in res.warnings)
    pk, ends, closed = read_collected(out)
    seqs = [p[1] for p in pk]
    assert seqs[-1] == 79 and 10 not in seqs and ends == ["a"] and closed
    assert leftovers(g) == []


def test_sources_wait_for_every_setup_and_a_failed_one_is_not_finished():
    """The rule `_wait_ready` applies to the stages' board states: READY or DONE everywhere
    starts the sources; STARTING or FAILED anywhere does not (FAILED shows on the board before
    the stage's error report is read: the race that started sources next to a failed setup)."""
    from stream.graph import setup_finished
    from stream.metrics import DONE, FAILED, READY, STARTING

    assert setup_finished([READY, READY, DONE]) and setup_finished([])
    assert not setup_finished([READY, STARTING])
    assert not setup_finished([READY, FAILED])


def test_user_error_in_setup_exits_2_before_sources_start(tmp_path: Path):
    g = Graph(RuntimeConfig(**RT), lossless=True)
    g.add(source("test:n=50", "a"), to=["pose"])
    g.add(CrashStage("pose", in_setup=True, user=True), to=[])
    res = g.run()
    assert res.exit_code == 2
    assert res.errors == ["pose: setup failed on purpose"]
    assert g.nodes["source:a"].proc is None  # never started
    assert leftovers(g) == []


def test_failing_source_ends_only_its_stream(tmp_path: Path):
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT), lossless=True)
    g.add(source("test:n=50", "good"), to=["collect"])
    g.add(source("test:n=50,fail_at=7", "bad"), to=["collect"])
    g.add(source("test:missing=/no/such.mp4", "gone"), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 2
    assert any(e.startswith("source:bad: test source bad failed at frame 7") for e in res.errors)
    assert any("source:gone: file not found: /no/such.mp4" in e for e in res.errors)
    pk, ends, closed = read_collected(out)
    assert [p[1] for p in pk if p[0] == "good"] == list(range(50))
    assert [p[1] for p in pk if p[0] == "bad"] == list(range(7))
    assert sorted(ends) == ["bad", "gone", "good"] and closed
    assert leftovers(g) == []


def test_crashed_source_restarts_with_a_fresh_ring_and_continues_seq(tmp_path: Path):
    out = tmp_path / "out.txt"
    g = Graph(RuntimeConfig(**RT, restart_crashed_stages=True), lossless=True)
    g.add(source(f"test:n=20,crash_at=12,marker={tmp_path / 'm'}", "a"), to=["check"])
    g.add(CheckStage("check", strict=False), to=["collect"])
    g.add(CollectSink(str(out), "collect"))
    res = g.run()
    assert res.exit_code == 0, res.errors
    assert any("stage 'source:a' crashed (ZeroDivisionError: source bug" in w
               for w in res.warnings)
    pk, ends, closed = read_collected(out)
    seqs = [p[1] for p in pk]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # numbering continues
    assert len(seqs) >= 11 + 20 and ends == ["a"] and closed
    assert g.nodes["source:a"].restarts == 1
    assert leftovers(g) == []


def test_rings_of_dead_graphs_are_unlinked_by_the_next_run(tmp_path: Path):
    import subprocess
    import sys

    from stream.shm_ring import ShmRing, exists

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale, live = f"sk{int(dead):x}_abc_0cam0_0", f"sk{os.getpid():x}_abd_0cam0_0"
    for name in (stale, live):
        ShmRing.create(name, 4, 8, 8).close()
    try:
        g = Graph(RuntimeConfig(**RT), lossless=True)
        g.add(source("test:n=3", "a"), to=["collect"])
        g.add(CollectSink(str(tmp_path / "o.txt"), "collect"))
        assert g.run().exit_code == 0
        assert not exists(stale) and exists(live)
    finally:
        from stream.shm_ring import unlink_by_name
        unlink_by_name(stale)
        unlink_by_name(live)
