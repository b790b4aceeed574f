"""A gravity-aligned world frame per camera: y up, metres, the floor at y = 0.

Poses are published in the camera frame (x right, y down, z forward), which OpenSim shows upside
down and tilted. `WorldFrame` maps camera points into a world whose y axis points up, x is the
camera's right projected onto the floor, z = x cross y (towards the camera), and the origin is
the floor point below the camera, so the camera sits at (0, height, 0).

Where it comes from, per stream, first found wins:
1. `sources.N.camera_pose` in the session's stored config (the user measured it);
2. `world_frame.json` in the session folder (stored by an earlier export or by
   `python -m sinks.world_frame SESSION`);
3. an estimate from the recording: the up vector from the trunks of standing or walking people
   (pelvis -> head), refined by the plane through their lowest foot points over time, and the
   floor height from those foot points. It is stored in `world_frame.json`.

    python -m sinks.world_frame SESSION                     # estimate and store, print the result
    python -m sinks.world_frame SESSION --stream cam0 --height-m 1.2 --pitch-deg 10   # measured
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from engines.skel.dofs import DOF_INDEX
from engines.skel.kinematics import (Skeleton, axis_rotation, forward_kinematics, generic_skeleton,
                                     keypoints_from_fk)
from sinks.schema import FrameMsg
from stream.errors import RecorderError, UserError
from stream.sources.camera_pose import CameraPoseConfig

WORLD_FRAME_FILE = "world_frame.json"
FRAME_TEXT = ("gravity-aligned world: y up, x = camera right on the floor, z = x cross y "
              "(towards the camera), origin on the floor below the camera, metres")


class WorldFrameError(UserError):
    """A session has no world frame and none can be estimated."""


@dataclass(frozen=True)
class WorldFrame:
    """p_world = r_wc @ p_cam + t_wc. r_wc: (3, 3) float64 rotation; t_wc: (3,) metres."""
    r_wc: np.ndarray
    t_wc: np.ndarray
    source: str                        # 'camera_pose' | 'estimated' | 'stored'
    stats: dict = field(default_factory=dict)

    def points(self, p_cam: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points (m) -> world points (m)."""
        return np.asarray(p_cam, np.float64) @ self.r_wc.T + self.t_wc

    def rotations(self, r_cam: np.ndarray) -> np.ndarray:
        """(..., 3, 3) orientations in the camera frame -> in the world frame."""
        return self.r_wc @ np.asarray(r_cam, np.float64)

    @property
    def camera_height_m(self) -> float:
        return float(self.t_wc[1])

    def pitch_roll_deg(self) -> tuple[float, float]:
        """The camera's tilt: pitch (+ = looking down) and roll, degrees (as camera_pose takes)."""
        z_c, x_c = self.r_wc[:, 2], self.r_wc[:, 0]
        pitch = float(np.arcsin(np.clip(-z_c[1], -1, 1)))
        roll = float(np.arcsin(np.clip(-x_c[1] / max(np.cos(pitch), 1e-9), -1, 1)))
        return float(np.rad2deg(pitch)), float(np.rad2deg(roll))

    def to_dict(self) -> dict:
        pitch, roll = self.pitch_roll_deg()
        return {"frame": FRAME_TEXT, "r_wc": self.r_wc.tolist(), "t_wc_m": self.t_wc.tolist(),
                "source": self.source, "camera_height_m": round(self.camera_height_m, 4),
                "pitch_deg": round(pitch, 3), "roll_deg": round(roll, 3), "stats": self.stats}

    @staticmethod
    def from_dict(d: dict, source: str = "stored") -> WorldFrame:
        r, t = np.asarray(d["r_wc"], np.float64), np.asarray(d["t_wc_m"], np.float64)
        if r.shape != (3, 3) or t.shape != (3,) or not np.allclose(r @ r.T, np.eye(3), atol=1e-5):
            raise ValueError("r_wc must be a 3x3 rotation and t_wc_m 3 numbers")
        return WorldFrame(r, t, source, dict(d.get("stats", {})))


