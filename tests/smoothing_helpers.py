"""Test-only stages around the `smooth` stage for the real-graph test (imported by spawned children).

`SynthPoseStage` plays the pose engine: it fills two persons per frame with noisy angles from
`bench/motion_synth.py` (ground truth known, seeded per frame). `PoseLogSink` writes what reaches
the end of the graph to a .npz-per-packet folder so the test can check physical invariants.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from stream.packet import Packet, Person, TrackEvent, TrackEventKind, TrackState
from stream.stage import Stage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from motion_synth import synth_person  # noqa: E402


class SynthPoseStage(Stage):
    """Two persons per frame with q, betas, trans_m from a fixed-seed synthetic trajectory."""

    def __init__(self, name: str = "pose", n_frames: int = 90):
        self.name, self.n_frames = name, n_frames
        self._trajs = None

    def setup(self) -> None:
        t = np.arange(self.n_frames) / 30.0  # the test source's media time: seq / 30
        self._trajs = [synth_person(seed, t=t, drop_rate=0.0) for seed in (21, 22)]

    def process(self, packet: Packet) -> Packet:
        k = packet.frame.seq
        for i, tr in enumerate(self._trajs):
            packet.persons.append(Person(
                track_id=i + 1, track_state=TrackState.TRACKED, box_xyxy=np.zeros(4, np.float32),
                score=0.9, q=tr.meas[k].astype(np.float32), dof_observed=tr.observed[k],
                betas=tr.betas_meas[k].astype(np.float32), trans_m=tr.trans_meas[k].astype(np.float32),
                pose_confidence=float(tr.confidence[k])))
            if k == 0:
                packet.events.append(TrackEvent(i + 1, TrackEventKind.BORN))
        return packet


class PoseLogSink(Stage):
    """Saves each packet's persons' smoothed fields to `<folder>/<stream>_<seq>.npz`."""

    def __init__(self, folder: str, name: str = "log"):
        self.name, self.folder = name, folder

    def process(self, packet: Packet) -> None:
        ps = packet.persons
        np.savez(Path(self.folder) / f"{packet.frame.stream_id}_{packet.frame.seq:05d}.npz",
                 q=np.stack([p.q for p in ps]), q_vel=np.stack([p.q_vel for p in ps]),
                 limit_active=np.stack([p.limit_active for p in ps]),
                 quat=np.stack([p.root_orient_wxyz for p in ps]),
                 trans=np.stack([p.trans_m for p in ps]), betas=np.stack([p.betas for p in ps]),
                 predicted=np.array([p.predicted for p in ps]), capture_ns=packet.frame.capture_ns,
                 media_pts_s=packet.frame.media_pts_s)
        return None
