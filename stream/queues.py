"""Bounded inter-process queue of small items (packets, control markers) between two stages.

Why not `multiprocessing.Queue`: it cannot drop its *oldest* item, and its reader lock stays held
by a blocked `get`, so a reader killed mid-wait deadlocks the restarted stage. Here each queue is
one pipe with a single reading process (the consuming stage) and any number of writers:

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
import pickle
import select
import time
from multiprocessing.context import BaseContext
from typing import Any, Callable

_PUT, _GOT, _DROPS = 0, 1, 2
_LIVE_PIPE_CAP = 64      # items waiting in a live pipe before producers drop instead of blocking
_PIPE_BYTES = 1 << 20    # Linux F_SETPIPE_SZ: room for control items even when the reader is gone


class Control:
    """Marker base: items of these classes bypass drop-oldest."""
    __slots__ = ()


class Empty(Exception):
    """No item arrived within the timeout."""


class QueueAborted(Exception):
    """A blocking put gave up because the run is aborting."""


class FrameQueue:
    """Picklable handle; `put` from producers, `get` only from the one consumer process."""

    def __init__(self, ctx: BaseContext, maxsize: int, lossless: bool, name: str = ""):
        if maxsize < 1:
            raise ValueError(f"queue '{name}': maxsize must be >= 1, got {maxsize}")
        self.name = name
        self.maxsize = maxsize
        self.lossless = lossless
        self._r, self._w = ctx.Pipe(duplex=False)
        _grow_pipe(self._w.fileno())
        self._wlock = ctx.Lock()
        self._counts = ctx.RawArray("q", 3)  # put, got, drops; put under _wlock, rest by consumer
        self._local: _Reader | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_local"] = None
        return state

    # -- producer -----------------------------------------------------------------------------
    def put(self, item: Any, should_abort: Callable[[], bool] = lambda: False,
            block: bool | None = None, poll_s: float = 0.0005) -> bool:
        """Send one item. Lossless (or block=True): wait for room, polling `should_abort`
        (raises QueueAborted). block=False in a lossless queue: return False instead of waiting
        (a live source feeding a lossless graph drops at the source)."""
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        blocking = self.lossless if block is None else block
        if blocking and not isinstance(item, Control):
            while self._counts[_PUT] - self._counts[_GOT] >= self.maxsize:
                if should_abort():
                    raise QueueAborted(self.name)
                time.sleep(poll_s)
        elif not isinstance(item, Control):
            # live: the consumer drains the pipe on every get; a backlog this deep means it is
            # gone or stuck in one call, so drop here rather than block the producer
            cap = self.maxsize if self.lossless else _LIVE_PIPE_CAP
            if self._counts[_PUT] - self._counts[_GOT] >= cap:
                with self._wlock:
                    self._counts[_DROPS] += 1
                return False
        with self._wlock:
            self._w.send_bytes(data)
            self._counts[_PUT] += 1
        return True

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
        return int(self._counts[_DROPS])

    @property
    def in_flight(self) -> int:
        return int(self._counts[_PUT] - self._counts[_GOT])

    def close(self) -> None:
        for c in (self._r, self._w):
            try:
                c.close()
            except OSError:
                pass


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
        conn, counts, q = self.q._r, self.q._counts, self.q
        try:
            while self._ready(0):
                item = pickle.loads(conn.recv_bytes())
                counts[_GOT] += 1
                self.items.append(item)
                if not isinstance(item, Control):
                    self.n_data += 1
                    if not q.lossless and self.n_data > q.maxsize:
                        self._drop_oldest(counts)
        except (EOFError, OSError) as exc:
            self.closed = exc

    def _drop_oldest(self, counts) -> None:
        for i, it in enumerate(self.items):
            if not isinstance(it, Control):
                del self.items[i]
                self.n_data -= 1
                with self.q._wlock:  # producers count their own drops under the same lock
                    counts[_DROPS] += 1
                return

    def get(self, timeout: float) -> Any:
        self._drain()
        if not self.items:
            if self.closed is not None:
                raise Empty(f"queue {self.q.name} closed: {self.closed}")
            if not self._ready(timeout):
                raise Empty(self.q.name)
            self._drain()
            if not self.items:
                raise Empty(self.q.name)
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