def from_camera_pose(cp: CameraPoseConfig) -> WorldFrame:
    """A measured camera pose (height/pitch/roll, or a calibration's extrinsics) -> WorldFrame."""
    if cp.height_m is not None:
        th, ph = np.deg2rad(cp.pitch_deg), np.deg2rad(cp.roll_deg)
        # camera axes in world coordinates at this pitch: x right, y down-ish, z forward-and-down
        pitch = np.array([[1.0, 0.0, 0.0],
                          [0.0, -np.cos(th), -np.sin(th)],
                          [0.0, np.sin(th), -np.cos(th)]])
        r = pitch @ axis_rotation("z", ph)  # roll about the camera's own optical axis
        return WorldFrame(r, np.array([0.0, cp.height_m, 0.0]), "camera_pose")
    from scipy.spatial.transform import Rotation

    r_cw = Rotation.from_rotvec(cp.rotation_rodrigues).as_matrix()   # world -> camera
    t = np.asarray(cp.translation_m, np.float64)
    up = {"x": (0, 1.0), "y": (1, 1.0), "z": (2, 1.0), "-x": (0, -1.0), "-y": (1, -1.0),
          "-z": (2, -1.0)}[cp.world_up]
    # calibration world -> ours: its up axis becomes y; a right-handed pick of the other two
    a = np.zeros((3, 3))
    a[1, up[0]] = up[1]
    a[0, (up[0] + 1) % 3] = 1.0
    a[2] = np.cross(a[0], a[1])
    r = a @ r_cw.T
    return WorldFrame(r, -r @ t, "camera_pose")


# ------------------------------------------------------------------------------------------
# estimation from the recording
# ------------------------------------------------------------------------------------------
FOOT_POINTS = ("left_heel", "right_heel", "left_foot_index", "right_foot_index")
_HEAD_JOINT = 13
_HIP_FLEX = (DOF_INDEX["hip_flexion_r"], DOF_INDEX["hip_flexion_l"])
_KNEE = (DOF_INDEX["knee_angle_r"], DOF_INDEX["knee_angle_l"])
MIN_FRAMES = 20                 # standing/walking person-frames needed
MIN_TRUNK_AGREEMENT = 0.95      # mean resultant length of the unit trunk vectors
TRUNK_PRIOR_RAD = 0.05          # how far the mean trunk may lean from true vertical (3 deg)
FOOT_SIGMA_M = 0.03             # lowest foot point scatter about the floor
FOOT_OUTLIER_M = 0.10           # farther from the plane: that foot was off the ground
MIN_FLOOR_EXTENT_M = 1.0        # feet covering less floor than this (either way): warn


def upright_posture(q: np.ndarray) -> bool:
    """Standing or walking: both hips within -30..45 deg flexion, one knee straighter than 30."""
    hips = q[list(_HIP_FLEX)]
    return bool(np.all(hips > np.deg2rad(-30)) and np.all(hips < np.deg2rad(45))
                and q[list(_KNEE)].min() < np.deg2rad(30))


@dataclass
class _Samples:
    trunk: list[np.ndarray] = field(default_factory=list)   # unit pelvis->head, camera frame
    feet: list[np.ndarray] = field(default_factory=list)    # (4, 3) foot points, camera frame


def collect_samples(frames: list[FrameMsg], skeleton: Skeleton, min_confidence: float = 0.3
                    ) -> dict[str, _Samples]:
    """Per stream: trunk directions and foot points of observed, upright people."""
    out: dict[str, _Samples] = {}
    for f in frames:
        for p in f.persons:
            if (p.q is None or p.trans_m is None or p.predicted or p.confidence < min_confidence
                    or not upright_posture(p.q)):
                continue
            fk = forward_kinematics(p.q, skeleton, np.asarray(p.trans_m, np.float64))
            s = out.setdefault(f.stream, _Samples())
            trunk = fk.joints_m[_HEAD_JOINT] - fk.joints_m[0]
            s.trunk.append(trunk / max(np.linalg.norm(trunk), 1e-9))
            s.feet.append(keypoints_from_fk(fk, skeleton, FOOT_POINTS))
    return out


