"""VMC over OSC: retargeting on known poses, the FK round trip, and a real python-osc receiver."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engines.skel.dofs import DOF_INDEX, DOF_LOWER, DOF_UPPER, JOINT_NAMES
from engines.skel.kinematics import forward_kinematics, generic_skeleton
from sinks.adapters_config import VmcConfig
from sinks.retarget import (BONE_NAMES, BONE_PARENTS, BONE_TABLE, F_CAMERA_TO_UNITY, M_SKEL_TO_UNITY,
                            bone_world_rotations, compose_bones, humanoid_rig, retarget, tpose_q)
from sinks.schema import decode, encode_frame
from sinks.synth import synthetic_packet
from sinks.config import PublisherConfig
from sinks.vmc import VmcSender, select_person
from stream.config import PipelineConfig, RuntimeConfig
from stream.packet import Packet
from stream.pipeline import build_graph, build_stages
from stream.sources.config import SourceConfig
from stream.stage import Stage

osc_dispatcher = pytest.importorskip("pythonosc.dispatcher")
osc_server = pytest.importorskip("pythonosc.osc_server")
from pythonosc.osc_packet import OscPacket  # noqa: E402

SK = generic_skeleton(1.70)
B = {n: i for i, n in enumerate(BONE_NAMES)}
J = {n: i for i, n in enumerate(JOINT_NAMES)}
S = np.sqrt(0.5)


def upright(q: np.ndarray) -> np.ndarray:
    """q with the pelvis turned so the body stands upright facing +Z in Unity (identity Hips)."""
    q = q.copy()
    q[0:3] = Rotation.from_matrix(F_CAMERA_TO_UNITY @ M_SKEL_TO_UNITY).as_euler("ZXY")
    return q


def pose(**dofs: float) -> np.ndarray:
    q = upright(tpose_q())
    for n, v in dofs.items():
        q[DOF_INDEX[n]] = v
    return q


def assert_identity_except(quats: np.ndarray, *bones: str) -> None:
    for n, i in B.items():
        if n not in bones:
            np.testing.assert_allclose(quats[i], [0, 0, 0, 1], atol=1e-9, err_msg=n)


def test_tpose_is_identity_on_every_bone():
    assert_identity_except(retarget(pose(), SK))


def test_knee_90_is_plus_90_about_unity_x():
    # Unity: +90 deg about X takes the down-pointing shank to -Z, i.e. behind the body
    qt = retarget(pose(knee_angle_r=np.pi / 2, knee_angle_l=np.pi / 2), SK)
    np.testing.assert_allclose(qt[B["RightLowerLeg"]], [S, 0, 0, S], atol=1e-9)
    np.testing.assert_allclose(qt[B["LeftLowerLeg"]], [S, 0, 0, S], atol=1e-9)
    assert_identity_except(qt, "RightLowerLeg", "LeftLowerLeg")


def test_elbow_90_swings_the_forearm_forward_about_unity_y():
    # T-pose forearms point +X (right) / -X (left); flexed 90 deg they point +Z (forward)
    qt = retarget(pose(elbow_flexion_r=np.pi / 2, elbow_flexion_l=np.pi / 2), SK)
    np.testing.assert_allclose(qt[B["RightLowerArm"]], [0, -S, 0, S], atol=1e-9)
    np.testing.assert_allclose(qt[B["LeftLowerArm"]], [0, S, 0, S], atol=1e-9)
    assert_identity_except(qt, "RightLowerArm", "LeftLowerArm")
    r = Rotation.from_quat(qt[B["RightLowerArm"]]).apply([1.0, 0, 0])
    np.testing.assert_allclose(r, [0, 0, 1], atol=1e-9)


def test_hip_flexion_lifts_the_thigh_forward():
    qt = retarget(pose(hip_flexion_r=np.pi / 2), SK)
    thigh = Rotation.from_quat(qt[B["RightUpperLeg"]]).apply([0, -1.0, 0])  # T-pose: down
    np.testing.assert_allclose(thigh, [0, 0, 1], atol=1e-9)


def _random_q(rng: np.random.Generator) -> np.ndarray:
    lo = np.where(np.isfinite(DOF_LOWER), DOF_LOWER, -np.pi)
    hi = np.where(np.isfinite(DOF_UPPER), DOF_UPPER, np.pi)
    return rng.uniform(lo, hi)


# bones whose segment to their parent is one rigid SKEL segment (Toes: subtalar sits between;
# Head: rig-only geometry)
_EXACT = [n for n in BONE_NAMES if n not in ("Hips", "LeftToes", "RightToes", "Head")]


def check_round_trip(q: np.ndarray, quats_xyzw: np.ndarray, root_unity: np.ndarray | None = None):
    """Bones composed like a VMC receiver does give SKEL FK's frames and segment directions."""
    fk = forward_kinematics(q, SK)
    local = Rotation.from_quat(quats_xyzw).as_matrix()
    world, pos = compose_bones(local, humanoid_rig(SK), root_unity)
    np.testing.assert_allclose(world, bone_world_rotations(fk.rots), atol=1e-5)
    origin = {b[0]: J[b[3]] for b in BONE_TABLE}
    for n in _EXACT:
        p = BONE_NAMES[BONE_PARENTS[B[n]]]
        d_skel = F_CAMERA_TO_UNITY @ (fk.joints_m[origin[n]] - fk.joints_m[origin[p]])
        d_unity = pos[B[n]] - pos[B[p]]
        np.testing.assert_allclose(d_unity / np.linalg.norm(d_unity),
                                   d_skel / np.linalg.norm(d_skel), atol=1e-5, err_msg=n)
        assert np.linalg.norm(d_unity) == pytest.approx(np.linalg.norm(d_skel), abs=1e-6)


