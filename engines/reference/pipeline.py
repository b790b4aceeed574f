"""Multi-camera reference: landmarks in every view -> synchronised, relabelled, triangulated 3D
keypoints -> reference angles two ways (SKEL fit on the 3D keypoints, and geometric flexion).

    python -m engines.reference cam01.mp4 cam02.mp4 ... --calibration Calib.qca.txt --out ref.npz
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.landmarks.fit import BLAZEPOSE_NAMES, FIT_KEYPOINTS, FIT_LANDMARK_INDEX, SEGMENT_LANDMARKS, SkelFitter
from engines.reference.angles import geometric_angles
from engines.reference.calibration import Camera, load_calibration
from engines.reference.filtering import filter_points
from engines.reference.lr_repair import apply_swaps, find_swaps
from engines.reference.sync import align, estimate_offsets
from engines.reference.triangulation import Triangulated, triangulate
from engines.reference.views import ViewLandmarks, detect_views
from engines.skel.dofs import NUM_DOFS
from engines.skel.kinematics import WINTER_FRACTIONS, generic_skeleton

_I = {n: i for i, n in enumerate(BLAZEPOSE_NAMES)}


@dataclass
class Reference:
    """points_m: (T, 33, 3) world metres on view 0's timeline; offsets: (V,) frames (view v's frame
    t + o_v is reference frame t); swapped: (T, V) left/right relabelled frames; tri: the
    triangulation (reprojection error per view and joint); geometric: name -> (T,) radians;
    segments_m: measured segment lengths; q_by_camera: camera name -> (T, 46) SKEL fit in that
    camera's frame (radians), filled by `fit_skel`."""
    cameras: list[Camera]
    points_m: np.ndarray
    offsets: np.ndarray
    swapped: np.ndarray
    tri: Triangulated
    geometric: dict[str, np.ndarray]
    segments_m: dict[str, float]
    q_by_camera: dict[str, np.ndarray] = field(default_factory=dict)

    def reprojection_by_joint_px(self) -> dict[str, float]:
        """Landmark name -> mean reprojection error over used views and frames, pixels."""
        e = self.tri.joint_error_px()
        return {n: float(e[i]) for i, n in enumerate(BLAZEPOSE_NAMES)}

    def save(self, path: str | Path) -> None:
        arrays = {"points_m": self.points_m, "offsets": self.offsets, "swapped": self.swapped,
                  "reproj_px": self.tri.reproj_px, "used": self.tri.used}
        arrays.update({f"geometric/{k}": v for k, v in self.geometric.items()})
        arrays.update({f"q/{k}": v for k, v in self.q_by_camera.items()})
        np.savez_compressed(path, **arrays)


def segment_lengths(points_m: np.ndarray) -> dict[str, float]:
    """Median length of each SEGMENT_LANDMARKS entry over frames and sides, metres."""
    out = {}
    for name, pairs in SEGMENT_LANDMARKS.items():
        d = np.concatenate([np.linalg.norm(points_m[:, _I[a]] - points_m[:, _I[b]], axis=-1) for a, b in pairs])
        d = d[np.isfinite(d)]
        if d.size:
            out[name] = float(np.median(d))
    return out


def build_reference(cameras: list[Camera], views: ViewLandmarks, max_lag: int = 15,
                    repair_swaps: bool = True, fps: float | None = None) -> Reference:
    """Synchronise, repair left/right slips, triangulate; with `fps`, filter the trajectories
    as Pose2Sim does (Hampel, then Butterworth 6 Hz order 4, zero lag). views: one person in
    every camera."""
    und = np.stack([cameras[v].undistort(views.pixels[:, :, v]) for v in range(len(cameras))], axis=2)
    offsets = estimate_offsets(cameras, und, views.confidence, max_lag)
    px = align(views.pixels, offsets)
    conf = np.nan_to_num(align(views.confidence, offsets), nan=0.0)
    und = align(und, offsets)
    swapped = np.zeros(conf.shape[::2], dtype=bool)
    if repair_swaps:
        swapped = find_swaps(cameras, px, conf, und)
        px, conf, und = apply_swaps(px, swapped), apply_swaps(conf, swapped), apply_swaps(und, swapped)
    tri = triangulate(cameras, px, conf, undistorted=und)
    points = tri.points_m if fps is None else filter_points(tri.points_m, fps)
    return Reference(cameras, points, offsets, swapped, tri, geometric_angles(points), segment_lengths(points))


def fit_skel(ref: Reference, camera: Camera, max_iterations: int = 30) -> np.ndarray:
    """(T, 46) SKEL angles (radians) fitted to the 3D keypoints seen in `camera`'s frame, so the
    pelvis orientation is comparable with a single-view engine on that camera. NaN rows where
    the keypoints are missing. Skeleton: generic, scaled to the measured segment lengths."""
    seg = ref.segments_m
    legs = seg.get("thigh", 0.0) + seg.get("shank", 0.0)
    height = legs / (WINTER_FRACTIONS["thigh"] + WINTER_FRACTIONS["shank"]) if legs > 0 else 1.70
    fitter = SkelFitter(generic_skeleton(height, seg), prior_weight=0.02, min_visibility=0.5)
    pts = camera.to_camera(ref.points_m)[:, FIT_LANDMARK_INDEX]
    out = np.full((pts.shape[0], NUM_DOFS), np.nan)
    q = root = None
    for t, lm in enumerate(pts):
        vis = np.isfinite(lm).all(-1).astype(np.float64)
        if vis.sum() < 8:
            q = root = None
            continue
        centre = np.nanmean(lm[[FIT_KEYPOINTS.index("left_hip"), FIT_KEYPOINTS.index("right_hip")]], axis=0)
        fit = fitter.fit(np.nan_to_num(lm - centre), vis, q, root,
                         max_iterations=max_iterations if q is not None else 4 * max_iterations)
        q, root = fit.q, fit.root_m
        out[t] = fit.q
    return out


def video_fps(path: str | Path) -> float:
    """The video's average frame rate (PyAV)."""
    import av

    with av.open(str(path)) as c:
        return float(c.streams.video[0].average_rate)


def reference_from_files(videos: list[str | Path], calibration: str | Path, max_frames: int | None = None,
                         cache: str | Path | None = None, fit: bool = True, people: int = 1) -> list[Reference]:
    """The whole chain on video files, one Reference per person seen in every view (up to
    `people`). `cache` (.npz path stem) keeps the 2D landmarks between runs."""
    from engines.reference.association import associate

    cams = load_calibration(calibration, n_sources=len(videos))
    paths = [Path(f"{cache}_p{i}.npz") for i in range(people)] if cache is not None else []
    if paths and all(p.is_file() for p in paths):
        per_person = [ViewLandmarks.load(p) for p in paths]
    else:
        # one extra candidate per view: a bystander must not take a subject's place
        found = detect_views(videos, max_frames, people=people + 1 if people > 1 else 1)
        per_person = found if people == 1 else associate(cams, found, max_people=people)
        for p, views in zip(paths, per_person):
            views.save(p)
    fps = video_fps(videos[0])
    refs = []
    for views in per_person:
        ref = build_reference(cams, views, fps=fps)
        if fit:
            for cam in cams:
                ref.q_by_camera[cam.name] = fit_skel(ref, cam)
        refs.append(ref)
    return refs
