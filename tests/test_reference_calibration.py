"""Camera calibration: Qualisys (as Pose2Sim converts it) and TOML, projection, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from engines.reference.calibration import CalibrationError, load_calibration, load_qca, load_toml, save_toml
from reference_helpers import demo_dir, ring_of_cameras

DEMO = demo_dir()
needs_demo = pytest.mark.skipif(DEMO is None, reason="pose2sim demo not installed (pip install --no-deps pose2sim==0.10.49)")


@needs_demo
def test_qualisys_matches_pose2sims_conversion():
    """Known values of cam01, worked by hand from Pose2Sim's read_qca + world_to_camera_persp +
    rotate_cam(pi about x): /64 on focal, centre and distortion, position in mm."""
    cams = load_calibration(DEMO / "calibration" / "Calib.qca.txt", n_sources=4)
    assert [c.name for c in cams] == ["cam01", "cam02", "cam03", "cam04"]
    c = cams[0]
    assert c.size_px == (1088, 1920)
    np.testing.assert_allclose(c.K, [[107599.671875 / 64, 0, 34110.316406 / 64],
                                     [0, 107588.828125 / 64, 60680.792969 / 64], [0, 0, 1]])
    np.testing.assert_allclose(c.dist, np.array([-0.046183, 0.139983, 0.000608, 0.00069]) / 64)
    m = np.array([[0.5536380477336265, 0.8046719867383512, 0.2144479094331626],
                  [-0.4345300743838753, 0.05946489349975602, 0.8986921279821063],
                  [0.7104002579937896, -0.5907342212870501, 0.3825762057979294]])
    flip = np.diag([1.0, -1.0, -1.0])
    np.testing.assert_allclose(c.R, flip @ m, atol=1e-12)
    pos = np.array([1460.2323709212087, -1909.1590482454608, 1896.5058524092062]) / 1000
    np.testing.assert_allclose(c.centre_m, pos, atol=1e-9)
    for cam in cams:  # every camera looks at the capture volume (the world origin is in front)
        assert cam.to_camera(np.zeros(3))[2] > 2.0
        u, v = cam.project(np.array([0.0, 0.0, 1.0]))
        assert 0 < u < cam.size_px[0] and 0 < v < cam.size_px[1]


def test_projection_matches_opencv_and_undistort_inverts_it():
    import cv2

    rng = np.random.default_rng(1)
    pts = rng.uniform([-1, -1, 0], [1, 1, 2], size=(200, 3))
    for cam in ring_of_cameras():
        ref, _ = cv2.projectPoints(pts, cv2.Rodrigues(cam.R)[0], cam.t, cam.K, cam.dist)
        np.testing.assert_allclose(cam.project(pts), ref[:, 0], atol=1e-6)
        und = cam.undistort(cam.project(pts))
        np.testing.assert_allclose(und, cam.project(pts, distort=False), atol=1e-3)


def test_toml_round_trip_reprojects_known_points(tmp_path):
    cams = ring_of_cameras()
    path = tmp_path / "Calib.toml"
    save_toml(cams, path)
    back = load_calibration(path, n_sources=4)
    pts = np.array([[0.0, 0.0, 1.0], [0.3, -0.2, 1.7], [-0.4, 0.1, 0.1]])
    for a, b in zip(cams, back):
        assert a.name == b.name
        np.testing.assert_allclose(b.project(pts), a.project(pts), atol=1e-6)
    # anipose / FreeMoCap write the board's unit (mm): the unit argument scales translation
    mm = tmp_path / "camera_calibration.toml"
    txt = path.read_text()
    lines = [ln if not ln.startswith("translation") else
             "translation = [ " + ", ".join(str(1000 * float(x)) for x in ln.split("[")[1].rstrip("]").split(",")) + "]"
             for ln in txt.splitlines()]
    mm.write_text("\n".join(lines))
    for a, b in zip(cams, load_toml(mm, translation_unit_m=0.001)):
        np.testing.assert_allclose(b.project(pts), a.project(pts), atol=1e-6)


def test_bad_calibration_input_gets_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(CalibrationError, match="nope.toml not found"):
        load_calibration(missing)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[cam01]\nmatrix = [[1, 0, 0], [0, 1, 0]]\nrotation=[0,0,0]\ntranslation=[0,0,0]\nsize=[10,10]\n")
    with pytest.raises(CalibrationError, match=r"bad.toml: camera \[cam01\] is malformed"):
        load_calibration(bad_toml)
    not_toml = tmp_path / "x.toml"
    not_toml.write_text("this is = = not toml")
    with pytest.raises(CalibrationError, match="x.toml: not a TOML calibration"):
        load_calibration(not_toml)
    bad_xml = tmp_path / "Calib.qca.txt"
    bad_xml.write_text("<calibration><cameras><camera model='none'")
    with pytest.raises(CalibrationError, match="Calib.qca.txt: not a Qualisys calibration"):
        load_qca(bad_xml)
    good = tmp_path / "good.toml"
    save_toml(ring_of_cameras(), good)
    with pytest.raises(CalibrationError, match="good.toml: 4 cameras calibrated but 3 videos given") as exc:
        load_calibration(good, n_sources=3)
    assert "\n" not in str(exc.value)


def test_bad_calibration_from_the_cli_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    r = subprocess.run([sys.executable, "-m", "engines.reference", "a.mp4", "b.mp4",
                        "--calibration", str(tmp_path / "missing.qca.txt")], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "missing.qca.txt not found" in r.stderr
