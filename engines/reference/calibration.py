"""Calibrated cameras: one pinhole + OpenCV-distortion model, read from Qualisys or TOML files.

Formats users bring:
- Qualisys `.qca.txt` (XML), converted exactly as Pose2Sim's `calib_qca_fun` does: focal, centre
  and distortion divided by 64 (Qualisys stores sub-pixel units), centre minus the video field's
  top-left, the camera->world transform inverted to world->camera, then each camera rotated by pi
  about its own x axis (Qualisys cameras look along -z with y up; OpenCV's along +z with y down).
- TOML with one table per camera (`matrix`, `distortions`, `rotation` (Rodrigues), `translation`,
  `size`, optional `name`, `fisheye`): Pose2Sim's `Calib*.toml`, anipose's and FreeMoCap's
  `camera_calibration*.toml`. Pose2Sim writes metres; anipose/FreeMoCap use the board's unit
  (often mm): pass `translation_unit_m=0.001` for those.

Extrinsics are plain: `R` (3, 3) and `t` (3,) map world points to the camera frame,
X_cam = R @ X_world + t, metres, OpenCV axes (x right, y down, z forward).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream.errors import UserError


class CalibrationError(UserError):
    """A calibration file is missing, malformed, or does not match the video sources."""


@dataclass(frozen=True)
class Camera:
    """One calibrated camera. K: (3, 3) pixels; dist: (k1, k2, p1, p2[, k3]) OpenCV order;
    R: (3, 3), t: (3,) metres, world -> camera (X_cam = R X_world + t); size_px: (width, height)."""
    name: str
    size_px: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @property
    def centre_m(self) -> np.ndarray:
        """(3,) the camera's optical centre in the world frame, metres."""
        return -self.R.T @ self.t

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix K [R | t] of undistorted pixels."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    def to_camera(self, points_world_m: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 3) camera-frame points, metres."""
        return np.asarray(points_world_m, np.float64) @ self.R.T + self.t

    def project(self, points_world_m: np.ndarray, distort: bool = True) -> np.ndarray:
        """(..., 3) world points, metres -> (..., 2) pixels (with lens distortion unless told not).

        The distortion polynomial is OpenCV's (k1, k2, p1, p2, k3), written out so that it is
        vectorised over any leading shape; `tests/test_reference_calibration.py` checks it
        against cv2.projectPoints.
        """
        pc = self.to_camera(points_world_m)
        z = pc[..., 2:3]
        xy = pc[..., :2] / np.where(np.abs(z) < 1e-12, 1e-12, z)
        if distort:
            xy = self._distort(xy)
        return xy * np.diag(self.K)[:2] + self.K[:2, 2]

    def _distort(self, xy: np.ndarray) -> np.ndarray:
        d = np.zeros(5)
        d[:min(5, self.dist.size)] = self.dist[:5]
        k1, k2, p1, p2, k3 = d
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=-1)

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """(..., 2) distorted pixels -> (..., 2) undistorted pixels of the same K (OpenCV)."""
        import cv2

        px = np.asarray(pixels, np.float64)
        flat = px.reshape(-1, 1, 2)
        if flat.shape[0] == 0:
            return px.copy()
        out = cv2.undistortPointsIter(flat, self.K, self.dist, None, self.K,
                                      (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-6))
        return out.reshape(px.shape)


def _natural_key(name: str) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def _rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _float(tag: ET.Element, key: str, path: Path) -> float:
    v = tag.get(key)
    if v is None:
        raise CalibrationError(f"{path}: <{tag.tag}> of a camera has no '{key}'; re-export the "
                               "calibration from Qualisys (Calib.qca.txt)")
    try:
        return float(v)
    except ValueError:
        raise CalibrationError(f"{path}: <{tag.tag} {key}=\"{v}\"> is not a number") from None


