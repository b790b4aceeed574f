"""Detector pre/post-processing shared by every backend: letterbox, YOLO output decoding, NMS,
and the sanity pass every detection goes through before the tracker sees it.

Supported YOLO output layouts (batch 1):
- raw YOLOv8/YOLO11: `[1, 4 + num_classes, N]`, rows cx, cy, w, h (input pixels), class scores;
- end-to-end (NMS inside the graph, e.g. YOLOv10/YOLO26 or `nms=True` exports): `[1, N, 6]`
  rows x1, y1, x2, y2 (input pixels), score, class.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from stream.errors import EngineError

SUPPORTED_LAYOUTS = "[1, 4+num_classes, N] (YOLOv8/YOLO11 raw) or [1, N, 6] (end-to-end x1,y1,x2,y2,score,class)"
PAD_VALUE = 114  # ultralytics' letterbox grey


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was fitted into the network input: input = image * ratio + (pad_x, pad_y)."""
    ratio: float
    pad_x: float
    pad_y: float

    def to_image(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """(N, 4) network-input px -> (N, 4) image px."""
        b = np.asarray(boxes_xyxy, dtype=np.float32).copy()
        b[:, [0, 2]] -= self.pad_x
        b[:, [1, 3]] -= self.pad_y
        return b / self.ratio


def letterbox_params(height: int, width: int, size_hw: tuple[int, int]) -> tuple[Letterbox, tuple[int, int]]:
    """Scale to fit `size_hw` keeping the aspect ratio, pad the rest evenly. Returns the mapping and
    the resized (h, w)."""
    th, tw = size_hw
    r = min(th / height, tw / width)
    nh, nw = max(int(round(height * r)), 1), max(int(round(width * r)), 1)
    return Letterbox(r, (tw - nw) / 2.0, (th - nh) / 2.0), (nh, nw)


def letterbox_uint8(image_bgr: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """(H, W, 3) uint8 BGR -> ((1, 3, h, w) uint8 RGB, mapping): what a remote detector is sent
    (a quarter of the float32 bytes; the server scales it to [0, 1]). CPU path (cv2)."""
    lb, (nh, nw) = letterbox_params(image_bgr.shape[0], image_bgr.shape[1], size_hw)
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = int(round(lb.pad_y - 0.1)), int(round(lb.pad_x - 0.1))
    canvas = np.full((size_hw[0], size_hw[1], 3), PAD_VALUE, np.uint8)
    canvas[top:top + nh, left:left + nw] = resized
    blob = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None])
    return blob, Letterbox(lb.ratio, float(left), float(top))


def letterbox(image_bgr: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """(H, W, 3) uint8 BGR -> ((1, 3, h, w) float32 RGB in [0, 1], mapping). CPU path (cv2)."""
    blob, lb = letterbox_uint8(image_bgr, size_hw)
    return blob.astype(np.float32) * np.float32(1.0 / 255.0), lb


def decode_yolo(output: np.ndarray, score_threshold: float, class_ids: tuple[int, ...],
                max_candidates: int = 30000) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Network output -> (boxes (K, 4) xyxy input px, scores (K,), classes (K,), nms_done).

    Keeps only `class_ids` and scores >= threshold. Raises EngineError naming the shape found when
    the layout is none of SUPPORTED_LAYOUTS."""
    out = np.asarray(output)
    if out.ndim != 3 or out.shape[0] != 1:
        raise EngineError(f"detector output has shape {list(out.shape)}; supported layouts: "
                          f"{SUPPORTED_LAYOUTS}; export with batch size 1")
    _, a, b = out.shape
    if b == 6 and a >= b:
        x = out[0].astype(np.float32)
        cls = np.rint(x[:, 5]).astype(np.int64)
        keep = np.isin(cls, class_ids) & (x[:, 4] >= score_threshold)
        return x[keep, :4], x[keep, 4], cls[keep], True
    if a >= 5 and b > a:
        nc = a - 4
        if max(class_ids) >= nc:
            raise EngineError(f"detector output {list(out.shape)} has {nc} classes but "
                              f"detector.person_class_ids={list(class_ids)}; set the id of 'person' in your model")
        x = out[0]
        cls_scores = x[4:][list(class_ids)]                     # (len(ids), N)
        best = cls_scores.argmax(0)
        score = cls_scores[best, np.arange(x.shape[1])].astype(np.float32)
        keep = np.flatnonzero(score >= score_threshold)
        if len(keep) > max_candidates:
            keep = keep[np.argsort(-score[keep])[:max_candidates]]
        cx, cy, w, h = (x[i, keep].astype(np.float32) for i in range(4))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        return boxes, score[keep], np.asarray(class_ids)[best[keep]], False
    raise EngineError(f"detector output has shape {list(out.shape)}; supported layouts: {SUPPORTED_LAYOUTS}")


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float,
        classes: np.ndarray | None = None) -> np.ndarray:
    """Greedy non-maximum suppression (OpenCV's C++ loop: a Python loop costs ~0.5 s on the 8400
    candidates of an untrained or low-threshold model). Returns kept indices, highest score first.
    Different classes never suppress each other."""
    if len(boxes_xyxy) == 0:
        return np.empty(0, np.intp)
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    s = np.asarray(scores, dtype=np.float32)
    # OpenCV keeps scores strictly above a threshold >= 0: shift so that every box qualifies
    shifted = (s.astype(np.float64) - float(s.min()) + 1.0).tolist()
    if classes is None:
        keep = cv2.dnn.NMSBoxes(xywh.tolist(), shifted, 0.0, float(iou_threshold))
    else:
        keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), shifted, np.asarray(classes, np.int32).tolist(),
                                       0.0, float(iou_threshold))
    keep = np.asarray(keep, dtype=np.intp).reshape(-1)
    return keep[np.argsort(-s[keep], kind="stable")]


def sanitize_detections(boxes_xyxy: np.ndarray, scores: np.ndarray, width: int, height: int,
                        min_box_px: float = 4.0, max_detections: int = 300,
                        source: str = "detector") -> tuple[np.ndarray, np.ndarray]:
    """What the tracker may see: finite boxes clipped to the frame, at least `min_box_px` wide and
    tall, scores in [0, 1], at most `max_detections` (highest scores; a warning says how many were
    cut). Returns ((N, 4) float32 xyxy px, (N,) float32)."""
    b = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(b) != len(s):
        raise EngineError(f"{source} returned {len(b)} boxes but {len(s)} scores; it must return one score per box")
    ok = np.isfinite(b).all(1) & np.isfinite(s)
    b, s = b[ok], np.clip(s[ok], 0.0, 1.0)
    b = np.stack([b[:, 0].clip(0, width), b[:, 1].clip(0, height),
                  b[:, 2].clip(0, width), b[:, 3].clip(0, height)], 1) if len(b) else b
    ok = (b[:, 2] - b[:, 0] >= max(min_box_px, 1e-3)) & (b[:, 3] - b[:, 1] >= max(min_box_px, 1e-3))
    b, s = b[ok], s[ok]
    if len(s) > max_detections:
        warnings.warn(f"{source} returned {len(s)} detections in one frame; kept the {max_detections} "
                      "best (raise detector.max_detections or detector.score_threshold)", RuntimeWarning,
                      stacklevel=2)
        top = np.argsort(-s, kind="stable")[:max_detections]
        b, s = b[top], s[top]
    return b.astype(np.float32), s.astype(np.float32)
