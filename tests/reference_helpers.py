"""Synthetic calibrated rigs and the pose2sim demo paths for the reference tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.reference.calibration import Camera
from stream.packaged import packaged_file


def demo_dir(name: str = "Demo_SinglePerson") -> Path | None:
    """The pose2sim wheel's demo folder (4 videos + Qualisys calibration), or None."""
    calib = packaged_file("Pose2Sim", name, "calibration", "Calib.qca.txt")
    return None if calib is None else calib.parent.parent


def look_at(centre: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera (R, t) of a camera at `centre` looking at `target` (world z up)."""
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.stack([x, y, z])
    return r, -r @ centre


def ring_of_cameras(n: int = 4, radius_m: float = 4.0, dist: bool = True) -> list[Camera]:
    """n cameras on a circle around the origin, 1.8 m high, 1088x1920 portrait, mild distortion."""
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n + 0.3
        r, t = look_at(np.array([radius_m * np.cos(a), radius_m * np.sin(a), 1.8]), np.array([0, 0, 1.0]))
        k = np.array([[1680.0 + 7 * i, 0, 540.0 + i], [0, 1678.0, 960.0 - 2 * i], [0, 0, 1]])
        d = np.array([-0.05, 0.1, 0.001, -0.0005]) / (1 if dist else np.inf)
        cams.append(Camera(f"cam{i + 1:02d}", (1088, 1920), k, np.nan_to_num(d), r, t))
    return cams


def walking_points(frames: int = 60, keypoints: int = 33, seed: int = 0) -> np.ndarray:
    """(T, K, 3) a cloud of body-sized points moving smoothly (a walk across the room), metres."""
    rng = np.random.default_rng(seed)
    base = rng.uniform([-0.25, -0.15, 0.05], [0.25, 0.15, 1.8], size=(keypoints, 3))
    t = np.arange(frames)[:, None, None] / 60.0
    sway = 0.15 * np.sin(2 * np.pi * 1.3 * t + np.arange(keypoints)[None, :, None] * 0.7)
    drift = np.array([0.9, 0.2, 0.0]) * (t - t.mean())
    return base[None] + drift + sway * np.array([1.0, 0.6, 0.3])
