"""The skeleton a recorded session was fitted with, for exports that need geometry (BVH, ROS 2)."""
from __future__ import annotations

import os
import sys

from engines.skel.kinematics import Skeleton, generic_skeleton, load_skel_joints


def recorded_config(session: str) -> str:
    """The config YAML a session was recorded with ('' when the file has none)."""
    from sinks.recorder import read_session

    return read_session(session).metadata.get("skelstream.config", {}).get("yaml", "")


def _config(config_yaml: str) -> dict:
    import yaml

    try:
        cfg = yaml.safe_load(config_yaml) or {}
    except yaml.YAMLError:
        cfg = {}
    return cfg if isinstance(cfg, dict) else {}


def recorded_lossless(config_yaml: str) -> bool:
    """True when the session ran in lossless mode: capture times then follow the processing
    rate, not the source's frame rate."""
    cfg = _config(config_yaml)
    return bool((cfg.get("runtime") or {}).get("lossless")) or any(
        isinstance(s, dict) and s.get("mode") == "lossless" for s in cfg.get("sources") or [])


def session_skeleton(config_yaml: str) -> Skeleton:
    """The generic SKEL skeleton at the recorded `pose.landmarks.body_height_m` (1.70 m when the
    session has no config), or the licensed SKEL joints when `pose.landmarks.skel_model_path` was
    set and that file is here. Per-person segment lengths are not in recordings."""
    lm = (_config(config_yaml).get("pose") or {}).get("landmarks") or {}
    sk = generic_skeleton(float(lm.get("body_height_m", 1.70)))
    path = lm.get("skel_model_path")
    if path and os.path.exists(path):
        sk = Skeleton(offsets_m=load_skel_joints(path, lm.get("skel_gender", "male")),
                      keypoints=sk.keypoints)
    elif path:
        print(f"warning: export: the session was fitted on {path}, which is not here; the "
              "generic skeleton is used", file=sys.stderr)
    return sk
