"""Client SDK: `PoseSubscriber` yields typed frames; `python -m sinks.client ENDPOINT` shows them.

    from sinks.client import PoseSubscriber
    with PoseSubscriber("tcp://127.0.0.1:5555", streams=["cam0"]) as sub:
        for frame in sub:                      # FrameMsg; sub.meta holds DoF names and limits
            for p in frame.persons:
                knee = p.q[sub.dof_index["knee_angle_r"]]   # radians

Drops: `pub_seq` is +1 per message per stream, so a gap is a message lost in transport (slow
client, HWM); `sub.stats.dropped` counts them, and `sub.messages()` yields `Received` items whose
`dropped_before` says how many went missing just before. Gaps in `seq` are frames
the pipeline itself skipped (`sub.stats.pipeline_skipped`). A publisher restart (pub_seq going
back to 1) is not a drop. Malformed messages are skipped and counted; a schema version mismatch
raises `SchemaVersionError` (a user error: upgrade one side).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from engines.skel.dofs import DOF_INDEX
from sinks.schema import (MAX_MESSAGE_BYTES, TOPIC_SEP, FrameMsg, HeartbeatMsg, MetaMsg, Message,
                          SchemaError, SchemaVersionError, decode, topic_for)
from stream.errors import TransportError, UserError


@dataclass
class SubscriberStats:
    received: int = 0
    frames: int = 0
    heartbeats: int = 0
    metas: int = 0
    dropped: int = 0            # pub_seq gaps: messages the transport lost
    pipeline_skipped: int = 0   # seq gaps between frames: frames the pipeline dropped upstream
    malformed: int = 0
    restarts: int = 0           # publisher restarts seen (pub_seq went back)
    reconnects: int = 0         # sockets re-created after `reconnect_after_s` of silence
    last_error: str = ""


@dataclass
class _Track:
    pub_seq: int = 0
    seq: int = -1


@dataclass
class Received:
    """One decoded message plus what the subscriber learnt from its sequence numbers."""
    msg: Message
    dropped_before: int = 0
    recv_utc_ns: int = 0
    extra: dict = field(default_factory=dict)


class PoseSubscriber:
    """SUB socket on `endpoint`. `streams`: stream ids to receive (None = all).

    `conflate=True` connects to a publisher's conflated endpoint (latest message only).
    CURVE: pass `server_public_file` (the server's '.key') and `client_secret_file` (this
    client's '.key_secret'). `reconnect_after_s`: re-create the socket after that much silence
    (ZeroMQ also reconnects TCP by itself).

    `spin_s` > 0: wait for a message by polling without sleeping for up to that long before
    blocking. A thread that sleeps in the kernel takes ~0.1 ms to wake on a loaded or virtual
    machine; a control loop that can spare a core sets `spin_s` to its frame period or more
    (bench/bench_publish.py: one-way p50 0.33 -> 0.21 ms on the 2-core dev VM)."""

    def __init__(self, endpoint: str, streams: list[str] | None = None, conflate: bool = False,
                 server_public_file: str | None = None, client_secret_file: str | None = None,
                 rcvhwm_msgs: int = 1000, reconnect_after_s: float = 5.0,
                 timeout_s: float | None = None, spin_s: float = 0.0):
        self.endpoint, self.streams, self.conflate = endpoint, streams, conflate
        self.spin_s = float(spin_s)
        self.rcvhwm_msgs, self.reconnect_after_s, self.timeout_s = (
            rcvhwm_msgs, reconnect_after_s, timeout_s)
        self.stats = SubscriberStats()
        self.meta: MetaMsg | None = None
        self.dof_index = dict(DOF_INDEX)
        self._tracks: dict[str, _Track] = {}
        self._curve = None
        if server_public_file or client_secret_file:
            self._curve = load_client_keys(server_public_file, client_secret_file)
        self._ctx = zmq.Context(io_threads=1)
        self._sock: zmq.Socket | None = None
        self._connect()

    def _connect(self) -> None:
        s = self._ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES + 256)  # hostile peers cannot make us allocate
        s.setsockopt(zmq.RCVHWM, self.rcvhwm_msgs)
        if self.conflate:
            s.setsockopt(zmq.CONFLATE, 1)
        if self._curve is not None:
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = self._curve
        for sid in (self.streams or [None]):
            s.setsockopt(zmq.SUBSCRIBE, b"" if sid is None else topic_for(sid))
        try:
            s.connect(self.endpoint)
        except zmq.ZMQError as exc:
            s.close()
            raise TransportError(f"cannot connect to {self.endpoint}: {exc.strerror}; "
                                 "use tcp://HOST:PORT or ipc:///path") from None
        self._sock = s
        self._heard_at = time.monotonic()  # silence is measured from here, across recv() calls

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._ctx.term()

    def __enter__(self) -> "PoseSubscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- receiving ------------------------------------------------------------------------------
    def _recv_parts(self, timeout_ms: int) -> list[bytes] | None:
        if self.spin_s > 0.0:
            give_up = time.monotonic() + min(self.spin_s, timeout_ms / 1000.0)
            while True:
                try:
                    return self._read(zmq.NOBLOCK)
                except zmq.Again:
                    if time.monotonic() >= give_up:
                        break
        if not self._sock.poll(timeout_ms):
            return None
        return self._read(0)

    def _read(self, flags: int) -> list[bytes]:
        if self.conflate:
            data = self._sock.recv(flags)
            topic, sep, payload = data.partition(TOPIC_SEP)
            return [topic + sep, payload] if sep else [data]
        return self._sock.recv_multipart(flags)

    def recv(self, timeout_s: float | None = None) -> Received | None:
        """Next valid message of any kind (None on timeout). Skips and counts malformed ones.

        Silence is counted from the last message heard, across calls, so a client polling with
        short timeouts still re-creates a socket that libzmq gave up on (it never reconnects by
        itself after a protocol error such as a message over ZMQ_MAXMSGSIZE)."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait = 100 if deadline is None else max(0, min(100, int(1000 * (deadline - time.monotonic()))))
            parts = self._recv_parts(wait)
            now = time.monotonic()
            if parts is None:
                if now - self._heard_at > self.reconnect_after_s:
                    self._sock.close()
                    self._connect()
                    self.stats.reconnects += 1
                if deadline is not None and now >= deadline:
                    return None
                continue
            self._heard_at = now
            got = self._handle(parts, time.time_ns())
            if got is not None:
                return got

    def _handle(self, parts: list[bytes], recv_ns: int) -> Received | None:
        self.stats.received += 1
        try:
            if len(parts) != 2:
                raise SchemaError(f"expected [topic, payload], got {len(parts)} parts")
            msg = decode(parts[1])
            if parts[0] != topic_for(msg.stream):
                raise SchemaError("topic does not match the message's stream")
        except SchemaVersionError:
            raise
        except SchemaError as exc:
            self.stats.malformed += 1
            self.stats.last_error = str(exc)
            return None
        tr = self._tracks.setdefault(msg.stream, _Track())
        dropped = 0
        if tr.pub_seq and msg.pub_seq > tr.pub_seq + 1:
            dropped = msg.pub_seq - tr.pub_seq - 1
            self.stats.dropped += dropped
        elif tr.pub_seq and msg.pub_seq <= tr.pub_seq:
            self.stats.restarts += 1  # publisher restarted (or replay began again)
            tr.seq = -1
        tr.pub_seq = msg.pub_seq
        if isinstance(msg, FrameMsg):
            self.stats.frames += 1
            if tr.seq >= 0 and msg.seq > tr.seq + 1:
                self.stats.pipeline_skipped += msg.seq - tr.seq - 1
            tr.seq = msg.seq
        elif isinstance(msg, HeartbeatMsg):
            self.stats.heartbeats += 1
        else:
            self.stats.metas += 1
            self.meta = msg
            self.dof_index = {n: i for i, n in enumerate(msg.dof_names)}
        return Received(msg, dropped, recv_ns)

    def messages(self):
        """Every message (frames, heartbeats, meta) as `Received`, forever or until timeout."""
        while True:
            r = self.recv()
            if r is None:
                return
            yield r

    def __iter__(self):
        """Frames only (`FrameMsg`); meta and heartbeats update `meta` and `stats`."""
        for r in self.messages():
            if isinstance(r.msg, FrameMsg):
                yield r.msg


def load_client_keys(server_public_file: str | None, client_secret_file: str | None):
    """(server public, client public, client secret) Z85 keys from zmq.auth certificate files."""
    import zmq.auth

    if not (server_public_file and client_secret_file):
        raise TransportError("CURVE needs both the server's public key file and this client's "
                             "secret key file (python -m sinks.curve KEYDIR makes them)")
    try:
        server_public, _ = zmq.auth.load_certificate(server_public_file)
        public, secret = zmq.auth.load_certificate(client_secret_file)
    except Exception as exc:  # noqa: BLE001
        raise TransportError(f"cannot read CURVE key files ({exc}); make them with "
                             "python -m sinks.curve KEYDIR") from None
    if not secret:
        raise TransportError(f"{client_secret_file} holds no secret key; pass the '.key_secret' "
                             "file")
    return server_public, public, secret


# ------------------------------------------------------------------------------------------
# python -m sinks.client ENDPOINT: live readable view
# ------------------------------------------------------------------------------------------
SHOWN_DOFS = ("hip_flexion_r", "knee_angle_r", "hip_flexion_l", "knee_angle_l",
              "shoulder_r_x", "elbow_flexion_r", "shoulder_l_x", "elbow_flexion_l")


def format_frame(f: FrameMsg, lat_ms: float, stats: SubscriberStats) -> str:
    """A few readable lines: stream, seq, latency, drops, then one line per person (degrees)."""
    head = (f"[{f.stream}] seq {f.seq}  people {len(f.persons)}  latency {lat_ms:.2f} ms  "
            f"drops {stats.dropped}  skipped {stats.pipeline_skipped}")
    lines = [head]
    for p in f.persons:
        flags = ("P" if p.predicted else "-") + ("L" if p.limit_active is not None
                                                  and p.limit_active.any() else "-")
        if p.q is None:
            lines.append(f"  #{p.track_id:<3} {p.state:<9} no pose")
            continue
        deg = np.rad2deg(p.q)
        angles = " ".join(f"{n.replace('_angle', '').replace('_flexion', '_flex')}="
                          f"{deg[DOF_INDEX[n]]:6.1f}" for n in SHOWN_DOFS)
        z = "" if p.trans_m is None else f" z={p.trans_m[2]:.2f}m"
        lines.append(f"  #{p.track_id:<3} {p.state:<9} {flags} score={p.score:.2f}{z} {angles}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinks.client",
                                 description="Print a live view of a skelstream publisher.")
    ap.add_argument("endpoint", help="e.g. tcp://127.0.0.1:5555 or ipc:///tmp/skelstream.sock")
    ap.add_argument("--stream", action="append", default=None, help="stream id (repeatable)")
    ap.add_argument("--conflate", action="store_true", help="endpoint is a conflated one")
    ap.add_argument("--count", type=int, default=0, help="exit after N frames (0 = never)")
    ap.add_argument("--timeout", type=float, default=None, help="exit after S s of silence")
    ap.add_argument("--max-hz", type=float, default=10.0, help="print at most this often")
    ap.add_argument("--server-key", help="CURVE: the server's public '.key' file")
    ap.add_argument("--client-key", help="CURVE: this client's '.key_secret' file")
    a = ap.parse_args(argv)
    try:
        sub = PoseSubscriber(a.endpoint, a.stream, a.conflate, a.server_key, a.client_key,
                             timeout_s=a.timeout)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n, next_print = 0, 0.0
    try:
        with sub:
            for r in sub.messages():
                m = r.msg
                now = time.monotonic()
                if isinstance(m, MetaMsg):
                    print(f"[{m.stream}] meta: {len(m.dof_names)} DoFs, {len(m.joint_names)} "
                          f"joints, {m.software}", flush=True)
                elif isinstance(m, HeartbeatMsg):
                    print(f"[{m.stream}] heartbeat: nobody in view (last seq {m.seq})"
                          + (" - stream ended" if m.ended else ""), flush=True)
                else:
                    n += 1
                    if now >= next_print or (a.count and n >= a.count):
                        lat = (r.recv_utc_ns - m.publish_utc_ns) / 1e6
                        print(format_frame(m, lat, sub.stats), flush=True)
                        next_print = now + 1.0 / a.max_hz
                    if a.count and n >= a.count:
                        break
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    s = sub.stats
    print(f"received {s.frames} frames, {s.heartbeats} heartbeats, {s.metas} meta; dropped "
          f"{s.dropped}, malformed {s.malformed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
