"""The source stage: one process per camera/file that decodes frames into its shared-memory ring.

It calls `FrameSource.read()` in a loop, copies each frame into the next ring slot (or lets a
source with the optional `read_into(out)` decode straight into the slot) and sends a pixel-less
`Packet` (stream id, seq, capture timestamps, ring slot) downstream. Decoding happens
here, so a stalled camera never blocks the rest of the graph, and a stream that fails ends only
itself (the runtime still sends its end-of-stream and stop markers so downstream stages finish).
"""
from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from stream.errors import SourceError
from stream.packet import FrameInfo, Packet
from stream.shm_ring import ShmRing
from stream.sources.config import SourceConfig

DEFAULT_OPENER = "stream.sources.factory:open_source"


class SourceContext(Protocol):
    """What the graph runtime gives a source process (see `stream.graph.ChildContext`)."""
    lossless: bool
    ring_name: str
    image_consumers: list[int]
    meter: Any
    seq_value: Any

    def should_abort(self) -> bool: ...
    def stopping(self) -> bool: ...
    def emit(self, item: Any, block: bool | None = None) -> bool: ...


class SourceStage:
    """Settings of one source process (picklable; nothing is opened in the parent).

    `opener`: dotted path `module:function` with the signature of
    `stream.sources.factory.open_source(cfg, stream_id) -> FrameSource` (tests plug their own).
    """
    needs_image = False

    def __init__(self, cfg: SourceConfig, stream_id: str, n_slots: int,
                 opener: str = DEFAULT_OPENER):
        self.cfg = cfg
        self.stream_id = stream_id
        self.name = f"source:{stream_id}"
        self.n_slots = n_slots
        self.opener = opener

    @property
    def lossless(self) -> bool:
        return self.cfg.mode == "lossless"

    def run(self, ctx: SourceContext) -> None:
        """Child process body: open, pump frames until the source ends or the run stops."""
        from stream.pipeline import load_object  # late: keeps the parent free of source imports

        opener = load_object(self.opener, what="source opener")
        src = opener(self.cfg, self.stream_id)
        ring = None
        try:
            ring = ShmRing.create(ctx.ring_name, self.n_slots, int(src.height), int(src.width),
                                  first_seq=int(ctx.seq_value.value))
            self._pump(src, ring, ctx)
        finally:
            try:
                ctx.meter.set("corrupt", float(src.stats.corrupt_skipped))
            except Exception:  # stats are informative only; never mask the real exit reason
                pass
            src.close()
            if ring is not None:
                ring.close(unlink=False)  # readers may attach later; the graph parent unlinks

    def _pump(self, src: Any, ring: ShmRing, ctx: SourceContext) -> None:
        # a finite source in lossless mode reads one frame ahead so the last packet carries
        # FrameInfo.last; live playback skips the look-ahead (it would add a frame of latency)
        lookahead = ctx.lossless and not bool(getattr(src, "is_live", True))
        block = ctx.lossless and self.lossless
        meter = ctx.meter
        # frames scaled down at the source (max_side_px): published pixels per camera pixel
        px_scale = ring.width / max(1, int(getattr(src, "native_width", ring.width)))
        cur = self._grab(src, ring, ctx)
        first = True
        while cur is not None and not ctx.stopping():
            following, failure = None, None
            if lookahead:
                try:
                    following = self._grab(src, ring, ctx)
                except SourceError as exc:  # still deliver the frame we already have
                    failure = exc
            frame, seq, slot, t_copy = cur
            corrupt = int(src.stats.corrupt_skipped)
            meter.set("corrupt", corrupt)  # live, so the status line shows damage as it happens
            pkt = Packet(FrameInfo(
                stream_id=self.stream_id, seq=seq, capture_ns=int(frame.capture_ns),
                capture_utc_ns=int(frame.capture_utc_ns), width=ring.width, height=ring.height,
                media_pts_s=frame.media_pts_s, ring=ring.name, slot=slot,
                last=lookahead and following is None and failure is None,
                corrupt_skipped=corrupt, px_scale=px_scale))
            pkt.timings_ns[self.name] = t_copy
            meter.add("frames_in")
            if ctx.emit(pkt, block=block):
                meter.add("frames_out")
            meter.frame(t_copy, pkt.frame.capture_ns)
            meter.tick()
            if failure is not None:
                raise failure
            if first:
                first = False
                self._hold_clock_for_first_frame(src, ring, ctx, seq)
            cur = following if lookahead else self._grab(src, ring, ctx)

    def _hold_clock_for_first_frame(self, src: Any, ring: ShmRing, ctx: SourceContext,
                                    seq: int) -> None:
        """A file played live waits (`first_frame_wait_s`) until its first frame has been
        through every image-reading stage, then starts its clock: the detector's first look
        and the first landmark call take 0.2-0.5 s on 2 cores, and a camera-paced file went on
        meanwhile, so nobody was published on a clip's first 10-25 frames. A camera cannot
        wait; lossless needs no clock."""
        wait_s = self.cfg.first_frame_wait_s
        if ctx.lossless or not wait_s or not bool(getattr(src, "paced_file", False)):
            return
        ring.wait_done(seq, ctx.image_consumers, ctx.should_abort, wait_s)
        src.restart_clock()

    def _grab(self, src: Any, ring: ShmRing, ctx: SourceContext):
        """Next frame into the next ring slot: (frame, seq, slot, copy_ns) or None at the end.

        A source with `read_into(out) -> DecodedFrame | None` decodes straight into the slot
        (no copy); otherwise `read()` and one copy into the slot."""
        seq = ring.next_seq
        if ctx.lossless and not ring.wait_free(seq, ctx.image_consumers, ctx.should_abort):
            return None
        read_into = getattr(src, "read_into", None)
        if read_into is not None:
            out = ring.begin(seq)
            frame = read_into(out)
            if frame is None:
                return None
            t0 = time.perf_counter_ns()
            if frame.image is not out:
                np.copyto(out, self._fit(frame.image, ring, ctx.meter), casting="no")
            slot = ring.commit(seq)
        else:
            frame = src.read()
            if frame is None:
                return None
            t0 = time.perf_counter_ns()
            seq, slot = ring.write(self._fit(frame.image, ring, ctx.meter))
        ctx.seq_value.value = seq + 1
        return frame, seq, slot, time.perf_counter_ns() - t0

    @staticmethod
    def _fit(image: np.ndarray, ring: ShmRing, meter: Any) -> np.ndarray:
        """Frames must match the ring's size; a source that changes resolution mid-stream
        (RTSP renegotiation, mixed image folder) is resized to the first frame's size."""
        want = (ring.height, ring.width, ring.channels)
        if image.shape == want and image.dtype == np.uint8:
            return image
        if image.ndim != 3 or image.shape[2] != ring.channels or image.dtype != np.uint8:
            raise SourceError(f"source produced a {image.dtype} frame of shape {image.shape}; "
                              f"sources must return (H, W, 3) uint8 BGR")
        import cv2

        meter.add("errors")
        return cv2.resize(image, (ring.width, ring.height), interpolation=cv2.INTER_AREA)
