"""A ring of preallocated shared-memory frame buffers, one ring per source.

Why: a 1080p BGR frame is 6.2 MB; pickling it through a pipe costs milliseconds, while copying it
once into a preallocated slot and passing the slot number costs well under one. Readers map the
same memory and get a zero-copy `(H, W, 3) uint8` view.

Layout (one POSIX shared-memory segment):
    header  int64[_HDR]: magic, n_slots, height, width, channels, max_consumers, next_seq,
                         first_seq
    gen     int64[n_slots]            seqlock generation per slot
    done    int64[max_consumers]      last seq each image-reading stage finished (lossless)
    data    uint8[n_slots, H, W, C]   (64-byte aligned)

Seqlock: writing seq `s` into slot `s % n` sets gen to `2*s+1` (odd = being written), copies the
pixels, then sets gen to `2*s+2`. A reader holding a packet of seq `s` checks `gen == 2*s+2`
before and after using the view; anything else means the slot was overwritten under it (live mode
lets a fast source lap a slow reader) and the frame counts as dropped. On x86 stores are not
reordered with other stores, so the gen store is visible only after the pixels.

Lossless mode: before overwriting the slot of seq `s - n`, the writer waits until every
image-reading stage has reported `done >= s - n`, so no frame is ever overwritten while in use.
"""
from __future__ import annotations

import time
from multiprocessing import shared_memory
from typing import Callable

import numpy as np

from stream.errors import PipelineError

_MAGIC = 0x534B454C52494E47  # "SKELRING"
_HDR = 8
_ALIGN = 64
MAX_CONSUMERS = 16


def expected_gen(seq: int) -> int:
    """Generation a slot holds once frame `seq` is completely written."""
    return 2 * seq + 2


