"""Export a session: OpenSim `.mot` / `.trc` per track, and every field as CSV and/or Parquet.

    python -m sinks.export SESSION --out DIR [--format mot,trc,csv,parquet,bvh,ros2]
                           [--opensim-model pose2sim|rajagopal|skel]

.mot: one file per (stream, track), `<stream>_track<id>.mot`: `time` (s: a file's presentation
time when every frame has one, else capture time since the session's first frame) and the chosen
OpenSim model's coordinates, pelvis orientation and translation in the session's gravity-aligned
world frame (y up; degrees, metres; sinks/opensim_mot.py, sinks/world_frame.py). .trc: Pose2Sim's BlazePose marker names, world
frame, metres (sinks/trc.py). Rows where the track had no pose are left out.
.bvh: one file per (stream, track), the SKEL tree as hierarchy (`sinks/bvh_export.py`).
ros2: `ros2.mcap`, ROS 2 JointState / TF / MarkerArray channels (`sinks/ros2_mcap.py`).
Table (`poses.csv` / `poses.parquet`): one row per person per frame; angles in radians, units in
the column names and (Parquet) in the field metadata.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from engines.skel.dofs import DOF_NAMES, NUM_BETAS, NUM_DOFS
from sinks.replay import load_frames
from sinks.schema import FrameMsg
from stream.errors import RecorderError, UserError, require

OPENSIM_MODELS = ("pose2sim", "rajagopal", "skel")  # sinks/opensim_mot.py TARGETS


def read_mot(path: str) -> tuple[list[str], np.ndarray]:
    """(column names, (N, C) float64) of a .mot file (for tests and quick checks)."""
    with open(path) as f:
        lines = f.read().splitlines()
    i = lines.index("endheader")
    cols = lines[i + 1].split("\t")
    rows = [list(map(float, ln.split("\t"))) for ln in lines[i + 2:] if ln.strip()]
    return cols, np.array(rows, np.float64).reshape(-1, len(cols))


def export_opensim(session: str, frames: list[FrameMsg], out_dir: str, t0_ns: int,
                   formats: tuple[str, ...], opensim_model: str) -> list[str]:
    """.mot / .trc per track, in the session's world frame (sinks/world_frame.py)."""
    from engines.skel.kinematics import generic_skeleton
    from sinks.opensim_mot import TARGETS, export_mot, track_series
    from sinks.recorder import read_session
    from sinks.trc import export_trc
    from sinks.world_frame import body_height_m, resolve_world_frames, session_config

    metadata = read_session(session).metadata
    series = track_series(frames, t0_ns)
    worlds = resolve_world_frames(session, frames, metadata, {s.stream for s in series})
    skeleton = generic_skeleton(body_height_m(session_config(metadata)))
    out = export_mot(series, worlds, out_dir, TARGETS[opensim_model], skeleton) if "mot" in formats else []
    return out + (export_trc(series, worlds, out_dir, skeleton) if "trc" in formats else [])


def _nan(a: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, np.nan, np.float32) if a is None else np.asarray(a, np.float32)


