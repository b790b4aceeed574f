"""OpenSim motion files (.mot) that a model plays as recorded: world frame, pelvis translation,
the target model's coordinate names and sign conventions.

Targets (`--opensim-model`):
- `pose2sim`: Pose2Sim's `Model_Pose2Sim_simple.osim` (in the pose2sim wheel). Checked by loading
  the exported file onto that model with the `opensim` package (tests/test_opensim_export.py).
- `rajagopal`: Rajagopal et al. 2015 full-body model (OpenSim's `Rajagopal2015.osim`): the same
  joint definitions as Pose2Sim's (which derives from it) with `lumbar_*` names and no neck. Axes,
  orders, flips and the hip centre were read from a public copy of that file; the tests cannot
  play it in OpenSim (no registry package ships it).
- `skel`: SKEL's own 46 DoF names and conventions, the pelvis in the world frame, plus
  `pelvis_tx/ty/tz` (SKEL's pelvis origin: the midpoint of the hip joint centres).

How a coordinate is made: a single-axis joint whose definition matches SKEL's (knee, ankle,
elbow, hips: same axes, order and flips) is copied. Where the model's bodies differ from SKEL's
(SKEL splits the spine into lumbar + thorax and has a scapula between thorax and humerus) the
child body's orientation relative to its parent body is computed by SKEL forward kinematics and
decomposed in the model's joint axis order (OpenSim CustomJoint: R = R1(q1) R2(q2) R3(q3), body-
fixed). The pelvis is decomposed the same way from its orientation in the world frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from engines.skel.dofs import DOF_INDEX, DOF_NAMES
from engines.skel.kinematics import Skeleton, forward_kinematics
from sinks.schema import FrameMsg, stream_file_stem
from sinks.world_frame import WorldFrame


@dataclass(frozen=True)
class EulerJoint:
    """Coordinates = Euler angles (intrinsic `order`, times `signs`) of SKEL joint `child`'s frame
    relative to SKEL joint `parent`'s frame (-1: the world frame)."""
    coords: tuple[str, str, str]
    parent: int
    child: int
    order: str = "ZXY"
    signs: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Copy:
    """Coordinate = sign * SKEL DoF + offset (radians)."""
    coord: str
    dof: str
    sign: float = 1.0
    offset_rad: float = 0.0


@dataclass(frozen=True)
class OpenSimTarget:
    name: str
    joints: tuple[EulerJoint | Copy, ...]
    pelvis_origin_m: tuple[float, float, float]  # model pelvis origin - hip-centre midpoint, pelvis frame
    model: str                                   # which model file the names are those of

    @property
    def columns(self) -> tuple[str, ...]:
        names: list[str] = []
        for j in self.joints:
            names += list(j.coords) if isinstance(j, EulerJoint) else [j.coord]
            if isinstance(j, EulerJoint) and j.parent == -1:
                names += ["pelvis_tx", "pelvis_ty", "pelvis_tz"]
        return tuple(names)


_PELVIS = EulerJoint(("pelvis_tilt", "pelvis_list", "pelvis_rotation"), -1, 0)
_THORAX, _HEAD, _HUMERUS_R, _HUMERUS_L = 12, 13, 15, 20


def _legs() -> tuple[Copy, ...]:
    out = []
    for s in ("r", "l"):
        out += [Copy(f"hip_flexion_{s}", f"hip_flexion_{s}"),
                Copy(f"hip_adduction_{s}", f"hip_adduction_{s}"),
                Copy(f"hip_rotation_{s}", f"hip_rotation_{s}"),
                Copy(f"knee_angle_{s}", f"knee_angle_{s}"),
                Copy(f"ankle_angle_{s}", f"ankle_angle_{s}"),
                Copy(f"subtalar_angle_{s}", f"subtalar_angle_{s}"),
                Copy(f"mtp_angle_{s}", f"mtp_angle_{s}")]
    return tuple(out)


