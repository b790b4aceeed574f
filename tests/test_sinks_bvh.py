"""BVH export: written from a real recording, read back with the `bvh` package, FK compared."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from engines.skel.dofs import DOF_LOWER, DOF_UPPER, JOINT_NAMES, NUM_DOFS, joint_dofs
from engines.skel.kinematics import DOF_AXIS, forward_kinematics, generic_skeleton
from sinks.bvh_export import CAMERA_TO_BVH, hierarchy_order
from sinks.recorder import SessionRecorder
from stream.packet import FrameInfo, Intrinsics, Packet, Person, TrackState

bvh = pytest.importorskip("bvh")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT = 1.80
PERIOD_NS = 33_333_333
CONFIG = f"pose:\n  engine: landmarks\n  landmarks:\n    body_height_m: {HEIGHT}\n"


def _q(rng: np.random.Generator) -> np.ndarray:
    lo = np.where(np.isfinite(DOF_LOWER), DOF_LOWER, -np.pi)
    hi = np.where(np.isfinite(DOF_UPPER), DOF_UPPER, np.pi)
    return rng.uniform(lo, hi).astype(np.float32)


def _person(tid: int, q, trans, segments_m=None) -> Person:
    return Person(track_id=tid, track_state=TrackState.TRACKED,
                  box_xyxy=np.array([10, 10, 100, 300], np.float32), score=0.9, q=q,
                  trans_m=trans, pose_confidence=0.8, model_id="test", segments_m=segments_m)


def record(path: str, seqs: list[int], people, config_yaml: str = CONFIG,
           period_ns: int = PERIOD_NS, media_fps: float | None = None) -> str:
    """A real session file: frames at `seqs` (capture clock `period_ns` apart; with `media_fps`
    the file's presentation times too), `people(seq)` -> persons."""
    t0 = 1_000_000_000
    with SessionRecorder(path, "s", config_yaml=config_yaml, min_free_disk_mb=0) as rec:
        for s in seqs:
            fi = FrameInfo("cam0", s, t0 + s * period_ns, 1_700_000_000_000_000_000 + s * period_ns,
                           640, 480, media_pts_s=None if media_fps is None else s / media_fps)
            rec.write_packet(Packet(frame=fi, persons=people(s),
                                    intrinsics=Intrinsics(500, 500, 320, 240)))
    return os.path.join(path, "s")


def export(session: str, out: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sinks.export", session, "--out", out,
                           "--format", "bvh"], cwd=REPO, capture_output=True, text=True, timeout=120)


def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def bvh_fk(mocap, frame: int) -> dict[str, np.ndarray]:
    """Joint positions of one frame by the BVH definition (channels applied in file order)."""
    pos, rot = {}, {}
    for name in mocap.get_joints_names():
        chans = mocap.joint_channels(name)
        vals = mocap.frame_joint_channels(frame, name, chans)
        local, trans = np.eye(3), np.zeros(3)
        for ch, v in zip(chans, vals):
            if ch.endswith("rotation"):
                local = local @ _rot(ch[0], float(v))
            else:
                trans["XYZ".index(ch[0])] = float(v)
        off = np.array(mocap.joint_offset(name), dtype=np.float64)
        parent = mocap.joint_parent(name)
        if parent is None:
            pos[name], rot[name] = trans + off, local
        else:
            pos[name] = pos[parent.name] + rot[parent.name] @ off
            rot[name] = rot[parent.name] @ local
    return pos


