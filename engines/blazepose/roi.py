"""Rotated square regions of interest around a body, as MediaPipe's pose graph builds them.

`pose_detection_to_roi.pbtxt` and `pose_landmarks_to_roi.pbtxt` do the same two steps on two
points (detector keypoints 0/1, or auxiliary landmarks 33/34): AlignmentPointsRectsCalculator
(centre = the first point, side = 2 x their distance, rotation = 90 deg - the angle of the vector
between them, so an upright body has rotation 0) then RectTransformationCalculator (square_long,
scale 1.25). All in image pixels here: the ROI is square in pixels, so no letterbox is involved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROI_SCALE = 1.25            # RectTransformationCalculator scale_x = scale_y
TARGET_ANGLE_RAD = np.pi / 2  # rotation_vector_target_angle_degrees: 90


@dataclass(frozen=True, slots=True)
class Roi:
    """A square region: centre (px), side (px), rotation (rad, clockwise on screen as image y
    points down; 0 = upright body)."""
    cx: float
    cy: float
    side: float
    rotation: float

    def corners(self) -> np.ndarray:
        """(4, 2) float64 px corners (top-left, top-right, bottom-right, bottom-left of the crop)."""
        u = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
        return self.to_image(u)

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) crop coordinates centred on 0 (unit = side) -> (..., 2) image px
        (MediaPipe's LandmarkProjectionCalculator)."""
        c, s = np.cos(self.rotation), np.sin(self.rotation)
        x, y = uv[..., 0], uv[..., 1]
        return np.stack([self.cx + self.side * (c * x - s * y), self.cy + self.side * (s * x + c * y)], -1)

    def crop_matrix(self, size_px: int) -> np.ndarray:
        """(2, 3) affine map from crop pixels (0..size) to image pixels, for cv2.warpAffine with
        WARP_INVERSE_MAP."""
        c, s = np.cos(self.rotation), np.sin(self.rotation)
        k = self.side / size_px
        # image = centre + side * R (uv / size - 0.5)
        a = k * np.array([[c, -s], [s, c]])
        t = np.array([self.cx, self.cy]) - a @ np.array([0.5 * size_px, 0.5 * size_px])
        return np.hstack([a, t[:, None]])

    def bounds_xyxy(self) -> np.ndarray:
        """(4,) float32 axis-aligned bounds of the rotated square."""
        p = self.corners()
        return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()], np.float32)


def normalize_radians(a: float) -> float:
    """Angle in [-pi, pi) (MediaPipe's NormalizeRadians)."""
    return float(a - 2 * np.pi * np.floor((a + np.pi) / (2 * np.pi)))


def roi_from_points(centre_px: np.ndarray, scale_px: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """Body ROI from a centre point and a size/rotation point (both (2,) image px)."""
    dx, dy = float(scale_px[0] - centre_px[0]), float(scale_px[1] - centre_px[1])
    side = 2.0 * float(np.hypot(dx, dy)) * scale
    rotation = normalize_radians(TARGET_ANGLE_RAD - np.arctan2(-dy, dx))
    return Roi(float(centre_px[0]), float(centre_px[1]), side, rotation)


BODY_LENGTH = 0.85   # body extent along its axis / (2 x radius)
BODY_WIDTH = 0.35    # body width across its axis / (2 x radius)
"""Measured with the landmark model on detections of the Demo_MultiPerson clips and vtest.avi
(41 upright people): visible-landmark extent = 0.75 (p25-p75 0.68-0.88) x 2r along the axis and
0.30 (0.24-0.35) across; plus a margin for the head top, feet and hands."""


def body_box(centre_px: np.ndarray, scale_px: np.ndarray, width_ratio: float = BODY_WIDTH,
             length_ratio: float = BODY_LENGTH) -> np.ndarray:
    """(4,) float32 xyxy person box for the tracker from the two body points (detector keypoints
    0/1 or auxiliary landmarks 33/34): a rectangle along the body axis, `length_ratio` x 2 x radius
    long and `width_ratio` x 2 x radius wide, then its axis-aligned bounds. The full square ROI
    (as wide as tall, 1.25 x larger) would merge people standing side by side."""
    axis = np.asarray(scale_px, np.float64) - np.asarray(centre_px, np.float64)
    r = float(np.hypot(*axis))
    c = np.asarray(centre_px, np.float64)
    if r < 1e-6:
        return np.array([c[0], c[1], c[0], c[1]], np.float32)
    along = axis * length_ratio
    across = np.array([-axis[1], axis[0]]) * width_ratio
    pts = np.array([c + along + across, c + along - across, c - along + across, c - along - across])
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()], np.float32)