class ShmRing:
    """Writer (`create`) or reader (`attach`) side of one frame ring.

    Only the creating process unlinks the segment (`close(unlink=True)`); the graph parent
    unlinks by name as a safety net after every run (`unlink_by_name`).
    """

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool):
        self._shm = shm
        self.owner = owner
        self.name = shm.name
        hdr = np.ndarray((_HDR,), np.int64, buffer=shm.buf, offset=0)
        if int(hdr[0]) != _MAGIC:
            raise PipelineError(f"shared memory '{shm.name}' is not a frame ring")
        self.n_slots, self.height, self.width, self.channels, self.max_consumers = (
            int(v) for v in hdr[1:6])
        self._hdr = hdr
        off = _HDR * 8
        self._gen = np.ndarray((self.n_slots,), np.int64, buffer=shm.buf, offset=off)
        off += self.n_slots * 8
        self._done = np.ndarray((self.max_consumers,), np.int64, buffer=shm.buf, offset=off)
        off += self.max_consumers * 8
        off = (off + _ALIGN - 1) // _ALIGN * _ALIGN
        self._data = np.ndarray((self.n_slots, self.height, self.width, self.channels), np.uint8,
                                buffer=shm.buf, offset=off)

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def nbytes(n_slots: int, height: int, width: int, channels: int = 3,
               max_consumers: int = MAX_CONSUMERS) -> int:
        head = (_HDR + n_slots + max_consumers) * 8
        head = (head + _ALIGN - 1) // _ALIGN * _ALIGN
        return head + n_slots * height * width * channels

    @classmethod
    def create(cls, name: str, n_slots: int, height: int, width: int, channels: int = 3,
               max_consumers: int = MAX_CONSUMERS, first_seq: int = 0) -> "ShmRing":
        """Allocate and pre-fault a ring (`n_slots` frames of (height, width, channels) uint8)."""
        size = cls.nbytes(n_slots, height, width, channels, max_consumers)
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        hdr = np.ndarray((_HDR,), np.int64, buffer=shm.buf, offset=0)
        hdr[1:8] = (n_slots, height, width, channels, max_consumers, first_seq, first_seq)
        hdr[0] = _MAGIC
        ring = cls(shm, owner=True)
        ring._gen[:] = 0
        ring._done[:] = -1
        ring._data.fill(0)  # touch every page now, not on the first lap of the hot path
        return ring

    @classmethod
    def attach(cls, name: str) -> "ShmRing":
        """Map an existing ring (reader side) and fault its pages in now, off the hot path."""
        ring = cls(shared_memory.SharedMemory(name=name), owner=False)
        flat = ring._data.reshape(-1)
        int(flat[::4096].sum())
        return ring

    # -- writer -------------------------------------------------------------------------------
    @property
    def next_seq(self) -> int:
        """Sequence number the next write will get (kept in the header so a restarted source
        continues the numbering)."""
        return int(self._hdr[6])

    def slot_of(self, seq: int) -> int:
        return seq % self.n_slots

    def wait_free(self, seq: int, consumers: list[int], should_abort: Callable[[], bool],
                  poll_s: float = 0.0005) -> bool:
        """Lossless back-pressure: block until frame `seq - n_slots` (the slot's previous
        occupant) is done by every listed consumer. Returns False if aborted while waiting."""
        old = seq - self.n_slots
        if old < int(self._hdr[7]):
            return True  # that slot never held a frame of this ring (fresh or restarted source)
        return self.wait_done(old, consumers, should_abort, float("inf"), poll_s)

    def wait_done(self, seq: int, consumers: list[int], should_abort: Callable[[], bool],
                  timeout_s: float, poll_s: float = 0.002) -> bool:
        """Block until frame `seq` is done by every listed consumer (none: at once), at most
        `timeout_s`. Returns whether it was (False also when aborted)."""
        idx = np.asarray(consumers, np.intp)
        deadline = time.monotonic() + timeout_s
        while len(idx) and int(self._done[idx].min()) < seq:
            if should_abort() or time.monotonic() > deadline:
                return False
            time.sleep(poll_s)
        return True

    def write(self, image: np.ndarray) -> tuple[int, int]:
        """Copy one (H, W, C) uint8 frame into the next slot; returns (seq, slot)."""
        if image.shape != self._data.shape[1:]:
            raise ValueError(f"frame of shape {image.shape} does not fit ring slots of shape "
                             f"{self._data.shape[1:]}")
        seq = self.next_seq
        np.copyto(self.begin(seq), image, casting="no")
        return seq, self.commit(seq)

    def begin(self, seq: int) -> np.ndarray:
        """Start writing frame `seq` (must be `next_seq`): marks its slot as being written and
        returns the writable (H, W, C) view, so a decoder can write straight into the ring."""
        slot = seq % self.n_slots
        self._gen[slot] = 2 * seq + 1
        return self._data[slot]

    def commit(self, seq: int) -> int:
        """Frame `seq` is complete: publish it to readers; returns its slot."""
        slot = seq % self.n_slots
        self._gen[slot] = 2 * seq + 2
        self._hdr[6] = seq + 1
        return slot

    # -- reader -------------------------------------------------------------------------------
    def view(self, slot: int, seq: int) -> np.ndarray | None:
        """Read-only (H, W, C) uint8 view of frame `seq`, or None if it was overwritten."""
        if int(self._gen[slot]) != 2 * seq + 2:
            return None
        v = self._data[slot]
        v = v.view()
        v.flags.writeable = False
        return v

    def valid(self, slot: int, seq: int) -> bool:
        """True while slot still holds frame `seq` (check after using a view)."""
        return int(self._gen[slot]) == 2 * seq + 2

    def mark_done(self, consumer: int, seq: int) -> None:
        """An image-reading stage finished frame `seq` (only that stage writes this cell)."""
        if seq > self._done[consumer]:
            self._done[consumer] = seq

    # -- teardown -----------------------------------------------------------------------------
    def close(self, unlink: bool = False) -> None:
        """Drop the views and unmap; the owner also removes the name. Safe to call twice."""
        if self._shm is None:
            return
        self._hdr = self._gen = self._done = self._data = None  # type: ignore[assignment]
        shm, self._shm = self._shm, None
        try:
            shm.close()
        except BufferError:
            pass  # a view still exported somewhere in this process; the mapping dies with it
        if unlink:
            _unlink(shm)

    def __enter__(self) -> "ShmRing":
        return self

    def __exit__(self, *exc) -> None:
        self.close(unlink=self.owner)


def _unlink(shm: shared_memory.SharedMemory) -> None:
    try:
        shm.unlink()
    except FileNotFoundError:
        pass


def unlink_by_name(name: str) -> bool:
    """Remove a ring by name if it still exists (parent's safety net). True if one was removed."""
    try:
        shm = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return False
    shm.close()
    _unlink(shm)
    return True


def exists(name: str) -> bool:
    try:
        shared_memory.SharedMemory(name=name).close()
    except FileNotFoundError:
        return False
    return True