def _arms(pro_sup_offset_rad: float) -> tuple[EulerJoint | Copy, ...]:
    out: list[EulerJoint | Copy] = []
    for s, hum, signs in (("r", _HUMERUS_R, (1.0, 1.0, 1.0)), ("l", _HUMERUS_L, (1.0, -1.0, -1.0))):
        out += [EulerJoint((f"arm_flex_{s}", f"arm_add_{s}", f"arm_rot_{s}"), _THORAX, hum,
                           signs=signs),
                Copy(f"elbow_flex_{s}", f"elbow_flexion_{s}"),
                Copy(f"pro_sup_{s}", f"pro_sup_{s}", offset_rad=pro_sup_offset_rad),
                Copy(f"wrist_flex_{s}", f"wrist_flexion_{s}"),
                Copy(f"wrist_dev_{s}", f"wrist_deviation_{s}")]
    return tuple(out)


TARGETS: dict[str, OpenSimTarget] = {
    "pose2sim": OpenSimTarget(
        "pose2sim",
        (_PELVIS, *_legs(),
         EulerJoint(("L5_S1_Flex_Ext", "L5_S1_Lat_Bending", "L5_S1_axial_rotation"), 0, _THORAX),
         EulerJoint(("neck_flexion", "neck_bending", "neck_rotation"), _THORAX, _HEAD),
         # the model's forearm is neutral at pro_sup = 90 deg (its default), SKEL's at 0
         *_arms(np.pi / 2)),
        (0.0707, 0.0661, 0.0), "Pose2Sim/OpenSim_Setup/Model_Pose2Sim_simple.osim"),
    "rajagopal": OpenSimTarget(
        "rajagopal",
        (_PELVIS, *_legs(),
         EulerJoint(("lumbar_extension", "lumbar_bending", "lumbar_rotation"), 0, _THORAX),
         *_arms(0.0)),
        (0.056276, 0.07849, 0.0), "Rajagopal2015.osim"),
    "skel": OpenSimTarget(
        "skel",
        (_PELVIS, *(Copy(n, n) for n in DOF_NAMES[3:])),
        (0.0, 0.0, 0.0), "SKEL (skel_dofs.txt names)"),
}


def is_translation(column: str) -> bool:
    return column.endswith(("_tx", "_ty", "_tz"))


def opensim_coordinates(target: OpenSimTarget, q: np.ndarray, trans_cam_m: np.ndarray,
                        wf: WorldFrame, skeleton: Skeleton) -> np.ndarray:
    """(N, 46) SKEL q (rad, pelvis in the camera frame) and (N, 3) pelvis positions (m, camera
    frame) of one track -> (N, len(target.columns)) float64: radians, translations in metres,
    world frame. Euler-derived angles are unwrapped over time (no 360 deg jumps between rows)."""
    q = np.asarray(q, np.float64)
    rots = np.stack([forward_kinematics(qi, skeleton).rots for qi in q])     # (N, 24, 3, 3)
    r_pelvis_w = wf.rotations(rots[:, 0])                                    # (N, 3, 3)
    cols: list[np.ndarray] = []
    for j in target.joints:
        if isinstance(j, Copy):
            cols.append(j.sign * q[:, DOF_INDEX[j.dof]] + j.offset_rad)
            continue
        rel = r_pelvis_w if j.parent == -1 else (
            np.swapaxes(rots[:, j.parent], 1, 2) @ rots[:, j.child])
        ang = continuous_euler(Rotation.from_matrix(rel).as_euler(j.order.upper()))
        cols += list((ang * np.asarray(j.signs)).T)
        if j.parent == -1:
            origin = wf.points(trans_cam_m) + r_pelvis_w @ np.asarray(target.pelvis_origin_m)
            cols += list(origin.T)
    return np.stack(cols, axis=1)


def continuous_euler(ang: np.ndarray) -> np.ndarray:
    """(N, 3) Tait-Bryan angles (middle angle in [-90, 90] deg, as scipy returns them) -> the
    same rotations as a time-continuous series: per row the branch (a, b, c) or its twin
    (a + pi, pi - b, c + pi) nearer the previous row, then unwrapped. Near gimbal lock (the middle
    angle at +-90 deg, e.g. an arm abducted to the horizontal) the principal branch jumps by
    180 deg; the twin keeps a model moving smoothly through it."""
    out = np.array(ang, np.float64)
    for i in range(1, len(out)):
        twin = out[i] + np.array([np.pi, 0.0, np.pi])
        twin[1] = np.pi - out[i, 1]
        d_same = np.abs(np.angle(np.exp(1j * (out[i] - out[i - 1])))).sum()
        d_twin = np.abs(np.angle(np.exp(1j * (twin - out[i - 1])))).sum()
        if d_twin < d_same:
            out[i] = twin
        out[i] = out[i - 1] + np.angle(np.exp(1j * (out[i] - out[i - 1])))  # unwrap
    return out


