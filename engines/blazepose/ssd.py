"""BlazePose's SSD person detector, decoded as MediaPipe decodes it.

Every constant below is copied from MediaPipe's `pose_detection_cpu.pbtxt` (SsdAnchorsCalculator,
TensorsToDetectionsCalculator, NonMaxSuppressionCalculator options) and the calculators' C++
(google-ai-edge/mediapipe, mediapipe/calculators/tflite/ssd_anchors_calculator.cc,
tensor/tensors_to_detections_calculator.cc, util/non_max_suppression_calculator.cc), so the
decoded detections are the ones MediaPipe's own graph would produce.

The detection box is the FACE; the four keypoints are what the body ROI comes from:
0 mid-hip centre, 1 a point whose distance from 0 is the full-body radius (and whose direction is
the body axis), 2 mid-shoulder centre, 3 the same for the upper body.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INPUT_SIZE_PX = 224
NUM_BOXES = 2254
NUM_COORDS = 12
NUM_KEYPOINTS = 4
STRIDES = (8, 16, 32, 32, 32)
MIN_SCALE, MAX_SCALE = 0.1484375, 0.75
ANCHOR_OFFSET = 0.5
INTERPOLATED_SCALE_ASPECT_RATIO = 1.0   # the proto default: one extra anchor per layer
SCORE_CLIPPING = 100.0
COORD_SCALE = 224.0                     # x_scale = y_scale = w_scale = h_scale
MIN_SCORE = 0.5                         # min_score_thresh
NMS_MIN_SUPPRESSION_IOU = 0.3           # min_suppression_threshold, WEIGHTED, IoU


def anchor_groups() -> list[int]:
    """Anchors per group of same-stride layers, in output order: [1568, 392, 294]. The network
    has one output head per group."""
    groups, layer = [], 0
    while layer < len(STRIDES):
        last = layer
        while last < len(STRIDES) and STRIDES[last] == STRIDES[layer]:
            last += 1
        n = int(np.ceil(INPUT_SIZE_PX / STRIDES[layer]))
        groups.append(n * n * (last - layer) * (1 + (INTERPOLATED_SCALE_ASPECT_RATIO > 0)))
        layer = last
    return groups


def unbatch(output: np.ndarray, batch: int) -> np.ndarray:
    """The detector's (1, B * 2254, C) output -> (B, 2254, C).

    The .tflite reshapes each head to (1, -1, C) and concatenates the heads, so a batch of B comes
    out head by head: [head 0 of every image, head 1 of every image, ...]."""
    out = np.asarray(output)
    if out.shape[0] == batch:
        return out
    flat = out.reshape(-1, out.shape[-1])
    parts, off = [], 0
    for n in anchor_groups():
        parts.append(flat[off:off + batch * n].reshape(batch, n, -1))
        off += batch * n
    return np.concatenate(parts, 1)


def ssd_anchors() -> np.ndarray:
    """(2254, 2) float32 anchor centres (x, y) in [0, 1] of the 224x224 input, MediaPipe's order.

    fixed_anchor_size: every anchor is 1x1, so only centres matter. Layers with the same stride are
    merged (the three stride-32 layers give 3 x 2 anchors per cell); each layer contributes its
    aspect ratio 1.0 anchor plus the interpolated-scale one, hence 2 per cell at strides 8 and 16."""
    centres = []
    layer = 0
    while layer < len(STRIDES):
        stride = STRIDES[layer]
        per_cell = 0
        last = layer
        while last < len(STRIDES) and STRIDES[last] == stride:
            per_cell += 1 + (INTERPOLATED_SCALE_ASPECT_RATIO > 0)   # aspect 1.0 + interpolated
            last += 1
        n = int(np.ceil(INPUT_SIZE_PX / stride))
        ys, xs = np.mgrid[0:n, 0:n]
        xy = np.stack([(xs + ANCHOR_OFFSET) / n, (ys + ANCHOR_OFFSET) / n], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(xy, per_cell, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True, slots=True)
class SsdDetections:
    """Decoded detections, coordinates normalised to the detector input ([0, 1]).
    boxes: (N, 4) xyxy face boxes; keypoints: (N, 4, 2) xy; scores: (N,) in [0, 1]."""
    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
           min_score: float = MIN_SCORE) -> SsdDetections:
    """One image's outputs -> detections scoring at least `min_score` (unsuppressed).

    raw_boxes: (2254, 12) float32, per anchor x, y, w, h then 4 keypoints x, y (reverse_output_order
    = XYWH), offsets in input pixels relative to the anchor centre; raw_scores: (2254,) or (2254, 1)
    logits. Scores are clipped to +-100 and squashed by a sigmoid, as MediaPipe does."""
    logits = np.clip(np.asarray(raw_scores, np.float64).reshape(-1), -SCORE_CLIPPING, SCORE_CLIPPING)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    r = np.asarray(raw_boxes, np.float32).reshape(-1, NUM_COORDS)[keep]
    a = anchors[keep]
    centre = r[:, 0:2] / COORD_SCALE + a                       # anchor w = h = 1
    half = 0.5 * r[:, 2:4] / COORD_SCALE
    boxes = np.concatenate([centre - half, centre + half], 1)
    kps = r[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) / COORD_SCALE + a[:, None, :]
    return SsdDetections(boxes.astype(np.float32), kps.astype(np.float32), scores[keep].astype(np.float32))


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(4,) and (N, 4) xyxy -> (N,) IoU (MediaPipe's OverlapSimilarity, INTERSECTION_OVER_UNION)."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(det: SsdDetections, iou_threshold: float = NMS_MIN_SUPPRESSION_IOU,
                 max_detections: int | None = None) -> SsdDetections:
    """MediaPipe's WeightedNonMaxSuppression: take the best remaining detection, gather every
    remaining one overlapping it by more than `iou_threshold` (itself included), replace its box and
    keypoints by their score-weighted mean (it keeps its own score), drop the gathered ones."""
    order = np.argsort(-det.scores, kind="stable")
    boxes, kps, scores = det.boxes[order], det.keypoints[order], det.scores[order]
    out_b, out_k, out_s = [], [], []
    remaining = np.arange(len(scores))
    while len(remaining):
        best = remaining[0]
        sim = _iou_one(boxes[best], boxes[remaining])
        group = remaining[sim > iou_threshold]
        if len(group) == 0:       # a degenerate box overlaps nothing, not even itself
            group = remaining[:1]
        w = scores[group]
        out_b.append((boxes[group] * w[:, None]).sum(0) / w.sum())
        out_k.append((kps[group] * w[:, None, None]).sum(0) / w.sum())
        out_s.append(scores[best])
        remaining = remaining[sim <= iou_threshold] if len(group) else remaining[1:]
        remaining = remaining[remaining != best]
        if max_detections is not None and len(out_s) >= max_detections:
            break
    if not out_s:
        return SsdDetections(np.zeros((0, 4), np.float32), np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
                             np.zeros(0, np.float32))
    return SsdDetections(np.asarray(out_b, np.float32), np.asarray(out_k, np.float32),
                         np.asarray(out_s, np.float32))