def frames_table(frames: list[FrameMsg], t0_ns: int):
    """pyarrow.Table: one row per person per frame, every field of the schema."""
    pa = require("pyarrow", "export", "CSV/Parquet export")
    cols: dict[str, list] = {k: [] for k in (
        "stream", "seq", "time_s", "capture_ns", "capture_utc_ns", "publish_utc_ns", "width",
        "height", "fx_px", "fy_px", "cx_px", "cy_px", "track_id", "state", "score",
        "box_predicted", "predicted", "confidence", "model_id")}
    arrays: dict[str, list] = {"bbox": [], "q": [], "q_vel": [], "limit": [], "q_pred": [],
                               "betas": [], "trans": [], "orient": []}
    for f in frames:
        k = f.intrinsics
        for p in f.persons:
            for key, val in (("stream", f.stream), ("seq", f.seq),
                             ("time_s", (f.capture_ns - t0_ns) / 1e9),
                             ("capture_ns", f.capture_ns), ("capture_utc_ns", f.capture_utc_ns),
                             ("publish_utc_ns", f.publish_utc_ns), ("width", f.width),
                             ("height", f.height), ("fx_px", k.fx if k else None),
                             ("fy_px", k.fy if k else None), ("cx_px", k.cx if k else None),
                             ("cy_px", k.cy if k else None), ("track_id", p.track_id),
                             ("state", p.state), ("score", p.score),
                             ("box_predicted", p.box_predicted), ("predicted", p.predicted),
                             ("confidence", p.confidence), ("model_id", p.model_id)):
                cols[key].append(val)
            arrays["bbox"].append(p.bbox_xyxy)
            arrays["q"].append(_nan(p.q, NUM_DOFS))
            arrays["q_vel"].append(_nan(p.q_vel, NUM_DOFS))
            arrays["limit"].append(np.zeros(NUM_DOFS, bool) if p.limit_active is None
                                   else p.limit_active)
            arrays["q_pred"].append(np.zeros(NUM_DOFS, bool) if p.q_predicted is None
                                    else p.q_predicted)
            arrays["betas"].append(_nan(p.betas, NUM_BETAS))
            arrays["trans"].append(_nan(p.trans_m, 3))
            arrays["orient"].append(_nan(p.root_orient_wxyz, 4))
    n = len(cols["stream"])
    fields, data = [], []
    units = {"time_s": "s", "capture_ns": "ns monotonic", "capture_utc_ns": "ns UTC",
             "publish_utc_ns": "ns UTC"}
    for key, vals in cols.items():
        data.append(pa.array(vals))
        fields.append(pa.field(key, data[-1].type, metadata={"unit": units.get(key, "")}))

    def block(name: str, width: int, labels: list[str], unit: str, dtype=np.float32):
        a = np.stack(arrays[name]).astype(dtype) if n else np.zeros((0, width), dtype)
        for j, lab in enumerate(labels):
            data.append(pa.array(a[:, j]))
            fields.append(pa.field(lab, data[-1].type, metadata={"unit": unit}))

    block("bbox", 4, ["bbox_x1_px", "bbox_y1_px", "bbox_x2_px", "bbox_y2_px"], "px")
    block("q", NUM_DOFS, [f"{d}_rad" for d in DOF_NAMES], "rad")
    block("q_vel", NUM_DOFS, [f"{d}_vel_rad_s" for d in DOF_NAMES], "rad/s")
    block("limit", NUM_DOFS, [f"{d}_limit_active" for d in DOF_NAMES], "", dtype=bool)
    block("q_pred", NUM_DOFS, [f"{d}_predicted" for d in DOF_NAMES], "", dtype=bool)
    block("betas", NUM_BETAS, [f"beta_{i}" for i in range(NUM_BETAS)], "")
    block("trans", 3, ["trans_x_m", "trans_y_m", "trans_z_m"], "m, camera frame (x right, y down, z forward)")
    block("orient", 4, ["orient_w", "orient_x", "orient_y", "orient_z"], "unit quaternion, camera frame")
    return pa.Table.from_arrays(data, schema=pa.schema(fields))


def export_session(session: str, out_dir: str, formats: tuple[str, ...] = ("mot", "csv", "parquet"),
                   opensim_model: str = "pose2sim") -> list[str]:
    """Write the requested exports into `out_dir`; returns the files written."""
    bad = set(formats) - {"mot", "trc", "csv", "parquet", "bvh", "ros2"}
    if bad:
        raise UserError(f"unknown export format(s) {sorted(bad)}; use mot, trc, csv, parquet, bvh, ros2")
    if opensim_model not in OPENSIM_MODELS:
        raise UserError(f"unknown --opensim-model {opensim_model!r}; use one of {', '.join(OPENSIM_MODELS)}")
    frames = load_frames(session)
    t0 = frames[0].capture_ns
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise RecorderError(f"cannot create export folder {out_dir} ({exc.strerror})") from None
    written: list[str] = []
    if "bvh" in formats:
        from sinks.bvh_export import export_bvh_session

        written += export_bvh_session(session, frames, out_dir)
    if "ros2" in formats:
        from sinks.ros2_mcap import export_ros2_session

        written += export_ros2_session(session, frames, out_dir)
    if "csv" in formats or "parquet" in formats:
        table = frames_table(frames, t0)
        if "csv" in formats:
            import pyarrow.csv as pacsv

            written.append(os.path.join(out_dir, "poses.csv"))
            pacsv.write_csv(table, written[-1])
        if "parquet" in formats:
            import pyarrow.parquet as pq

            written.append(os.path.join(out_dir, "poses.parquet"))
            pq.write_table(table, written[-1])
    if "mot" in formats or "trc" in formats:  # last: a missing world frame stops only these
        written += export_opensim(session, frames, out_dir, t0, formats, opensim_model)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinks.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("session", help="session folder or its poses.mcap")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--format", default="mot,csv,parquet", help="comma list: mot,trc,csv,parquet,bvh,ros2")
    ap.add_argument("--opensim-model", default="pose2sim", choices=OPENSIM_MODELS,
                    help="coordinate names and conventions of the .mot (default: pose2sim)")
    a = ap.parse_args(argv)
    try:
        files = export_session(a.session, a.out, tuple(x for x in a.format.split(",") if x),
                               a.opensim_model)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