def write_storage(path: str, name: str, time_s: np.ndarray, columns: tuple[str, ...],
                  values: np.ndarray, note: str) -> None:
    """OpenSim Storage (.mot), `inDegrees=yes`: rotational columns are converted from radians,
    translations (`*_tx/ty/tz`) stay in metres."""
    v = np.array(values, np.float64)
    rot = np.array([not is_translation(c) for c in columns])
    v[:, rot] = np.rad2deg(v[:, rot])
    with open(path, "w", newline="\n") as f:
        f.write(f"{name}\nversion=1\nnRows={len(time_s)}\nnColumns={len(columns) + 1}\n"
                "inDegrees=yes\n\nUnits are S.I. units (second, meters, Newtons, ...)\n"
                f"Angles are in degrees. {note}\n\nendheader\n")
        f.write("time\t" + "\t".join(columns) + "\n")
        for t, row in zip(time_s, v):
            f.write(f"{t:.6f}\t" + "\t".join(f"{x:.6f}" for x in row) + "\n")


@dataclass
class TrackSeries:
    """One (stream, track): rows where it had a pose. time_s (N,) s (`frame_times`); q (N, 46) rad; trans_m (N, 3) camera frame; predicted (N,) bool."""
    stream: str
    track_id: int
    time_s: np.ndarray
    q: np.ndarray
    trans_m: np.ndarray
    predicted: np.ndarray

    @property
    def file_stem(self) -> str:
        return f"{stream_file_stem(self.stream)}_track{self.track_id}"


def frame_times(frames: list[FrameMsg], t0_ns: int) -> dict[int, float]:
    """id(frame) -> its time in seconds. A stream whose every frame carries the file's
    presentation time (`media_pts_s`, increasing: no loop) uses it, so a lossless run slower than
    real time keeps the motion's real timing; otherwise (live cameras, old recordings) capture
    time since the session's first frame."""
    by_stream: dict[str, list[FrameMsg]] = {}
    for f in frames:
        by_stream.setdefault(f.stream, []).append(f)
    out: dict[int, float] = {}
    for fs in by_stream.values():
        pts = [f.media_pts_s for f in fs if f.persons]   # the end-of-file flush repeats a pts
        media = all(p is not None for p in pts) and all(b > a for a, b in zip(pts, pts[1:]))
        for f in fs:
            out[id(f)] = float(f.media_pts_s) if media else (f.capture_ns - t0_ns) / 1e9
    return out


def track_series(frames: list[FrameMsg], t0_ns: int) -> list[TrackSeries]:
    """Every track's posed rows in time order (rows without q or translation left out)."""
    times = frame_times(frames, t0_ns)
    rows: dict[tuple[str, int], list] = {}
    for f in frames:
        for p in f.persons:
            if p.q is not None and p.trans_m is not None:
                rows.setdefault((f.stream, p.track_id), []).append(
                    (times[id(f)], p.q, p.trans_m, p.predicted))
    return [TrackSeries(sid, tid, np.array([r[0] for r in rs]), np.stack([r[1] for r in rs]),
                        np.stack([r[2] for r in rs]).astype(np.float64),
                        np.array([r[3] for r in rs], bool))
            for (sid, tid), rs in sorted(rows.items())]


def export_mot(series: list[TrackSeries], frames_of: dict[str, WorldFrame], out_dir: str,
               target: OpenSimTarget, skeleton: Skeleton) -> list[str]:
    """One `<stream>_track<id>.mot` per track in `out_dir`; returns the paths."""
    import os

    paths = []
    for s in series:
        wf = frames_of[s.stream]
        vals = opensim_coordinates(target, s.q, s.trans_m, wf, skeleton)
        path = os.path.join(out_dir, f"{s.file_stem}.mot")
        write_storage(path, f"{s.stream} track {s.track_id}", s.time_s, target.columns, vals,
                      f"Coordinates of {target.model}; pelvis in the {wf.source} world frame "
                      "(y up, floor at y = 0), exported by skelstream. "
                      f"{int(s.predicted.sum())} of {len(s.time_s)} rows are the smoother's "
                      "prediction without a fresh measurement ('predicted' in poses.csv).")
        paths.append(path)
    return paths