def test_46_dofs_to_bones_and_back_through_fk_keep_every_direction():
    rng = np.random.default_rng(17)
    for _ in range(50):
        q = _random_q(rng)
        check_round_trip(q, retarget(q, SK))


def test_select_person_largest_or_track_id():
    f = decode(encode_frame(synthetic_packet("cam0", 0, 3), 1, 2 ** 32))
    f.persons[1].bbox_xyxy = np.array([0, 0, 500, 500], np.float32)
    assert select_person(f.persons, "largest").track_id == 2
    assert select_person(f.persons, 3).track_id == 3
    assert select_person(f.persons, 9) is None
    f.persons[1].q = None  # no pose: never chosen
    assert select_person(f.persons, "largest").track_id != 2


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A real python-osc UDP server; records (address, args) per message and bundles per datagram."""

    def __init__(self):
        self.messages: list[tuple[str, tuple]] = []
        self.lock = threading.Lock()
        d = osc_dispatcher.Dispatcher()
        d.map("/VMC/Ext/*", self._on)
        # one thread handles datagrams in arrival order (the threading server may interleave
        # two bundles' messages)
        self.server = osc_server.BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _on(self, address: str, *args) -> None:
        with self.lock:
            self.messages.append((address, args))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def wait_frames(self, n: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if sum(a == "/VMC/Ext/T" for a, _ in self.messages) >= n:
                    return
            time.sleep(0.01)

    def frames(self) -> list[list[tuple[str, tuple]]]:
        """Messages grouped per frame (each bundle starts with /VMC/Ext/OK)."""
        out: list[list] = []
        with self.lock:
            for a, args in self.messages:
                if a == "/VMC/Ext/OK":
                    out.append([])
                out[-1].append((a, args))
        return out


def test_one_bundle_per_frame_with_every_bone_received_by_python_osc():
    port = _free_udp_port()
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", port))
    raw.settimeout(5)
    cfg = VmcConfig(enabled=True, address=f"127.0.0.1:{port}", person=2)
    with VmcSender(cfg) as tx:
        for seq in range(3):
            assert tx.send_frame(decode(encode_frame(synthetic_packet("cam0", seq, 4), 1, 2 ** 32)))
    for _ in range(3):
        packet = OscPacket(raw.recv(65536))  # python-osc's parser: one datagram = one bundle
        addrs = [m.message.address for m in packet.messages]
        assert addrs[:3] == ["/VMC/Ext/OK", "/VMC/Ext/T", "/VMC/Ext/Root/Pos"]
        assert addrs[3:] == ["/VMC/Ext/Bone/Pos"] * len(BONE_NAMES)
    raw.close()


def test_receiver_gets_the_chosen_persons_bones_and_they_rebuild_its_fk():
    with Receiver() as rx:
        cfg = VmcConfig(enabled=True, address=f"127.0.0.1:{rx.port}", person=3)
        packets = [synthetic_packet("cam0", seq, 4) for seq in range(10)]
        packets[4].persons = packets[4].persons[:2]  # track 3 out of view in frame 4
        with VmcSender(cfg) as tx:
            for p in packets:
                tx.send_frame(decode(encode_frame(p, 1, 2 ** 32)))
            assert tx.stats.sent == 10 and tx.stats.dropped == 0 and tx.stats.no_person == 1
        rx.wait_frames(10)
        frames = rx.frames()
    assert len(frames) == 10
    assert frames[4] == [("/VMC/Ext/OK", (1, 3, 0, 0)), ("/VMC/Ext/T", frames[4][1][1])]
    for i, (pkt, fr) in enumerate(zip(packets, frames)):
        if i == 4:
            continue
        person = next(p for p in pkt.persons if p.track_id == 3)
        assert fr[0] == ("/VMC/Ext/OK", (1, 3, 0, 1))
        root = dict((a, args) for a, args in fr if a == "/VMC/Ext/Root/Pos")["/VMC/Ext/Root/Pos"]
        assert root[0] == "root"
        np.testing.assert_allclose(root[1:4], person.trans_m * [1, -1, 1], atol=1e-6)
        bones = {args[0]: np.array(args[1:], np.float64) for a, args in fr if a == "/VMC/Ext/Bone/Pos"}
        assert list(bones) == list(BONE_NAMES)
        quats = np.stack([bones[n][3:7] for n in BONE_NAMES])
        # float32 on the wire: the receiver's rebuild matches our FK to float precision
        check_round_trip(person.q.astype(np.float64), quats)


def test_closed_port_drops_are_counted_and_never_raise():
    port = _free_udp_port()  # nothing listens: the kernel answers ICMP port unreachable
    cfg = VmcConfig(enabled=True, address=f"127.0.0.1:{port}")
    frame = decode(encode_frame(synthetic_packet("cam0", 0, 4), 1, 2 ** 32))
    with VmcSender(cfg) as tx:
        for _ in range(20):
            tx.send_frame(frame)
            time.sleep(0.002)  # the kernel's ICMP answer reaches the socket between sends
    assert tx.stats.frames == 20
    assert tx.stats.dropped >= 1 and tx.stats.sent + tx.stats.dropped == 20


def test_bad_address_is_a_config_error():
    with pytest.raises(ValueError, match="vmc.address must be host:port"):
        VmcConfig(address="localhost")
    with pytest.raises(ValueError):
        VmcConfig(person="tallest")


class FourPeople(Stage):
    """Stands in for detect/track/pose/smooth: 4 synthetic people on every frame."""
    name = "persons"

    def process(self, packet: Packet) -> Packet:
        packet.persons = synthetic_packet(packet.frame.stream_id, packet.frame.seq, 4).persons
        return packet


def _run_graph(address: str, n: int, camera_pose: dict | None = None):
    cfg = PipelineConfig(
        sources=[SourceConfig(uri=f"test:n={n},w=64,h=48,fps=0", mode="lossless",
                              camera_pose=camera_pose)],
        runtime=RuntimeConfig(status_line=False, summary_at_exit=False, lossless=True),
        publisher=PublisherConfig(enabled=False),
        vmc=VmcConfig(enabled=True, address=address))
    chain, sinks = build_stages(cfg)
    assert [s.name for s in sinks] == ["vmc"]
    return build_graph(cfg, chain=[FourPeople()], sinks=sinks,
                       opener="graph_helpers:open_test_source").run()


def test_vmc_stage_in_the_graph_sends_every_frame_lossless():
    with Receiver() as rx:
        result = _run_graph(f"127.0.0.1:{rx.port}", 40, {"height_m": 1.2, "pitch_deg": 10.0})
        assert result.exit_code == 0, result.errors
        rx.wait_frames(40)
        frames = rx.frames()
    assert len(frames) == 40
    assert all(len(f) == 3 + len(BONE_NAMES) for f in frames)


def test_vmc_stage_with_nobody_listening_finishes_the_run():
    result = _run_graph(f"127.0.0.1:{_free_udp_port()}", 40)
    assert result.exit_code == 0, result.errors


def test_known_camera_pose_stands_the_avatar_on_the_level_floor():
    from sinks.retarget import WORLD_TO_UNITY
    from sinks.world_frame import from_camera_pose
    from stream.sources.camera_pose import CameraPoseConfig

    world = from_camera_pose(CameraPoseConfig(height_m=1.2, pitch_deg=10.0))
    r0 = world.r_wc.T @ WORLD_TO_UNITY @ M_SKEL_TO_UNITY   # T-pose, upright, facing Unity +Z
    q = tpose_q()
    q[0:3] = Rotation.from_matrix(r0).as_euler("ZXY")
    p_world = np.array([0.3, 0.95, -3.0])                  # pelvis 0.95 m above the floor
    pkt = synthetic_packet("cam0", 0, 1)
    pkt.persons[0].q = q.astype(np.float32)
    pkt.persons[0].trans_m = (world.r_wc.T @ (p_world - world.t_wc)).astype(np.float32)
    port = _free_udp_port()
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", port))
    raw.settimeout(5)
    with VmcSender(VmcConfig(address=f"127.0.0.1:{port}"), {"cam0": world}) as tx:
        assert tx.send_frame(decode(encode_frame(pkt, 1, 2 ** 32)))
    msgs = {m.message.address + (m.message.params[0] if m.message.address.endswith("Pos") else ""):
            m.message.params for m in OscPacket(raw.recv(65536)).messages}
    raw.close()
    np.testing.assert_allclose(msgs["/VMC/Ext/Root/Posroot"][1:4], [0.3, 0.95, 3.0], atol=1e-5)
    for n in BONE_NAMES:  # float32 angles on the wire: identity to ~1e-6
        np.testing.assert_allclose(msgs[f"/VMC/Ext/Bone/Pos{n}"][4:8], [0, 0, 0, 1], atol=1e-5, err_msg=n)
