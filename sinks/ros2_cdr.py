"""ROS 2 messages for the skeleton channels: built and serialized by `rosbags`, then reused.

`Ros2Builder` makes rosbags message objects (JointState, TFMessage, MarkerArray) from arrays and
serializes them to CDR with rosbags' serializer: the reference. Building ~100 nested objects per
frame costs ~2-3 ms for 4 people, so the live path uses `CdrTemplate`: a message of a given *shape*
(which bodies, frame names, point counts) is serialized once by rosbags with sentinel numbers, the
byte offsets of those numbers are found, and each frame only writes its numbers at those offsets
(numpy scatter). Shapes change when people come and go; the templates are cached per shape.
Tests check the template bytes equal rosbags' serialization of the same message.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from stream.errors import require

JOINT_STATE = "sensor_msgs/msg/JointState"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
LINE_LIST, SPHERE_LIST = 5, 7
# sentinel stamp: sec and nanosec bit patterns that occur nowhere else in these messages
_SENTINEL_SEC, _SENTINEL_NSEC = 0x3C5A1E07, 987_654_321


def _sentinels64(n: int) -> np.ndarray:
    return -(1_000_003.0 + np.arange(n) * 1.000_001_1)


def _sentinels32(n: int) -> np.ndarray:
    return (-(7_000.5 + np.arange(n) * 1.25)).astype(np.float32)


class Ros2Builder:
    """rosbags message objects from arrays (ROS 2 Humble definitions), and their CDR bytes."""

    def __init__(self):
        require("rosbags.typesys", "ros2", "ROS 2 channels")
        from rosbags.typesys import Stores, get_typestore

        self.store = get_typestore(Stores.ROS2_HUMBLE)
        self.t = self.store.types
        self._no_f64 = np.zeros(0, np.float64)
        self._no_u8 = np.zeros(0, np.uint8)

    def msgdef(self, typename: str) -> str:
        """The `ros2msg` schema text (with dependencies) an MCAP ROS 2 channel carries."""
        return self.store.generate_msgdef(typename, ros_version=2)[0]

    def serialize(self, msg, typename: str) -> bytes:
        return bytes(self.store.serialize_cdr(msg, typename))

    def header(self, sec: int, nsec: int, frame_id: str):
        t = self.t
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                        frame_id=frame_id)

    def joint_state(self, sec: int, nsec: int, frame_id: str, names: list[str],
                    position: np.ndarray, velocity: np.ndarray | None):
        return self.t[JOINT_STATE](
            header=self.header(sec, nsec, frame_id), name=list(names),
            position=np.asarray(position, np.float64),
            velocity=self._no_f64 if velocity is None else np.asarray(velocity, np.float64),
            effort=self._no_f64)

    def tf_message(self, sec: int, nsec: int, parents: list[str], children: list[str],
                   pos: np.ndarray, quat_xyzw: np.ndarray):
        """One TransformStamped per (parent, child); pos (M, 3) m, quat (M, 4) (x, y, z, w)."""
        t = self.t
        vec, qt = t["geometry_msgs/msg/Vector3"], t["geometry_msgs/msg/Quaternion"]
        return t[TF_MESSAGE](transforms=[
            t["geometry_msgs/msg/TransformStamped"](
                header=self.header(sec, nsec, parent), child_frame_id=child,
                transform=t["geometry_msgs/msg/Transform"](
                    translation=vec(*map(float, p)), rotation=qt(*map(float, q))))
            for parent, child, p, q in zip(parents, children, pos, quat_xyzw)])

    def marker(self, sec: int, nsec: int, frame_id: str, ns: str, mid: int, kind: int,
               scale: float, rgba: np.ndarray, points: np.ndarray, lifetime_ns: int):
        t = self.t
        point = t["geometry_msgs/msg/Point"]
        return t["visualization_msgs/msg/Marker"](
            header=self.header(sec, nsec, frame_id), ns=ns, id=mid, type=kind, action=0,
            pose=t["geometry_msgs/msg/Pose"](position=point(0.0, 0.0, 0.0),
                                             orientation=t["geometry_msgs/msg/Quaternion"](0.0, 0.0, 0.0, 1.0)),
            scale=t["geometry_msgs/msg/Vector3"](scale, scale, scale),
            color=t["std_msgs/msg/ColorRGBA"](*map(float, rgba)),
            lifetime=t["builtin_interfaces/msg/Duration"](sec=lifetime_ns // 1_000_000_000,
                                                          nanosec=lifetime_ns % 1_000_000_000),
            frame_locked=False, points=[point(*map(float, v)) for v in points], colors=[],
            texture_resource="",
            texture=t["sensor_msgs/msg/CompressedImage"](header=self.header(0, 0, ""), format="",
                                                         data=self._no_u8),
            uv_coordinates=[], text="", mesh_resource="",
            mesh_file=t["visualization_msgs/msg/MeshFile"](filename="", data=self._no_u8),
            mesh_use_embedded_materials=False)

    def marker_array(self, markers: list):
        return self.t[MARKER_ARRAY](markers=markers)


class CdrTemplate:
    """CDR bytes of one message shape with the places of its numbers: `fill` writes new numbers.

    `make(sec, nsec, f64, f32)` must build the message (rosbags objects) from a stamp and flat
    float64 / float32 value arrays of fixed lengths `n64`, `n32`, each value used exactly once."""

    def __init__(self, builder: Ros2Builder, typename: str,
                 make: Callable[[int, int, np.ndarray, np.ndarray], object], n64: int, n32: int = 0):
        s64, s32 = _sentinels64(n64), _sentinels32(n32)
        data = builder.serialize(make(_SENTINEL_SEC, _SENTINEL_NSEC, s64, s32), typename)
        self.template = data
        # CDR aligns to the payload, which starts after the 4-byte encapsulation header
        self.off64 = self._find(data, [v.tobytes() for v in s64.astype("<f8")], align=8, phase=4)
        self.off32 = self._find(data, [v.tobytes() for v in s32.astype("<f4")], align=4, phase=0)
        stamp = np.array([_SENTINEL_SEC, _SENTINEL_NSEC], "<u4").tobytes()
        offs = np.array(self._find_all(data, stamp), dtype=np.int64)
        if (offs % 4).any():
            raise RuntimeError(f"{typename}: a stamp of the CDR template is not aligned")
        self.off_stamp = offs // 4
        self.idx64 = (self.off64 - 4) // 8   # float64 slots, counted from the CDR payload start

    @staticmethod
    def _find(data: bytes, needles: list[bytes], align: int, phase: int) -> np.ndarray:
        """Byte offset of each needle: present once, at an offset = phase (mod align)."""
        out = []
        for n in needles:
            i = data.find(n)
            if i < 0 or data.find(n, i + 1) >= 0 or i % align != phase:
                raise RuntimeError("CDR template: a sentinel value is missing, repeated or unaligned")
            out.append(i)
        return np.array(out, dtype=np.int64)

    @staticmethod
    def _find_all(data: bytes, needle: bytes) -> list[int]:
        out, i = [], data.find(needle)
        while i >= 0:
            out.append(i)
            i = data.find(needle, i + 4)
        return out

    def fill(self, sec: int, nsec: int, f64: np.ndarray, f32: np.ndarray | None = None) -> bytes:
        """The message with this stamp and these numbers (same order as `make` used them)."""
        buf = bytearray(self.template)
        n = len(buf)
        np.frombuffer(buf, "<f8", count=(n - 4) // 8, offset=4)[self.idx64] = f64
        u32 = np.frombuffer(buf, "<u4", count=n // 4)
        if f32 is not None and len(self.off32):
            u32.view("<f4")[self.off32 // 4] = f32
        u32[self.off_stamp] = sec
        u32[self.off_stamp + 1] = nsec
        return bytes(buf)
