"""The 'viewer' stage: frames (published schema) and their pixels to the live web view
(`sinks.viewer`), in its own process behind the graph's drop-oldest queue."""
from __future__ import annotations

import sys

from sinks.schema import frame_message
from sinks.viewer import PoseViewer
from stream.config import PipelineConfig
from stream.packet import Packet
from stream.stage import Stage


class ViewerStage(Stage):
    """Sink: Packet (+ image) -> the rerun web viewer; returns None."""
    name = "viewer"

    def __init__(self, config: PipelineConfig):
        self.cfg = config.viewer
        self.needs_image = bool(self.cfg.image)
        self._viewer: PoseViewer | None = None

    def setup(self) -> None:
        self._viewer = PoseViewer(self.cfg).open()
        print(f"viewer: open {self._viewer.url}", file=sys.stderr)

    def process(self, packet: Packet) -> Packet | None:
        if packet.events_only:  # end-of-stream track events, not a captured frame
            return None
        self._viewer.log_frame(frame_message(packet), packet.image)
        return None

    def close(self) -> None:
        if self._viewer is not None:
            s = self._viewer.stats
            print(f"viewer: {s.shown} of {s.frames} frames shown ({s.skipped} over viewer.max_fps, "
                  f"{s.dropped} dropped)", file=sys.stderr)
            self._viewer.close()
            self._viewer = None
