"""ZeroMQ publisher: one XPUB socket (multipart [topic, payload]) plus an optional conflated PUB.

Why XPUB: it hands us each new subscription, so a client gets the 'meta' message right after it
subscribes (besides every `meta_interval_s`). In XPUB_MANUAL mode: a subscription takes effect
only when we apply it, just before that meta, so no frame can reach a new client ahead of its
meta (applied by ZeroMQ itself, a subscription that arrived during a send let that frame through
first: 12 of 300 connections to a busy publisher). Every send is NOBLOCK and the per-subscriber
SNDHWM is small: ZeroMQ drops for a subscriber whose queue is full, so a stalled client can never
stall the pipeline. Clients see those drops as `pub_seq` gaps.

ZMQ_CONFLATE keeps only the newest message but only works with single-part messages, so the
latest-only endpoint sends one part `topic + payload` (topic ends in NUL, see `schema.topic_for`).
Use one conflated subscriber per stream: conflation keeps the newest message of the socket.
"""
from __future__ import annotations

import errno
import os
import sys
import time
from dataclasses import dataclass

import zmq

from sinks.config import PublisherConfig
from sinks.schema import (TOPIC_SEP, encode_frame, encode_heartbeat, encode_meta,
                           with_publish_time, topic_for)
from stream.errors import TransportError
from stream.packet import Packet, TrackState

_LOOPBACK = ("tcp://127.0.0.1:", "tcp://localhost:", "tcp://[::1]:", "ipc://")


@dataclass
class PublisherStats:
    frames: int = 0
    heartbeats: int = 0
    metas: int = 0
    dropped: int = 0          # sends refused (EAGAIN); per-subscriber HWM drops are not visible here
    subscriptions: int = 0


@dataclass
class _StreamState:
    pub_seq: int = 0
    last_seq: int = -1
    last_capture_ns: int = 0
    empty: bool = False           # nobody in view on the last frame
    next_heartbeat: float = 0.0
    next_meta: float = 0.0


def bind_or_error(sock: zmq.Socket, endpoint: str, what: str) -> None:
    """bind, or a TransportError naming the setting `what` and the fix."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TransportError(f"{what} {endpoint} is already in use (another skelstream?); "
                                 f"stop the other process or set {what}=tcp://127.0.0.1:<free port>"
                                 ) from None
        raise TransportError(f"cannot bind {what} {endpoint}: {exc.strerror}; check the address"
                             ) from None


def load_server_keys(secret_file: str) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a zmq.auth secret certificate file."""
    import zmq.auth

    if not os.path.isfile(secret_file):
        raise TransportError(f"CURVE secret key file {secret_file} not found; make keys with "
                             "python -m sinks.curve KEYDIR")
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except Exception as exc:  # noqa: BLE001 - zmq.auth raises plain ValueError/OSError
        raise TransportError(f"cannot read CURVE key file {secret_file} ({exc}); make keys with "
                             "python -m sinks.curve KEYDIR") from None
    if not secret:
        raise TransportError(f"{secret_file} holds no secret key; pass the '.key_secret' file")
    return public, secret


def start_curve_server(ctx: zmq.Context, secret_file: str, authorized_dir: str | None,
                       what: str = "curve_authorized_dir"):
    """Start a ZAP authenticator on `ctx` allowing the clients whose public keys lie in
    `authorized_dir` (None = any key). Returns (authenticator, (public, secret) server keys)."""
    from zmq.auth.thread import ThreadAuthenticator
    import zmq.auth

    keys = load_server_keys(secret_file)
    if authorized_dir is not None and not os.path.isdir(authorized_dir):
        raise TransportError(f"{what} {authorized_dir} is not a folder of client '.key' files; "
                             "make one with python -m sinks.curve KEYDIR")
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=authorized_dir or zmq.auth.CURVE_ALLOW_ANY)
    return auth, keys


