"""Marker trajectories (.trc) with Pose2Sim's BlazePose marker names, in the world frame, metres.

What the markers are: the keypoints of our fitted skeleton (SKEL forward kinematics of the
recorded q on the generic skeleton of the session's body height, placed at the recorded pelvis
translation), not BlazePose's raw landmarks, which a recording does not hold. Running OpenSim's
scaling and inverse kinematics on them with Pose2Sim's `Markers_BlazePose.xml`,
`Scaling_Setup_Pose2Sim_Blazepose.xml` and `IK_Setup_Pose2Sim_Blazepose.xml` therefore measures
how OpenSim's model reproduces our joint angles from the same points (bench/bench_opensim_ik.py).
Hands (thumb, index, pinky) are left out: the fit never observes the wrists.
"""
from __future__ import annotations

import os

import numpy as np

from engines.skel.kinematics import Skeleton, forward_kinematics, keypoints_from_fk
from sinks.opensim_mot import TrackSeries
from sinks.world_frame import WorldFrame

# Pose2Sim marker name -> keypoint of engines/skel/kinematics.generic_skeleton
BLAZEPOSE_MARKERS: dict[str, str] = {
    "Nose": "nose", "LEye": "left_eye", "REye": "right_eye",
    "LShoulder": "left_shoulder", "RShoulder": "right_shoulder",
    "LElbow": "left_elbow", "RElbow": "right_elbow", "LWrist": "left_wrist", "RWrist": "right_wrist",
    "LHip": "left_hip", "RHip": "right_hip", "LKnee": "left_knee", "RKnee": "right_knee",
    "LAnkle": "left_ankle", "RAnkle": "right_ankle", "LBigToe": "left_foot_index",
    "RBigToe": "right_foot_index", "LHeel": "left_heel", "RHeel": "right_heel",
}


def marker_positions(s: TrackSeries, wf: WorldFrame, skeleton: Skeleton) -> np.ndarray:
    """(N, M, 3) float64 metres, world frame, markers in BLAZEPOSE_MARKERS order."""
    names = tuple(BLAZEPOSE_MARKERS.values())
    cam = np.stack([keypoints_from_fk(forward_kinematics(q, skeleton, t), skeleton, names)
                    for q, t in zip(np.asarray(s.q, np.float64), s.trans_m)])
    return wf.points(cam)


def write_trc(path: str, time_s: np.ndarray, names: tuple[str, ...], xyz_m: np.ndarray) -> None:
    """OpenSim/Pose2Sim TRC: `time_s` (N,), `xyz_m` (N, M, 3) metres (the header says m)."""
    n, m = xyz_m.shape[:2]
    dt = np.diff(time_s)
    rate = float(1.0 / np.median(dt)) if n > 1 and np.median(dt) > 0 else 30.0
    with open(path, "w", newline="\n") as f:
        f.write(f"PathFileType\t4\t(X/Y/Z)\t{os.path.basename(path)}\n")
        f.write("DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\t"
                "OrigDataStartFrame\tOrigNumFrames\n")
        f.write(f"{rate:.2f}\t{rate:.2f}\t{n}\t{m}\tm\t{rate:.2f}\t1\t{n}\n")
        f.write("Frame#\tTime\t" + "\t\t\t".join(names) + "\t\t\n")
        f.write("\t\t" + "\t".join(f"X{i + 1}\tY{i + 1}\tZ{i + 1}" for i in range(m)) + "\n\n")
        for i in range(n):
            f.write(f"{i + 1}\t{time_s[i]:.6f}\t"
                    + "\t".join(f"{v:.6f}" for v in xyz_m[i].ravel()) + "\n")


def read_trc(path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(marker names, time (N,), (N, M, 3)) of a .trc written by `write_trc`."""
    with open(path) as f:
        lines = f.read().splitlines()
    names = [x for x in lines[3].split("\t")[2:] if x]
    rows = np.array([list(map(float, ln.split("\t"))) for ln in lines[5:] if ln.strip()])
    rows = rows.reshape(-1, 2 + 3 * len(names))
    return names, rows[:, 1], rows[:, 2:].reshape(len(rows), len(names), 3)


def export_trc(series: list[TrackSeries], frames_of: dict[str, WorldFrame], out_dir: str,
               skeleton: Skeleton) -> list[str]:
    """One `<stream>_track<id>.trc` per track; returns the paths."""
    paths = []
    for s in series:
        xyz = marker_positions(s, frames_of[s.stream], skeleton)
        path = os.path.join(out_dir, f"{s.file_stem}.trc")
        write_trc(path, s.time_s, tuple(BLAZEPOSE_MARKERS), xyz)
        paths.append(path)
    return paths
