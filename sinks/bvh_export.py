"""BVH export of a recorded session: one file per (stream, track), the SKEL tree as the hierarchy.

    python -m sinks.export SESSION --out DIR --format bvh

Hierarchy: the 24 SKEL joints under their SKEL names, OFFSET = the rest offset from the parent in
the parent's frame (metres). Channels: one `<axis>rotation` per SKEL DoF of the joint, in SKEL's
composition order (`engines/skel/kinematics.py`: R_joint = A1(s1 q1) A2(s2 q2) A3(s3 q3)), value
`s * q` in degrees, so each is exactly one DoF (sign folded in); joints with fewer than three DoFs
get their unused axes as trailing channels that stay 0 (Blender's importer needs three rotation
channels per joint). Root (pelvis): `Xposition Yposition Zposition Zrotation Xrotation Yrotation`.

World frame: the session's gravity-aligned world (`sinks/world_frame.py`: y up, floor at y = 0,
z toward the camera, metres) when it has or can estimate one, else the camera frame turned 180 deg
about x (y up, z toward the camera). The pelvis orientation is re-expressed in it as intrinsic
Z-X-Y angles (the same rotation, unwrapped over time), the root position is the recorded `trans_m`
mapped the same way.

Offsets: each person's own skeleton, the one the landmark engine fitted them with: the generic
SKEL skeleton at `pose.landmarks.body_height_m` (recorded in the session's config) with the
person's estimated segment lengths (`segments_m`, the last the track recorded; the engine keeps
them once measured, so the frames before it were fitted on the generic lengths). A track without
them (recorded before the field existed, by SKEL-CF, or too briefly seen) gets the generic
skeleton, or the licensed SKEL joints when `pose.landmarks.skel_model_path` was set and the file
is here, with a note on stderr.

Time: BVH needs one frame time. Frame k of a track is source frame `seq0 + k` (its `seq`); the frame
time is the median interval per source frame of that track, on the file's presentation times
(`media_pts_s`) when every frame has one, else on the capture times. Source frames without a pose
for the track (dropped, or the track not posed) repeat the previous pose and are counted. A
lossless run's capture times follow the processing rate, so without presentation times the export
warns that the frame time is not the video's.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from engines.skel.dofs import JOINT_NAMES, JOINT_PARENTS, NUM_JOINTS, joint_dofs
from engines.skel.kinematics import DOF_AXIS, DOF_SIGN, Skeleton, root_rotation
from sinks.schema import FrameMsg, stream_file_stem
from sinks.session_skeleton import person_skeleton, recorded_lossless, skeleton_note
from stream.errors import RecorderError

CAMERA_TO_BVH = np.diag([1.0, -1.0, -1.0])
"""Camera frame (y down, z forward) -> BVH world (y up, z toward the camera): 180 deg about x."""
ROOT_ROTATION_ORDER = "ZXY"
_AXIS_NAME = "XYZ"
_JOINT_DOFS = tuple(tuple(int(d) for d in joint_dofs(j)) for j in range(NUM_JOINTS))
_CHILDREN: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c in range(NUM_JOINTS) if JOINT_PARENTS[c] == j) for j in range(NUM_JOINTS))


def joint_channels(j: int) -> list[str]:
    """BVH channel names of SKEL joint j: the root's position + Z X Y rotation; else one rotation
    per SKEL DoF in SKEL's order, then the joint's unused axes (always 0) so every joint has the
    three rotation channels common importers require (Blender's rejects fewer)."""
    if j == 0:
        return ["Xposition", "Yposition", "Zposition"] + [f"{a}rotation" for a in ROOT_ROTATION_ORDER]
    axes = [_AXIS_NAME[int(np.argmax(np.abs(DOF_AXIS[d])))] for d in _JOINT_DOFS[j]]
    return [f"{a}rotation" for a in axes + [a for a in _AXIS_NAME if a not in axes]]


def hierarchy_order() -> list[int]:
    """SKEL joints in the depth-first order the hierarchy (and so each MOTION row) lists them."""
    out: list[int] = []

    def visit(j: int) -> None:
        out.append(j)
        for c in _CHILDREN[j]:
            visit(c)
    visit(0)
    return out


def hierarchy_text(skeleton: Skeleton, end_site_m: float = 0.05) -> str:
    """The HIERARCHY section; leaves get an End Site `end_site_m` along their bone (-y, toes: +x)."""
    lines = ["HIERARCHY"]

    def visit(j: int, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if j == 0 else "JOINT"
        off = skeleton.offsets_m[j]
        lines.append(f"{pad}{kind} {JOINT_NAMES[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        ch = joint_channels(j)
        lines.append(f"{pad}  CHANNELS {len(ch)} {' '.join(ch)}")
        if _CHILDREN[j]:
            for c in _CHILDREN[j]:
                visit(c, depth + 1)
        else:
            tip = (end_site_m, 0.0, 0.0) if JOINT_NAMES[j].startswith("toes") else (0.0, -end_site_m, 0.0)
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")
    visit(0, 0)
    return "\n".join(lines) + "\n"


def motion_rows(q: np.ndarray, root_m: np.ndarray, r_wc: np.ndarray = CAMERA_TO_BVH,
                t_wc: np.ndarray | None = None) -> np.ndarray:
    """(N, 46) q radians and (N, 3) pelvis positions (camera frame, m) -> (N, C) channel values
    in hierarchy order: root position (BVH world p = r_wc p_cam + t_wc, m), angles in degrees."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(q, dtype=np.float64)
    r_world = r_wc @ root_rotation(q)                               # (N, 3, 3)
    root_deg = np.rad2deg(np.unwrap(Rotation.from_matrix(r_world).as_euler(ROOT_ROTATION_ORDER),
                                    axis=0))
    dof_deg = np.rad2deg(q * DOF_SIGN)
    cols = []
    for j in hierarchy_order():
        if j == 0:
            pos = np.asarray(root_m, np.float64) @ r_wc.T + (0.0 if t_wc is None else t_wc)
            cols += [pos, root_deg]
        else:
            cols.append(dof_deg[:, list(_JOINT_DOFS[j])])
            pad = 3 - len(_JOINT_DOFS[j])          # the joint's unused axes: identity rotations
            if pad:
                cols.append(np.zeros((len(q), pad)))
    return np.concatenate(cols, axis=1)


def write_bvh(path: str, skeleton: Skeleton, q: np.ndarray, root_m: np.ndarray,
              frame_time_s: float, r_wc: np.ndarray = CAMERA_TO_BVH,
              t_wc: np.ndarray | None = None) -> None:
    """One BVH file: hierarchy of `skeleton`, motion of q (N, 46) rad and root_m (N, 3) camera m,
    in the world p = r_wc p_cam + t_wc (y up)."""
    rows = motion_rows(q, root_m, r_wc, t_wc)
    with open(path, "w", newline="\n") as f:
        f.write(hierarchy_text(skeleton))
        f.write(f"MOTION\nFrames: {len(rows)}\nFrame Time: {frame_time_s:.9f}\n")
        np.savetxt(f, rows, fmt="%.6f")


@dataclass
class TrackMotion:
    """One track's motion on the source's frame grid."""
    stream: str
    track_id: int
    q: np.ndarray            # (N, 46) rad
    root_m: np.ndarray       # (N, 3) camera frame, m
    frame_time_s: float
    held: int                # grid frames that repeat the previous pose
    clock: str = "capture"   # "media": the file's presentation times; "capture": capture times
    segments_m: np.ndarray | None = None  # (7,) the person's estimated segment lengths (last recorded)


def track_motions(frames: list[FrameMsg]) -> list[TrackMotion]:
    """Group frames per (stream, track) and lay them on the seq grid (gaps held)."""
    rows: dict[tuple[str, int], list[tuple]] = {}  # (seq, capture_ns, q, trans_m, media_pts_s, segments_m)
    seen: set[tuple[str, int]] = set()
    for f in frames:
        for p in f.persons:
            seen.add((f.stream, p.track_id))
            if p.q is not None:
                rows.setdefault((f.stream, p.track_id), []).append(
                    (f.seq, f.capture_ns, p.q, p.trans_m, f.media_pts_s, p.segments_m))
    if not rows:
        what = f"{len(seen)} tracks, none with" if seen else "no person with"
        raise RecorderError(f"the session has {what} joint angles (field q): nothing to write as "
                            "BVH; record with a pose engine enabled")
    out = []
    for (sid, tid), r in sorted(rows.items()):
        r = list({x[0]: x for x in sorted(r, key=lambda x: x[0])}.values())  # one row per seq
        seqs = np.array([x[0] for x in r])
        if not any(x[3] is not None for x in r):
            raise RecorderError(f"stream {sid} track {tid}: no frame has the pelvis translation "
                                "(field trans_m) that BVH's root position needs; the session was "
                                "recorded without it")
        n = int(seqs[-1] - seqs[0]) + 1
        idx = np.searchsorted(seqs, seqs[0] + np.arange(n), side="right") - 1  # hold the last pose
        q = np.stack([x[2] for x in r]).astype(np.float64)[idx]
        trans = []
        last = next(x[3] for x in r if x[3] is not None)
        for x in r:
            last = x[3] if x[3] is not None else last
            trans.append(last)
        root = np.stack(trans).astype(np.float64)[idx]
        media = all(x[4] is not None for x in r)
        t = np.array([x[4] * 1e9 if media else x[1] for x in r], dtype=np.float64)
        per_frame = np.diff(t) / np.diff(seqs) if len(r) > 1 else np.array([])
        per_frame = per_frame[per_frame > 0]
        dt = float(np.median(per_frame)) / 1e9 if len(per_frame) else 1.0 / 30.0
        segments = [x[5] for x in r if x[5] is not None]
        out.append(TrackMotion(sid, tid, q, root, dt, held=n - len(r),
                               clock="media" if media else "capture",
                               segments_m=segments[-1] if segments else None))
    return out


def export_bvh(frames: list[FrameMsg], out_dir: str, config_yaml: str = "",
               worlds: dict | None = None) -> list[str]:
    """`<stream>_track<id>.bvh` per track with a pose; returns the paths written. `worlds`:
    stream id -> `sinks.world_frame.WorldFrame` (y up, floor at 0); other streams use the camera
    frame turned 180 deg about x."""
    worlds = worlds or {}
    paths = []
    motions = track_motions(frames)
    generic = [f"{m.stream} track {m.track_id}" for m in motions if m.segments_m is None]
    if generic:
        print(f"note: export: no estimated segment lengths recorded for {', '.join(generic)} "
              "(field segments_m: written by the landmark engine once it has measured a person; "
              "SKEL-CF estimates betas, which need the licensed SKEL model to give joints): their "
              f"BVH offsets come from {skeleton_note(config_yaml)}", file=sys.stderr)
    if recorded_lossless(config_yaml) and any(m.clock == "capture" for m in motions):
        print("warning: export: the session ran in lossless mode without the file's presentation "
              "times, so the BVH frame time follows the processing rate, not the video's; set "
              "Frame Time by hand to the source's 1/fps for real-time playback", file=sys.stderr)
    for m in motions:
        path = os.path.join(out_dir, f"{stream_file_stem(m.stream)}_track{m.track_id}.bvh")
        wf = worlds.get(m.stream)
        sk = person_skeleton(config_yaml, m.segments_m)
        if wf is None:
            write_bvh(path, sk, m.q, m.root_m, m.frame_time_s)
        else:
            write_bvh(path, sk, m.q, m.root_m, m.frame_time_s, wf.r_wc, wf.t_wc)
        if m.held:
            print(f"export: {path}: {m.held} of {len(m.q)} frames repeat the previous pose "
                  "(frames dropped or the track not posed there)", file=sys.stderr)
        paths.append(path)
    return paths


def export_bvh_session(session: str, frames: list[FrameMsg], out_dir: str) -> list[str]:
    """BVH files of a recorded session, in its gravity-aligned world frame (`sinks.world_frame`:
    configured, stored, or estimated and stored) where there is one; where it cannot be had, the
    camera frame turned upright, with a warning."""
    from sinks.recorder import read_session
    from sinks.session_skeleton import session_worlds

    track_motions(frames)  # a session lacking q or trans_m stops here, before any world frame work
    metadata = read_session(session).metadata
    config_yaml = metadata.get("skelstream.config", {}).get("yaml", "")
    worlds = session_worlds(session, frames, metadata,
                            "BVH in the camera frame turned upright (y up, floor unknown)")
    return export_bvh(frames, out_dir, config_yaml, worlds)
