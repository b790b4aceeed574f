"""BlazePose *full* landmarks for all people of a frame in one batched LiteRT call.

Decoding follows MediaPipe's `tensors_to_pose_landmarks_and_segmentation.pbtxt` and
`pose_landmarks_and_segmentation_inverse_projection.pbtxt`: 39 landmarks (33 body + 2 auxiliary
that define the next frame's ROI + 4 unused) of x, y (crop pixels of the 256x256 input), z,
visibility and presence logits (sigmoid); the pose-presence flag gates the whole set (threshold
0.5); world landmarks (33 x 3, metres, hip-centred) are rotated by the ROI's rotation; image
landmarks are projected back through the rotated ROI.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.blazepose.models import LANDMARK_FULL_FILE, TfliteModel, bundled_model
from engines.blazepose.roi import Roi, roi_from_points

NUM_LANDMARKS = 39
NUM_BODY = 33
AUX_CENTRE, AUX_SCALE = 33, 34     # auxiliary landmarks: the ROI of the next frame


@dataclass(frozen=True, slots=True)
class LandmarkSet:
    """One person's landmarks. image_px: (33, 2) float64 frame px; world_m: (33, 3) metres, origin
    between the hips, camera-aligned axes (x right, y down, z forward), rotated back by the ROI;
    visibility: (33,) in [0, 1]; presence: the model's pose-presence score in [0, 1]; aux_px: (2, 2)
    the auxiliary body centre and size/rotation point (frame px, like detector keypoints 0 and 1);
    next_roi: MediaPipe's tracking ROI for the next frame (from those two)."""
    image_px: np.ndarray
    world_m: np.ndarray
    visibility: np.ndarray
    presence: float
    aux_px: np.ndarray
    next_roi: Roi


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


class BlazePoseLandmarker:
    """pose_landmark_full.tflite on a batch of rotated square crops."""

    def __init__(self, threads: int = 1, presence_threshold: float = 0.5):
        # the segmentation mask and heatmaps it also paints are never read: not computed
        self.model = TfliteModel(bundled_model(LANDMARK_FULL_FILE), threads, drop_image_outputs=True)
        self.size = self.model.input_hw[0]
        self.presence_threshold = presence_threshold

    def crops(self, image_bgr: np.ndarray, rois: list[Roi]) -> np.ndarray:
        """(B, 256, 256, 3) float32 RGB in [0, 1] (ImageToTensor, output range [0, 1]; edges replicate)."""
        s = self.size
        batch = np.empty((len(rois), s, s, 3), np.float32)
        for i, roi in enumerate(rois):
            crop = cv2.warpAffine(image_bgr, roi.crop_matrix(s), (s, s),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
            batch[i] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)  # (a reversed-stride copy: 12x longer)
        batch *= 1.0 / 255.0
        return batch

    def run(self, image_bgr: np.ndarray, rois: list[Roi]) -> list[LandmarkSet | None]:
        """One call for every ROI; None where the model says no person is in it."""
        if not rois:
            return []
        return self.run_crops(self.crops(image_bgr, rois), rois)

    def run_crops(self, batch: np.ndarray, rois: list[Roi]) -> list[LandmarkSet | None]:
        """`run` on crops made already (`crops`), e.g. each from its own copy of the frame."""
        if not rois:
            return []
        outs = self.model.run(batch)
        lm = next(o for o in outs if o.ndim == 2 and o.shape[1] == NUM_LANDMARKS * 5)
        flag = next(o for o in outs if o.ndim == 2 and o.shape[1] == 1)
        world = next(o for o in outs if o.ndim == 2 and o.shape[1] == NUM_LANDMARKS * 3)
        result: list[LandmarkSet | None] = []
        for i, roi in enumerate(rois):
            presence = float(flag[i, 0])
            if not presence >= self.presence_threshold:
                result.append(None)
                continue
            v = lm[i].reshape(NUM_LANDMARKS, 5)
            uv = v[:, :2] / self.size - 0.5                         # crop coords centred on 0
            px = roi.to_image(uv.astype(np.float64))
            c, s = np.cos(roi.rotation), np.sin(roi.rotation)
            w = world[i].reshape(NUM_LANDMARKS, 3)[:NUM_BODY].astype(np.float64)
            w_rot = np.stack([c * w[:, 0] - s * w[:, 1], s * w[:, 0] + c * w[:, 1], w[:, 2]], 1)
            result.append(LandmarkSet(image_px=px[:NUM_BODY], world_m=w_rot,
                                      visibility=_sigmoid(v[:NUM_BODY, 3]).astype(np.float64),
                                      presence=presence, aux_px=px[[AUX_CENTRE, AUX_SCALE]],
                                      next_roi=roi_from_points(px[AUX_CENTRE], px[AUX_SCALE])))
        return result


def roi_from_box(box_xyxy: np.ndarray) -> Roi:
    """Upright square ROI on a (4,) xyxy box (a tracker crop box): its centre, its longer side."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    return Roi(0.5 * (x0 + x1), 0.5 * (y0 + y1), max(x1 - x0, y1 - y0, 2.0), 0.0)


EYES, SHOULDERS = (2, 5), (11, 12)   # BlazePose body landmark indices (left/right)
HEAD_TOP_REL = 0.6
"""Head top = mid-eyes + this x (mid-eyes - mid-shoulders): the eyes sit about half a head below
the crown and the shoulders about a head and a half below the eyes (adult proportions)."""
BOX_MARGIN_REL = 0.03
"""Margin around the visible landmarks, per side, x the body's longer extent (landmarks lie on
joint centres and the skin reaches a little beyond them)."""


def landmark_box(lms: LandmarkSet, min_visibility: float = 0.5) -> np.ndarray | None:
    """(4,) float32 xyxy px: the body the landmarks saw, visible landmarks (visibility >=
    `min_visibility`) plus the head top above the eyes and a small margin. What a person box
    should show: the tracker's box is the detector's loose guess from two body points. None when
    fewer than 4 landmarks are visible."""
    seen = lms.visibility >= min_visibility
    if int(seen.sum()) < 4:
        return None
    pts = lms.image_px[seen]
    if seen[list(EYES)].all() and seen[list(SHOULDERS)].all():
        eyes = lms.image_px[list(EYES)].mean(0)
        pts = np.vstack([pts, eyes + HEAD_TOP_REL * (eyes - lms.image_px[list(SHOULDERS)].mean(0))])
    lo, hi = pts.min(0), pts.max(0)
    pad = BOX_MARGIN_REL * float((hi - lo).max())
    return np.concatenate([lo - pad, hi + pad]).astype(np.float32)
