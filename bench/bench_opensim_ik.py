"""Our joint angles against OpenSim's inverse kinematics on the same keypoints.

    python bench/bench_opensim_ik.py [SESSION] [--out DIR]

Exports SESSION (default: the recorded Pose2Sim demo clip in tests/data) as .mot and .trc
(pose2sim target, estimated world frame), scales Pose2Sim's simple model and runs OpenSim's
InverseKinematicsTool with Pose2Sim's BlazePose setup on the .trc (sinks/opensim_ik.py), then
prints, per coordinate, OpenSim minus ours: mean (bias), RMS and correlation, in degrees, plus the
angle between the two upper-arm directions (the model's Z-X-Y shoulder is gimbal-locked at 90 deg
abduction, where equal arm poses have very different Euler angles) and OpenSim's marker error.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sinks.export import export_session, read_mot  # noqa: E402
from sinks.opensim_ik import scale_and_ik  # noqa: E402

DEFAULT_SESSION = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "pose2sim_demo_cam01")
COMPARED = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "hip_flexion_r", "hip_adduction_r",
            "hip_rotation_r", "knee_angle_r", "ankle_angle_r", "hip_flexion_l", "hip_adduction_l",
            "hip_rotation_l", "knee_angle_l", "ankle_angle_l", "L5_S1_Flex_Ext", "arm_flex_r",
            "arm_add_r", "arm_rot_r", "elbow_flex_r", "arm_flex_l", "arm_add_l", "arm_rot_l",
            "elbow_flex_l")


def humerus_direction(cols: list[str], rows: np.ndarray, side: str) -> np.ndarray:
    """(N, 3) unit upper-arm direction (shoulder -> elbow) in the torso frame, from the model's
    acromial joint coordinates (Z-X-Y; the left side's X and Y axes flipped)."""
    sign = 1.0 if side == "r" else -1.0
    ang = np.stack([rows[:, cols.index(f"arm_flex_{side}")], sign * rows[:, cols.index(f"arm_add_{side}")],
                    sign * rows[:, cols.index(f"arm_rot_{side}")]], axis=1)
    return Rotation.from_euler("ZXY", ang, degrees=True).apply([0.0, -1.0, 0.0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("session", nargs="?", default=DEFAULT_SESSION)
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="opensim_ik_")
    session = os.path.join(out, "session")   # a copy: the estimated world frame is stored in it
    shutil.copytree(a.session, session, dirs_exist_ok=True)
    t0 = time.perf_counter()
    mot, trc = export_session(session, out, ("mot", "trc"), "pose2sim")
    t1 = time.perf_counter()
    ik = scale_and_ik(trc, os.path.join(out, "opensim"))
    t2 = time.perf_counter()
    cols, ours = read_mot(mot)
    icols, theirs = read_mot(ik.motion)
    print(f"\n{len(ours)} frames; export {t1 - t0:.2f} s, OpenSim scaling + IK {t2 - t1:.2f} s\n")
    print("| coordinate | ours mean | OpenSim mean | bias (OpenSim - ours) | RMS diff | corr |")
    print("|---|---|---|---|---|---|")
    for c in COMPARED:
        x, y = ours[:, cols.index(c)], theirs[:, icols.index(c)]
        d = y - x
        corr = np.corrcoef(x, y)[0, 1] if x.std() > 1e-9 and y.std() > 1e-9 else float("nan")
        print(f"| {c} | {x.mean():.1f} | {y.mean():.1f} | {d.mean():+.1f} | "
              f"{np.sqrt(np.mean(d ** 2)):.1f} | {corr:.2f} |")
    for s in ("r", "l"):
        dot = np.sum(humerus_direction(cols, ours, s) * humerus_direction(icols, theirs, s), axis=1)
        ang = np.degrees(np.arccos(np.clip(dot, -1, 1)))
        print(f"| upper-arm direction {s} (deg apart) | | | | median {np.median(ang):.1f}, "
              f"max {ang.max():.1f} | |")
    for c in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
        d = theirs[:, icols.index(c)] - ours[:, cols.index(c)]
        print(f"| {c} (m) | {ours[:, cols.index(c)].mean():.3f} | {theirs[:, icols.index(c)].mean():.3f}"
              f" | {d.mean():+.3f} | {np.sqrt(np.mean(d ** 2)):.3f} | |")
    if ik.marker_errors:
        with open(ik.marker_errors) as f:
            lines = f.read().splitlines()
        i = lines.index("endheader")
        hdr = lines[i + 1].split("\t")
        err = np.array([list(map(float, ln.split("\t"))) for ln in lines[i + 2:] if ln.strip()])
        rms = err[:, hdr.index("marker_error_RMS")]
        print(f"\nOpenSim IK marker error RMS: median {np.median(rms) * 100:.1f} cm, "
              f"max {rms.max() * 100:.1f} cm")
    print(f"files in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
