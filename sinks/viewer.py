"""Live web view with rerun: the camera image with boxes, ids and 2D skeletons, a 3D skeleton per
person and plots of chosen joint angles, served locally and offline (rerun's bundled web viewer).

    run_stream.py --set viewer.enabled=true              # then open http://127.0.0.1:9090
    python -m sinks.viewer tcp://127.0.0.1:5555          # from a running stream (no images)

In a run it is the `viewer` stage (`sinks/viewer_stage.py`): its own process behind the graph's
drop-oldest queue, fed the published schema (plus the frame's pixels), so it never holds up the
pipeline. rerun's logging calls only queue data for its server thread; with nobody watching, the
server keeps `viewer.memory_limit` of the newest data and drops the rest. Frames whose logging
failed are counted (`dropped`), never retried; `viewer.max_fps` (15) caps the display rate.

Entities: `image/<stream>` (JPEG, shrunk by the smallest integer factor that fits
`image_max_width_px`), `image/<stream>/people` (boxes with ids and 2D skeletons),
`bodies/<stream>` (3D bones, camera frame: x right, y down, z forward),
`angles/<stream>/track<id>` (one series per `plot_dofs` name, degrees). Timeline `capture` = capture time (UTC). Layout:
the images and the 3D view side by side above one plot of the angles.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from engines.skel.dofs import DOF_INDEX, JOINT_PARENTS
from engines.skel.batch_fk import posed_joints
from engines.skel.kinematics import generic_skeleton
from sinks.adapters_config import ViewerConfig
from sinks.schema import FrameMsg
from sinks.session_skeleton import PersonSkeletons
from stream.errors import require

PALETTE = np.array([(255, 0, 255), (0, 200, 255), (255, 160, 0), (0, 220, 90), (255, 60, 60),
                    (150, 110, 255), (255, 230, 0), (0, 255, 210)], dtype=np.uint8)
CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4, 5), (0, 6, 7, 8, 9, 10), (0, 11, 12, 13),
    (12, 14, 15, 16, 17, 18), (12, 19, 20, 21, 22, 23))
"""The SKEL tree as 5 polylines (legs, spine to head, arms): 5 strips per person, not 23 bones
(fewer points to send and draw)."""
if sorted({(a, b) for c in CHAINS for a, b in zip(c, c[1:])}) != sorted(
        (p, j) for j, p in enumerate(JOINT_PARENTS) if p >= 0):
    raise RuntimeError("viewer: CHAINS must cover every SKEL bone once")
_CHAIN_LEN = max(map(len, CHAINS))
CHAIN_INDEX = np.array([(c[0],) * (_CHAIN_LEN - len(c)) + c for c in CHAINS], dtype=np.int64)
"""(5, 6) joint indices: CHAINS padded at their start with their first joint (zero-length
segments), so every person's strips are one (5, 6, 3) array, sent as one arrow array."""
PALETTE_RGBA32 = (PALETTE.astype(np.uint32) @ np.array([1 << 24, 1 << 16, 1 << 8], np.uint32)) | 0xFF
"""PALETTE as packed 0xRRGGBBAA (rerun takes uint32 colours without converting each one)."""


def track_colors(track_ids: np.ndarray) -> np.ndarray:
    """(N,) uint32 0xRRGGBBAA of tracks, stable across frames."""
    return PALETTE_RGBA32[(np.asarray(track_ids, np.int64) - 1) % len(PALETTE)]