class Publisher:
    """Publishes packets of any number of streams. Not thread-safe (one per stage process).

    Use as a context manager, or `open()` / `close()`. Frames with people go out as 'frame';
    the first empty frame too (so clients see people leave), then 'heartbeat' at most every
    `heartbeat_interval_s` while nobody is in view."""

    def __init__(self, cfg: PublisherConfig):
        self.cfg = cfg
        self._prefix = cfg.stream_prefix  # host prefix: stream ids stay unique behind a fan-in proxy
        self.stats = PublisherStats()
        self._streams: dict[str, _StreamState] = {}
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._conf: zmq.Socket | None = None
        self._auth = None

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self) -> "Publisher":
        cfg = self.cfg
        self._ctx = zmq.Context(io_threads=1)
        try:
            curve = self._curve_setup() if cfg.curve_server_secret_file else None
            if curve is None and not any(cfg.endpoint.startswith(p) for p in _LOOPBACK):
                print(f"warning: publisher.endpoint {cfg.endpoint} is reachable beyond this "
                      "machine without encryption; set publisher.curve_server_secret_file",
                      file=sys.stderr)
            self._sock = self._socket(zmq.XPUB, curve)
            self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscribe -> meta
            self._sock.setsockopt(zmq.XPUB_MANUAL, 1)   # ... applied by us, then its meta
            bind_or_error(self._sock, cfg.endpoint, "publisher.endpoint")
            if cfg.conflated_endpoint:
                self._conf = self._socket(zmq.PUB, curve)
                self._conf.setsockopt(zmq.CONFLATE, 1)
                bind_or_error(self._conf, cfg.conflated_endpoint, "publisher.conflated_endpoint")
        except BaseException:
            self.close()
            raise
        return self

    def _socket(self, kind: int, curve: tuple[bytes, bytes] | None) -> zmq.Socket:
        s = self._ctx.socket(kind)
        s.setsockopt(zmq.SNDHWM, self.cfg.send_hwm_msgs)
        s.setsockopt(zmq.LINGER, self.cfg.linger_ms)
        if curve is not None:
            s.curve_publickey, s.curve_secretkey = curve
            s.curve_server = True
        return s

    def _curve_setup(self) -> tuple[bytes, bytes]:
        self._auth, keys = start_curve_server(self._ctx, self.cfg.curve_server_secret_file,
                                              self.cfg.curve_authorized_dir,
                                              "publisher.curve_authorized_dir")
        return keys

    def close(self) -> None:
        for s in (self._sock, self._conf):
            if s is not None:
                s.close()
        self._sock = self._conf = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def __enter__(self) -> "Publisher":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sending --------------------------------------------------------------------------------
    def _send(self, topic: bytes, payload: bytes, conflated: bool = True) -> bool:
        try:
            self._sock.send(topic, zmq.SNDMORE | zmq.NOBLOCK)
            self._sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            self.stats.dropped += 1
            return False
        if conflated and self._conf is not None:
            try:
                self._conf.send(topic + payload, zmq.NOBLOCK)
            except zmq.Again:
                self.stats.dropped += 1
        return True

    def _state(self, stream_id: str) -> _StreamState:
        st = self._streams.get(stream_id)
        if st is None:
            if TOPIC_SEP.decode() in stream_id:
                raise TransportError(f"stream id {stream_id!r} contains NUL; rename the source "
                                     "(sources.N.stream_id)")
            st = self._streams[stream_id] = _StreamState()
        return st

    def _next(self, st: _StreamState) -> int:
        st.pub_seq += 1
        return st.pub_seq

    def send_meta(self, stream_id: str) -> None:
        """Meta of a stream; `stream_id` is the wire id (prefix included)."""
        st = self._state(stream_id)
        st.next_meta = time.monotonic() + self.cfg.meta_interval_s
        self.stats.metas += 1
        self._send(topic_for(stream_id), encode_meta(stream_id, self._next(st), time.time_ns()),
                   conflated=False)  # conflation would discard it at the next frame

    def poll_subscriptions(self) -> int:
        """Apply new (un)subscriptions and answer each subscription with meta (of the subscribed
        stream, or all for b''). XPUB_MANUAL: setsockopt(SUBSCRIBE / UNSUBSCRIBE) acts on the
        connection the last message came from, so each is applied before the next recv."""
        n = 0
        while self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            msg = self._sock.recv(zmq.NOBLOCK)
            if not msg or msg[0] not in (0, 1):
                continue
            prefix = msg[1:]
            if msg[0] == 0:
                self._sock.setsockopt(zmq.UNSUBSCRIBE, prefix)
                continue
            self._sock.setsockopt(zmq.SUBSCRIBE, prefix)
            n += 1
            for sid in list(self._streams):
                if topic_for(sid).startswith(prefix):
                    self.send_meta(sid)
        self.stats.subscriptions += n
        return n

    def publish(self, packet: Packet) -> str:
        """Publish one frame; returns what went out: 'frame', 'heartbeat' or '' (suppressed)."""
        self.poll_subscriptions()
        fi = packet.frame
        sid = self._prefix + fi.stream_id
        st = self._state(sid)
        now = time.monotonic()
        if now >= st.next_meta:
            self.send_meta(sid)
        st.last_seq, st.last_capture_ns = fi.seq, fi.capture_ns
        topic = topic_for(sid)
        if not any(p.track_state is not TrackState.REMOVED for p in packet.persons):
            if st.empty:  # nobody in view, already announced: heartbeats only
                if now < st.next_heartbeat:
                    return ""
                self._heartbeat(sid, st, now)
                return "heartbeat"
            st.empty, st.next_heartbeat = True, now + self.cfg.heartbeat_interval_s
        else:
            st.empty = False
        payload = encode_frame(packet, self._next(st), time.time_ns(), stream_id=sid)
        # publish time = when ZeroMQ gets the bytes, not before the (up to ~50 us) encoding
        self._send(topic, with_publish_time(payload, time.time_ns()))
        self.stats.frames += 1
        return "frame"

    def _heartbeat(self, stream_id: str, st: _StreamState, now: float, ended: bool = False):
        st.next_heartbeat = now + self.cfg.heartbeat_interval_s
        self.stats.heartbeats += 1
        self._send(topic_for(stream_id), encode_heartbeat(
            stream_id, self._next(st), time.time_ns(), st.last_seq, st.last_capture_ns, ended))

    def end_stream(self, stream_id: str) -> None:
        """A finite source ended: one heartbeat with `ended=True` (`stream_id` without prefix)."""
        self.poll_subscriptions()      # (a client that subscribed just now hears the end too)
        sid = self._prefix + stream_id
        self._heartbeat(sid, self._state(sid), time.monotonic(), ended=True)

    def wait_for_subscriber(self, timeout_s: float) -> bool:
        """Block up to `timeout_s` until someone subscribes (replay: do not talk to nobody)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._sock.poll(timeout=10) and self.poll_subscriptions() > 0:
                return True
        return self.stats.subscriptions > 0
