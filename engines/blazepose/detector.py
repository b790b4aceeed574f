"""Every person in a frame from BlazePose's SSD detector: whole frame plus overlapping tiles in
batched LiteRT calls, MediaPipe's decoding and weighted NMS, a body box per detection.

Why tiles: the detector sees faces on a 224x224 letterbox of the frame; a person a fifth of a
640x480 frame tall has a face of ~6 px there and is missed. An n x n grid of overlapping tiles sees
the same face at n times the resolution, in the same run (the batch dimension, in parts of
REGIONS_PER_INVOKE), for about n^2 + 1 times one detector's compute.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.blazepose.models import DETECTOR_FILE, TfliteModel, bundled_model
from engines.blazepose.motion_tiles import MotionMap, tiles_by_motion
from engines.blazepose.roi import BODY_WIDTH, body_box
from engines.blazepose.ssd import INPUT_SIZE_PX, SsdDetections, decode, ssd_anchors, unbatch, weighted_nms

REGIONS_PER_INVOKE = 4
"""Regions per LiteRT call; a call's regions go in near-equal parts of at most this many. Each
region's outputs are bit-identical at any batch size, but a batch of 10-13 regions runs ~9 %
slower per region than parts of 2-4 (one thread; bench/bench_detector.py --regions), and holds
XNNPACK's arena for all of them."""


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle of the frame (px) fed to the detector, letterboxed into the square input."""
    x0: float
    y0: float
    w: float
    h: float


def tile_regions(width: int, height: int, grids: tuple[int, ...], overlap: float) -> list[Region]:
    """The whole frame, then for each n in `grids` an n x n set of tiles overlapping by `overlap`
    of a tile (n < 2 adds none). Two grid sizes: a body cut by every tile of one grid fits whole
    in a tile of the other."""
    regions = [Region(0.0, 0.0, float(width), float(height))]
    for grid in grids:
        if grid < 2:
            continue
        tw = width / (grid - (grid - 1) * overlap)
        th = height / (grid - (grid - 1) * overlap)
        for j in range(grid):
            for i in range(grid):
                regions.append(Region(i * tw * (1 - overlap), j * th * (1 - overlap), tw, th))
    return regions


def letterbox_region(image_rgb: np.ndarray, r: Region, size: int) -> tuple[np.ndarray, float, float, float]:
    """Region -> ((size, size, 3) uint8, scale, pad_x, pad_y) with input = (image - origin) * scale + pad
    (MediaPipe's ImageToTensor keep_aspect_ratio, BORDER_ZERO)."""
    s = size / max(r.w, r.h)
    pad_x, pad_y = 0.5 * (size - r.w * s), 0.5 * (size - r.h * s)
    m = np.array([[s, 0.0, pad_x - r.x0 * s], [0.0, s, pad_y - r.y0 * s]])
    out = cv2.warpAffine(image_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, s, pad_x, pad_y


class BlazePoseSsd:
    """The detector model with its anchors; `detect(image_bgr)` -> image-pixel detections.

    Each call looks at the whole frame, `tiles_per_call` of the tiles (taken in turn, so every tile
    is seen once every ceil(tiles / tiles_per_call) calls) and any extra regions given (where the
    tracker expects someone), batched in parts of REGIONS_PER_INVOKE. Up to `motion_tiles` of a
    call's tiles go where the frame moved since the last call outside those regions
    (engines/blazepose/motion_tiles.py: someone walking in), the rest in turn. The turn is kept
    per `stream`, so one detector shared by several streams gives each the same tiles whatever
    order their frames arrive in (runs are repeatable)."""

    def __init__(self, grids: tuple[int, ...] = (2, 3), overlap: float = 0.25, tiles_per_call: int = 4,
                 min_score: float = 0.5, nms_iou: float = 0.3, tile_margin: float = 0.15, width_ratio: float = BODY_WIDTH,
                 threads: int = 1, candidate_score: float | None = None, first_run_all_tiles: bool = False,
                 motion_tiles: int = 0, motion_min_share: float = 0.01, first_look_threads: int = 2):
        self.model = TfliteModel(bundled_model(DETECTOR_FILE), threads)
        self._first_look_model: TfliteModel | None = None
        if first_run_all_tiles and first_look_threads > 0:
            # the first every-tile look (~30 regions) on its own interpreter, its memory reserved
            # now and freed after that look, with more threads: nobody is posed yet, the cores idle
            self._first_look_model = TfliteModel(bundled_model(DETECTOR_FILE), max(threads, first_look_threads))
            self._first_look_model.reserve(REGIONS_PER_INVOKE)
        self._every_tile_call = False
        self.anchors = ssd_anchors()
        self.grids, self.overlap, self.tiles_per_call = tuple(grids), overlap, tiles_per_call
        self.min_score, self.nms_iou, self.tile_margin, self.width_ratio = min_score, nms_iou, tile_margin, width_ratio
        self._next_tile: dict[str, int] = {}
        self.first_run_all_tiles = first_run_all_tiles
        self.motion_tiles, self.motion_min_share = motion_tiles, motion_min_share
        self._motion = MotionMap()
        self.candidate_score = min_score if candidate_score is None else min(candidate_score, min_score)
        self.last_candidates = SsdDetections(np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32),
                                             np.zeros(0, np.float32))
        """The last call's detections scoring in [candidate_score, min_score), after NMS: people the
        model is unsure of (a masked face, a face turned away) for a second opinion."""

    def regions(self, width: int, height: int, extra: list[Region] | None = None, stream: str = "",
                moving: np.ndarray | None = None) -> list[Region]:
        """What the next call for `stream` looks at: the whole frame, this call's tiles, then `extra`.
        moving: where the frame changed since the last call (`MotionMap`), for the motion tiles."""
        whole, *tiles = tile_regions(width, height, self.grids, self.overlap)
        self._every_tile_call = bool(tiles) and self.first_run_all_tiles and stream not in self._next_tile
        if self._every_tile_call:
            self._next_tile[stream] = 0     # a stream's first look covers every tile at once
        elif tiles and self.tiles_per_call < len(tiles):
            pick = []
            if moving is not None:
                pick = tiles_by_motion(moving, width, height, tiles, list(extra or ()),
                                       min(self.motion_tiles, self.tiles_per_call), self.motion_min_share)
            turn = self._next_tile.get(stream, 0)
            n_turn = self.tiles_per_call - len(pick)
            pick += [i for i in ((turn + j) % len(tiles) for j in range(n_turn)) if i not in pick]
            self._next_tile[stream] = (turn + n_turn) % len(tiles)
            tiles = [tiles[i] for i in pick]
        return [whole, *tiles, *(extra or ())]

    def detect(self, image_bgr: np.ndarray, extra: list[Region] | None = None, stream: str = "") -> SsdDetections:
        """(H, W, 3) uint8 BGR -> detections in image pixels (face boxes, keypoints, scores), after
        MediaPipe's weighted NMS over all regions."""
        h, w = image_bgr.shape[:2]
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        moving = self._motion.update(image_bgr, stream) if self.motion_tiles > 0 else None
        regions = self.regions(w, h, extra, stream, moving)
        size = INPUT_SIZE_PX
        batch = np.empty((len(regions), size, size, 3), np.float32)
        maps = []
        for i, r in enumerate(regions):
            crop, s, px, py = letterbox_region(rgb, r, size)
            batch[i] = crop
            maps.append((s, px, py, r))
        batch *= 2.0 / 255.0
        batch -= 1.0                                               # output_tensor_float_range [-1, 1]
        model = self.model
        if self._every_tile_call and self._first_look_model is not None:
            model, self._first_look_model = self._first_look_model, None   # freed after this call
        raw_boxes, raw_scores = self._run(model, batch)
        boxes, kps, scores = [], [], []
        for i, (s, px, py, r) in enumerate(maps):
            d = decode(raw_boxes[i], raw_scores[i], self.anchors, self.candidate_score)
            if not len(d):
                continue
            # normalised input -> image px
            b = (d.boxes * size - [px, py, px, py]) / s + [r.x0, r.y0, r.x0, r.y0]
            k = (d.keypoints * size - [px, py]) / s + [r.x0, r.y0]
            if i > 0:
                ok = self._whole_body_inside(k, r)
                b, k, d = b[ok], k[ok], d.scores[ok]
            else:
                d = d.scores
            boxes.append(b)
            kps.append(k)
            scores.append(d)
        empty = SsdDetections(np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32))
        self.last_candidates = empty
        if not scores or not sum(len(x) for x in scores):
            return empty
        b, k, sc = (np.concatenate(x).astype(np.float32) for x in (boxes, kps, scores))
        sure = sc >= self.min_score
        if not sure.all():
            self.last_candidates = weighted_nms(SsdDetections(b[~sure], k[~sure], sc[~sure]), self.nms_iou)
        return weighted_nms(SsdDetections(b[sure], k[sure], sc[sure]), self.nms_iou)

    def _whole_body_inside(self, keypoints: np.ndarray, r: Region) -> np.ndarray:
        """(N,) bool: the body box lies inside the region (give or take `tile_margin`). A tile that
        cuts a body makes the model guess the missing part; the whole frame or a neighbouring tile
        sees that person whole."""
        if not len(keypoints):
            return np.zeros(0, bool)
        b = np.stack([body_box(k[0], k[1], self.width_ratio) for k in keypoints])
        mx, my = self.tile_margin * r.w, self.tile_margin * r.h
        return ((b[:, 0] >= r.x0 - mx) & (b[:, 1] >= r.y0 - my)
                & (b[:, 2] <= r.x0 + r.w + mx) & (b[:, 3] <= r.y0 + r.h + my))

    def _run(self, model: TfliteModel, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 2254, 12) regressors and (B, 2254, 1) scores of a batch of regions, run in parts of
        at most REGIONS_PER_INVOKE."""
        n = len(batch)
        bounds = np.linspace(0, n, -(-n // REGIONS_PER_INVOKE) + 1).round().astype(int)
        parts = [self._split(model.run(batch[a:b]), b - a) for a, b in zip(bounds[:-1], bounds[1:])]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    @staticmethod
    def _split(outputs: list[np.ndarray], batch: int) -> tuple[np.ndarray, np.ndarray]:
        """The (B, 2254, 12) regressors and (B, 2254, 1) scores, whatever order the file lists them."""
        reg = next(o for o in outputs if o.shape[-1] == 12)
        cls = next(o for o in outputs if o.shape[-1] == 1)
        return unbatch(reg, batch), unbatch(cls, batch)


def person_boxes(det: SsdDetections, width_ratio: float = BODY_WIDTH) -> np.ndarray:
    """(N, 4) float32 xyxy body boxes from detector keypoints 0 (mid-hip) and 1 (full-body scale)."""
    if not len(det):
        return np.zeros((0, 4), np.float32)
    return np.stack([body_box(k[0], k[1], width_ratio) for k in det.keypoints]).astype(np.float32)


def regions_around(boxes_xyxy: np.ndarray, width: int, height: int, scale: float,
                   max_fraction: float = 0.5) -> list[Region]:
    """Square regions `scale` x the longer side around each (K, 4) box, for boxes shorter than
    `max_fraction` of the frame (larger people are seen on the whole frame already)."""
    out = []
    for x0, y0, x1, y1 in np.asarray(boxes_xyxy, np.float64).reshape(-1, 4):
        side = scale * max(x1 - x0, y1 - y0)
        if not np.isfinite(side) or side <= 4 or (y1 - y0) > max_fraction * height:
            continue
        out.append(Region(0.5 * (x0 + x1) - side / 2, 0.5 * (y0 + y1) - side / 2, side, side))
    return out
