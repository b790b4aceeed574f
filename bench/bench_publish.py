"""Publish -> receive over loopback TCP: loss, one-way latency, publisher cost with a stalled
subscriber, and serialization cost.

    .venv/bin/python bench/bench_publish.py            # 10 s per phase (the recorded figures)
    .venv/bin/python bench/bench_publish.py --seconds 1  # quick look
    .venv/bin/python bench/bench_publish.py --spin-s 0.05  # the subscriber polls without sleeping

For each (people, rate): two subscriber processes, a healthy one (decoding every message with
PoseSubscriber) and a second one that the bench freezes with SIGSTOP in B phases (it reads
nothing; small receive buffers, so its TCP window fills and the publisher's HWM drops for it) and
thaws with SIGCONT in A phases. A B A B A B A, `--seconds` of A and of B in all. Reported:
- loss: frames the healthy subscriber did not get (pub_seq gaps + missing), both phases;
- one-way latency p50/p99: wall clock at receive (raw bytes, before decoding) minus the
  `publish_utc_ns` stamped when the message is handed to ZeroMQ; also after decoding;
- publisher per-message cost (`Publisher.publish`: encode + send) p50 in A and B and the ratio
  B/A (same run), and the gaps the second subscriber saw (drops for it: it really stalled).
  Pacing sleeps until 1 ms before each due time and spins the rest, because on
  this VM a thread woken from sleep runs several times slower for a while, which would swamp
  the figure. Also the same as thread CPU time (`time.thread_time_ns`), which leaves out the
  time other processes of this shared 2-core machine held the core;
- encode_frame cost for 16 people (p50/p99 over 20 000 calls);
- the floor: the same payload bytes from a bare pyzmq PUB to a bare SUB process, same pacing,
  measured in the same run just before each case (`run_floor`).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _healthy(endpoint: str, q, ready, spin_s: float) -> None:
    from sinks.client import PoseSubscriber
    from sinks.schema import FrameMsg, HeartbeatMsg

    lat_raw, lat_dec, seqs, phase = [], [], [], []
    with PoseSubscriber(endpoint, rcvhwm_msgs=10_000, spin_s=spin_s) as sub:
        ready.set()
        while True:
            r = sub.recv(30.0)
            done_ns = time.time_ns()
            if r is None:
                break
            m = r.msg
            if isinstance(m, FrameMsg):
                lat_raw.append(r.recv_utc_ns - m.publish_utc_ns)
                lat_dec.append(done_ns - m.publish_utc_ns)
                seqs.append(m.seq)
                phase.append(m.width)  # the bench marks the phase in the width field
            elif isinstance(m, HeartbeatMsg) and m.ended:
                break
        q.put({"lat_raw": lat_raw, "lat_dec": lat_dec, "seqs": seqs, "phase": phase,
               "dropped": sub.stats.dropped, "malformed": sub.stats.malformed})


def _raw_subscriber(endpoint: str, q, ready) -> None:
    """The floor: a bare pyzmq SUB that reads the publish stamp from the payload's last 8 bytes
    (where `encode_frame` packs it), no decoding, no SDK."""
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.setsockopt(zmq.RCVHWM, 100_000)
    s.connect(endpoint)
    ready.set()
    lat = []
    while s.poll(5000):
        parts = s.recv_multipart()
        now = time.time_ns()
        if parts[1] == b"end":
            break
        lat.append(now - int.from_bytes(parts[1][-8:], "big"))
    q.put(lat)
    s.close(linger=0)
    ctx.term()


def _second(endpoint: str, q, ready) -> None:
    """The subscriber the bench freezes (SIGSTOP) in B phases and thaws (SIGCONT) in A phases.
    Small receive buffers, so a freeze backs up to the publisher's high-water mark within
    seconds; it reads everything while thawed and reports the pub_seq gaps it saw (= messages
    the publisher dropped for it: proof it really was stalled)."""
    import msgpack
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 10)
    s.setsockopt(zmq.RCVBUF, 16 * 1024)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(endpoint)
    ready.set()
    last, gaps = 0, 0
    while s.poll(30_000):
        m = msgpack.unpackb(s.recv_multipart()[1])  # no full decode: keep this process light
        if last and m["pub_seq"] > last + 1:
            gaps += m["pub_seq"] - last - 1
        last = m["pub_seq"]
        if m.get("ended"):
            break
    q.put(gaps)


_SPIN_S = 0.001


def _pcts(a) -> tuple[float, float]:
    if not len(a):
        return float("nan"), float("nan")
    p = np.percentile(np.asarray(a, np.float64), [50, 99])
    return float(p[0]), float(p[1])


def _wait_until(due: float) -> None:
    if due - time.monotonic() > _SPIN_S:
        time.sleep(due - time.monotonic() - _SPIN_S)
    while time.monotonic() < due:  # spin the last ms: a vCPU woken from sleep
        pass                        # runs ~10x slower for a while (measured)


def run_floor(n_people: int, hz: float, seconds: float, port: int) -> tuple[float, float]:
    """One-way p50/p99 (ms) of bare pyzmq PUB -> SUB over the same loopback TCP, with the same
    payload bytes, pacing and process layout: what ZeroMQ and this machine cost before any of
    our code (the payload is encoded once; only its stamp is rewritten before each send)."""
    import zmq

    from sinks.schema import encode_frame, with_publish_time
    from sinks.synth import synthetic_packet

    endpoint = f"tcp://127.0.0.1:{port}"
    ctx_mp = mp.get_context("spawn")
    q, ready = ctx_mp.Queue(), ctx_mp.Event()
    sub = ctx_mp.Process(target=_raw_subscriber, args=(endpoint, q, ready))
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(endpoint)
    try:
        sub.start()
        ready.wait(30)
        time.sleep(0.5)  # the subscription reaches the publisher
        payload = encode_frame(synthetic_packet("cam0", 0, n_people), 1, time.time_ns())
        t0 = time.monotonic()
        for k in range(int(seconds * hz)):
            _wait_until(t0 + k / hz)
            pub.send(b"cam0\0", zmq.SNDMORE)
            pub.send(with_publish_time(payload, time.time_ns()))
        pub.send_multipart([b"cam0\0", b"end"])
        lat = q.get(timeout=60)
        sub.join(10)
    finally:
        if sub.is_alive():
            sub.kill()
        pub.close(linger=0)
        ctx.term()
    return _pcts(np.array(lat) / 1e6)


def run_case(n_people: int, hz: float, seconds: float, port: int, spin_s: float = 0.0) -> dict:
    endpoint = f"tcp://127.0.0.1:{port}"
    ctx = mp.get_context("spawn")
    q, ready, q2, ready2 = ctx.Queue(), ctx.Event(), ctx.Queue(), ctx.Event()
    healthy = ctx.Process(target=_healthy, args=(endpoint, q, ready, spin_s))
    second = ctx.Process(target=_second, args=(endpoint, q2, ready2))
    try:
        return _run_case(n_people, hz, seconds, endpoint, (q, ready, healthy),
                         (q2, ready2, second))
    finally:
        for p in (second, healthy):
            if p.pid is not None and p.is_alive():
                p.kill()


_ROUNDS = 3  # B phases; A phases are one more, so each stalled stretch has healthy ones around it


def _run_case(n_people, hz, seconds, endpoint, first, second) -> dict:
    from sinks.config import PublisherConfig
    from sinks.publisher import Publisher
    from sinks.synth import synthetic_packet

    (q, ready, healthy), (q2, ready2, frozen) = first, second
    cost = {1: [], 2: []}
    cpu = {1: [], 2: []}   # thread CPU time: what publishing costs, minus time other
    sent = {1: 0, 2: 0}    # processes of this shared machine held the core
    with Publisher(PublisherConfig(endpoint=endpoint, send_hwm_msgs=100)) as pub:
        healthy.start()
        frozen.start()
        ready.wait(30)
        ready2.wait(30)
        deadline = time.monotonic() + 10
        while pub.stats.subscriptions < 2 and time.monotonic() < deadline:
            pub.wait_for_subscriber(0.05)
        # A B A B A B A: the same two subscribers throughout, the second frozen in B phases;
        # alternating makes slow drifts of this shared machine's load hit A and B alike
        phases = [(1, seconds / (_ROUNDS + 1)), (2, seconds / _ROUNDS)] * _ROUNDS
        for phase, dur in phases + [(1, seconds / (_ROUNDS + 1))]:
            os.kill(frozen.pid, signal.SIGSTOP if phase == 2 else signal.SIGCONT)
            time.sleep(0.3)  # frozen, or done draining what piled up while frozen
            t0 = time.monotonic()
            k = 0
            while True:
                due = t0 + k / hz
                if time.monotonic() - t0 >= dur:
                    break
                _wait_until(due)
                pkt = synthetic_packet("cam0", sent[1] + sent[2], n_people, width=phase)
                c, t = time.thread_time_ns(), time.perf_counter_ns()
                pub.publish(pkt)
                cost[phase].append(time.perf_counter_ns() - t)
                cpu[phase].append(time.thread_time_ns() - c)
                sent[phase] += 1
                k += 1
        pub.end_stream("cam0")
        res = q.get(timeout=60)
        healthy.join(10)
        frozen_gaps = q2.get(timeout=60)
    total = sent[1] + sent[2]
    got = len(set(res["seqs"]))
    raw_p50, raw_p99 = _pcts(np.array(res["lat_raw"]) / 1e6)
    dec_p50, dec_p99 = _pcts(np.array(res["lat_dec"]) / 1e6)
    a50, a99 = _pcts(np.array(cost[1]) / 1e3)
    b50, b99 = _pcts(np.array(cost[2]) / 1e3)
    ca50, _ = _pcts(np.array(cpu[1]) / 1e3)
    cb50, _ = _pcts(np.array(cpu[2]) / 1e3)
    return {"people": n_people, "hz": hz, "sent": total, "received": got,
            "lost": total - got, "gaps": res["dropped"], "lat_p50_ms": raw_p50,
            "lat_p99_ms": raw_p99, "lat_dec_p50_ms": dec_p50, "lat_dec_p99_ms": dec_p99,
            "cost_healthy_p50_us": a50, "cost_healthy_p99_us": a99,
            "cost_stalled_p50_us": b50, "cost_stalled_p99_us": b99,
            "stalled_ratio": b50 / a50, "cpu_healthy_p50_us": ca50, "cpu_stalled_p50_us": cb50,
            "cpu_ratio": cb50 / ca50, "frozen_gaps": frozen_gaps}


def bench_encode(n_people: int = 16, iters: int = 20_000) -> tuple[float, float]:
    from sinks.schema import encode_frame
    from sinks.synth import synthetic_packet

    pkt = synthetic_packet("cam0", 0, n_people)
    ts = np.empty(iters, np.int64)
    for i in range(iters):
        t = time.perf_counter_ns()
        encode_frame(pkt, i, 0)
        ts[i] = time.perf_counter_ns() - t
    return _pcts(ts / 1e3)


def bench_publish_hot(n_people: int, port: int, iters: int = 5000) -> tuple[float, float]:
    """Publisher.publish back-to-back (hot caches) with one connected, non-reading subscriber."""
    import zmq

    from sinks.config import PublisherConfig
    from sinks.publisher import Publisher
    from sinks.synth import synthetic_packet

    endpoint = f"tcp://127.0.0.1:{port}"
    pkt = synthetic_packet("cam0", 0, n_people)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    ts = np.empty(iters, np.int64)
    with Publisher(PublisherConfig(endpoint=endpoint)) as pub:
        sub.connect(endpoint)
        pub.wait_for_subscriber(5)
        for i in range(iters):
            pkt.frame.seq = i
            t = time.perf_counter_ns()
            pub.publish(pkt)
            ts[i] = time.perf_counter_ns() - t
    sub.close()
    ctx.term()
    return _pcts(ts / 1e3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="per phase (default 10)")
    ap.add_argument("--people", default="1,4,16")
    ap.add_argument("--rates", default="30,120")
    ap.add_argument("--port", type=int, default=5771)
    ap.add_argument("--micro", action="store_true", help="only the in-process micro benchmarks")
    ap.add_argument("--spin-s", type=float, default=0.0,
                    help="the healthy subscriber's PoseSubscriber(spin_s=...) (0 = blocking wait)")
    a = ap.parse_args()
    e50, e99 = bench_encode()
    print(f"encode_frame, 16 people: p50 {e50:.1f} us, p99 {e99:.1f} us")
    for n in (1, 16):
        h50, h99 = bench_publish_hot(n, a.port + 100 + n)
        print(f"Publisher.publish back-to-back, {n} people: p50 {h50:.1f} us, p99 {h99:.1f} us")
    if a.micro:
        return 0
    print("| people | Hz | sent | lost | one-way p50 / p99 ms | bare pyzmq p50 / p99 ms | "
          "after decode p50 / p99 ms | "
          "publish wall healthy p50 / p99 us | with stalled sub p50 / p99 us | ratio | "
          "publish CPU healthy / stalled p50 us | CPU ratio | drops for the stalled sub |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    port = a.port
    for n in map(int, a.people.split(",")):
        for hz in map(float, a.rates.split(",")):
            f50, f99 = run_floor(n, hz, a.seconds, port + 50)
            r = run_case(n, hz, a.seconds, port, a.spin_s)
            port += 1
            print(f"| {n} | {hz:g} | {r['sent']} | {r['lost']} (gaps {r['gaps']}) | "
                  f"{r['lat_p50_ms']:.3f} / {r['lat_p99_ms']:.3f} | {f50:.3f} / {f99:.3f} | "
                  f"{r['lat_dec_p50_ms']:.3f} / {r['lat_dec_p99_ms']:.3f} | "
                  f"{r['cost_healthy_p50_us']:.1f} / {r['cost_healthy_p99_us']:.1f} | "
                  f"{r['cost_stalled_p50_us']:.1f} / {r['cost_stalled_p99_us']:.1f} | "
                  f"{r['stalled_ratio']:.2f} | {r['cpu_healthy_p50_us']:.1f} / "
                  f"{r['cpu_stalled_p50_us']:.1f} | {r['cpu_ratio']:.2f} | {r['frozen_gaps']} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
