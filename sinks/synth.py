"""Synthetic packets with N moving people: for benchmarks, tests and client development.

`python -m sinks.synth --persons 4 --hz 30` publishes them on the configured endpoint, so a
consumer can be written without a camera or model. Angles follow slow sinusoids inside the joint
limits; values are plausible, not anatomy.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from engines.skel.dofs import DOF_BOUNDED, DOF_LOWER, DOF_UPPER, NUM_BETAS, NUM_DOFS
from stream.packet import FrameInfo, Intrinsics, Packet, Person, TrackState

_LO, _HI = np.where(DOF_BOUNDED, DOF_LOWER, 0.0), np.where(DOF_BOUNDED, DOF_UPPER, 0.0)
_MID = np.where(DOF_BOUNDED, (_LO + _HI) / 2, 0.0)
_AMP = np.where(DOF_BOUNDED, (_HI - _LO) / 2 * 0.8, 0.5)


def synthetic_packet(stream_id: str, seq: int, n_persons: int, t_s: float | None = None,
                     width: int = 640, height: int = 480) -> Packet:
    """One frame with `n_persons` tracked people (track ids 1..n); time `t_s` drives the motion."""
    t = seq / 30.0 if t_s is None else t_s
    now_m, now_u = time.monotonic_ns(), time.time_ns()
    persons = []
    for i in range(n_persons):
        phase = t * (0.5 + 0.1 * i) + i
        q = (_MID + _AMP * np.sin(phase + np.arange(NUM_DOFS) * 0.3)).astype(np.float32)
        q_vel = (_AMP * np.cos(phase + np.arange(NUM_DOFS) * 0.3)).astype(np.float32)
        x0 = 20.0 + 35.0 * i
        persons.append(Person(
            track_id=i + 1, track_state=TrackState.TRACKED,
            box_xyxy=np.array([x0, 40, x0 + 120, 400], np.float32), score=0.9,
            q=q, betas=np.linspace(-1, 1, NUM_BETAS, dtype=np.float32) * 0.1 * i,
            trans_m=np.array([0.3 * i - 1.0, 0.1, 3.0 + 0.2 * i], np.float32),
            pose_confidence=0.8, model_id="synthetic", q_vel=q_vel,
            limit_active=np.abs(q - _MID) > 0.75 * _AMP, predicted=(seq + i) % 10 == 0,
            root_orient_wxyz=np.array([np.cos(phase / 2), 0, np.sin(phase / 2), 0], np.float32)))
    fi = FrameInfo(stream_id, seq, now_m, now_u, width, height)
    k = Intrinsics(415.7, 415.7, width / 2, height / 2, "default")
    return Packet(frame=fi, persons=persons, intrinsics=k)


def main(argv: list[str] | None = None) -> int:
    from sinks.publisher import Publisher
    from sinks.config import PublisherConfig

    ap = argparse.ArgumentParser(prog="python -m sinks.synth", description=__doc__)
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    ap.add_argument("--stream", default="cam0")
    ap.add_argument("--persons", type=int, default=2)
    ap.add_argument("--hz", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=0.0, help="0 = until Ctrl-C")
    ap.add_argument("--stream-prefix", default="", help="publisher.stream_prefix (e.g. host-a/)")
    ap.add_argument("--curve-server-secret-file", default=None,
                    help="publisher.curve_server_secret_file (CURVE-encrypted publishing)")
    ap.add_argument("--curve-authorized-dir", default=None, help="publisher.curve_authorized_dir")
    a = ap.parse_args(argv)
    cfg = PublisherConfig(endpoint=a.endpoint, stream_prefix=a.stream_prefix,
                          curve_server_secret_file=a.curve_server_secret_file,
                          curve_authorized_dir=a.curve_authorized_dir)
    with Publisher(cfg) as pub:
        t0, seq = time.monotonic(), 0
        try:
            while a.seconds <= 0 or time.monotonic() - t0 < a.seconds:
                pub.publish(synthetic_packet(a.stream, seq, a.persons))
                seq += 1
                time.sleep(max(0.0, t0 + seq / a.hz - time.monotonic()))
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
