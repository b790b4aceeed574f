"""Fan-in proxy: many camera hosts' publishers -> one endpoint clients subscribe to once.

    python -m sinks.proxy --upstream tcp://cam-a:5555 --upstream tcp://cam-b:5555 \\
        --bind tcp://0.0.0.0:5560

ZeroMQ's XSUB/XPUB pattern: one XSUB socket per upstream publisher (each connects to a camera
host's `publisher.endpoint`) and one XPUB socket clients subscribe to. Clients' subscriptions go
up to every publisher (so each publisher answers a new subscriber with its 'meta', as it does
directly), messages come down unchanged: topics, payloads and `pub_seq` are the publisher's own,
so a client behind the proxy sees exactly what it would see connected to each host.

Why not `zmq.proxy` on one XSUB: with one socket per upstream the proxy knows which host a message
came from, so (1) each upstream can have its own CURVE server key, and (2) a stream id published by
two hosts (two hosts left `publisher.stream_prefix` unset and both call their camera 'cam0') is
caught: the first host keeps the id, the other's messages for it are dropped, counted, and named in
one warning with the fix. An id is released when its owner falls silent for `--owner-timeout-s`
(publishers send a heartbeat every second even with nobody in view).

Latency first: every send is NOBLOCK with a per-client high-water mark, so a stalled client loses
messages (seen as `pub_seq` gaps) and never stalls the proxy or the other clients.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass, field

import zmq

from sinks.client import load_client_keys
from sinks.config import _check_endpoint
from sinks.publisher import bind_or_error, start_curve_server
from sinks.schema import TOPIC_SEP
from stream.errors import TransportError, UserError


@dataclass(frozen=True)
class Upstream:
    """One camera host's publisher: endpoint, and its CURVE server public key file (or None)."""
    endpoint: str
    server_public_file: str | None = None


@dataclass
class ProxyStats:
    forwarded: int = 0
    dropped: int = 0           # refused by the client side (HWM full): clients see pub_seq gaps
    collisions: int = 0        # messages dropped because another upstream owns their stream id
    subscriptions: int = 0     # subscribe/unsubscribe messages passed upstream
    per_upstream: list[int] = field(default_factory=list)


@dataclass
class _Owner:
    upstream: int
    last_s: float


