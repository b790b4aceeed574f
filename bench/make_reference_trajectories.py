"""Real joint-angle trajectories for the smoothing benchmark, from the four-camera reference.

    .venv/bin/python bench/make_reference_trajectories.py      # ~5 min on 2 cores; writes bench/data/

The smoothing benchmark (bench/bench_smoothing.py) scores filters against a known truth with
synthetic noise on top. Synthetic swings are periodic and smooth; real people are not. These are
real: the pose2sim wheel's Demo_SinglePerson (one person) and Demo_MultiPerson (two people), four
calibrated cameras at 60 fps, reconstructed by engines/reference (BlazePose in every view,
time offsets, left/right repair, robust triangulation, Pose2Sim's own Hampel + 6 Hz Butterworth
filter). The six angles measured straight from the 3D keypoints (knee, elbow and hip flexion,
right and left: engines/reference/angles.py) go into their SKEL DoFs; the other DoFs stay still
(the SKEL fit's other DoFs jump by up to 70 deg a frame where the fit is ambiguous, which is the
fit's error, not motion). Unlike one camera's pipeline output (the older
`pose2sim_demo_cam02_rts.npz`, whose single-view depth errors jump 14-35 deg within a frame), no
view's depth guess and no fit is in them.

Writes `bench/data/pose2sim_reference_q.npz`: per trajectory `q/<name>` (T, 46) radians and
`t_s/<name>` (T,) seconds; names `single_p0`, `multi_p0`, `multi_p1`.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import demo_dir  # noqa: E402
from engines.reference.angles import GEOMETRIC_ANGLES  # noqa: E402
from engines.reference.pipeline import reference_from_files, video_fps  # noqa: E402
from engines.skel.dofs import DOF_INDEX, DOF_LOWER, DOF_UPPER  # noqa: E402
from motion_synth import REFERENCE, save_clips  # noqa: E402



def main() -> None:
    clips: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for demo, tag, people in (("Demo_SinglePerson", "single", 1), ("Demo_MultiPerson", "multi", 2)):
            d = demo_dir(demo)
            videos = sorted((d / "videos").glob("cam*.mp4"))
            refs = reference_from_files(videos, d / "calibration" / "Calib.qca.txt",
                                        cache=Path(tmp) / tag, people=people)
            fps = video_fps(videos[0])
            for i, ref in enumerate(refs):
                q = np.tile(np.clip(0.0, DOF_LOWER, DOF_UPPER), (len(ref.points_m), 1))
                for name, dof in GEOMETRIC_ANGLES.items():
                    q[:, DOF_INDEX[dof]] = ref.geometric[name]
                ok = np.isfinite(q).all(axis=1)
                first, last = np.flatnonzero(ok)[[0, -1]]
                q = q[first:last + 1]
                t = np.arange(len(q))
                for j in range(q.shape[1]):           # short holes: the neighbours' line
                    good = np.isfinite(q[:, j])
                    q[:, j] = np.interp(t, t[good], q[good, j])
                name = f"{tag}_p{i}"
                clips[name] = np.clip(q, DOF_LOWER, DOF_UPPER), t / fps
                step = np.rad2deg(np.abs(np.diff(q, axis=0))).max()
                print(f"{name}: {len(q)} frames at {fps:.0f} fps, largest step {step:.1f} deg/frame")
    save_clips(REFERENCE, clips)


if __name__ == "__main__":
    main()