def _plane_normal(up0: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Floor normal near `up0` that best makes `pts` (N, 3) coplanar: tilt (a, b) of up0 in its
    tangent plane, least squares of point offsets (sigma FOOT_SIGMA_M) plus a trunk prior
    (sigma TRUNK_PRIOR_RAD). A walker's feet pin the tilt along the walk; the trunk the rest.
    Returns (normal, inlier mask)."""
    e1 = np.cross(up0, [1.0, 0.0, 0.0] if abs(up0[0]) < 0.9 else [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up0, e1)
    keep = np.ones(len(pts), bool)
    n = up0
    for _ in range(3):
        d = pts[keep] - pts[keep].mean(axis=0)
        a = np.concatenate([np.stack([d @ e1, d @ e2], axis=1) / FOOT_SIGMA_M,
                            np.eye(2) / TRUNK_PRIOR_RAD])
        b = np.concatenate([-(d @ up0) / FOOT_SIGMA_M, np.zeros(2)])
        ab, *_ = np.linalg.lstsq(a, b, rcond=None)
        n = up0 + ab[0] * e1 + ab[1] * e2
        n /= np.linalg.norm(n)
        h = pts @ n
        keep_new = np.abs(h - np.median(h[keep])) < FOOT_OUTLIER_M
        if keep_new.sum() < 3 or np.array_equal(keep_new, keep):
            break
        keep = keep_new
    return n, keep


def _world_axes(up: np.ndarray) -> np.ndarray:
    """(3, 3) rows: world x, y (= up), z in camera coordinates. x is the camera's right on the
    floor; a camera turned on its side (image right nearly vertical) uses its optical axis for z."""
    x = np.array([1.0, 0.0, 0.0]) - up[0] * up
    if np.linalg.norm(x) > 0.5:
        x /= np.linalg.norm(x)
        return np.stack([x, up, np.cross(x, up)])
    z = -(np.array([0.0, 0.0, 1.0]) - up[2] * up)                    # towards the camera
    z /= np.linalg.norm(z)
    return np.stack([np.cross(up, z), up, z])


def estimate_world_frame(samples: _Samples, stream: str = "cam0") -> WorldFrame:
    """Up from the trunks, refined by the floor plane through the lowest foot points; the floor
    height from their median. Raises WorldFrameError when the data cannot support it."""
    n = len(samples.trunk)
    if n < MIN_FRAMES:
        raise WorldFrameError(
            f"stream {stream}: only {n} frames show an upright (standing or walking) person with "
            f"a pose, {MIN_FRAMES} are needed to estimate the floor; {HOW_TO_GIVE}")
    trunk = np.stack(samples.trunk)
    mean = trunk.mean(axis=0)
    agreement = float(np.linalg.norm(mean))
    if agreement < MIN_TRUNK_AGREEMENT:
        raise WorldFrameError(
            f"stream {stream}: the trunks of the people seen point in too many directions "
            f"(agreement {agreement:.2f} < {MIN_TRUNK_AGREEMENT}) to tell which way is up; "
            f"{HOW_TO_GIVE}")
    # camera y points down: the trunk's mean points up, so it is the first guess of up
    up0 = mean / agreement
    feet = np.stack(samples.feet)                                    # (N, 4, 3)
    lowest = feet[np.arange(n), np.argmin(feet @ up0, axis=1)]      # (N, 3): foot on the floor
    up, inlier = _plane_normal(up0, lowest)
    heights = lowest @ up
    floor = float(np.median(heights[inlier]))                        # n . p = floor on the ground
    if floor >= 0:
        raise WorldFrameError(f"stream {stream}: the estimated floor is not below the camera; "
                              f"{HOW_TO_GIVE}")
    r = _world_axes(up)
    t = -r @ (floor * up)
    spread = np.degrees(np.arccos(np.clip(trunk @ up, -1, 1)))
    # how far the floor points reach along their two in-plane principal directions (5-95 %)
    flat = lowest[inlier] - np.outer(lowest[inlier] @ up, up)
    flat -= flat.mean(axis=0)
    _, _, axes = np.linalg.svd(flat, full_matrices=False)
    extent = [float(np.ptp(np.percentile(flat @ a, [5, 95]))) for a in axes[:2]]
    stats = {"frames": n, "trunk_lean_median_deg": round(float(np.median(spread)), 2),
             "floor_inliers": int(inlier.sum()),
             "floor_rms_m": round(float(np.sqrt(np.mean((heights[inlier] - floor) ** 2))), 4),
             "trunk_vs_floor_deg": round(float(np.degrees(np.arccos(np.clip(up0 @ up, -1, 1)))), 2),
             "floor_extent_m": [round(e, 2) for e in extent]}
    return WorldFrame(r, t, "estimated", stats)


HOW_TO_GIVE = ("give the camera pose: record with --set sources.0.camera_pose.height_m=H "
               "--set sources.0.camera_pose.pitch_deg=P (metres above the floor, degrees below "
               "the horizon), or store it afterwards with python -m sinks.world_frame SESSION "
               "--stream ID --height-m H --pitch-deg P")


# ------------------------------------------------------------------------------------------
# the session's world frames
# ------------------------------------------------------------------------------------------
def session_folder(session: str) -> str:
    return session if os.path.isdir(session) else os.path.dirname(os.path.abspath(session))


def config_from_yaml(text: str) -> dict:
    """A run's config YAML as plain dicts; {} when empty or unreadable (an export reads what it
    can and says what is missing, rather than failing on an old or damaged session)."""
    import yaml

    try:
        cfg = yaml.safe_load(text) if text else {}
    except yaml.YAMLError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


def session_config(metadata: dict[str, dict[str, str]]) -> dict:
    """The run's config as stored in the session (plain dicts; {} when absent)."""
    return config_from_yaml(metadata.get("skelstream.config", {}).get("yaml", ""))


