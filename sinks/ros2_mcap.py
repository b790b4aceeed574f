"""ROS 2 channels of a session in their own MCAP file (`ros2.mcap`), playable without skelstream.

Written live beside `poses.mcap` with `recorder.ros2: true`, or from any recorded session with
`python -m sinks.export SESSION --out DIR --format ros2`. Messages are CDR with `ros2msg` schemas
(definitions and serializer from the `rosbags` type store, ROS 2 Humble; `sinks/ros2_cdr.py`),
profile `ros2`, so Foxglove and `ros2 bag play` read them as a ROS 2 recording. Topics
(REP-155's where it has one):

| topic | type | content |
|---|---|---|
| `/humans/bodies/<id>/joint_states` | sensor_msgs/msg/JointState | the 46 SKEL DoFs (rad, rad/s), one per person and frame |
| `/tf` | tf2_msgs/msg/TFMessage | a frame per SKEL joint of every posed person, one message per frame |
| `/skelstream/<stream>/skeleton` | visualization_msgs/msg/MarkerArray | bones (LINE_LIST) and joints (SPHERE_LIST) per person |

`<id>` = `<stream>_<track id>`. TF: a person's root `body_<id>` hangs off the camera frame
`<stream>_optical_frame` (REP-103 optical: x right, y down, z forward = the recording's camera
frame), which hangs off a z-up `world` frame (floor at z = 0) when the camera's pose is known
(`sources.N.camera_pose` live; the session's world frame in exports); joints follow REP-155's names where one applies (waist, torso, head, {l,r}_shoulder,
_elbow, _wrist, _hip, _knee, _ankle, each `_<id>`), else the SKEL joint name (`calcn_r_<id>` ...).
Joint frames have REP-103 body axes (x forward, y left, z up). Stamps: capture time (UTC).
Markers live 0.25 s (a person who leaves disappears) and are half transparent while the pose is a
prediction. A person without `trans_m` is drawn at the camera origin, marker namespace
`skeleton_untranslated`, and has no TF.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np

from engines.skel.dofs import DOF_NAMES, JOINT_NAMES, JOINT_PARENTS
from engines.skel.batch_fk import posed_joints
from engines.skel.kinematics import Skeleton, generic_skeleton
from sinks.ros2_cdr import (JOINT_STATE, LINE_LIST, MARKER_ARRAY, SPHERE_LIST, TF_MESSAGE,
                            CdrTemplate, Ros2Builder)
from sinks.schema import SOFTWARE, FrameMsg, PersonMsg
from stream.errors import RecorderError

ROS2_FILE = "ros2.mcap"
TF_TOPIC = "/tf"
REP155_NAMES: dict[str, str] = {
    "pelvis": "body", "lumbar_body": "waist", "thorax": "torso", "head": "head",
    "humerus_r": "r_shoulder", "ulna_r": "r_elbow", "hand_r": "r_wrist",
    "humerus_l": "l_shoulder", "ulna_l": "l_elbow", "hand_l": "l_wrist",
    "femur_r": "r_hip", "tibia_r": "r_knee", "talus_r": "r_ankle",
    "femur_l": "l_hip", "tibia_l": "l_knee", "talus_l": "l_ankle",
}
N_SKEL_TO_REP103 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""SKEL body axes (x anterior, y up, z right) -> REP-103 body axes (x forward, y left, z up)."""
WORLD_FRAME_ID = "world"
G_WORLD_TO_REP103 = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""`sinks.world_frame` axes (x camera right, y up, z toward the camera) -> REP-103 world (x away
from the camera, y left, z up)."""
MARKER_LIFETIME_NS = 250_000_000
_NJ = len(JOINT_NAMES)
_PARENT_IDX = np.maximum(np.array(JOINT_PARENTS), 0)
_BONE_ENDS = np.array([(p, j) for j, p in enumerate(JOINT_PARENTS) if p >= 0]).reshape(-1)


def body_id(stream: str, track_id: int) -> str:
    return f"{stream}_{track_id}"


def camera_frame(stream: str) -> str:
    return f"{stream}_optical_frame"


def joint_state_topic(stream: str, track_id: int) -> str:
    return f"/humans/bodies/{body_id(stream, track_id)}/joint_states"


def tf_frame_names(bid: str) -> list[str]:
    """TF child frame of each SKEL joint (JOINT_NAMES order) for body id `bid`."""
    return [f"{REP155_NAMES.get(n, n)}_{bid}" for n in JOINT_NAMES]


def joint_transforms(rots: np.ndarray, joints_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FK frames (..., 24, 3, 3) and origins (..., 24, 3), camera frame -> each joint relative to
    its TF parent (the camera for the pelvis): translations (..., 24, 3) m and quaternions
    (..., 24, 4) (x, y, z, w), every joint frame with REP-103 body axes."""
    from scipy.spatial.transform import Rotation

    frames = rots @ N_SKEL_TO_REP103.T
    parent = frames[..., _PARENT_IDX, :, :].copy()
    parent[..., 0, :, :] = np.eye(3)
    origin = joints_m[..., _PARENT_IDX, :].copy()
    origin[..., 0, :] = 0.0
    pt = np.swapaxes(parent, -1, -2)
    rel_pos = (pt @ (joints_m - origin)[..., None])[..., 0]
    shape = rots.shape[:-2]
    # products of FK's rotation matrices: orthonormal to rounding, so scipy's checks are skipped
    quat = Rotation.from_matrix((pt @ frames).reshape(-1, 3, 3), assume_valid=True).as_quat()
    quat = quat.reshape(*shape, 4)
    return rel_pos, quat