def load_qca(path: str | Path, binning_factor: int = 1) -> list[Camera]:
    """Cameras of a Qualisys `.qca.txt`, converted as Pose2Sim 0.10's `calib_qca_fun`.

    Only video cameras (model 'none' or '...video...') are kept, sorted by natural name order.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise CalibrationError(f"{path}: not a Qualisys calibration (XML error: {exc})") from None
    cams = []
    for tag in root.findall("cameras/camera"):
        if not any(m in tag.get("model", "").lower() for m in ("video", "none")):
            continue
        fov, intr, tr = tag.find("fov_video"), tag.find("intrinsic"), tag.find("transform")
        if fov is None or intr is None or tr is None:
            raise CalibrationError(f"{path}: camera '{tag.get('serial')}' lacks <fov_video>, "
                                   "<intrinsic> or <transform>; re-export it from Qualisys")
        g = lambda t, k: _float(t, k, path)  # noqa: E731
        left, top = g(fov, "left"), g(fov, "top")
        w = (g(fov, "right") - left + 1) / binning_factor
        h = (g(fov, "bottom") - top + 1) / binning_factor
        s = 64.0 * binning_factor
        dist = np.array([g(intr, "radialDistortion1"), g(intr, "radialDistortion2"),
                         g(intr, "tangentalDistortion1"), g(intr, "tangentalDistortion2")]) / s
        k = np.array([[g(intr, "focalLengthU") / s, 0.0, g(intr, "centerPointU") / s - left],
                      [0.0, g(intr, "focalLengthV") / s, g(intr, "centerPointV") / s - top],
                      [0.0, 0.0, 1.0]])
        # Qualisys: rotation camera -> world (written by rows r11..r33 = columns of the matrix
        # Pose2Sim transposes), position of the camera in mm
        r_cw = np.array([[g(tr, f"r{i}{j}") for j in (1, 2, 3)] for i in (1, 2, 3)]).T
        pos = np.array([g(tr, "x"), g(tr, "y"), g(tr, "z")]) / 1000.0
        r, t = r_cw.T, -r_cw.T @ pos                      # world -> camera (Pose2Sim's world_to_camera_persp)
        flip = _rot_x(np.pi)                               # rotate_cam(ang_x=pi)
        cams.append(Camera(name=tag.get("serial") or f"cam{len(cams) + 1}", size_px=(int(w), int(h)),
                           K=k, dist=dist, R=flip @ r, t=flip @ t))
    if not cams:
        raise CalibrationError(f"{path}: no video camera in the Qualisys calibration")
    return sorted(cams, key=lambda c: _natural_key(c.name))


def load_toml(path: str | Path, translation_unit_m: float = 1.0) -> list[Camera]:
    """Cameras of a Pose2Sim / anipose / FreeMoCap TOML calibration, in file order."""
    import cv2

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser ships as the tomli package
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            from stream.errors import DependencyError

            raise DependencyError("reading a TOML calibration on Python 3.10 needs tomli: "
                                  "pip install tomli (or use Python >= 3.11)") from None
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: not a TOML calibration ({exc})") from None
    cams = []
    for key, tab in data.items():
        if not isinstance(tab, dict) or key == "metadata" or "matrix" not in tab:
            continue
        try:
            k = np.asarray(tab["matrix"], np.float64).reshape(3, 3)
            dist = np.asarray(tab.get("distortions", [0, 0, 0, 0]), np.float64).ravel()
            rvec = np.asarray(tab["rotation"], np.float64).reshape(3)
            t = np.asarray(tab["translation"], np.float64).reshape(3) * translation_unit_m
            size = tuple(int(round(float(v))) for v in tab["size"])[:2]
        except (KeyError, ValueError, TypeError) as exc:
            raise CalibrationError(f"{path}: camera [{key}] is malformed ({type(exc).__name__}: {exc}); "
                                   "it needs matrix (3x3), distortions, rotation (3), translation (3), size (2)") from None
        if tab.get("fisheye", False):
            raise CalibrationError(f"{path}: camera [{key}] is a fisheye calibration; only the "
                                   "pinhole + radial/tangential model is supported")
        if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise CalibrationError(f"{path}: camera [{key}] has a non-positive or non-finite focal length")
        cams.append(Camera(name=str(tab.get("name", key)), size_px=size, K=k, dist=dist,
                           R=cv2.Rodrigues(rvec)[0], t=t))
    if not cams:
        raise CalibrationError(f"{path}: no camera table (with 'matrix') in the TOML calibration")
    return cams


def load_calibration(path: str | Path, n_sources: int | None = None, translation_unit_m: float = 1.0
                     ) -> list[Camera]:
    """Cameras from a `.qca.txt` or `.toml` file; `n_sources` (the number of videos) must match."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} not found; give a Qualisys .qca.txt or a "
                               "Pose2Sim/anipose/FreeMoCap .toml")
    name = path.name.lower()
    if name.endswith(".toml"):
        cams = load_toml(path, translation_unit_m)
    elif name.endswith((".qca.txt", ".qca", ".xml")):
        cams = load_qca(path)
    else:
        raise CalibrationError(f"{path}: unknown calibration format; give a Qualisys .qca.txt or a .toml")
    if n_sources is not None and len(cams) != n_sources:
        raise CalibrationError(f"{path}: {len(cams)} cameras calibrated but {n_sources} videos given; "
                               "give one video per calibrated camera, in the calibration's order")
    return cams


def save_toml(cameras: list[Camera], path: str | Path) -> None:
    """Write cameras in Pose2Sim's TOML layout (metres), readable by `load_toml`."""
    import cv2

    lines = []
    for c in cameras:
        r = cv2.Rodrigues(c.R)[0].ravel()
        k = [[float(v) for v in row] for row in c.K]
        lines += [f"[{c.name}]", f'name = "{c.name}"', f"size = [ {c.size_px[0]}, {c.size_px[1]}]",
                  f"matrix = [ [ {k[0][0]!r}, 0.0, {k[0][2]!r}], [ 0.0, {k[1][1]!r}, {k[1][2]!r}], [ 0.0, 0.0, 1.0]]",
                  "distortions = [ " + ", ".join(repr(float(v)) for v in c.dist) + "]",
                  "rotation = [ " + ", ".join(repr(float(v)) for v in r) + "]",
                  "translation = [ " + ", ".join(repr(float(v)) for v in c.t) + "]",
                  "fisheye = false", ""]
    lines += ["[metadata]", "adjusted = false", "error = 0.0", ""]
    Path(path).write_text("\n".join(lines))
