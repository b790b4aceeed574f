"""Bounded inter-process queue of small items (packets, control markers) between two stages.

Why not `multiprocessing.Queue`: it cannot drop its *oldest* item, and its reader lock stays held
by a blocked `get`, so a reader killed mid-wait deadlocks the restarted stage. Here each queue is
one pipe with a single reading process (the consuming stage) and a fixed number of writers (the
upstream stages, each with its own index), and no lock at all: a named semaphore per queue would
stay in /dev/shm after a `kill -9` of the whole run, and one held by a killed writer would stall
the others. Instead every write is one chunk of at most PIPE_BUF bytes, which POSIX keeps atomic
among concurrent writers; a chunk names its writer, so the reader reassembles a larger item from
that writer's chunks (and drops a half-sent item of a writer killed mid-item when its restarted
successor begins a new one). Each counter cell has a single writing process.

- live mode: each `get` moves everything waiting in the pipe into a local deque and drops the
  oldest *data* items beyond `maxsize` (counted in `drops`). Producers never block, so a slow
  stage can never stall the source; if a consumer sits in one `process` call for more than
  `_LIVE_PIPE_CAP` frames, producers drop at the pipe instead (also counted).
- lossless mode: producers wait until fewer than `maxsize` items sit in the pipe (put - got
  counters in shared memory) and then write; the consumer holds at most `maxsize` more.
  Nothing is dropped, the source slows down instead.

Control items (`Control` subclasses: end of stream, stop) are never dropped.
"""
from __future__ import annotations

import collections
import math
import os
import pickle
import select
import struct
import time
from multiprocessing.context import BaseContext
from typing import Any, Callable

_GOT, _READER_DROPS, _PUT0 = 0, 1, 2  # counter cells; writer i: put at _PUT0 + 2i, drops + 1
_LIVE_PIPE_CAP = 64      # items waiting in a live pipe before producers drop instead of blocking
_PIPE_BYTES = 1 << 20    # Linux F_SETPIPE_SZ: room for control items even when the reader is gone
_CHUNK = struct.Struct("<HBH")  # writer index, flags, payload bytes
_FIRST, _LAST = 1, 2
_CHUNK_DATA = getattr(select, "PIPE_BUF", 512) - _CHUNK.size  # POSIX: at least 512 are atomic
_READ_BYTES = 1 << 16


class Control:
    """Marker base: items of these classes bypass drop-oldest."""
    __slots__ = ()


class Empty(Exception):
    """No item arrived within the timeout."""


class QueueAborted(Exception):
    """A blocking put gave up because the run is aborting."""