def track_color(track_id: int, predicted: bool) -> np.ndarray:
    """RGBA float32: a stable hue per track; half transparent while the pose is predicted."""
    h = (track_id * 0.618034) % 1.0
    return np.array([0.3 + 0.7 * h, 0.9 - 0.6 * h, 0.3, 0.4 if predicted else 1.0], np.float32)


class Ros2FrameEncoder:
    """FrameMsg -> [(topic, type, CDR bytes)]. Live path: cached rosbags-built templates."""

    def __init__(self, skeleton: Skeleton | None = None, worlds: dict | None = None,
                 body_height_m: float = 1.70):
        """`worlds`: stream id -> `sinks.world_frame.WorldFrame`; such a camera's optical frame
        hangs off a z-up `world` frame (floor at z = 0) in every /tf message. People with
        estimated segment lengths are posed on their own build (generic at `body_height_m` with
        their lengths), the rest on `skeleton`."""
        from scipy.spatial.transform import Rotation

        from sinks.session_skeleton import PersonSkeletons

        self.b = Ros2Builder()
        self.skeleton = skeleton or generic_skeleton(body_height_m)
        self.skeletons = PersonSkeletons(self.skeleton, body_height_m)
        self._templates: dict[tuple, CdrTemplate] = {}
        self._camera_in_world = {
            sid: np.concatenate([G_WORLD_TO_REP103 @ wf.t_wc,
                                 Rotation.from_matrix(G_WORLD_TO_REP103 @ wf.r_wc).as_quat()])
            for sid, wf in (worlds or {}).items()}

    # -- shapes: rosbags messages built from flat value arrays (reference and template source) --
    def _js_make(self, frame_id: str, with_vel: bool):
        def make(sec, nsec, f64, f32):
            return self.b.joint_state(sec, nsec, frame_id, DOF_NAMES, f64[:46],
                                      f64[46:92] if with_vel else None)
        return make

    def _tf_make(self, stream: str, bids: tuple[str, ...]):
        parents, children = [], []
        if stream in self._camera_in_world:
            parents.append(WORLD_FRAME_ID)
            children.append(camera_frame(stream))
        for bid in bids:
            names = tf_frame_names(bid)
            children += names
            parents += [camera_frame(stream)] + [names[p] for p in JOINT_PARENTS[1:]]

        def make(sec, nsec, f64, f32):
            v = f64.reshape(-1, 7)
            return self.b.tf_message(sec, nsec, parents, children, v[:, :3], v[:, 3:])
        return make

    def _markers_make(self, stream: str, shapes: tuple[tuple[int, str], ...]):
        n_line, n_joint = len(_BONE_ENDS), _NJ

        def make(sec, nsec, f64, f32):
            markers, i = [], 0
            for k, (tid, ns) in enumerate(shapes):
                rgba = f32[8 * k:8 * k + 4], f32[8 * k + 4:8 * k + 8]
                for m, (kind, n, scale) in enumerate(((LINE_LIST, n_line, 0.02),
                                                      (SPHERE_LIST, n_joint, 0.04))):
                    pts = f64[i:i + 3 * n].reshape(n, 3)
                    i += 3 * n
                    markers.append(self.b.marker(sec, nsec, camera_frame(stream), ns,
                                                 2 * tid + m, kind, scale, rgba[m], pts,
                                                 MARKER_LIFETIME_NS))
            return self.b.marker_array(markers)
        return make

    def _template(self, key: tuple, typename: str, make: Callable[[], Callable], n64: int,
                  n32: int = 0) -> CdrTemplate:
        """The cached template of a message shape; `make()` gives its builder on a miss."""
        t = self._templates.get(key)
        if t is None:
            if len(self._templates) > 4096:  # many shapes over a long run: start over
                self._templates.clear()
            t = self._templates[key] = CdrTemplate(self.b, typename, make(), n64, n32)
        return t

    # -- per frame -------------------------------------------------------------------------------
    def posed(self, persons: list[PersonMsg]) -> tuple[np.ndarray, np.ndarray]:
        """Project FK of every person in one batch: (rots (P, 24, 3, 3), joints (P, 24, 3) m,
        camera frame; a person without `trans_m` at the camera origin)."""
        q = np.stack([p.q for p in persons]).astype(np.float64)
        root = np.stack([np.zeros(3, np.float32) if p.trans_m is None else p.trans_m
                         for p in persons]).astype(np.float64)
        joints, rots = posed_joints(q, self.skeletons.offsets(persons), root)
        return rots, joints

    def values(self, frame: FrameMsg) -> dict:
        """The numbers of every message of a frame, flat, in template order (see `encode`)."""
        posed = [p for p in frame.persons if p.q is not None]
        out: dict = {"posed": posed}
        if not posed:
            return out
        rots, joints = self.posed(posed)
        out["joints"] = joints
        placed = [i for i, p in enumerate(posed) if p.trans_m is not None]
        if placed:
            pos, quat = joint_transforms(rots[placed], joints[placed])
            out["tf"] = np.concatenate([pos, quat], axis=-1).reshape(-1)
        out["placed"] = [posed[i] for i in placed]
        return out

    def encode(self, frame: FrameMsg) -> list[tuple[str, str, bytes]]:
        """(topic, type, CDR bytes) of one frame: a JointState per posed person, one /tf (people
        with a translation), one MarkerArray (possibly empty, so viewers clear)."""
        sec, nsec = divmod(frame.capture_utc_ns, 1_000_000_000)
        v = self.values(frame)
        out = []
        for p in v["posed"]:
            vel = p.q_vel is not None
            bid = body_id(frame.stream, p.track_id)
            t = self._template(("js", bid, vel), JOINT_STATE, lambda: self._js_make(bid, vel),
                               92 if vel else 46)
            f64 = np.concatenate([p.q, p.q_vel]) if vel else p.q
            out.append((joint_state_topic(frame.stream, p.track_id), JOINT_STATE, t.fill(sec, nsec, f64)))
        if v.get("placed"):
            bids = tuple(body_id(frame.stream, p.track_id) for p in v["placed"])
            cam = self._camera_in_world.get(frame.stream)
            n = 7 * _NJ * len(bids) + (0 if cam is None else 7)
            t = self._template(("tf", frame.stream, bids), TF_MESSAGE,
                               lambda: self._tf_make(frame.stream, bids), n)
            out.append((TF_TOPIC, TF_MESSAGE,
                        t.fill(sec, nsec, v["tf"] if cam is None else np.concatenate([cam, v["tf"]]))))
        shapes = tuple((p.track_id, "skeleton" if p.trans_m is not None else "skeleton_untranslated")
                       for p in v["posed"])
        n64 = 3 * (len(_BONE_ENDS) + _NJ) * len(shapes)
        t = self._template(("mk", frame.stream, shapes), MARKER_ARRAY,
                           lambda: self._markers_make(frame.stream, shapes), n64, 8 * len(shapes))
        if shapes:
            j = v["joints"]                              # per person: bone ends, then joints
            f64 = np.concatenate([j[:, _BONE_ENDS], j], axis=1).reshape(-1)
            f32 = np.concatenate([track_color(p.track_id, p.predicted) for p in v["posed"]
                                  for _ in range(2)])
        else:
            f64, f32 = np.zeros(0), np.zeros(0, np.float32)
        out.append((f"/skelstream/{frame.stream}/skeleton", MARKER_ARRAY, t.fill(sec, nsec, f64, f32)))
        return out


