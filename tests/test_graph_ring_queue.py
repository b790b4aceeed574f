"""Shared-memory ring and drop-oldest/lossless queues, across real processes."""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
import pytest

from graph_helpers import read_stamp, stamp
from stream.queues import EndStream, FrameQueue, QueueAborted, Stop
from stream.shm_ring import ShmRing, exists, unlink_by_name

CTX = mp.get_context("spawn")


def _name(tag: str) -> str:
    return f"sktest_{tag}_{time.monotonic_ns() % 10**9}"


def _reader(name: str, seqs: list[int], out) -> None:
    ring = ShmRing.attach(name)
    res = []
    for s in seqs:
        v = ring.view(ring.slot_of(s), s)
        res.append(None if v is None else read_stamp(v))
    ring.close()
    out.put(res)


def test_ring_roundtrip_in_another_process():
    name = _name("rt")
    with ShmRing.create(name, 4, 48, 64) as ring:
        for s in range(6):
            seq, slot = ring.write(stamp(s, 48, 64))
            assert (seq, slot) == (s, s % 4)
        out = CTX.Queue()
        p = CTX.Process(target=_reader, args=(name, [0, 1, 2, 3, 4, 5], out))
        p.start()
        got = out.get(timeout=30)
        p.join(10)
    # seq 0 and 1 were lapped by seq 4 and 5: the generation check reports them as gone
    assert got == [None, None, 2, 3, 4, 5]
    assert not exists(name)


def test_ring_detects_overwrite_under_a_held_view():
    name = _name("ow")
    with ShmRing.create(name, 4, 8, 8) as ring:
        ring.write(stamp(0, 8, 8))
        view = ring.view(0, 0)
        assert view is not None and not view.flags.writeable
        assert ring.valid(0, 0)
        for s in range(1, 5):  # seq 4 lands in slot 0
            ring.write(stamp(s, 8, 8))
        assert not ring.valid(0, 0)
        assert ring.view(0, 0) is None
        del view


def test_ring_rejects_wrong_shape_and_continues_seq():
    name = _name("seq")
    with ShmRing.create(name, 4, 8, 8, first_seq=41) as ring:
        assert ring.write(stamp(0, 8, 8))[0] == 41
        with pytest.raises(ValueError):
            ring.write(np.zeros((8, 9, 3), np.uint8))
        assert ring.next_seq == 42


def test_lossless_wait_free_blocks_until_done_and_aborts():
    name = _name("wf")
    with ShmRing.create(name, 4, 8, 8) as ring:
        for s in range(4):
            assert ring.wait_free(s, [0, 1], lambda: False)
            ring.write(stamp(s, 8, 8))
        t0 = time.monotonic()
        # slot of seq 4 still holds seq 0, which consumer 0 and 1 have not finished
        assert not ring.wait_free(4, [0, 1], lambda: time.monotonic() - t0 > 0.1)
        ring.mark_done(0, 0)
        assert not ring.wait_free(4, [0, 1], lambda: time.monotonic() - t0 > 0.2)
        ring.mark_done(1, 2)
        assert ring.wait_free(4, [0, 1], lambda: True)  # done >= 0 for both: no wait at all


def test_unlink_by_name_is_idempotent():
    name = _name("ul")
    ring = ShmRing.create(name, 4, 8, 8)
    ring.close()
    assert exists(name)
    assert unlink_by_name(name)
    assert not unlink_by_name(name)


def _producer(q: FrameQueue, n: int) -> None:
    for i in range(n):
        q.put(("pkt", i))
    q.put(EndStream("cam0"))
    q.put(Stop())


def test_live_queue_drops_oldest_and_keeps_control_items():
    q = FrameQueue(CTX, maxsize=3, lossless=False, name="t")
    with pytest.raises(Exception):
        q.get(timeout=0.01)  # starts the reader thread; nothing there yet
    p = CTX.Process(target=_producer, args=(q, 50))
    p.start()
    p.join(30)
    time.sleep(0.3)  # let the reader thread pull everything
    items = []
    while True:
        try:
            items.append(q.get(timeout=0.3))
        except Exception:
            break
    data = [it for it in items if isinstance(it, tuple)]
    assert data == [("pkt", 47), ("pkt", 48), ("pkt", 49)]  # the newest survive
    assert isinstance(items[-2], EndStream) and isinstance(items[-1], Stop)
    assert q.drops == 47
    q.close_reader()
    q.close()


def test_lossless_queue_blocks_instead_of_dropping():
    q = FrameQueue(CTX, maxsize=2, lossless=True, name="t")
    p = CTX.Process(target=_producer, args=(q, 40))
    p.start()
    time.sleep(0.5)
    assert p.is_alive()  # blocked: nobody reads
    got = []
    while len(got) < 42:
        got.append(q.get(timeout=10))
        time.sleep(0.001)
    p.join(30)
    assert [g for g in got if isinstance(g, tuple)] == [("pkt", i) for i in range(40)]
    assert q.drops == 0
    with pytest.raises(QueueAborted):
        for i in range(10):
            q.put(("x", i), should_abort=lambda: True)
    q.close_reader()
    q.close()


def _big_producer(w, tag: int, n: int) -> None:
    for i in range(n):  # ~20 KB each: several PIPE_BUF chunks that interleave with the others'
        w.put((tag, i, bytes([tag]) * (20_000 + 97 * i)), block=True)
    w.put(Stop())


def _mapped_semaphores() -> set[str]:
    with open("/proc/self/maps") as f:
        return {line.split()[-1] for line in f if "/dev/shm/sem." in line}


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_queue_needs_no_lock_and_keeps_big_items_of_concurrent_writers_whole():
    before = _mapped_semaphores()
    q = FrameQueue(CTX, maxsize=4, lossless=True, name="t", writers=3)
    assert _mapped_semaphores() == before  # no named semaphore to leak after kill -9
    procs = [CTX.Process(target=_big_producer, args=(q.writer(k), k + 1, 30), daemon=True)
             for k in range(3)]
    for p in procs:
        p.start()
    got, stops = {1: [], 2: [], 3: []}, 0
    while stops < 3:
        it = q.get(timeout=30)
        if isinstance(it, Stop):
            stops += 1
            continue
        tag, i, blob = it
        assert blob == bytes([tag]) * (20_000 + 97 * i)  # never a chunk of another item
        got[tag].append(i)
    for p in procs:
        p.join(30)
    assert got == {k: list(range(30)) for k in (1, 2, 3)}  # each writer's order kept
    assert q.drops == 0 and q.in_flight == 0
    q.close_reader()
    q.close()


def test_half_item_of_a_killed_writer_is_dropped_when_its_successor_writes():
    from stream.queues import _CHUNK, _FIRST, _LAST

    q = FrameQueue(CTX, maxsize=4, lossless=False, name="t", writers=2)
    fd = q._w.fileno()
    os.write(fd, _CHUNK.pack(1, _FIRST, 3) + b"abc")  # writer 1 died after its first chunk
    q.writer(0).put(("a", 0))
    q.writer(1).put(("b", 0))                          # its restarted successor
    assert [q.get(1.0), q.get(1.0)] == [("a", 0), ("b", 0)]
    with pytest.raises(Exception):
        q.get(0.05)
    assert _LAST == 2
    q.close_reader()
    q.close()