def configured_camera_poses(config: dict) -> dict[str, CameraPoseConfig]:
    """stream id -> camera_pose of each source that has one."""
    out = {}
    for i, src in enumerate(config.get("sources") or []):
        if isinstance(src, dict) and src.get("camera_pose"):
            sid = src.get("stream_id") or f"cam{i}"
            try:
                out[sid] = CameraPoseConfig(**src["camera_pose"])
            except ValueError as exc:
                raise WorldFrameError(f"the session's sources.{i}.camera_pose is invalid "
                                      f"({str(exc).splitlines()[0]}); store a valid one with "
                                      "python -m sinks.world_frame SESSION ...") from None
    return out


def body_height_m(config: dict) -> float:
    """The generic skeleton's height the landmark engine used (its FK places the markers)."""
    try:
        return float(config["pose"]["landmarks"]["body_height_m"])
    except (KeyError, TypeError, ValueError):
        return 1.70


def read_stored(session: str) -> dict[str, WorldFrame]:
    path = os.path.join(session_folder(session), WORLD_FRAME_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            d = json.load(f)
        return {sid: WorldFrame.from_dict(v) for sid, v in d["streams"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorldFrameError(f"{path} is unreadable ({exc}); delete it to estimate the world "
                              "frame again, or rewrite it with python -m sinks.world_frame") from None


def store(session: str, frames: dict[str, WorldFrame]) -> str | None:
    """Merge `frames` into the session's world_frame.json; None when the folder is read-only."""
    path = os.path.join(session_folder(session), WORLD_FRAME_FILE)
    try:
        merged = {sid: wf.to_dict() for sid, wf in read_stored(session).items()}
    except WorldFrameError:
        merged = {}
    merged.update({sid: wf.to_dict() for sid, wf in frames.items()})
    try:
        with open(path + ".tmp", "w") as f:
            json.dump({"version": 1, "frame": FRAME_TEXT, "streams": merged}, f, indent=1)
        os.replace(path + ".tmp", path)
    except OSError:
        return None
    return path


def resolve_world_frames(session: str, frames: list[FrameMsg], metadata: dict,
                         streams: set[str] | None = None, save: bool = True
                         ) -> dict[str, WorldFrame]:
    """World frame of every stream in `streams` (default: all with people), in the order of
    the module docstring; estimates are stored in the session (`save`)."""
    config = session_config(metadata)
    wanted = streams if streams is not None else {f.stream for f in frames if f.persons}
    given = configured_camera_poses(config)
    out = {sid: from_camera_pose(given[sid]) for sid in wanted if sid in given}
    stored = read_stored(session)
    out.update({sid: stored[sid] for sid in wanted - set(out) if sid in stored})
    missing = wanted - set(out)
    if missing:
        samples = collect_samples(frames, generic_skeleton(body_height_m(config)))
        new = {sid: estimate_world_frame(samples.get(sid, _Samples()), sid)
               for sid in sorted(missing)}
        out.update(new)
        where = store(session, new) if save else None
        for sid, wf in new.items():
            pitch, roll = wf.pitch_roll_deg()
            print(f"world frame of {sid} estimated from {wf.stats['frames']} upright frames: camera "
                  f"{wf.camera_height_m:.2f} m above the floor, pitch {pitch:.1f} deg, roll "
                  f"{roll:.1f} deg" + (f"; stored in {where}" if where else ""), file=sys.stderr)
            narrow = min(wf.stats["floor_extent_m"])
            if narrow < MIN_FLOOR_EXTENT_M:
                print(f"warning: the feet of {sid} cover only {narrow:.2f} m of floor in one "
                      "direction, so the floor's tilt that way comes from the trunks' mean lean "
                      "and noisy foot heights (several degrees off on the Pose2Sim demo clip); "
                      f"for accurate world angles {HOW_TO_GIVE}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    from sinks.recorder import read_session
    from sinks.replay import load_frames

    ap = argparse.ArgumentParser(prog="python -m sinks.world_frame", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("session", help="session folder or its poses.mcap")
    ap.add_argument("--stream", help="stream id (default: every stream with people)")
    ap.add_argument("--height-m", type=float, help="measured camera height above the floor (m)")
    ap.add_argument("--pitch-deg", type=float, default=0.0, help="optical axis below the horizon")
    ap.add_argument("--roll-deg", type=float, default=0.0, help="about the optical axis")
    a = ap.parse_args(argv)
    try:
        if a.height_m is not None:
            if not a.stream:
                raise UserError("--height-m needs --stream (the camera it belongs to)")
            try:
                cp = CameraPoseConfig(height_m=a.height_m, pitch_deg=a.pitch_deg, roll_deg=a.roll_deg)
            except ValueError as exc:
                raise UserError(f"invalid camera pose: {str(exc).splitlines()[-1]}") from None
            wf = from_camera_pose(cp)
            result = {a.stream: WorldFrame(wf.r_wc, wf.t_wc, "stored", {"given": "measured"})}
            path = store(a.session, result)
        else:
            data = read_session(a.session)
            frames = load_frames(a.session)
            if not any(p.q is not None for f in frames for p in f.persons):
                raise WorldFrameError(f"{a.session} holds no person with a pose to estimate the "
                                      f"floor from; {HOW_TO_GIVE}")
            result = resolve_world_frames(a.session, frames, data.metadata,
                                          {a.stream} if a.stream else None, save=False)
            path = store(a.session, {k: v for k, v in result.items() if v.source == "estimated"})
        if path is None:
            raise RecorderError(f"cannot write {WORLD_FRAME_FILE} into {session_folder(a.session)}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for sid, wf in result.items():
        print(json.dumps({"stream": sid, **wf.to_dict()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
