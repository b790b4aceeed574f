"""Motion-capture joint-angle trajectories for the smoothing benchmark, from a registry package.

    .venv/bin/python bench/make_mocap_trajectories.py [--wheel pybullet-*.whl]   # writes bench/data/

The smoothing benchmark's other real trajectories come from video (Pose2Sim's demos, 1.65 s each).
These are marker-based motion capture: the DeepMimic clips (Peng et al. 2018, retargeted from
the CMU and SFU motion-capture databases to a humanoid) that the `pybullet` wheel ships as
`pybullet_data/data/motions/humanoid3d_*.txt`: walking, running, jumping, kicks, a punch,
cartwheel, dances, crawling and getting up, 30 or 60 fps. Fast real turns (a kick's knee, 40 deg
in one 30 Hz frame) that no synthetic swing has.

Taken from each frame: knee flexion and elbow flexion (the humanoid's one-axis joints, sign
turned to SKEL's), and hip flexion (the thigh's angle in the pelvis's sagittal plane, from the
hip quaternion), right and left, into their SKEL DoFs; the other DoFs stay still. `walk` and
`run` are single gait cycles whose ends meet; they are repeated to ~8 s. The other clips are
used once: their ends do not meet (a kick's knee jumps 48 deg at the seam of its loop), and a
seam is no motion. Clips at other rates than 30/60 fps (backflip 16 fps, spin 24 fps) and `roll`
(mixed frame times) are left out. Each clip is resampled to 120 Hz by shape-preserving cubic
interpolation (PCHIP: no overshoot), so that the benchmark's linear interpolation to jittered
frame times adds no corners.

Writes `bench/data/deepmimic_mocap_q.npz`: per clip `q/<name>` (T, 46) radians, `t_s/<name>` (T,).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engines.skel.dofs import DOF_INDEX, DOF_LOWER, DOF_UPPER  # noqa: E402
from motion_synth import MOCAP, save_clips  # noqa: E402

CLIPS = ("walk", "run", "jump", "kick", "punch", "spinkick", "cartwheel", "dance_a", "dance_b",
         "crawl", "getup_faceup", "getup_facedown")
CYCLES = ("walk", "run")
"""Clips that are one whole cycle, repeated; the rest are used once."""
REPEAT_TO_S = 8.0
RESAMPLE_HZ = 120.0
# columns of a DeepMimic humanoid3d frame: duration, root position (3), root, chest and neck
# quaternions (w, x, y, z), then per side hip quaternion, knee angle, ankle quaternion,
# shoulder quaternion, elbow angle (right, then left)
_COLUMNS = {"r": {"hip": 16, "knee": 20, "elbow": 29}, "l": {"hip": 30, "knee": 34, "elbow": 43}}


def _hip_flexion(quat_wxyz: np.ndarray) -> np.ndarray:
    """Thigh angle forward of straight down in the pelvis's sagittal plane (x forward, y up)."""
    thigh = Rotation.from_quat(quat_wxyz[:, [1, 2, 3, 0]]).apply([0.0, -1.0, 0.0])
    return np.arctan2(thigh[:, 0], -thigh[:, 1])


def clip_q(frames: np.ndarray, cycle: bool) -> tuple[np.ndarray, np.ndarray]:
    """(q (T, 46) radians at RESAMPLE_HZ, t_s (T,)) of one clip's frames (F, 44)."""
    step = float(np.median(frames[:-1, 0]))
    q = np.tile(np.clip(0.0, DOF_LOWER, DOF_UPPER), (len(frames), 1))
    for side, col in _COLUMNS.items():
        q[:, DOF_INDEX[f"knee_angle_{side}"]] = -frames[:, col["knee"]]   # humanoid: bent < 0
        q[:, DOF_INDEX[f"elbow_flexion_{side}"]] = frames[:, col["elbow"]]
        q[:, DOF_INDEX[f"hip_flexion_{side}"]] = _hip_flexion(frames[:, col["hip"]:col["hip"] + 4])
    if cycle:
        if np.allclose(q[0], q[-1], atol=np.deg2rad(1.0)):
            q = q[:-1]                                  # the last frame repeats the first
        q = np.tile(q, (int(np.ceil(REPEAT_TO_S / (len(q) * step))), 1))
    t = np.arange(len(q)) * step
    t_out = np.arange(0.0, t[-1] + 1e-9, 1.0 / RESAMPLE_HZ)
    q = PchipInterpolator(t, q, axis=0)(t_out)
    return np.clip(q, DOF_LOWER, DOF_UPPER), t_out


def _wheel(path: str | None, tmp: Path) -> Path:
    if path:
        return Path(path)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp),
                    "pybullet==3.2.7"], check=True)
    return next(tmp.glob("pybullet-*.whl"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="a pybullet wheel already on disk (default: pip download it)")
    args = ap.parse_args()
    clips: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(_wheel(args.wheel, Path(tmp))) as whl:
            for name in CLIPS:
                data = json.loads(whl.read(f"pybullet_data/data/motions/humanoid3d_{name}.txt"))
                q, t = clip_q(np.asarray(data["Frames"], dtype=np.float64), name in CYCLES)
                clips[name] = q, t
                step = np.rad2deg(np.abs(np.diff(q, axis=0))).max() * RESAMPLE_HZ / 30.0
                print(f"{name}: {t[-1]:.2f} s, fastest {step:.0f} deg per 30 Hz frame")
    save_clips(MOCAP, clips)


if __name__ == "__main__":
    main()
