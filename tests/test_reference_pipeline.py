"""The multi-camera reference on a real excerpt: 24 frames of the pose2sim demo's four cameras,
through the command line (BlazePose in every view, sync, left/right repair, triangulation, fits)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from engines.skel.dofs import DOF_LOWER, DOF_UPPER
from reference_helpers import demo_dir

DEMO = demo_dir()


@pytest.mark.skipif(DEMO is None, reason="pose2sim demo not installed (pip install --no-deps pose2sim==0.10.49)")
def test_reference_from_four_real_views(tmp_path):
    out = tmp_path / "ref.npz"
    videos = [str(DEMO / "videos" / f"cam0{i}.mp4") for i in range(1, 5)]
    r = subprocess.run([sys.executable, "-m", "engines.reference", *videos, "--calibration",
                        str(DEMO / "calibration" / "Calib.qca.txt"), "--max-frames", "24", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "reprojection error per joint (px): nose" in r.stdout
    z = np.load(out)
    off = z["offsets"]
    assert off[0] == 0 and np.abs(off).max() <= 6           # the demo's cameras are a few frames apart
    used = np.where(z["used"], z["reproj_px"], np.nan)
    assert np.nanmean(used) < 20.0                           # ~12 px on the full clip (1088x1920)
    pts = z["points_m"]
    assert np.isfinite(pts[:, [23, 24, 25, 26, 27, 28]]).all(-1).mean() > 0.9
    legs = np.linalg.norm(pts[:, 26] - pts[:, 24], axis=-1)   # right thigh: a person-sized length
    assert 0.3 < np.nanmedian(legs) < 0.55
    for side in "rl":
        knee = np.degrees(z[f"geometric/knee_{side}"])
        assert np.nanmin(knee) >= 0 and np.nanmax(knee) < 120
    for cam in ("cam01", "cam02", "cam03", "cam04"):
        q = z[f"q/{cam}"]
        ok = np.isfinite(q).all(1)
        assert ok.mean() > 0.9
        assert np.all(q[ok, 3:] >= DOF_LOWER[3:] - 1e-9) and np.all(q[ok, 3:] <= DOF_UPPER[3:] + 1e-9)