class FrameQueue:
    """Picklable handle; `put` from producers (writer `writer(i)` of `writers`), `get` only from
    the one consumer process."""

    def __init__(self, ctx: BaseContext, maxsize: int, lossless: bool, name: str = "",
                 writers: int = 1):
        if maxsize < 1:
            raise ValueError(f"queue '{name}': maxsize must be >= 1, got {maxsize}")
        if not 1 <= writers <= 0xFFFF:
            raise ValueError(f"queue '{name}': writers must be in 1..65535, got {writers}")
        self.name = name
        self.maxsize = maxsize
        self.lossless = lossless
        self.writers = writers
        self._r, self._w = ctx.Pipe(duplex=False)
        _grow_pipe(self._w.fileno())
        self._counts = ctx.RawArray("q", _PUT0 + 2 * writers)
        self._local: _Reader | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_local"] = None
        return state

    def writer(self, index: int) -> "QueueWriter":
        """The handle upstream stage number `index` puts through (one process at a time)."""
        if not 0 <= index < self.writers:
            raise ValueError(f"queue '{self.name}' has writers 0..{self.writers - 1}, not {index}")
        return QueueWriter(self, index)

    # -- producer -----------------------------------------------------------------------------
    def put(self, item: Any, should_abort: Callable[[], bool] = lambda: False,
            block: bool | None = None, poll_s: float = 0.0005, writer: int = 0) -> bool:
        """Send one item as writer `writer`. Lossless (or block=True): wait for room, polling
        `should_abort` (raises QueueAborted); with several writers the pipe may briefly hold up to
        `writers - 1` items beyond `maxsize`. block=False in a lossless queue: return False instead
        of waiting (a live source feeding a lossless graph drops at the source)."""
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        blocking = self.lossless if block is None else block
        counts = self._counts
        if blocking and not isinstance(item, Control):
            while self.in_flight >= self.maxsize:
                if should_abort():
                    raise QueueAborted(self.name)
                time.sleep(poll_s)
        elif not isinstance(item, Control):
            # live: the consumer drains the pipe on every get; a backlog this deep means it is
            # gone or stuck in one call, so drop here rather than block the producer
            cap = self.maxsize if self.lossless else _LIVE_PIPE_CAP
            if self.in_flight >= cap:
                counts[_PUT0 + 2 * writer + 1] += 1
                return False
        self._send(writer, data)
        counts[_PUT0 + 2 * writer] += 1
        return True

    def _send(self, writer: int, data: bytes) -> None:
        fd, n = self._w.fileno(), len(data)
        if n <= _CHUNK_DATA:  # the common case: one atomic write
            _write_all(fd, _CHUNK.pack(writer, _FIRST | _LAST, n) + data)
            return
        view = memoryview(data)
        chunks = []
        for off in range(0, n, _CHUNK_DATA):
            part = view[off:off + _CHUNK_DATA]
            flags = (_FIRST if off == 0 else 0) | (_LAST if off + len(part) == n else 0)
            chunks.append(_CHUNK.pack(writer, flags, len(part)) + part)
        if self.writers == 1:  # nobody to interleave with: one write, so the reader wakes once
            _write_all(fd, b"".join(chunks))
            return
        for chunk in chunks:
            _write_all(fd, chunk)

    # -- consumer -----------------------------------------------------------------------------
    def get(self, timeout: float) -> Any:
        """Next item (oldest first); raises Empty after `timeout` seconds. Consumer process only."""
        if self._local is None:
            self._local = _Reader(self)
        return self._local.get(timeout)

    def close_reader(self) -> None:
        if self._local is not None:
            self._local.stop()
            self._local = None

    @property
    def drops(self) -> int:
        """Data items dropped because the consumer fell behind (live mode)."""
        c = self._counts
        return int(c[_READER_DROPS] + sum(c[_PUT0 + 1::2]))

    @property
    def in_flight(self) -> int:
        c = self._counts
        return int(sum(c[_PUT0::2]) - c[_GOT])

    def close(self) -> None:
        for c in (self._r, self._w):
            try:
                c.close()
            except OSError:
                pass


class QueueWriter:
    """One upstream stage's end of a `FrameQueue` (picklable): `put` as that writer."""
    __slots__ = ("queue", "index")

    def __init__(self, queue: FrameQueue, index: int):
        self.queue, self.index = queue, index

    def put(self, item: Any, should_abort: Callable[[], bool] = lambda: False,
            block: bool | None = None) -> bool:
        return self.queue.put(item, should_abort, block, writer=self.index)

    @property
    def name(self) -> str:
        return self.queue.name


