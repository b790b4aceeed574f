"""The unit of work the process graph runs: one `Stage` per OS process.

Contract (the runtime in `stream/graph.py` keeps it):
- The parent builds the stage object with picklable settings only (`__init__` must not open
  models, sockets or files); it is pickled into its child process.
- In the child the runtime calls `setup()` once (load models, bind sockets, open files), then
  `process(packet)` for every packet that reaches the stage, then `close()` on every exit path.
- `process` returns the packet to pass downstream (usually the same object, enriched) or None to
  consume it (sinks). Packets of several streams arrive interleaved: keep per-stream state keyed by
  `packet.frame.stream_id`.
- A stage that sets `needs_image = True` gets `packet.image` (H, W, 3) uint8 BGR attached by the
  runtime; the view is valid only during `process`.
- `flush(stream_id)` is called when a finite stream ends (after its last packet), so stages can
  emit final state; default: nothing.
- Raise `UserError` subclasses for problems the user can fix; anything else counts as a crash.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from stream.packet import Packet


class Stage(ABC):
    name: str = "stage"
    needs_image: bool = False

    def setup(self) -> None:
        """Open heavy resources in the child process."""

    @abstractmethod
    def process(self, packet: Packet) -> Packet | None:
        """Handle one frame's packet; return it (enriched) or None to consume it."""

    def flush(self, stream_id: str) -> list[Packet]:
        """A finite stream ended: return any packets still held for it."""
        return []

    def take_error_count(self) -> int:
        """Errors the stage recovered from since the last call (e.g. a remote inference that did
        not come back): the runtime adds them to the stage's `errors` on the status line."""
        return 0

    def close(self) -> None:
        """Release everything `setup` opened. Called on every exit path."""
