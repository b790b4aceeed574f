"""Export a session: OpenSim `.mot` per track, and every field as CSV and/or Parquet.

    python -m sinks.export SESSION --out DIR [--format mot,csv,parquet]

.mot: one file per (stream, track), `<stream>_track<id>.mot`; columns `time` (s since the
session's first frame) and the 46 SKEL DoF names (OpenSim coordinate names), in degrees
(`inDegrees=yes`). Rows where the track had no pose are left out.
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


def write_mot(path: str, name: str, time_s: np.ndarray, q_rad: np.ndarray) -> None:
    """OpenSim Storage (.mot): `time_s` (N,) s, `q_rad` (N, 46) radians -> degrees on disk."""
    deg = np.rad2deg(np.asarray(q_rad, np.float64))
    with open(path, "w", newline="\n") as f:
        f.write(f"{name}\nversion=1\nnRows={len(time_s)}\nnColumns={NUM_DOFS + 1}\n"
                "inDegrees=yes\n\nUnits are S.I. units (second, meters, Newtons, ...)\n"
                "Angles are in degrees (SKEL joint angles, exported by skelstream).\n\n"
                "endheader\n")
        f.write("time\t" + "\t".join(DOF_NAMES) + "\n")
        for t, row in zip(time_s, deg):
            f.write(f"{t:.6f}\t" + "\t".join(f"{v:.6f}" for v in row) + "\n")


def read_mot(path: str) -> tuple[list[str], np.ndarray]:
    """(column names, (N, C) float64) of a .mot file (for tests and quick checks)."""
    with open(path) as f:
        lines = f.read().splitlines()
    i = lines.index("endheader")
    cols = lines[i + 1].split("\t")
    rows = [list(map(float, ln.split("\t"))) for ln in lines[i + 2:] if ln.strip()]
    return cols, np.array(rows, np.float64).reshape(-1, len(cols))


def export_mot(frames: list[FrameMsg], out_dir: str, t0_ns: int) -> list[str]:
    tracks: dict[tuple[str, int], list[tuple[float, np.ndarray]]] = {}
    for f in frames:
        for p in f.persons:
            if p.q is not None:
                tracks.setdefault((f.stream, p.track_id), []).append(
                    ((f.capture_ns - t0_ns) / 1e9, p.q))
    paths = []
    for (sid, tid), rows in sorted(tracks.items()):
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in sid)
        path = os.path.join(out_dir, f"{safe}_track{tid}.mot")
        write_mot(path, f"{sid} track {tid}", np.array([r[0] for r in rows]),
                  np.stack([r[1] for r in rows]))
        paths.append(path)
    return paths


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


def export_session(session: str, out_dir: str, formats: tuple[str, ...] = ("mot", "csv", "parquet")
                   ) -> list[str]:
    """Write the requested exports into `out_dir`; returns the files written."""
    bad = set(formats) - {"mot", "csv", "parquet"}
    if bad:
        raise UserError(f"unknown export format(s) {sorted(bad)}; use mot, csv, parquet")
    frames = load_frames(session)
    t0 = frames[0].capture_ns
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise RecorderError(f"cannot create export folder {out_dir} ({exc.strerror})") from None
    written: list[str] = []
    if "mot" in formats:
        written += export_mot(frames, out_dir, t0)
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
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinks.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("session", help="session folder or its poses.mcap")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--format", default="mot,csv,parquet", help="comma list: mot,csv,parquet")
    a = ap.parse_args(argv)
    try:
        files = export_session(a.session, a.out, tuple(x for x in a.format.split(",") if x))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
