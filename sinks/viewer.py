"""Live web view with rerun: the camera image with boxes, ids and 2D skeletons, a 3D skeleton per
person and plots of chosen joint angles, served locally and offline (rerun's bundled web viewer).

    run_stream.py --set viewer.enabled=true              # then open http://127.0.0.1:9090
    python -m sinks.viewer tcp://127.0.0.1:5555          # from a running stream (no images)

In a run it is the `viewer` stage (`sinks/viewer_stage.py`): its own process behind the graph's
drop-oldest queue, fed the published schema (plus the frame's pixels), so it never holds up the
pipeline. rerun's logging calls only queue data for its server thread; with nobody watching, the
server keeps `viewer.memory_limit` of the newest data and drops the rest. Frames whose logging
failed are counted (`dropped`), never retried; `viewer.max_fps` (15) caps the display rate.

Entities: `image/<stream>` (JPEG, downscaled to `image_max_width_px`), `image/<stream>/boxes`,
`image/<stream>/skeleton`, `bodies/<stream>` (3D bones, camera frame: x right, y down, z forward),
`angles/<stream>/track<id>` (one series per `plot_dofs` name, degrees). Timeline `capture` = capture time (UTC). Layout:
the images and the 3D view side by side above one plot of the angles.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from engines.skel.dofs import DOF_INDEX, JOINT_PARENTS
from engines.skel.kinematics import forward_kinematics, generic_skeleton
from sinks.adapters_config import ViewerConfig
from sinks.schema import FrameMsg
from stream.errors import require

PALETTE = np.array([(255, 0, 255), (0, 200, 255), (255, 160, 0), (0, 220, 90), (255, 60, 60),
                    (150, 110, 255), (255, 230, 0), (0, 255, 210)], dtype=np.uint8)
CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4, 5), (0, 6, 7, 8, 9, 10), (0, 11, 12, 13),
    (12, 14, 15, 16, 17, 18), (12, 19, 20, 21, 22, 23))
"""The SKEL tree as 5 polylines (legs, spine to head, arms): 5 strips per person, not 23 bones,
because rerun converts strips one by one (~20 us each)."""
if sorted({(a, b) for c in CHAINS for a, b in zip(c, c[1:])}) != sorted(
        (p, j) for j, p in enumerate(JOINT_PARENTS) if p >= 0):
    raise RuntimeError("viewer: CHAINS must cover every SKEL bone once")


def track_color(track_id: int) -> np.ndarray:
    """(3,) uint8 RGB of a track (stable across frames)."""
    return PALETTE[(track_id - 1) % len(PALETTE)]


def project(points_m: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(N, 3) camera-frame metres -> (N, 2) pixels (pinhole); points behind the camera -> NaN."""
    z = points_m[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([fx * points_m[:, 0] / z + cx, fy * points_m[:, 1] / z + cy], axis=1)
    uv[z <= 0.05] = np.nan
    return uv


@dataclass
class ViewerStats:
    frames: int = 0          # frames handed to the viewer
    shown: int = 0           # logged
    skipped: int = 0         # left out by the display rate (viewer.max_fps)
    dropped: int = 0         # logging failed


class PoseViewer:
    """Serves the web viewer and logs frames to it. A context manager."""

    def __init__(self, cfg: ViewerConfig):
        self.cfg = cfg
        self.skeleton = generic_skeleton(cfg.body_height_m)
        self.stats = ViewerStats()
        self.url = ""
        self._rr = None
        self._streams: set[str] = set()
        self._last_ns: dict[str, int] = {}
        self._period_ns = int(1e9 / cfg.max_fps)
        self._plots: set[str] = set()
        self._plot_idx = np.array([DOF_INDEX[n] for n in cfg.plot_dofs], dtype=np.int64)

    def open(self) -> "PoseViewer":
        rr = require("rerun", "viewer", "the live viewer (viewer.enabled)")
        rr.init("skelstream", spawn=False)
        uri = rr.serve_grpc(grpc_port=self.cfg.grpc_port, server_memory_limit=self.cfg.memory_limit)
        rr.serve_web_viewer(web_port=self.cfg.web_port, open_browser=False, connect_to=uri)
        self.url = f"http://127.0.0.1:{self.cfg.web_port}/?url={uri.replace('+', '%2B')}"
        self._rr = rr
        return self

    def __enter__(self) -> "PoseViewer":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def log_frame(self, frame: FrameMsg, image_bgr: np.ndarray | None = None) -> bool:
        """Log one frame (False when logging failed: counted as dropped). Frames of a stream
        closer than 1 / max_fps in capture time to the last one shown are skipped (counted)."""
        self.stats.frames += 1
        last = self._last_ns.get(frame.stream)
        if last is not None and 0 <= frame.capture_ns - last < self._period_ns:
            self.stats.skipped += 1
            return True
        self._last_ns[frame.stream] = frame.capture_ns
        try:
            self._log(frame, image_bgr)
        except Exception as exc:  # noqa: BLE001 - a viewer problem never stops the run
            self.stats.dropped += 1
            if self.stats.dropped == 1:
                print(f"warning: viewer: a frame could not be shown ({exc}); frames like it are "
                      "dropped and counted", file=sys.stderr)
            return False
        self.stats.shown += 1
        return True

    def _log(self, frame: FrameMsg, image_bgr: np.ndarray | None) -> None:
        rr = self._rr
        s = frame.stream
        if s not in self._streams:
            self._streams.add(s)
            self._layout()
        rr.set_time("capture", timestamp=frame.capture_utc_ns * 1e-9)
        scale = 1.0
        if image_bgr is not None and self.cfg.image:
            import cv2

            h, w = image_bgr.shape[:2]
            scale = min(1.0, self.cfg.image_max_width_px / w)
            small = image_bgr if scale == 1.0 else cv2.resize(
                image_bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            ok, jpg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
            if ok:
                rr.log(f"image/{s}", rr.EncodedImage(contents=jpg.tobytes(), media_type="image/jpeg"))
        elif frame.width and frame.height:
            scale = min(1.0, self.cfg.image_max_width_px / frame.width)
        persons = frame.persons
        ids = [p.track_id for p in persons]
        colors = np.array([track_color(t) for t in ids], np.uint8).reshape(-1, 3)
        boxes = np.array([p.bbox_xyxy for p in persons], np.float32).reshape(-1, 4) * scale
        rr.log(f"image/{s}/boxes", rr.Boxes2D(array=boxes, array_format=rr.Box2DFormat.XYXY,
                                              labels=[f"#{t}" for t in ids], colors=colors))
        strips2d, colors2d, strips3d, colors3d = [], [], [], []
        k = frame.intrinsics
        for p, c in zip(persons, colors):
            if p.q is None:
                continue
            root = None if p.trans_m is None else np.asarray(p.trans_m, np.float64)
            joints = forward_kinematics(np.asarray(p.q, np.float64), self.skeleton, root).joints_m
            strips3d += [joints[list(ch)] for ch in CHAINS]
            colors3d += [c] * len(CHAINS)
            if root is not None and k is not None:
                uv = project(joints, k.fx, k.fy, k.cx, k.cy) * scale
                strips2d += [uv[list(ch)] for ch in CHAINS]
                colors2d += [c] * len(CHAINS)
            path = f"angles/{s}/track{p.track_id}"
            if path not in self._plots:  # series names once per track
                self._plots.add(path)
                rr.log(path, rr.SeriesLines(names=list(self.cfg.plot_dofs)), static=True)
            rr.log(path, rr.Scalars(np.degrees(p.q[self._plot_idx]).astype(np.float64)))
        rr.log(f"image/{s}/skeleton", rr.LineStrips2D(strips2d, colors=colors2d, radii=1.5))
        rr.log(f"bodies/{s}", rr.LineStrips3D(strips3d, colors=colors3d, radii=0.015))

    def _layout(self) -> None:
        """Images and the 3D view side by side, the angle plot below (sent when a stream appears)."""
        import rerun.blueprint as rrb

        rr = self._rr
        rr.log("bodies", rr.ViewCoordinates.RDF, static=True)  # camera frame: x right, y down, z fwd
        views = [rrb.Spatial2DView(origin=f"image/{s}", name=s) for s in sorted(self._streams)]
        rr.send_blueprint(rrb.Blueprint(rrb.Vertical(
            rrb.Horizontal(*views, rrb.Spatial3DView(origin="bodies", name="3D")),
            rrb.TimeSeriesView(origin="angles", name="joint angles (deg)"), row_shares=[3, 2])))

    def close(self) -> None:
        if self._rr is not None:
            self._rr.disconnect()
            self._rr = None


def main(argv: list[str] | None = None) -> int:
    import time

    from sinks.client import PoseSubscriber
    from stream.errors import UserError

    ap = argparse.ArgumentParser(prog="python -m sinks.viewer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("endpoint", help="skelstream publisher, e.g. tcp://127.0.0.1:5555")
    ap.add_argument("--web-port", type=int, default=9090)
    ap.add_argument("--grpc-port", type=int, default=9876)
    a = ap.parse_args(argv)
    try:
        with PoseViewer(ViewerConfig(enabled=True, web_port=a.web_port, grpc_port=a.grpc_port)) as v, \
                PoseSubscriber(a.endpoint) as sub:
            print(f"viewer: open {v.url}", file=sys.stderr)
            for frame in sub:
                v.log_frame(frame)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        time.sleep(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
