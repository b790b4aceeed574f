"""The 'publish' stage: every packet out over ZeroMQ (see `sinks.publisher`), in its own process."""
from __future__ import annotations

import sys

from sinks.publisher import Publisher
from stream.config import PipelineConfig
from stream.packet import Packet
from stream.stage import Stage


class PublishStage(Stage):
    """Sink: Packet -> 'frame' (or 'heartbeat' while nobody is in view) messages; returns None."""
    name = "publish"

    def __init__(self, config: PipelineConfig):
        self.cfg = config.publisher  # picklable settings only; the socket opens in setup()
        self._pub: Publisher | None = None

    def setup(self) -> None:
        self._pub = Publisher(self.cfg).open()
        if self.cfg.wait_for_subscriber_s > 0:  # sources start only after every setup() returns
            self._pub.wait_for_subscriber(self.cfg.wait_for_subscriber_s)

    def process(self, packet: Packet) -> Packet | None:
        if not packet.events_only:  # one message per captured frame; `seq` never repeats
            self._pub.publish(packet)
        return None

    def flush(self, stream_id: str) -> list[Packet]:
        self._pub.end_stream(stream_id)
        return []

    def close(self) -> None:
        if self._pub is not None:
            s = self._pub.stats
            if s.dropped:
                print(f"warning: publish: {s.dropped} messages refused by ZeroMQ (send queue "
                      "full)", file=sys.stderr)
            self._pub.close()
            self._pub = None
