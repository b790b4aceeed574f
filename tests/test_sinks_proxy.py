"""Fan-in proxy: two real publisher processes (python -m sinks.synth), the proxy as its own process
(python -m sinks.proxy), one PoseSubscriber receiving both hosts' streams through it."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sinks.client import PoseSubscriber
from sinks.config import PublisherConfig
from sinks.curve import make_keys
from sinks.publisher import Publisher
from sinks.proxy import FanInProxy, Upstream
from sinks.schema import FrameMsg, MetaMsg
from sinks.synth import synthetic_packet
from stream.errors import TransportError
from tests.test_sinks_publisher import ep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop(procs: list[subprocess.Popen]) -> str:
    out = ""
    for p in procs:
        if p.poll() is None:
            p.terminate()
        try:
            out += p.communicate(timeout=20)[0] or ""
        except subprocess.TimeoutExpired:
            p.kill()
            out += p.communicate()[0] or ""
    return out


def receive_until(sub: PoseSubscriber, want: set[str], per_stream: int, timeout_s: float):
    """Frames by stream until every wanted stream has `per_stream` frames (or the timeout)."""
    frames: dict[str, list[FrameMsg]] = {}
    metas: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = sub.recv(0.5)
        if r is None:
            continue
        if isinstance(r.msg, MetaMsg):
            metas.add(r.msg.stream)
        elif isinstance(r.msg, FrameMsg):
            frames.setdefault(r.msg.stream, []).append(r.msg)
        if want <= set(frames) and all(len(frames[s]) >= per_stream for s in want):
            break
    return frames, metas


@pytest.mark.parametrize("curve", [False, True], ids=["plain", "curve"])
def test_two_publisher_processes_one_client_through_proxy(curve, tmp_path):
    """Two camera 'hosts' both call their camera cam0; their stream prefixes keep the ids apart.
    With CURVE every hop is encrypted: each host its own server key, the proxy a client key
    for the hosts and a server key for its clients."""
    a_ep, b_ep, out_ep = ep(), ep(), ep()
    pub_args = {"a": [], "b": []}
    proxy_args = ["--upstream", a_ep, "--upstream", b_ep]
    client_keys = {}
    if curve:  # what docs/DEPLOYMENT.md tells a site to do, one key folder per machine
        import shutil
        hosts = {h: make_keys(str(tmp_path / h), clients=()) for h in ("a", "b")}
        proxy = make_keys(str(tmp_path / "proxy"), clients=("proxy", "viewer"))
        for h in ("a", "b"):  # each camera host lets the proxy's public key in
            shutil.copy(proxy["proxy"][0], tmp_path / h / "authorized_clients" / "proxy.key")
            pub_args[h] = ["--curve-server-secret-file", hosts[h]["server"][1],
                           "--curve-authorized-dir", str(tmp_path / h / "authorized_clients")]
        os.remove(tmp_path / "proxy" / "authorized_clients" / "proxy.key")  # clients: viewer only
        proxy_args = ["--upstream", a_ep, hosts["a"]["server"][0],
                      "--upstream", b_ep, hosts["b"]["server"][0],
                      "--client-secret-file", proxy["proxy"][1],
                      "--curve-server-secret-file", proxy["server"][1],
                      "--curve-authorized-dir", str(tmp_path / "proxy" / "authorized_clients")]
        client_keys = dict(server_public_file=proxy["server"][0],
                           client_secret_file=proxy["viewer"][1])
    procs = [spawn("sinks.synth", "--endpoint", a_ep, "--stream-prefix", "host-a/", "--hz", "30",
                   "--persons", "1", *pub_args["a"]),
             spawn("sinks.synth", "--endpoint", b_ep, "--stream-prefix", "host-b/", "--hz", "30",
                   "--persons", "2", *pub_args["b"]),
             spawn("sinks.proxy", *proxy_args, "--bind", out_ep, "--status-interval-s", "0")]
    try:
        with PoseSubscriber(out_ep, **client_keys) as sub:
            frames, metas = receive_until(sub, {"host-a/cam0", "host-b/cam0"}, 10, timeout_s=60)
    finally:
        log = stop(procs)
    assert set(frames) == {"host-a/cam0", "host-b/cam0"}, log
    assert {"host-a/cam0", "host-b/cam0"} <= metas  # each host answered the subscription
    assert all(len(f.persons) == 1 for f in frames["host-a/cam0"])
    assert all(len(f.persons) == 2 for f in frames["host-b/cam0"])
    for fs in frames.values():  # the publisher's own numbering passes through unchanged
        seqs = [f.seq for f in fs]
        assert seqs == sorted(seqs)


def test_duplicate_stream_id_from_two_hosts_is_dropped_and_named(capsys):
    """Two hosts without a prefix both publish cam0: the first keeps it, the second's messages
    are dropped and counted, and one warning names both endpoints and the fix."""
    a_ep, b_ep, out_ep = ep(), ep(), ep()
    with Publisher(PublisherConfig(endpoint=a_ep)) as pa, \
            Publisher(PublisherConfig(endpoint=b_ep)) as pb, \
            FanInProxy([Upstream(a_ep), Upstream(b_ep)], out_ep) as proxy, \
            PoseSubscriber(out_ep) as sub:
        # host a is first: it publishes alone until the proxy has forwarded one of its frames
        # (on a loaded machine b's connection could otherwise be up first and keep the id)
        deadline = time.monotonic() + 10
        i = 0
        while proxy.stats.forwarded == 0 and time.monotonic() < deadline:
            pa.publish(synthetic_packet("cam0", i, 1))
            pa.poll_subscriptions()
            proxy.serve(duration_s=0.03)
            i += 1
        assert proxy.stats.forwarded > 0, "host a's frames never reached the proxy"
        for i in range(i, i + 60):
            pa.publish(synthetic_packet("cam0", i, 1))
            pa.poll_subscriptions()
            pb.publish(synthetic_packet("cam0", i, 3))
            proxy.serve(duration_s=0.03)
        got = []
        while (r := sub.recv(0.3)) is not None:
            got.append(r.msg)
    persons = {len(m.persons) for m in got if isinstance(m, FrameMsg)}
    assert persons == {1}, "frames of the second host leaked through under the same id"
    assert proxy.stats.collisions > 0
    err = capsys.readouterr().err
    assert err.count("comes from both") == 1 and a_ep in err and b_ep in err
    assert "publisher.stream_prefix" in err


def test_stream_prefix_on_wire_not_in_local_ids():
    endpoint = ep()
    with Publisher(PublisherConfig(endpoint=endpoint, stream_prefix="gym/")) as pub, \
            PoseSubscriber(endpoint, streams=["gym/cam1"]) as sub:
        deadline = time.monotonic() + 5
        while pub.stats.subscriptions < 1 and time.monotonic() < deadline:
            pub.wait_for_subscriber(0.05)
        for i in range(5):
            pub.publish(synthetic_packet("cam1", i, 1))
        pub.end_stream("cam1")
        got = []
        while (r := sub.recv(0.3)) is not None:
            got.append(r.msg)
    assert {m.stream for m in got} == {"gym/cam1"}
    assert any(getattr(m, "ended", False) for m in got)


def test_proxy_bad_endpoint_is_one_line():
    with pytest.raises(TransportError, match="--upstream must start with tcp://"):
        FanInProxy([Upstream("cam-a:5555")], ep())
    r = subprocess.run([sys.executable, "-m", "sinks.proxy", "--upstream", "http://x:1"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "error:" in r.stderr
