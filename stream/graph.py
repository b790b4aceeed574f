"""The process-graph runtime: one OS process per stage, frames in shared memory, packets in queues.

Parent side (`Graph.run`): builds queues, metric rows and one child process per stage
(`Graph._create`: picklable settings only), starts consumers before producers, waits until every stage finished `setup()`, then supervises:
prints the status line, restarts or stops on a crash, and turns Ctrl-C/SIGTERM into a two-level
stop (first: sources stop and queues drain; second or after `drain_timeout_s`: abort). On every
exit path it joins or kills every child and unlinks every ring, so nothing is orphaned or leaked;
if the parent itself is killed, a small watchdog process (`stream/shm_watchdog.py`) unlinks them.

Child side (`_run` -> `_run_stage` / `SourceStage.run`): imports and opens everything heavy,
ignores SIGINT (the parent decides), watches the parent's liveness so it exits (and unlinks the
rings) if the parent is killed, and always calls `Stage.close()`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue as pyqueue
import re
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from stream.config import RuntimeConfig
from stream.errors import PipelineError, StageCrashed, UserError
from stream.metrics import DONE, FAILED, NF, READY, MetricsBoard, StageMeter, StatusPrinter
from stream.queues import (Control, Empty, EndStream, FrameQueue, Gone, QueueAborted, QueueWriter,
                           Stop)
from stream import shm_watchdog
from stream.shm_ring import MAX_CONSUMERS, ShmRing, unlink_by_name
from stream.source_stage import SourceStage
from stream.stage import Stage

EXIT_OK, EXIT_CRASH, EXIT_USER = 0, 1, 2


@dataclass
class RunResult:
    """How a run ended. `exit_code`: 0 ok, 1 a stage crashed, 2 a user error."""
    exit_code: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. restarted stages
    summary: str = ""
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    interrupted: bool = False


class Flag:
    """A run-wide boolean in shared memory: set by the parent, polled by every child. Unlike
    `multiprocessing.Event` it needs no named semaphores (nothing to leak if the whole process
    group is SIGKILLed) and costs no lock per poll on the per-frame path."""

    def __init__(self, ctx: mp.context.BaseContext):
        self._v = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._v.value = 1

    def is_set(self) -> bool:
        return bool(self._v.value)


class EventPipe:
    """Children -> parent reports ("ready" / "error"). One pipe and no lock: every report is a
    single write shorter than PIPE_BUF, which POSIX keeps atomic among concurrent writers, so a
    child killed mid-report cannot wedge the others (and no named semaphore can leak)."""

    _MAX_TEXT = 900  # chars per field; 4 fields pickle well under PIPE_BUF (4096 bytes)

    def __init__(self, ctx: mp.context.BaseContext):
        self._r, self._w = ctx.Pipe(duplex=False)

    def put(self, event: tuple) -> None:
        event = tuple(x[: self._MAX_TEXT] if isinstance(x, str) else x for x in event)
        self._w.send_bytes(pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL))

    def get(self, timeout: float) -> tuple:
        """Next report; raises queue.Empty after `timeout` s (parent only)."""
        if not self._r.poll(timeout):
            raise pyqueue.Empty
        return pickle.loads(self._r.recv_bytes())

    def close(self) -> None:
        for c in (self._r, self._w):
            c.close()


def _unlink_stale_rings() -> None:
    """Remove rings left by graphs whose parent process no longer exists (a run whose whole
    process group was SIGKILLed leaves nobody to unlink them). Ring names: sk<pid hex>_..."""
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        return  # not Linux: nothing to scan
    for name in names:
        m = _RING_NAME.match(name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1), 16), 0)
        except ProcessLookupError:
            unlink_by_name(name)
        except (PermissionError, ValueError, OverflowError):
            pass  # alive under another user, or not ours


_RING_NAME = re.compile(r"^sk([0-9a-f]+)_[0-9a-f]+_\d")


# --------------------------------------------------------------------------------------------
# child side
# --------------------------------------------------------------------------------------------
@dataclass
class ChildContext:
    """Everything a stage process needs; pickled into the child by `spawn`/`forkserver`."""
    name: str
    row: int
    inq: FrameQueue | None
    outs: list[QueueWriter]
    n_upstream: int
    lossless: bool
    image_consumer: int              # this stage's column in the rings' done table, -1 if none
    image_consumers: list[int]       # (sources) every image-reading stage's column
    ring_name: str                   # (sources) ring to create
    all_rings: list[str]             # unlinked by whoever notices the parent died
    table: Any                       # metrics RawArray
    stops_seen: Any                  # RawValue: Stop markers received (survives a restart)
    seq_value: Any                   # RawValue: next seq (sources; survives a restart)
    events: "EventPipe"              # reports to the parent
    stop_event: "Flag"
    abort_event: "Flag"
    interval_s: float
    meter: StageMeter | None = None
    _parent: Any = None
    _parent_gone: bool = False
    _parent_next_check: float = 0.0

    _PARENT_CHECK_S = 0.05
    """`is_alive()` builds a selector per call (~20 us, several times that right after a wake-up);
    every frame asks, so the answer is reused for this long (orphans still stop within ~50 ms)."""

    def parent_gone(self) -> bool:
        """True once the graph parent has died (its sentinel pipe closed), even as a zombie."""
        if self._parent_gone:
            return True
        now = time.monotonic()
        if now < self._parent_next_check:
            return False
        self._parent_next_check = now + self._PARENT_CHECK_S
        if self._parent is None:
            self._parent = mp.parent_process()
        self._parent_gone = self._parent is not None and not self._parent.is_alive()
        return self._parent_gone

    def should_abort(self) -> bool:
        return self.abort_event.is_set() or self.parent_gone()

    def stopping(self) -> bool:
        return self.stop_event.is_set() or self.should_abort()

    def emit(self, item: Any, block: bool | None = None) -> bool:
        """Send to every downstream queue (fan-out); False if any queue dropped it."""
        ok = True
        for q in self.outs:
            ok = q.put(item, self.should_abort, block=block) and ok
        return ok


def name_process(name: str) -> None:
    """Show `name` as this process's name in top, ps and /proc/PID/comm (Linux keeps 15 bytes):
    a spawned stage is otherwise one more "python" among several, so a slow or growing stage
    could not be told apart from outside. Nothing happens where prctl is missing."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)  # 15 = PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _run(stage: Stage | SourceStage, ctx: ChildContext) -> None:
    """Body of every stage process."""
    name_process(ctx.name)
    # Ctrl-C and a group-wide SIGTERM (systemd, docker, `kill -- -PGID`) reach every process at
    # once; only the parent acts on them, so the stages drain in order instead of dying mid-frame
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.meter = StageMeter(ctx.table, ctx.row, ctx.interval_s)
    code, state = EXIT_OK, DONE
    try:
        if isinstance(stage, SourceStage):
            _run_source(stage, ctx)
        else:
            _run_stage(stage, ctx)
    except QueueAborted:
        pass
    except UserError as exc:
        code, state = EXIT_USER, FAILED
        ctx.events.put(("error", ctx.name, "user", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - report every crash by stage name
        code, state = EXIT_CRASH, FAILED
        ctx.events.put(("error", ctx.name, "crash", _describe(exc)))
    finally:
        ctx.meter.finish(state)
        if ctx.parent_gone():
            for name in ctx.all_rings:
                unlink_by_name(name)
        if ctx.inq is not None:
            ctx.inq.close_reader()
    sys.exit(code)


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _run_source(stage: SourceStage, ctx: ChildContext) -> None:
    ctx.meter.set("state", READY)
    try:
        stage.run(ctx)
    except UserError:
        _finish_stream(stage.stream_id, ctx)  # a failed stream ends only itself
        raise
    _finish_stream(stage.stream_id, ctx)


def _finish_stream(stream_id: str, ctx: ChildContext) -> None:
    if not ctx.should_abort():
        ctx.emit(EndStream(stream_id))
        ctx.emit(Stop())


class _Rings:
    """Reader-side ring attachments of one stage process, one per stream (newest wins)."""

    def __init__(self):
        self.by_name: dict[str, ShmRing] = {}
        self.by_stream: dict[str, str] = {}

    def get(self, name: str, stream_id: str | None = None) -> ShmRing:
        ring = self.by_name.get(name)
        if ring is None:
            ring = self.by_name[name] = ShmRing.attach(name)
            if stream_id is not None:
                old = self.by_stream.get(stream_id)
                if old and old != name:  # the source restarted with a fresh ring
                    self.by_name.pop(old).close()
                self.by_stream[stream_id] = name
        return ring

    def close(self) -> None:
        for ring in self.by_name.values():
            ring.close()
        self.by_name.clear()


def _run_stage(stage: Stage, ctx: ChildContext) -> None:
    rings = _Rings()
    meter, name = ctx.meter, ctx.name
    try:
        stage.setup()
        meter.set("state", READY)
        ctx.events.put(("ready", name))
        while True:
            meter.set("drops", ctx.inq.drops)
            meter.tick()
            try:
                item = ctx.inq.get(timeout=0.1)
            except Empty:
                if ctx.should_abort():
                    return
                continue
            if ctx.should_abort():
                return
            if isinstance(item, Control):
                if isinstance(item, Stop):
                    ctx.stops_seen.value += 1
                    if ctx.stops_seen.value >= ctx.n_upstream:
                        ctx.emit(Stop())
                        return
                elif isinstance(item, EndStream):
                    for pkt in stage.flush(item.stream_id):
                        ctx.emit(pkt)
                    ctx.emit(item)
                elif isinstance(item, Gone):
                    if ctx.image_consumer >= 0:
                        rings.get(item.ring).mark_done(ctx.image_consumer, item.seq)
                    ctx.emit(item)
                continue
            _process_one(stage, item, ctx, rings)
    finally:
        meter.set("drops", ctx.inq.drops)
        try:
            stage.close()
        finally:
            rings.close()


def _process_one(stage: Stage, pkt, ctx: ChildContext, rings: _Rings) -> None:
    meter, fi = ctx.meter, pkt.frame
    meter.add("frames_in")
    ring = None
    if stage.needs_image and fi.ring:
        ring = rings.get(fi.ring, fi.stream_id)
        pkt.image = ring.view(fi.slot, fi.seq)
        if pkt.image is None:  # lapped by the source before we got to it
            meter.add("stale")
            _consumed(pkt, ctx, ring)
            return
    t0 = time.perf_counter_ns()
    try:
        out = stage.process(pkt)
    finally:
        dt = time.perf_counter_ns() - t0
        pkt.image = None
        out_ok = ring is None or ring.valid(fi.slot, fi.seq)
        if ring is not None and ctx.image_consumer >= 0:
            ring.mark_done(ctx.image_consumer, fi.seq)
    if not out_ok:  # pixels changed under the stage: its result may be torn, drop it
        meter.add("stale")
        out = None
    pkt.timings_ns[ctx.name] = dt
    meter.frame(dt, fi.capture_ns)
    recovered = stage.take_error_count()
    if recovered:
        meter.add("errors", recovered)
    if out is None:
        _consumed(pkt, ctx, None)
        return
    out.timings_ns[ctx.name] = dt
    out.image = None
    if ctx.emit(out):
        meter.add("frames_out")


def _consumed(pkt, ctx: ChildContext, ring: ShmRing | None) -> None:
    """A packet stops here: release its slot for this stage and for stages downstream."""
    fi = pkt.frame
    if ring is not None and ctx.image_consumer >= 0:
        ring.mark_done(ctx.image_consumer, fi.seq)
    if ctx.lossless and ctx.outs and fi.ring:
        ctx.emit(Gone(fi.ring, fi.seq))


# --------------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------------
@dataclass
class _Node:
    stage: Stage | SourceStage
    to: list[str]
    row: int = 0
    inq: FrameQueue | None = None
    n_upstream: int = 0
    image_consumer: int = -1
    restarts: int = 0
    writer_index: dict[str, int] = field(default_factory=dict)  # downstream -> our writer there
    proc: Any = None
    stops_seen: Any = None
    seq_value: Any = None
    finished: bool = False
    ring_base: str = ""
    crash_msg: str | None = None  # last crash report from the child, until it is reaped

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def is_source(self) -> bool:
        return isinstance(self.stage, SourceStage)

    def ring_name(self) -> str:
        return f"{self.ring_base}_{self.restarts}"


class Graph:
    """A DAG of stages. Add sources and stages with the names of their downstream stages, then
    `run()` (blocking; returns a RunResult and never leaves a child process or a ring behind)."""

    def __init__(self, runtime: RuntimeConfig | None = None, lossless: bool = False,
                 status_stream=None):
        self.rt = runtime or RuntimeConfig()
        self.lossless = lossless
        self.nodes: dict[str, _Node] = {}
        self._status_stream = status_stream
        self._token = f"sk{os.getpid():x}_{time.monotonic_ns() % 0xFFFFFF:x}"

    def add(self, stage: Stage | SourceStage, to: list[str] | tuple[str, ...] = ()) -> "Graph":
        if stage.name in self.nodes:
            raise PipelineError(f"two stages are named '{stage.name}'")
        self.nodes[stage.name] = _Node(stage, list(to))
        return self

    # -- wiring -------------------------------------------------------------------------------
    def _wire(self, ctx: mp.context.BaseContext) -> None:
        names = list(self.nodes)
        for node in self.nodes.values():
            for dst in node.to:
                if dst not in self.nodes:
                    raise PipelineError(f"stage '{node.name}' feeds unknown stage '{dst}'")
                if self.nodes[dst].is_source:
                    raise PipelineError(f"stage '{node.name}' cannot feed source '{dst}'")
                node.writer_index[dst] = self.nodes[dst].n_upstream
                self.nodes[dst].n_upstream += 1
        n_img = 0
        for i, node in enumerate(self.nodes.values()):
            node.row = i
            node.stops_seen = ctx.RawValue("q", 0)
            node.seq_value = ctx.RawValue("q", 0)
            if node.is_source:
                safe = "".join(c if c.isalnum() else "_" for c in node.stage.stream_id)[:12]
                node.ring_base = f"{self._token}_{i}{safe}"
                continue
            if node.n_upstream == 0:
                raise PipelineError(f"stage '{node.name}' has no upstream stage")
            node.inq = FrameQueue(ctx, self.rt.stage_queue_sizes.get(node.name, self.rt.queue_size),
                                  self.lossless, node.name,
                                  writers=node.n_upstream)
            if node.stage.needs_image:
                if n_img >= MAX_CONSUMERS:
                    raise PipelineError(f"more than {MAX_CONSUMERS} stages read pixels")
                node.image_consumer, n_img = n_img, n_img + 1
        self._table = ctx.RawArray("d", len(names) * NF)
        self.board = MetricsBoard(self._table, names)

    def _all_rings(self) -> list[str]:
        names = []
        for n in self.nodes.values():
            if n.is_source:
                names += [f"{n.ring_base}_{k}" for k in range(n.restarts + 1)]
        return names

    def _context(self, node: _Node) -> ChildContext:
        return ChildContext(
            name=node.name, row=node.row, inq=node.inq,
            outs=[self.nodes[d].inq.writer(node.writer_index[d]) for d in node.to],
            n_upstream=node.n_upstream,
            lossless=self.lossless, image_consumer=node.image_consumer,
            image_consumers=[n.image_consumer for n in self.nodes.values() if n.image_consumer >= 0],
            ring_name=node.ring_name() if node.is_source else "",
            all_rings=self._all_rings() + ([f"{node.ring_base}_{node.restarts + 1}"]
                                           if node.is_source else []),
            table=self._table, stops_seen=node.stops_seen, seq_value=node.seq_value,
            events=self._events, stop_event=self._stop, abort_event=self._abort,
            interval_s=self.rt.metrics_interval_s)

    def _create(self, node: _Node) -> None:
        """Start the node's process (again, after a crash); the stage object is pickled into it."""
        node.proc = self._ctx.Process(target=_run, args=(node.stage, self._context(node)),
                                      name=f"skelstream-{node.name}", daemon=False)
        node.proc.start()
        node.finished = False

    # -- run ----------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run until every source ended and every stage drained, or until stopped/crashed."""
        if not self.nodes:
            raise PipelineError("the graph has no stages")
        self._ctx = mp.get_context(self.rt.start_method)
        self._wire(self._ctx)
        self._events = EventPipe(self._ctx)
        self._stop, self._abort = Flag(self._ctx), Flag(self._ctx)
        _unlink_stale_rings()
        self._watchdog = shm_watchdog.start(self._token + "_")  # unlinks the rings if we die
        self._signals = 0
        self._warnings: list[str] = []
        self._fatal = EXIT_OK  # set to the exit code when the run must stop
        self._stop_deadline = float("inf")
        printer = StatusPrinter(self._status_stream, self.rt.status_line, log_interval_s=10.0)
        errors: list[str] = []
        code = EXIT_OK
        old = {}
        if threading.current_thread() is threading.main_thread():  # signals: main thread only
            old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            for s in old:
                signal.signal(s, self._on_signal)
        try:
            code = self._supervise(printer, errors)
        except KeyboardInterrupt:
            self._abort.set()
        finally:
            self._shutdown()  # after a normal end every child has already exited
            for s, h in old.items():
                signal.signal(s, h)
            printer.end()
        stats = {s.name: s.values for s in self.board.all()}
        summary = self.board.summary()
        if self.rt.summary_at_exit:
            print(summary, file=self._status_stream or sys.stderr)
        return RunResult(code, errors, self._warnings, summary, stats,
                         interrupted=self._signals > 0)

    def _on_signal(self, signum, frame) -> None:
        self._signals += 1
        if self._signals == 1:
            self._stop.set()  # sources stop; everything already captured drains
            self._stop_deadline = time.monotonic() + self.rt.drain_timeout_s
        else:
            self._abort.set()

    def _supervise(self, printer: StatusPrinter, errors: list[str]) -> int:
        order = [n for n in self.nodes.values() if not n.is_source][::-1]
        order += [n for n in self.nodes.values() if n.is_source]
        code = EXIT_OK
        started_sources = False
        for node in order:
            if node.is_source and not started_sources:
                started_sources = True
                code = max(code, self._wait_ready(errors))
                if self._fatal:
                    return self._fatal
            self._create(node)
        next_status = time.monotonic() + self.rt.metrics_interval_s
        while True:
            code = max(code, self._drain_events(errors, timeout=0.05))
            self._reap(errors)
            if self._fatal:
                return self._fatal
            if all(n.finished for n in self.nodes.values()):
                return code
            now = time.monotonic()
            if now > self._stop_deadline:
                errors.append(f"drain did not finish within {self.rt.drain_timeout_s:g} s "
                              "(runtime.drain_timeout_s); aborted")
                self._abort.set()
                self._stop_deadline = float("inf")
            if now >= next_status:
                printer.show(self.board.status_line())
                next_status = now + self.rt.metrics_interval_s

    def _wait_ready(self, errors: list[str]) -> int:
        """Sources start only once every stage has finished setup (model loading etc.)."""
        deadline = time.monotonic() + self.rt.setup_timeout_s
        code = EXIT_OK
        while True:
            code = max(code, self._drain_events(errors, timeout=0.05))
            self._reap(errors)
            if self._fatal:
                return self._fatal
            if setup_finished([self.board.row(n.name)["state"] for n in self.nodes.values()
                               if not n.is_source and n.proc is not None]):
                return EXIT_OK
            if self._abort.is_set() or self._stop.is_set():
                return code
            if time.monotonic() > deadline:
                errors.append(f"stages not ready after {self.rt.setup_timeout_s:g} s; raise "
                              "runtime.setup_timeout_s if model loading is slow")
                self._fatal = EXIT_CRASH
                return self._fatal

    def _drain_events(self, errors: list[str], timeout: float) -> int:
        code = EXIT_OK
        try:
            ev = self._events.get(timeout)
        except pyqueue.Empty:
            return code
        while True:
            if ev[0] == "error":
                _, name, kind, msg = ev
                node = self.nodes[name]
                self.board.add(name, "errors")
                if kind == "user":
                    errors.append(f"{name}: {msg}")
                    code = EXIT_USER
                    if not node.is_source:  # a failed stream ends only itself; a stage, the run
                        self._fatal = EXIT_USER
                else:
                    node.crash_msg = msg
            try:
                ev = self._events.get(0.0)
            except pyqueue.Empty:
                return code

    def _reap(self, errors: list[str]) -> None:
        """Notice exited children: done, restart a crashed one, or mark the run as failed."""
        for node in self.nodes.values():
            p = node.proc
            if node.finished or p is None or p.is_alive():
                continue
            p.join()
            node.finished = True
            if p.exitcode in (EXIT_OK, EXIT_USER):
                continue
            time.sleep(0.05)
            self._drain_events(errors, timeout=0.0)
            detail = node.crash_msg or _exit_text(p.exitcode)
            node.crash_msg = None
            if self.rt.restart_crashed_stages and node.restarts < self.rt.max_restarts \
                    and not self._stop.is_set() and not self._abort.is_set():
                node.restarts += 1
                self.board.add(node.name, "restarts")
                self._warnings.append(f"stage '{node.name}' crashed ({detail}); restart "
                                      f"{node.restarts}/{self.rt.max_restarts}")
                print(f"warning: {self._warnings[-1]}", file=self._status_stream or sys.stderr)
                self._create(node)
                continue
            errors.append(str(StageCrashed(node.name, detail)))
            self._fatal = EXIT_CRASH

    def _shutdown(self) -> None:
        """Join every child (they see the abort flag within ~0.1 s; SIGKILL after
        `abort_grace_s`, since children ignore SIGTERM) and unlink every ring."""
        self._abort.set()
        procs = [n.proc for n in self.nodes.values() if n.proc is not None]
        deadline = time.monotonic() + self.rt.abort_grace_s
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                print(f"warning: {p.name} did not stop within {self.rt.abort_grace_s:g} s; killed",
                      file=self._status_stream or sys.stderr)
                p.kill()
                p.join(5.0)
        for name in self._all_rings():
            unlink_by_name(name)
        for n in self.nodes.values():
            if n.inq is not None:
                n.inq.close()
        self._events.close()
        shm_watchdog.stop(self._watchdog)


def setup_finished(states: list[float]) -> bool:
    """Whether sources may start: every stage READY (or already DONE). A FAILED stage is not:
    it sets FAILED right after writing its error report, so the board can show FAILED before
    the report is read; counted as finished, the sources started next to a stage whose setup
    had failed (a flaky `test_user_error_in_setup_exits_2_before_sources_start` under load). Its
    report then ends the run, or `_reap` restarts it until it is READY."""
    return all(READY <= s < FAILED for s in states)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
