"""The `preview` stage: live window and/or overlay video of the smoothed poses (a sink)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


from engines.skel.kinematics import generic_skeleton
from sinks.preview import AnglePlot, OverlayWriter, render
from stream.config import PipelineConfig
from stream.errors import ConfigError
from stream.packet import Packet
from stream.stage import Stage


def has_display() -> bool:
    """True where a window can open (Linux needs $DISPLAY or $WAYLAND_DISPLAY)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def video_path_for(path: str, stream_id: str, n_streams: int) -> Path:
    """The overlay file of one stream: the path itself for one stream, else <stem>_<id><ext>."""
    p = Path(path)
    return p if n_streams <= 1 else p.with_name(f"{p.stem}_{stream_id}{p.suffix or '.mp4'}")


class PreviewStage(Stage):
    """Sink: draws every packet; shows it (window) and/or encodes it (video_path); returns None."""
    name = "preview"
    needs_image = True

    def __init__(self, config: PipelineConfig):
        self.cfg = config.preview
        self.n_streams = len(config.sources)
        if self.cfg.window and not has_display():
            raise ConfigError("preview.window needs a display and this machine has none ($DISPLAY "
                              "unset); use preview.video_path=overlay.mp4 on headless machines")
        self._writers: dict[str, OverlayWriter] = {}
        self._plots: dict[str, AnglePlot] = {}
        self._skeleton = None

    def setup(self) -> None:
        self._skeleton = generic_skeleton(self.cfg.body_height_m)
        if self.cfg.window:
            import cv2

            try:
                cv2.namedWindow("skelstream", cv2.WINDOW_NORMAL)
            except cv2.error as exc:
                raise ConfigError(f"preview.window: OpenCV cannot open a window ({exc}); use "
                                  "preview.video_path=overlay.mp4 instead") from None

    def process(self, packet: Packet) -> None:
        if packet.image is None:
            return None
        sid = packet.frame.stream_id
        t_s = packet.frame.stream_time_s
        plot = None
        if self.cfg.plot:
            plot = self._plots.setdefault(sid, AnglePlot(self.cfg.plot_dofs, self.cfg.plot_window_s))
            first = min((p for p in packet.persons if p.q is not None), key=lambda p: p.track_id,
                        default=None)
            if first is not None:
                plot.add(t_s, first.q)
        img = render(packet, packet.image, self._skeleton, self.cfg.show_angles, plot)
        if self.cfg.video_path:
            w = self._writers.get(sid)
            if w is None:
                w = self._writers[sid] = OverlayWriter(
                    video_path_for(self.cfg.video_path, sid, self.n_streams), self.cfg.video_codec)
            w.write(img, t_s)
        if self.cfg.window:
            import cv2

            h, wd = img.shape[:2]
            if wd > self.cfg.max_width_px:
                s = self.cfg.max_width_px / wd
                img = cv2.resize(img, (int(wd * s), int(h * s)))
            cv2.imshow("skelstream" if self.n_streams == 1 else f"skelstream {sid}", img)
            cv2.waitKey(1)
        return None

    def flush(self, stream_id: str) -> list[Packet]:
        w = self._writers.pop(stream_id, None)
        if w is not None:
            w.close()
        self._plots.pop(stream_id, None)
        return []

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        if self.cfg.window:
            import cv2

            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
