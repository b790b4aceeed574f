"""A walker seen by a camera of known pose: SKEL poses built in a y-up world, then expressed in
the camera frame the engines publish, so a world-frame estimate can be checked against truth."""
from __future__ import annotations

import time

import numpy as np
from scipy.spatial.transform import Rotation

from engines.skel.dofs import DOF_INDEX, NUM_DOFS
from engines.skel.kinematics import forward_kinematics, generic_skeleton, keypoints_from_fk
from engines.landmarks.fit import PRIOR_Q
from sinks.recorder import SessionRecorder
from sinks.world_frame import FOOT_POINTS, WorldFrame
from stream.packet import FrameInfo, Intrinsics, Packet, Person, TrackState


def walker_world(n: int, fps: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 46) q with the pelvis in the world frame, (n, 3) pelvis (hip-centre midpoint) world
    positions: a gait-like walk along +x at z = -4 m, the lower foot on the floor (y = 0)."""
    rng = np.random.default_rng(seed)
    sk = generic_skeleton(1.70)
    qs, ts = [], []
    for i in range(n):
        ph = 2 * np.pi * 0.9 * i / fps
        q = PRIOR_Q.copy()
        q[:3] = (0.05 * np.sin(ph), 0.03 * np.sin(ph / 2), 0.1 * np.sin(ph / 2))  # tilt, list, rot
        for s, sgn in (("r", 1.0), ("l", -1.0)):
            q[DOF_INDEX[f"hip_flexion_{s}"]] = 0.15 + 0.35 * sgn * np.sin(ph)
            q[DOF_INDEX[f"knee_angle_{s}"]] = 0.35 + 0.3 * np.sin(ph + sgn * np.pi / 2 + np.pi)
            q[DOF_INDEX[f"ankle_angle_{s}"]] = 0.1 * sgn * np.sin(ph)
        q[DOF_INDEX["elbow_flexion_r"]] = 0.5 + 0.3 * np.sin(ph)
        q[DOF_INDEX["elbow_flexion_l"]] = 0.5 - 0.3 * np.sin(ph)
        fk = forward_kinematics(q, sk)
        foot_y = keypoints_from_fk(fk, sk, FOOT_POINTS)[:, 1].min()
        root = np.array([-1.5 + 3.0 * i / n, -foot_y, -4.0])
        qs.append(q + np.r_[rng.normal(0, 0.01, 3), rng.normal(0, 0.01, NUM_DOFS - 3)])
        ts.append(root + rng.normal(0, 0.01, 3))
    return np.array(qs), np.array(ts)


def to_camera(q_world: np.ndarray, root_world: np.ndarray, wf: WorldFrame
              ) -> tuple[np.ndarray, np.ndarray]:
    """World-frame poses -> what an engine publishes: pelvis angles and translation in the camera
    frame (x right, y down, z forward)."""
    from engines.skel.kinematics import root_rotation

    r_cam = wf.r_wc.T @ root_rotation(q_world)
    q = q_world.copy()
    q[:, :3] = Rotation.from_matrix(r_cam).as_euler("ZXY")
    return q, (root_world - wf.t_wc) @ wf.r_wc


def record_walker(directory: str, wf: WorldFrame, n: int = 90, config_yaml: str = "",
                  name: str = "walk") -> str:
    """Record the walker as camera `wf` sees it into `directory/name`; returns the folder."""
    qw, tw = walker_world(n)
    q, t = to_camera(qw, tw, wf)
    t0_m, t0_u = time.monotonic_ns(), time.time_ns()
    with SessionRecorder(directory, name, config_yaml=config_yaml, min_free_disk_mb=0) as rec:
        for i in range(n):
            dt = int(i * 1e9 / 30)
            p = Person(track_id=1, track_state=TrackState.TRACKED,
                       box_xyxy=np.array([100, 50, 200, 400], np.float32), score=0.9,
                       q=q[i].astype(np.float32), trans_m=t[i].astype(np.float32),
                       pose_confidence=0.8, model_id="synthetic-walker")
            rec.write_packet(Packet(FrameInfo("cam0", i, t0_m + dt, t0_u + dt, 640, 480), [p],
                                    intrinsics=Intrinsics(500, 500, 320, 240)))
    return rec.path
