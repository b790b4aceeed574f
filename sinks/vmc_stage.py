"""The 'vmc' stage: each frame to a VMC receiver (`sinks.vmc`), in its own process.

It consumes the published schema (the packet is encoded and decoded exactly as a subscriber gets
it), so what a VR app receives from a run equals what `python -m sinks.vmc ENDPOINT` sends from
the stream. Sends never wait: refused or undeliverable bundles are counted (`dropped`), and the
graph's drop-oldest queue in front of the stage covers a slow process.
"""
from __future__ import annotations

import sys

from sinks.schema import frame_message
from sinks.vmc import VmcSender
from stream.config import PipelineConfig
from stream.packet import Packet
from stream.stage import Stage


class VmcStage(Stage):
    """Sink: Packet -> one OSC bundle to `vmc.address`; returns None."""
    name = "vmc"

    def __init__(self, config: PipelineConfig):
        from stream.pipeline import stream_ids

        self.cfg = config.vmc
        # picklable: stream id -> camera_pose settings of the sources that have one
        self.camera_poses = {sid: src.camera_pose for sid, src in zip(stream_ids(config), config.sources)
                             if getattr(src, "camera_pose", None) is not None}
        self._sender: VmcSender | None = None

    def setup(self) -> None:
        from sinks.world_frame import from_camera_pose

        worlds = {sid: from_camera_pose(cp) for sid, cp in self.camera_poses.items()}
        self._sender = VmcSender(self.cfg, worlds).open()
        print(f"vmc: sending person '{self.cfg.person}' to {self.cfg.address}", file=sys.stderr)

    def process(self, packet: Packet) -> Packet | None:
        self._sender.send_frame(frame_message(packet))
        return None

    def close(self) -> None:
        if self._sender is not None:
            s = self._sender.stats
            print(f"vmc: {s.sent} bundles sent, {s.dropped} dropped, {s.no_person} frames without "
                  "the chosen person", file=sys.stderr)
            self._sender.close()
            self._sender = None
