"""Geometry of a session for the adapters: the skeleton it was fitted with, and the world frames
of its cameras (BVH, ROS 2, VMC)."""
from __future__ import annotations

import os
import sys

import numpy as np

from engines.skel.kinematics import MEASURED_SEGMENTS, Skeleton, generic_skeleton, load_skel_joints
from sinks.world_frame import config_from_yaml


def recorded_lossless(config_yaml: str) -> bool:
    """True when the session ran in lossless mode: capture times then follow the processing
    rate, not the source's frame rate."""
    cfg = config_from_yaml(config_yaml)
    return bool((cfg.get("runtime") or {}).get("lossless")) or any(
        isinstance(s, dict) and s.get("mode") == "lossless" for s in cfg.get("sources") or [])


def _landmarks_config(config_yaml: str) -> dict:
    return (config_from_yaml(config_yaml).get("pose") or {}).get("landmarks") or {}


def session_skeleton(config_yaml: str) -> Skeleton:
    """The generic SKEL skeleton at the recorded `pose.landmarks.body_height_m` (1.70 m when the
    session has no config), or the licensed SKEL joints when `pose.landmarks.skel_model_path` was
    set and that file is here: the skeleton of a person without estimated segment lengths."""
    lm = _landmarks_config(config_yaml)
    sk = generic_skeleton(float(lm.get("body_height_m", 1.70)))
    path = lm.get("skel_model_path")
    if path and os.path.exists(path):
        sk = Skeleton(offsets_m=load_skel_joints(path, lm.get("skel_gender", "male")),
                      keypoints=sk.keypoints)
    elif path:
        print(f"warning: export: the session was fitted on {path}, which is not here; the "
              "generic skeleton is used", file=sys.stderr)
    return sk


def session_body_height_m(config_yaml: str) -> float:
    """The recorded `pose.landmarks.body_height_m` (1.70 m without a config)."""
    return float(_landmarks_config(config_yaml).get("body_height_m", 1.70))


def segments_skeleton(height_m: float, segments_m: np.ndarray) -> Skeleton:
    """The skeleton the landmark engine fits a person with: the generic skeleton at `height_m`
    with the person's estimated segment lengths ((7,) m, MEASURED_SEGMENTS order) in place."""
    return generic_skeleton(height_m, dict(zip(MEASURED_SEGMENTS, np.asarray(segments_m, float))))


def person_skeleton(config_yaml: str, segments_m: np.ndarray | None) -> Skeleton:
    """A recorded person's skeleton: `segments_skeleton` at the recorded body height, or
    `session_skeleton` when the person has no estimated segment lengths."""
    if segments_m is None:
        return session_skeleton(config_yaml)
    return segments_skeleton(session_body_height_m(config_yaml), segments_m)


class PersonSkeletons:
    """Rest offsets for a frame's people, for one batched FK (`posed_joints`): each person's own
    build where the message carries `segments_m`, else `default`. Cached per set of lengths (an
    engine keeps a person's lengths once estimated, so they rarely change)."""

    def __init__(self, default: Skeleton, height_m: float, capacity: int = 256):
        self.default, self.height_m, self.capacity = default, height_m, capacity
        self._cache: dict[bytes, np.ndarray] = {}

    def offsets(self, persons: list) -> np.ndarray:
        """(24, 3) when nobody carries segment lengths, else (P, 24, 3) m."""
        if all(p.segments_m is None for p in persons):
            return self.default.offsets_m
        return np.stack([self._person(p.segments_m) for p in persons])

    def _person(self, segments_m) -> np.ndarray:
        if segments_m is None:
            return self.default.offsets_m
        key = np.asarray(segments_m, np.float32).tobytes()
        off = self._cache.get(key)
        if off is None:
            if len(self._cache) >= self.capacity:
                self._cache.clear()
            off = self._cache[key] = segments_skeleton(self.height_m, segments_m).offsets_m
        return off


def skeleton_note(config_yaml: str) -> str:
    """What a person without estimated segment lengths is drawn with (for export warnings)."""
    lm = _landmarks_config(config_yaml)
    path = lm.get("skel_model_path")
    if path and os.path.exists(path):
        return f"the SKEL model's joints ({path})"
    return f"the generic skeleton at the recorded body height {session_body_height_m(config_yaml):.2f} m"


def configured_camera_poses(config) -> dict:
    """stream id -> `sources.N.camera_pose` of a run's PipelineConfig (picklable, for stages)."""
    from stream.pipeline import stream_ids

    return {sid: src.camera_pose for sid, src in zip(stream_ids(config), config.sources)
            if getattr(src, "camera_pose", None) is not None}


def worlds_from_camera_poses(camera_poses: dict) -> dict:
    """stream id -> `sinks.world_frame.WorldFrame` of the given camera poses."""
    from sinks.world_frame import from_camera_pose

    return {sid: from_camera_pose(cp) for sid, cp in camera_poses.items()}


def session_worlds(session: str, frames: list, metadata: dict, what: str) -> dict:
    """The session's world frames (configured, stored, or estimated and stored: see
    `sinks.world_frame`); {} with a warning naming `what` falls back when there are none."""
    from sinks.world_frame import resolve_world_frames
    from stream.errors import UserError

    try:
        return resolve_world_frames(session, frames, metadata)
    except UserError as exc:
        print(f"warning: export: {what} without a world frame: {exc}", file=sys.stderr)
        return {}
