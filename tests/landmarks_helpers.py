"""Helpers for the landmark engine's graph test: a sink that logs each packet's poses to .npz."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from stream.packet import Packet
from stream.stage import Stage


class PoseNpzSink(Stage):
    """Writes `<folder>/<stream>_<seq>.npz` with q, dof_observed, trans and the model ids."""

    def __init__(self, folder: str, name: str = "log"):
        self.name, self.folder = name, folder

    def process(self, packet: Packet) -> None:
        ps = [p for p in packet.persons if p.q is not None]
        np.savez(Path(self.folder) / f"{packet.frame.stream_id}_{packet.frame.seq:05d}.npz",
                 q=np.array([p.q for p in ps], np.float32).reshape(-1, 46),
                 observed=np.array([p.dof_observed for p in ps], bool).reshape(-1, 46),
                 trans=np.array([p.trans_m for p in ps], np.float32).reshape(-1, 3),
                 model=np.array([p.model_id for p in ps]), timings=np.array(sorted(packet.timings_ns)),
                 intr=np.array([packet.intrinsics.fx if packet.intrinsics else np.nan]))
        return None
