"""The 'vmc' stage: each frame to a VMC receiver (`sinks.vmc`), in its own process.

It consumes the published schema (the packet is encoded and decoded exactly as a subscriber gets
it), so what a VR app receives from a run equals what `python -m sinks.vmc ENDPOINT` sends from
the stream. Sends never wait: refused or undeliverable bundles are counted (`dropped`), and the
graph's drop-oldest queue in front of the stage covers a slow process.
"""
from __future__ import annotations

import sys

from sinks.schema import frame_message
from sinks.session_skeleton import configured_camera_poses, worlds_from_camera_poses
from sinks.vmc import VmcSender
from stream.config import PipelineConfig
from stream.packet import Packet
from stream.stage import Stage


class VmcStage(Stage):
    """Sink: Packet -> one OSC bundle to `vmc.address`; returns None."""
    name = "vmc"

    def __init__(self, config: PipelineConfig):
        self.cfg = config.vmc
        self.camera_poses = configured_camera_poses(config)  # picklable; worlds built in setup()
        self._sender: VmcSender | None = None

    def setup(self) -> None:
        self._sender = VmcSender(self.cfg, worlds_from_camera_poses(self.camera_poses)).open()
        print(f"vmc: sending person '{self.cfg.person}' to {self.cfg.address}", file=sys.stderr)

    def process(self, packet: Packet) -> Packet | None:
        if packet.events_only:  # end-of-stream track events, not a captured frame
            return None
        self._sender.send_frame(frame_message(packet))
        return None

    def close(self) -> None:
        if self._sender is not None:
            s = self._sender.stats
            print(f"vmc: {s.sent} bundles sent, {s.dropped} dropped, {s.no_person} frames without "
                  "the chosen person", file=sys.stderr)
            self._sender.close()
            self._sender = None