class Ros2McapWriter:
    """`ros2.mcap`: the ROS 2 channels, chunks flushed every `flush_interval_s` (a kill loses at
    most that much; `python -m sinks.export SESSION --format ros2` rebuilds the file from
    poses.mcap). A context manager: the footer is always written."""

    def __init__(self, path: str, skeleton: Skeleton | None = None, flush_interval_s: float = 0.5,
                 worlds: dict | None = None, body_height_m: float = 1.70):
        self.path, self.flush_interval_s = path, flush_interval_s
        self.encoder = Ros2FrameEncoder(skeleton, worlds, body_height_m)
        self.frames = 0
        self._file = None
        self._writer = None
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._next_flush = 0.0

    def open(self) -> "Ros2McapWriter":
        from mcap.writer import CompressionType, Writer

        try:
            self._file = open(self.path, "xb")
        except OSError as exc:
            raise RecorderError(f"cannot write ROS 2 channels to {self.path} ({exc.strerror}); "
                                "choose another folder or remove the old file") from None
        # LZ4, not the poses file's zstd: ~25 kB of TF and markers per 4-person frame compress
        # ~3x faster (the sink's 0.5 ms budget) for a somewhat larger file
        self._writer = Writer(self._file, compression=CompressionType.LZ4)
        self._writer.start(profile="ros2", library=SOFTWARE)
        self._next_flush = time.monotonic() + self.flush_interval_s
        return self

    def __enter__(self) -> "Ros2McapWriter":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _channel(self, topic: str, typename: str) -> int:
        ch = self._channels.get(topic)
        if ch is None:
            sid = self._schemas.get(typename)
            if sid is None:
                sid = self._schemas[typename] = self._writer.register_schema(
                    typename, "ros2msg", self.encoder.b.msgdef(typename).encode())
            ch = self._channels[topic] = self._writer.register_channel(topic, "cdr", sid)
        return ch

    def write_frame(self, frame: FrameMsg) -> None:
        """Every ROS 2 message of one frame, logged at its capture time (UTC ns)."""
        for topic, typename, data in self.encoder.encode(frame):
            self._writer.add_message(self._channel(topic, typename), frame.capture_utc_ns, data,
                                     frame.capture_utc_ns)
        self.frames += 1
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_flush:
            self._writer.flush()
            self._next_flush = now + self.flush_interval_s

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.finish()
            finally:
                self._file.close()
                self._writer = None