class FanInProxy:
    """Forwards every upstream publisher's messages to the clients of one XPUB endpoint.

    client_secret_file: this proxy's own '.key_secret' for upstreams that use CURVE.
    curve_server_secret_file / curve_authorized_dir: CURVE for the clients' side (as the
    publisher's settings of the same names). Not thread-safe: run `serve()` in one thread."""

    def __init__(self, upstreams: list[Upstream], bind: str, client_secret_file: str | None = None,
                 curve_server_secret_file: str | None = None,
                 curve_authorized_dir: str | None = None, send_hwm_msgs: int = 1000,
                 owner_timeout_s: float = 5.0):
        if not upstreams:
            raise TransportError("the proxy needs at least one --upstream ENDPOINT (a camera "
                                 "host's publisher.endpoint, e.g. tcp://cam-a:5555)")
        for u in upstreams:
            _endpoint_or_error(u.endpoint, "--upstream")
        _endpoint_or_error(bind, "--bind")
        self.upstreams, self.bind = list(upstreams), bind
        self.owner_timeout_s = owner_timeout_s
        self.stats = ProxyStats(per_upstream=[0] * len(upstreams))
        self._owners: dict[bytes, _Owner] = {}
        self._warned: set[tuple[bytes, int]] = set()
        self._stop = False
        self._ctx = zmq.Context(io_threads=1)
        self._auth = None
        self._subs: list[zmq.Socket] = []
        self._pub: zmq.Socket | None = None
        try:
            self._open(client_secret_file, curve_server_secret_file, curve_authorized_dir,
                       send_hwm_msgs)
        except BaseException:
            self.close()
            raise

    def _open(self, client_secret_file, server_secret_file, authorized_dir, hwm) -> None:
        self._pub = self._ctx.socket(zmq.XPUB)
        self._pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every client's subscribe goes up -> meta
        self._pub.setsockopt(zmq.SNDHWM, hwm)
        self._pub.setsockopt(zmq.LINGER, 0)
        if server_secret_file:
            self._auth, (public, secret) = start_curve_server(
                self._ctx, server_secret_file, authorized_dir, "--curve-authorized-dir")
            self._pub.curve_publickey, self._pub.curve_secretkey = public, secret
            self._pub.curve_server = True
        elif not self.bind.startswith(("tcp://127.0.0.1:", "tcp://localhost:", "ipc://")):
            print(f"warning: proxy --bind {self.bind} is reachable beyond this machine without "
                  "encryption; pass --curve-server-secret-file", file=sys.stderr)
        bind_or_error(self._pub, self.bind, "--bind")
        for u in self.upstreams:
            s = self._ctx.socket(zmq.XSUB)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVHWM, hwm)
            if u.server_public_file:
                # CURVE options are read when connecting, so each upstream gets its own server key
                s.curve_serverkey, s.curve_publickey, s.curve_secretkey = load_client_keys(
                    u.server_public_file, client_secret_file)
            s.connect(u.endpoint)
            self._subs.append(s)

    # -- forwarding -----------------------------------------------------------------------------
    def _from_clients(self) -> None:
        """Subscriptions (first byte 1 = subscribe, 0 = unsubscribe) go to every upstream."""
        while True:
            try:
                msg = self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.stats.subscriptions += 1
            for s in self._subs:
                s.send(msg, zmq.NOBLOCK)

    def _owns(self, topic: bytes, i: int, now: float) -> bool:
        """True when upstream i may publish `topic`: it owns it, or the id is free/expired."""
        o = self._owners.get(topic)
        if o is None or o.upstream == i or now - o.last_s > self.owner_timeout_s:
            self._owners[topic] = _Owner(i, now)
            return True
        self.stats.collisions += 1
        if (topic, i) not in self._warned:
            self._warned.add((topic, i))
            sid = topic.rstrip(TOPIC_SEP).decode(errors="replace")
            first, second = self.upstreams[o.upstream].endpoint, self.upstreams[i].endpoint
            print(f"warning: proxy: stream id {sid!r} comes from both {first} and {second}; the "
                  "second is dropped: give each camera host its own publisher.stream_prefix "
                  "(e.g. 'host-b/')", file=sys.stderr)
        return False

    def _from_upstream(self, i: int, now: float) -> None:
        s = self._subs[i]
        while True:
            try:
                parts = s.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not self._owns(parts[0], i, now):
                continue
            try:
                self._pub.send_multipart(parts, zmq.NOBLOCK)
            except zmq.Again:
                self.stats.dropped += 1
                continue
            self.stats.forwarded += 1
            self.stats.per_upstream[i] += 1

    def serve(self, duration_s: float | None = None, status_interval_s: float = 0.0,
              status_stream=None) -> ProxyStats:
        """Forward until `stop()` (or SIGINT/SIGTERM via `main`), or for `duration_s`."""
        poller = zmq.Poller()
        poller.register(self._pub, zmq.POLLIN)
        for s in self._subs:
            poller.register(s, zmq.POLLIN)
        index = {s: i for i, s in enumerate(self._subs)}
        end = None if duration_s is None else time.monotonic() + duration_s
        next_status = time.monotonic() + status_interval_s
        while not self._stop and (end is None or time.monotonic() < end):
            ready = dict(poller.poll(100))
            now = time.monotonic()
            if self._pub in ready:
                self._from_clients()
            for s in ready:
                if s in index:
                    self._from_upstream(index[s], now)
            if status_interval_s > 0 and now >= next_status:
                next_status = now + status_interval_s
                print(self.status_line(), file=status_stream or sys.stderr, flush=True)
        return self.stats

    def status_line(self) -> str:
        st = self.stats
        per = " ".join(f"{u.endpoint}={n}" for u, n in zip(self.upstreams, st.per_upstream))
        return (f"proxy: forwarded {st.forwarded} dropped {st.dropped} collisions "
                f"{st.collisions} streams {len(self._owners)} | {per}")

    def stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        for s in (*self._subs, self._pub):
            if s is not None:
                s.close(linger=0)
        self._subs, self._pub = [], None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._ctx.term()

    def __enter__(self) -> "FanInProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _endpoint_or_error(endpoint: str, what: str) -> None:
    try:
        _check_endpoint(endpoint, what)
    except ValueError as exc:
        raise TransportError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinks.proxy", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", action="append", nargs="+", metavar=("ENDPOINT", "SERVER_KEY"),
                    required=True, help="a camera host's publisher endpoint, optionally followed by "
                    "its CURVE server public key file (server.key); repeat per host")
    ap.add_argument("--bind", default="tcp://127.0.0.1:5560", help="endpoint clients connect to")
    ap.add_argument("--client-secret-file", default=None,
                    help="this proxy's CURVE secret key, for upstreams given with a SERVER_KEY")
    ap.add_argument("--curve-server-secret-file", default=None,
                    help="CURVE secret key of the client side (python -m sinks.curve KEYDIR)")
    ap.add_argument("--curve-authorized-dir", default=None,
                    help="public keys of the clients allowed in (default: any key)")
    ap.add_argument("--send-hwm-msgs", type=int, default=1000)
    ap.add_argument("--owner-timeout-s", type=float, default=5.0)
    ap.add_argument("--status-interval-s", type=float, default=5.0, help="0 = no status line")
    ap.add_argument("--duration-s", type=float, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    ups = []
    for parts in a.upstream:
        if len(parts) > 2:
            ap.error(f"--upstream takes ENDPOINT [SERVER_KEY], got {parts}")
        ups.append(Upstream(parts[0], parts[1] if len(parts) == 2 else None))
    try:
        proxy = FanInProxy(ups, a.bind, a.client_secret_file, a.curve_server_secret_file,
                           a.curve_authorized_dir, a.send_hwm_msgs, a.owner_timeout_s)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: proxy.stop())
    print(f"proxy: {len(ups)} upstream(s) -> {a.bind}", file=sys.stderr, flush=True)
    with proxy:
        proxy.serve(a.duration_s, a.status_interval_s)
        print(proxy.status_line(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