def test_bvh_read_back_by_the_bvh_package_matches_our_fk_within_1mm(tmp_path):
    rng = np.random.default_rng(3)
    seqs = [0, 1, 2, 3, 5, 6, 7]                         # frame 4 was dropped by the pipeline
    qs = {s: _q(rng) for s in seqs}
    trans = {s: np.array([0.1 * s, 0.2, 3.0 + 0.05 * s], np.float32) for s in seqs}
    session = record(str(tmp_path), seqs, lambda s: [_person(7, qs[s], trans[s])])
    r = export(session, str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    path = tmp_path / "out" / "cam0_track7.bvh"
    assert r.stdout.split() == [str(path)]
    assert "1 of 8 frames repeat the previous pose" in r.stderr
    mocap = bvh.Bvh(path.read_text())
    assert mocap.get_joints_names() == [JOINT_NAMES[j] for j in hierarchy_order()]
    assert mocap.nframes == 8
    assert mocap.frame_time == pytest.approx(PERIOD_NS / 1e9, rel=1e-6)
    # three rotation channels per joint: SKEL's DoF axes in order, then unused axes that stay 0
    for j, name in enumerate(JOINT_NAMES[1:], start=1):
        chans = mocap.joint_channels(name)
        dofs = joint_dofs(j)
        assert len(chans) == 3 and sorted(c[0] for c in chans) == ["X", "Y", "Z"]
        assert [c[0] for c in chans[:len(dofs)]] == ["XYZ"[int(np.argmax(np.abs(DOF_AXIS[d])))]
                                                     for d in dofs]
        unused = chans[len(dofs):]
        if unused:
            assert np.all(np.array(mocap.frames_joint_channels(name, unused), float) == 0.0)
    sk = generic_skeleton(HEIGHT)
    worst = 0.0
    for k in range(8):
        s = k if k != 4 else 3                              # the gap holds frame 3
        fk = forward_kinematics(qs[s].astype(np.float64), sk, root_m=trans[s].astype(np.float64))
        ours = fk.joints_m @ CAMERA_TO_BVH.T
        theirs = bvh_fk(mocap, k)
        for j, name in enumerate(JOINT_NAMES):
            worst = max(worst, float(np.linalg.norm(theirs[name] - ours[j])))
    assert worst <= 1e-3, f"{worst * 1000:.3f} mm"


def _segments(scale: float, trunk: float) -> np.ndarray:
    """(7,) segment lengths (MEASURED_SEGMENTS order) of a build: Winter's at HEIGHT, limbs and
    widths scaled, the trunk given."""
    from engines.skel.kinematics import MEASURED_SEGMENTS, WINTER_FRACTIONS

    seg = {n: WINTER_FRACTIONS[n] * HEIGHT * scale for n in MEASURED_SEGMENTS}
    seg["trunk"] = trunk
    return np.array([seg[n] for n in MEASURED_SEGMENTS], np.float32)


def test_two_builds_get_their_own_offsets_matching_their_fk(tmp_path):
    """People whose estimated segment lengths differ (a short-limbed and a long-limbed one, as
    the landmark engine records them) get BVH offsets of their own build; each file read back
    by the `bvh` package puts the joints where our FK with that person's skeleton does. A track
    without recorded lengths falls back to the generic skeleton, with a note saying so."""
    from engines.skel.kinematics import MEASURED_SEGMENTS

    rng = np.random.default_rng(11)
    builds = {1: _segments(0.85, 0.45), 2: _segments(1.15, 0.58)}
    qs = {(s, t): _q(rng) for s in range(3) for t in (1, 2, 3)}
    trans = {1: np.array([-0.5, 0.1, 3.0], np.float32), 2: np.array([0.5, 0.1, 3.5], np.float32),
             3: np.array([0.0, 0.1, 4.0], np.float32)}
    # the engine publishes lengths once it has kept them: track 2's first frame has none yet
    session = record(str(tmp_path), [0, 1, 2], lambda s: [
        _person(1, qs[s, 1], trans[1], builds[1]),
        _person(2, qs[s, 2], trans[2], builds[2] if s > 0 else None),
        _person(3, qs[s, 3], trans[3])])
    r = export(session, str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "no estimated segment lengths recorded for cam0 track 3 (field segments_m" in r.stderr
    assert "generic skeleton at the recorded body height 1.80 m" in r.stderr
    assert "track 1" not in r.stderr and "track 2" not in r.stderr
    offsets = {}
    for tid in (1, 2, 3):
        mocap = bvh.Bvh((tmp_path / "o" / f"cam0_track{tid}.bvh").read_text())
        offsets[tid] = np.array([mocap.joint_offset(JOINT_NAMES[j]) for j in range(1, len(JOINT_NAMES))])
        lengths = dict(zip(MEASURED_SEGMENTS, builds[tid].astype(float))) if tid in builds else None
        sk = generic_skeleton(HEIGHT, lengths)
        np.testing.assert_allclose(offsets[tid], sk.offsets_m[1:], atol=1e-6)
        for k in range(3):
            fk = forward_kinematics(qs[k, tid].astype(np.float64), sk, root_m=trans[tid].astype(np.float64))
            got = bvh_fk(mocap, k)
            err = max(np.linalg.norm(got[n] - fk.joints_m[j] @ CAMERA_TO_BVH.T) for j, n in enumerate(JOINT_NAMES))
            assert err <= 1e-3, f"track {tid} frame {k}: {err * 1000:.3f} mm"
    thigh = JOINT_NAMES.index("tibia_r") - 1             # the knee's offset from the hip = the thigh
    assert offsets[1][thigh][1] == pytest.approx(-builds[1][0], abs=1e-6)
    assert offsets[2][thigh][1] == pytest.approx(-builds[2][0], abs=1e-6)
    assert np.abs(offsets[2] - offsets[1]).max() > 0.05  # builds differ by far more than rounding


def world_session(tmp_path, seed: int):
    """3 frames of random poses recorded with a known camera pose, exported to BVH:
    (world frame, q per frame, pelvis translation, the .bvh path)."""
    from sinks.world_frame import from_camera_pose
    from stream.sources.camera_pose import CameraPoseConfig

    config = CONFIG + "sources:\n- stream_id: cam0\n  camera_pose:\n    height_m: 1.2\n    pitch_deg: 10\n"
    rng = np.random.default_rng(seed)
    qs = [_q(rng) for _ in range(3)]
    trans = np.array([0.2, 0.4, 3.0], np.float32)
    session = record(str(tmp_path), [0, 1, 2], lambda s: [_person(1, qs[s], trans)], config)
    r = export(session, str(tmp_path / "o"))
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    wf = from_camera_pose(CameraPoseConfig(height_m=1.2, pitch_deg=10))
    return wf, qs, trans, tmp_path / "o" / "cam0_track1.bvh"


def test_bvh_in_the_sessions_world_frame_when_the_camera_pose_is_known(tmp_path):
    wf, qs, trans, path = world_session(tmp_path, 5)
    mocap = bvh.Bvh(path.read_text())
    sk = generic_skeleton(HEIGHT)
    for k in range(3):
        fk = forward_kinematics(qs[k].astype(np.float64), sk, root_m=trans.astype(np.float64))
        want = wf.points(fk.joints_m)
        got = bvh_fk(mocap, k)
        assert max(np.linalg.norm(got[n] - want[j]) for j, n in enumerate(JOINT_NAMES)) <= 1e-3


def test_bvh_is_upright_for_an_upright_person(tmp_path):
    q = np.zeros(NUM_DOFS, np.float32)
    q[0] = np.pi                                          # SKEL mean pose: upright in the y-down frame
    session = record(str(tmp_path), [0, 1], lambda s: [_person(1, q, np.array([0, 0, 3], np.float32))])
    assert export(session, str(tmp_path / "o")).returncode == 0
    pos = bvh_fk(bvh.Bvh((tmp_path / "o" / "cam0_track1.bvh").read_text()), 0)
    assert pos["head"][1] > pos["pelvis"][1] > pos["talus_r"][1]


def test_lossless_file_run_takes_the_frame_time_from_the_video_clock(tmp_path):
    lossless = CONFIG + "runtime:\n  lossless: true\n"
    q = np.zeros(NUM_DOFS, np.float32)
    people = lambda s: [_person(1, q, np.zeros(3, np.float32))]  # noqa: E731
    # processed at 10 fps, the file is 60 fps
    r = export(record(str(tmp_path / "a"), list(range(5)), people, lossless, 100_000_000, 60.0),
               str(tmp_path / "o"))
    assert r.returncode == 0 and "lossless mode" not in r.stderr, r.stderr
    assert bvh.Bvh((tmp_path / "o" / "cam0_track1.bvh").read_text()).frame_time == pytest.approx(1 / 60)
    # without presentation times: the capture clock, and a warning that it is the processing rate
    r = export(record(str(tmp_path / "b"), list(range(5)), people, lossless, 100_000_000),
               str(tmp_path / "o2"))
    assert r.returncode == 0 and "lossless mode" in r.stderr
    assert bvh.Bvh((tmp_path / "o2" / "cam0_track1.bvh").read_text()).frame_time == pytest.approx(0.1)


def test_one_file_per_track(tmp_path):
    rng = np.random.default_rng(0)
    session = record(str(tmp_path), list(range(4)), lambda s: [
        _person(1, _q(rng), np.zeros(3, np.float32)), _person(2, _q(rng), np.ones(3, np.float32))])
    r = export(session, str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "o")) == ["cam0_track1.bvh", "cam0_track2.bvh"]


def test_session_without_angles_or_translation_names_the_missing_field(tmp_path):
    no_q = record(str(tmp_path / "a"), [0, 1], lambda s: [_person(1, None, np.zeros(3, np.float32))])
    r = export(no_q, str(tmp_path / "o1"))
    assert r.returncode == 2 and "joint angles (field q)" in r.stderr
    no_t = record(str(tmp_path / "b"), [0, 1], lambda s: [_person(1, np.zeros(NUM_DOFS, np.float32), None)])
    r = export(no_t, str(tmp_path / "o2"))
    assert r.returncode == 2 and "pelvis translation (field trans_m)" in r.stderr
    assert r.stderr.count("\n") == 1  # one line


BPY_PYTHON = os.environ.get("SKELSTREAM_BPY_PYTHON")


@pytest.mark.skipif(not BPY_PYTHON, reason="set SKELSTREAM_BPY_PYTHON to a Python with bpy "
                    "(pip install bpy==5.0.1 in its own venv: bpy pins numpy 1.26)")
def test_blender_imports_the_bvh_and_puts_joints_where_our_fk_does(tmp_path):
    import json

    wf, qs, trans, path = world_session(tmp_path, 11)
    names = ["pelvis", "tibia_r", "toes_l", "head", "hand_r", "radius_l"]
    r = subprocess.run([BPY_PYTHON, os.path.join(REPO, "tests", "blender_bvh_probe.py"),
                        str(path), "[0, 2]", json.dumps(names)],
                       capture_output=True, text=True, timeout=300)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT"))
    got = json.loads(line[len("RESULT"):])
    sk = generic_skeleton(HEIGHT)
    for k in (0, 2):
        fk = forward_kinematics(qs[k].astype(np.float64), sk, root_m=trans.astype(np.float64))
        world = wf.points(fk.joints_m)                       # y up
        for n in names:
            x, y, z = world[JOINT_NAMES.index(n)]
            blender = np.array(got[str(k)][n])               # Blender: z up, y = -BVH z
            err = float(np.linalg.norm(blender - [x, -z, y]))
            assert err <= 1e-3, (k, n, blender, (x, -z, y))