def export_ros2(frames: list[FrameMsg], out_dir: str, skeleton: Skeleton | None = None,
                worlds: dict | None = None, body_height_m: float = 1.70) -> list[str]:
    """`<out_dir>/ros2.mcap` from a session's frames; returns [path]."""
    if not any(p.q is not None for f in frames for p in f.persons):
        raise RecorderError("the session has no person with joint angles (field q): no ROS 2 "
                            "joint states or TF to write; record with a pose engine enabled")
    path = os.path.join(out_dir, ROS2_FILE)
    if os.path.exists(path):
        os.remove(path)
    with Ros2McapWriter(path, skeleton, flush_interval_s=1e9, worlds=worlds,
                        body_height_m=body_height_m) as w:
        for f in frames:
            w.write_frame(f)
    return [path]


def export_ros2_session(session: str, frames: list[FrameMsg], out_dir: str) -> list[str]:
    """`ros2.mcap` of a recorded session on its skeleton, with its world frames where it has them."""
    from sinks.recorder import read_session
    from sinks.session_skeleton import session_body_height_m, session_skeleton, session_worlds

    if not any(p.q is not None for f in frames for p in f.persons):
        return export_ros2(frames, out_dir)       # names what is missing
    metadata = read_session(session).metadata
    worlds = session_worlds(session, frames, metadata, "ROS 2 TF without a `world` frame")
    config_yaml = metadata.get("skelstream.config", {}).get("yaml", "")
    return export_ros2(frames, out_dir, session_skeleton(config_yaml), worlds,
                       session_body_height_m(config_yaml))