def _write_all(fd: int, data: bytes) -> None:
    # a blocking pipe write of <= PIPE_BUF bytes is all-or-nothing (it waits for room); a longer
    # one (single writer only) may return early, so the rest follows
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except (ImportError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default 64 KiB still works


class _Reader:
    """Consumer side, in the consuming process's main thread (no thread hop on the hot path):
    each `get` first moves everything waiting in the pipe into a local deque, dropping the
    oldest data items beyond `maxsize` in live mode."""

    def __init__(self, q: FrameQueue):
        self.q = q
        self.items: collections.deque = collections.deque()
        self.n_data = 0
        self.closed: BaseException | None = None
        self._buf = bytearray()                     # bytes read, not yet a whole chunk
        self._parts: dict[int, bytearray] = {}      # writer -> chunks of an item so far
        # one poll object for the reader's life: `Connection.poll` builds a selector per call
        # (~15 us, several times that right after a wake-up on a busy VM) and `get` asks twice
        self._poller = None
        if hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(q._r.fileno(), select.POLLIN)

    def _ready(self, timeout_s: float) -> bool:
        if self._poller is None:
            return self.q._r.poll(timeout_s)
        return bool(self._poller.poll(max(0, math.ceil(timeout_s * 1000))))

    def _drain(self) -> None:
        fd = self.q._r.fileno()
        try:
            while self._ready(0):
                data = os.read(fd, _READ_BYTES)
                if not data:
                    raise EOFError("every writer closed the pipe")
                self._buf += data
                self._split()
        except (EOFError, OSError) as exc:
            self.closed = exc

    def _split(self) -> None:
        """Turn the whole chunks in the buffer into items; keep a trailing partial chunk."""
        buf, pos, end = self._buf, 0, len(self._buf)
        with memoryview(buf) as view:
            while end - pos >= _CHUNK.size:
                writer, flags, n = _CHUNK.unpack_from(buf, pos)
                start = pos + _CHUNK.size
                if end - start < n:
                    break
                pos = start + n
                if flags == _FIRST | _LAST:
                    self._parts.pop(writer, None)  # a killed predecessor's half item, if any
                    self._add(pickle.loads(view[start:pos]))
                    continue
                if flags & _FIRST:
                    self._parts[writer] = bytearray()
                part = self._parts.get(writer)
                if part is None:
                    continue  # the rest of an item whose start we never saw
                part += view[start:pos]
                if flags & _LAST:
                    self._add(pickle.loads(self._parts.pop(writer)))
        del buf[:pos]

    def _add(self, item: Any) -> None:
        counts, q = self.q._counts, self.q
        counts[_GOT] += 1
        self.items.append(item)
        if not isinstance(item, Control):
            self.n_data += 1
            if not q.lossless and self.n_data > q.maxsize:
                self._drop_oldest(counts)

    def _drop_oldest(self, counts) -> None:
        for i, it in enumerate(self.items):
            if not isinstance(it, Control):
                del self.items[i]
                self.n_data -= 1
                counts[_READER_DROPS] += 1
                return

    def get(self, timeout: float) -> Any:
        self._drain()
        deadline = None
        while not self.items:  # a wake-up may bring only part of a multi-chunk item
            if self.closed is not None:
                raise Empty(f"queue {self.q.name} closed: {self.closed}")
            if deadline is None:
                deadline = time.monotonic() + timeout
            left = deadline - time.monotonic()
            if left <= 0 or not self._ready(left):
                raise Empty(self.q.name)
            self._drain()
        item = self.items.popleft()
        if not isinstance(item, Control):
            self.n_data -= 1
        return item

    def stop(self) -> None:
        self.items.clear()


class Stop(Control):
    """One upstream producer has finished; a stage ends after one Stop per upstream producer."""
    __slots__ = ()


class EndStream(Control):
    """A finite stream ended: flush per-stream state (`Stage.flush`), then pass this on."""
    __slots__ = ("stream_id",)

    def __init__(self, stream_id: str):
        self.stream_id = stream_id

    def __reduce__(self):
        return (EndStream, (self.stream_id,))


class Gone(Control):
    """Lossless mode: frame `seq` of `ring` was consumed upstream and will not reach you; mark it
    done so the source may reuse its slot."""
    __slots__ = ("ring", "seq")

    def __init__(self, ring: str, seq: int):
        self.ring, self.seq = ring, seq

    def __reduce__(self):
        return (Gone, (self.ring, self.seq))