def project(points_m: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(..., 3) camera-frame metres -> (..., 2) pixels (pinhole); points behind the camera -> NaN."""
    z = points_m[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([fx * points_m[..., 0] / z + cx, fy * points_m[..., 1] / z + cy], axis=-1)
    uv[z <= 0.05] = np.nan
    return uv


def downscale_factor(width_px: int, max_width_px: int) -> int:
    """The smallest integer that divides the width to within `max_width_px`: an integer factor
    keeps OpenCV's area filter cheap (~0.1 ms for 768x576 -> 384x288; 768 -> 640 took ~1.8 ms)."""
    return max(1, -(-int(width_px) // max_width_px))


def downscale(image_bgr: np.ndarray, factor: int) -> np.ndarray:
    """The image shrunk `factor` times (area filter), or itself."""
    import cv2

    h, w = image_bgr.shape[:2]
    return image_bgr if factor == 1 else cv2.resize(image_bgr, (w // factor, h // factor),
                                                    interpolation=cv2.INTER_AREA)


def cv2_jpeg(image_bgr: np.ndarray, quality: int) -> tuple[bool, np.ndarray]:
    """(ok, (N,) uint8 JPEG bytes)."""
    import cv2

    ok, jpg = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return ok, jpg.reshape(-1)


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
        self.skeleton = generic_skeleton(cfg.body_height_m)   # people without segment lengths
        self.skeletons = PersonSkeletons(self.skeleton, cfg.body_height_m)
        self.stats = ViewerStats()
        self.url = ""
        self._rr = None
        self._streams: set[str] = set()
        self._last_ns: dict[str, int] = {}
        self._period_ns = int(1e9 / cfg.max_fps)
        self._image_period_ns = int(1e9 / min(cfg.image_fps, cfg.max_fps))
        self._last_image_ns: dict[str, int] = {}
        self._images_seen = False
        self._plots: set[str] = set()
        self._strip_types: dict[int, object] = {}   # point dimension -> rerun's arrow type
        self._ids: dict[str, bytes] = {}   # entity -> the track ids its colours/labels were logged for
        self._plot_idx = np.array([DOF_INDEX[n] for n in cfg.plot_dofs], dtype=np.int64)

    def open(self) -> "PoseViewer":
        rr = require("rerun", "viewer", "the live viewer (viewer.enabled)")
        rr.init("skelstream", spawn=False)
        if self.cfg.save_rrd:  # the live server and a file of everything shown
            server = rr.GrpcServerSink(port=self.cfg.grpc_port, server_memory_limit=self.cfg.memory_limit)
            rr.set_sinks(server, rr.FileSink(self.cfg.save_rrd))
            uri = server.uri
        else:
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
        if not self._due(self._last_ns, frame, self._period_ns):
            self.stats.skipped += 1
            return True
        if image_bgr is not None and self.cfg.image:
            self._images_seen = True
            if not self._due(self._last_image_ns, frame, self._image_period_ns):
                image_bgr = None  # the camera panel is refreshed at image_fps
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

    @staticmethod
    def _due(last_ns: dict[str, int], frame: FrameMsg, period_ns: int) -> bool:
        """True (and noted) when a stream's frame is at least ~one period (10 % slack for clock
        jitter) after the last one taken."""
        last = last_ns.get(frame.stream)
        if last is not None and 0 <= frame.capture_ns - last < 0.9 * period_ns:
            return False
        last_ns[frame.stream] = frame.capture_ns
        return True

    def _log(self, frame: FrameMsg, image_bgr: np.ndarray | None) -> None:
        """Image, boxes and 2D skeletons (the camera panel) go together: while images come, only
        on frames that carry one (`image_fps`); 3D skeletons and plots on every frame shown."""
        rr = self._rr
        s = frame.stream
        if s not in self._streams:
            self._streams.add(s)
            self._layout()
        rr.set_time("capture", timestamp=frame.capture_utc_ns * 1e-9)
        posed = [p for p in frame.persons if p.q is not None]
        joints = np.zeros((0, 24, 3))
        if posed:
            q = np.stack([p.q for p in posed]).astype(np.float64)
            root = np.stack([p.trans_m if p.trans_m is not None else np.zeros(3, np.float32)
                             for p in posed]).astype(np.float64)
            joints, _ = posed_joints(q, self.skeletons.offsets(posed), root)  # (P, 24, 3) camera frame
            for p, a in zip(posed, np.degrees(q[:, self._plot_idx])):
                path = f"angles/{s}/track{p.track_id}"
                if path not in self._plots:  # series names once per track
                    self._plots.add(path)
                    rr.log(path, rr.SeriesLines(names=list(self.cfg.plot_dofs)), static=True)
                rr.log(path, rr.Scalars.from_fields(scalars=a))
        ids3d = np.array([p.track_id for p in posed], np.int64)
        rr.log(f"bodies/{s}", self._strips(f"bodies/{s}", rr.LineStrips3D, joints[:, CHAIN_INDEX], ids3d))
        if image_bgr is None and self._images_seen and self.cfg.image:
            return          # the camera panel waits for the next frame with an image
        self._log_camera(frame, image_bgr, posed, joints)

    def _log_camera(self, frame: FrameMsg, image_bgr: np.ndarray | None, posed: list,
                    joints: np.ndarray) -> None:
        """The camera panel: JPEG, boxes with ids, 2D skeletons of the people with a translation."""
        rr = self._rr
        s = frame.stream
        width = image_bgr.shape[1] if image_bgr is not None else frame.width
        f = downscale_factor(width, self.cfg.image_max_width_px) if width else 1
        if image_bgr is not None and self.cfg.image:
            ok, jpg = cv2_jpeg(downscale(image_bgr, f), self.cfg.jpeg_quality)
            if ok:
                rr.log(f"image/{s}", rr.EncodedImage(contents=jpg, media_type="image/jpeg"))
        path = f"image/{s}/people"     # boxes and 2D skeletons: one entity, one call
        ids = np.array([p.track_id for p in frame.persons], np.int64)
        boxes = np.array([p.bbox_xyxy for p in frame.persons], np.float32).reshape(-1, 4) / f
        if self._ids.get(path + ":boxes") == ids.tobytes():  # same people: labels, colours hold
            box_arch = rr.Boxes2D.from_fields(centers=0.5 * (boxes[:, :2] + boxes[:, 2:]),
                                              half_sizes=0.5 * (boxes[:, 2:] - boxes[:, :2]))
        else:
            self._ids[path + ":boxes"] = ids.tobytes()
            box_arch = rr.Boxes2D(array=boxes, array_format=rr.Box2DFormat.XYXY,
                                  labels=[f"#{t}" for t in ids],
                                  colors=track_colors(ids))
        placed = np.array([p.trans_m is not None for p in posed], bool)
        k = frame.intrinsics
        if k is None:
            placed[:] = False
        uv = project(joints[placed], k.fx, k.fy, k.cx, k.cy) / f if placed.any() else joints[:0, :, :2]
        ids2d = np.array([p.track_id for p in posed], np.int64)[placed]
        rr.log(path, box_arch, self._strips(path, rr.LineStrips2D, uv[:, CHAIN_INDEX], ids2d))

    def _strips(self, path: str, archetype, strips: np.ndarray, ids: np.ndarray):
        """The archetype of skeleton strips (P, 5, 6, D) of an entity, to log: colours only when
        its people change (rerun keeps the last colours for later frames); the radius is logged
        once, as static data."""
        data = self._strip_array(archetype, strips)
        key = ids.tobytes()
        if self._ids.get(path) == key:
            return archetype.from_fields(strips=data)
        if path not in self._ids:
            radius = 0.015 if archetype is self._rr.LineStrips3D else 1.5   # m in 3D, px in 2D
            self._rr.log(path, archetype.from_fields(radii=radius), static=True)
        self._ids[path] = key
        colors = np.repeat(track_colors(ids), len(CHAINS))
        return archetype.from_fields(strips=data, colors=colors)

    def _strip_array(self, archetype, strips: np.ndarray):
        """(P, 5, 6, D) -> rerun's arrow array of P * 5 strips of 6 points, built in one go
        (rerun's own conversion walks the strips in Python)."""
        import pyarrow as pa

        d = strips.shape[-1]
        dtype = self._strip_types.get(d)
        if dtype is None:
            batch = self._rr.components.LineStrip3DBatch if d == 3 else self._rr.components.LineStrip2DBatch
            dtype = self._strip_types[d] = batch([]).as_arrow_array().type
        n = strips.size // (_CHAIN_LEN * d)
        values = pa.array(np.ascontiguousarray(strips, np.float32).reshape(-1))
        points = pa.FixedSizeListArray.from_arrays(values, type=dtype.value_type)
        offsets = pa.array(np.arange(0, (n + 1) * _CHAIN_LEN, _CHAIN_LEN, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, points, type=dtype)

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
