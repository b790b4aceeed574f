"""ROS 2 channels: template CDR equals rosbags' own serialization; files read back by rosbags."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engines.skel.dofs import DOF_NAMES, JOINT_NAMES, JOINT_PARENTS
from engines.skel.kinematics import forward_kinematics, generic_skeleton
from sinks.config import PublisherConfig, RecorderConfig
from sinks.record_stage import RecordStage
from sinks.recorder import read_session
from sinks.session_skeleton import segments_skeleton
from sinks.schema import FrameMsg, decode, encode_frame
from sinks.synth import synthetic_packet
from stream.config import PipelineConfig, RuntimeConfig
from stream.packet import Packet
from stream.pipeline import build_graph
from stream.sources.config import SourceConfig
from stream.stage import Stage

pytest.importorskip("rosbags")
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from sinks.ros2_mcap import (Ros2FrameEncoder, body_id, export_ros2, joint_state_topic,  # noqa: E402
                             tf_frame_names)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORE = get_typestore(Stores.ROS2_HUMBLE)
SK = generic_skeleton(1.70)


def frames_of(n_frames: int, n_persons: int, stream: str = "cam0") -> list[FrameMsg]:
    return [decode(encode_frame(synthetic_packet(stream, s, n_persons), s + 1, 2 ** 32 + s))
            for s in range(n_frames)]


def test_template_bytes_equal_rosbags_serialization_of_the_same_messages():
    enc = Ros2FrameEncoder(SK)
    f = frames_of(3, 4)
    f[1].persons[0].trans_m = None             # no translation: markers only, no TF
    f[1].persons[2].q_vel = None               # JointState without velocities
    f[2].persons = []                          # nobody: an empty MarkerArray
    for frame in f + frames_of(2, 4)[1:]:      # a shape seen before reuses its template
        sec, nsec = divmod(frame.capture_utc_ns, 1_000_000_000)
        got = enc.encode(frame)
        v = enc.values(frame)
        want = []
        for p in v["posed"]:
            vel = p.q_vel is not None
            msg = enc._js_make(body_id(frame.stream, p.track_id), vel)(
                sec, nsec, np.concatenate([p.q, p.q_vel]) if vel else p.q, None)
            want.append(enc.b.serialize(msg, "sensor_msgs/msg/JointState"))
        if v.get("placed"):
            bids = tuple(body_id(frame.stream, p.track_id) for p in v["placed"])
            msg = enc._tf_make(frame.stream, bids)(sec, nsec, v["tf"], None)
            want.append(enc.b.serialize(msg, "tf2_msgs/msg/TFMessage"))
        assert [g[2] for g in got[:-1]] == want
        # and the marker array decodes to what the frame says
        ma = STORE.deserialize_cdr(got[-1][2], "visualization_msgs/msg/MarkerArray")
        assert len(ma.markers) == 2 * len(v["posed"])
        for k, p in enumerate(v["posed"]):
            joints = v["joints"][k]
            pts = np.array([[q.x, q.y, q.z] for q in ma.markers[2 * k + 1].points])
            np.testing.assert_allclose(pts, joints, atol=1e-12)
            assert ma.markers[2 * k].color.a == pytest.approx(0.4 if p.predicted else 1.0)
            assert ma.markers[2 * k].header.stamp.sec == sec


def compose_tf(transforms, frame: str, root: str) -> np.ndarray:
    """Position of `frame` in `root` by chaining TransformStamped messages (tf2's rule)."""
    by_child = {t.child_frame_id: t for t in transforms}
    chain = []
    while frame != root:
        t = by_child[frame]
        chain.append(t.transform)
        frame = t.header.frame_id
    p = np.zeros(3)
    for tr in chain:  # innermost first: p_parent = R p_child + t
        r = Rotation.from_quat([tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w])
        p = r.apply(p) + [tr.translation.x, tr.translation.y, tr.translation.z]
    return p


TALL = np.array([0.50, 0.49, 0.37, 0.30, 0.19, 0.42, 0.56], np.float32)
"""Estimated segment lengths (MEASURED_SEGMENTS order) of a long-limbed person."""


class FourPeople(Stage):
    """4 synthetic people; track 3 carries estimated segment lengths (a build of its own)."""
    name = "persons"

    def process(self, packet: Packet) -> Packet:
        packet.persons = synthetic_packet(packet.frame.stream_id, packet.frame.seq, 4).persons
        packet.persons[2].segments_m = TALL
        return packet


def test_recording_with_ros2_channels_reads_back_with_rosbags(tmp_path):
    cfg = PipelineConfig(
        sources=[SourceConfig(uri="test:n=30,w=64,h=48,fps=0", mode="lossless",
                              camera_pose={"height_m": 1.3, "pitch_deg": 5.0})],
        runtime=RuntimeConfig(status_line=False, summary_at_exit=False, lossless=True),
        publisher=PublisherConfig(enabled=False),
        recorder=RecorderConfig(enabled=True, directory=str(tmp_path), session_name="s", ros2=True))
    result = build_graph(cfg, chain=[FourPeople()], sinks=[RecordStage(cfg)],
                         opener="graph_helpers:open_test_source").run()
    assert result.exit_code == 0, result.errors
    recorded = [decode(p) for p in read_session(str(tmp_path / "s")).frames()]
    assert len(recorded) == 30
    by_stamp = {f.capture_utc_ns: f for f in recorded}
    seen: dict[str, int] = {}
    with Reader(tmp_path / "s" / "ros2.mcap") as r:
        types = {c.topic: c.msgtype for c in r.connections}
        assert types["/tf"] == "tf2_msgs/msg/TFMessage"
        assert types["/skelstream/cam0/skeleton"] == "visualization_msgs/msg/MarkerArray"
        for tid in range(1, 5):
            assert types[joint_state_topic("cam0", tid)] == "sensor_msgs/msg/JointState"
        for conn, stamp, raw in r.messages():
            msg = STORE.deserialize_cdr(raw, conn.msgtype)
            seen[conn.topic] = seen.get(conn.topic, 0) + 1
            frame = by_stamp[stamp]
            if conn.msgtype == "sensor_msgs/msg/JointState":
                person = next(p for p in frame.persons if conn.topic == joint_state_topic("cam0", p.track_id))
                assert list(msg.name) == list(DOF_NAMES)
                np.testing.assert_array_equal(msg.position, person.q.astype(np.float64))
                np.testing.assert_array_equal(msg.velocity, person.q_vel.astype(np.float64))
                assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == stamp
            elif conn.topic == "/tf":
                assert len(msg.transforms) == 1 + 4 * len(JOINT_NAMES)   # + world -> camera
                assert (msg.transforms[0].header.frame_id, msg.transforms[0].child_frame_id) == (
                    "world", "cam0_optical_frame")
                assert msg.transforms[0].transform.translation.z == pytest.approx(1.3)
                for p, sk in ((frame.persons[2], segments_skeleton(1.70, TALL)), (frame.persons[0], SK)):
                    names = tf_frame_names(body_id("cam0", p.track_id))
                    fk = forward_kinematics(p.q.astype(np.float64), sk, root_m=p.trans_m.astype(np.float64))
                    for j in (JOINT_NAMES.index("hand_l"), JOINT_NAMES.index("toes_r")):
                        np.testing.assert_allclose(compose_tf(msg.transforms, names[j], "cam0_optical_frame"),
                                                   fk.joints_m[j], atol=1e-9)
                names = tf_frame_names(body_id("cam0", 3))
                assert names[0] == "body_cam0_3" and "l_knee_cam0_3" in names and "r_wrist_cam0_3" in names
                knee = next(t for t in msg.transforms if t.child_frame_id == "r_knee_cam0_3")
                assert np.hypot(knee.transform.translation.x, knee.transform.translation.z) == pytest.approx(
                    TALL[0], abs=1e-6)  # r_hip -> r_knee in REP-103 body axes: the person's thigh
                parents = {t.child_frame_id: t.header.frame_id for t in msg.transforms}
                assert all(parents[names[j]] == names[JOINT_PARENTS[j]] for j in range(1, len(names)))
    assert seen["/tf"] == 30 and seen["/skelstream/cam0/skeleton"] == 30
    assert all(seen[joint_state_topic("cam0", t)] == 30 for t in range(1, 5))


def test_export_ros2_from_a_session_and_missing_angles(tmp_path):
    from sinks.recorder import SessionRecorder

    with SessionRecorder(str(tmp_path), "a", min_free_disk_mb=0) as rec:
        for s in range(5):
            rec.write_packet(synthetic_packet("cam1", s, 2))
    r = subprocess.run([sys.executable, "-m", "sinks.export", str(tmp_path / "a"), "--out",
                        str(tmp_path / "o"), "--format", "ros2"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with Reader(tmp_path / "o" / "ros2.mcap") as rd:
        assert rd.message_count == 5 * (2 + 1 + 1)
    empty = [decode(encode_frame(synthetic_packet("cam0", 0, 0), 1, 2 ** 32))]
    with pytest.raises(Exception, match=r"joint angles \(field q\)"):
        export_ros2(empty, str(tmp_path))


def test_export_hangs_the_camera_off_a_z_up_world_when_the_pose_is_known(tmp_path):
    from sinks.recorder import SessionRecorder
    from sinks.ros2_mcap import G_WORLD_TO_REP103
    from sinks.world_frame import from_camera_pose
    from stream.sources.camera_pose import CameraPoseConfig

    config = ("pose:\n  landmarks:\n    body_height_m: 1.7\nsources:\n- stream_id: cam0\n"
              "  camera_pose:\n    height_m: 1.5\n    pitch_deg: 20\n")
    with SessionRecorder(str(tmp_path), "w", config_yaml=config, min_free_disk_mb=0) as rec:
        for s in range(3):
            rec.write_packet(synthetic_packet("cam0", s, 1))
    r = subprocess.run([sys.executable, "-m", "sinks.export", str(tmp_path / "w"), "--out",
                        str(tmp_path / "o"), "--format", "ros2"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    wf = from_camera_pose(CameraPoseConfig(height_m=1.5, pitch_deg=20))
    recorded = [decode(p) for p in read_session(str(tmp_path / "w")).frames()]
    with Reader(tmp_path / "o" / "ros2.mcap") as rd:
        tfs = [STORE.deserialize_cdr(raw, c.msgtype) for c, _, raw in rd.messages()
               if c.topic == "/tf"]
    assert len(tfs) == 3
    for msg, frame in zip(tfs, recorded):
        p = frame.persons[0]
        fk = forward_kinematics(p.q.astype(np.float64), SK, root_m=p.trans_m.astype(np.float64))
        names = tf_frame_names(body_id("cam0", p.track_id))
        for j in (0, JOINT_NAMES.index("talus_l")):
            np.testing.assert_allclose(compose_tf(msg.transforms, names[j], "world"),
                                       G_WORLD_TO_REP103 @ wf.points(fk.joints_m[j]), atol=1e-9)
        # the floor is z = 0 in the ROS world: the camera sits 1.5 m above it
        np.testing.assert_allclose(compose_tf(msg.transforms, "cam0_optical_frame", "world")[2], 1.5,
                                   atol=1e-9)
