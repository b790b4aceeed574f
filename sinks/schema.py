"""The wire format: msgpack maps of three kinds ('meta', 'frame', 'heartbeat'), version 1.

Every message carries `schema` (int) and `kind` (str), so a client can check the version on any
message. Arrays travel as msgpack `bin` holding raw little-endian float32 (bool arrays: one uint8
per element, 0/1): one `tobytes()` per array is ~20x cheaper to pack than a list of floats, and a
consumer in any language wraps the bytes without parsing (numpy `frombuffer`, JS `Float32Array`).
Field names, types, units and frames are documented in docs/schema.md.

Decoding is strict: size limits go to the msgpack unpacker (no unbounded allocation), every field
is type- and length-checked, and anything wrong raises `SchemaError` (one line), never a crash.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import msgpack
import numpy as np

from engines.skel.dofs import (DOF_JOINT, DOF_LOWER, DOF_NAMES, DOF_UPPER, JOINT_NAMES,
                               JOINT_PARENTS, NUM_BETAS, NUM_DOFS)
from engines.skel.kinematics import MEASURED_SEGMENTS
from stream.errors import TransportError
from stream.packet import FrameInfo, Intrinsics, Packet, Person, TrackState

SCHEMA_VERSION = 1
TOPIC_SEP = b"\x00"             # topic = stream id (utf-8) + NUL; NUL cannot occur in a stream id
MAX_MESSAGE_BYTES = 1 << 20     # hard cap on one payload (also set as ZMQ_MAXMSGSIZE on clients)
MAX_PERSONS = 256
KINDS = ("meta", "frame", "heartbeat")
SOFTWARE = "skelstream 0.1.0"

NUM_SEGMENTS = len(MEASURED_SEGMENTS)
_F32 = np.dtype("<f4")
_BOOL = np.dtype(np.bool_)
_UNPACK_LIMITS = dict(max_str_len=4096, max_bin_len=4096, max_array_len=max(MAX_PERSONS, 64),
                      max_map_len=64, max_ext_len=0)


class SchemaError(TransportError):
    """A message is malformed, truncated or hostile (clients skip and count it)."""


class SchemaVersionError(SchemaError):
    """The publisher speaks another schema version than this client."""


def topic_for(stream_id: str) -> bytes:
    """ZeroMQ topic of a stream: utf-8 stream id + NUL (so 'cam1' never matches 'cam10')."""
    return stream_id.encode() + TOPIC_SEP


# ------------------------------------------------------------------------------------------
# typed messages (what clients get)
# ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class PersonMsg:
    """One person. Arrays are read-only views on the message bytes."""
    track_id: int
    state: str                        # 'tentative' | 'tracked' | 'lost'
    bbox_xyxy: np.ndarray             # (4,) float32 px
    score: float
    box_predicted: bool
    q: np.ndarray | None              # (46,) float32 rad, SKEL order
    q_vel: np.ndarray | None          # (46,) float32 rad/s
    limit_active: np.ndarray | None   # (46,) bool
    predicted: bool
    betas: np.ndarray | None          # (10,) float32
    trans_m: np.ndarray | None        # (3,) float32 m, camera frame (x right, y down, z forward)
    root_orient_wxyz: np.ndarray | None  # (4,) float32 unit quaternion, pelvis in camera frame
    confidence: float
    model_id: str
    q_predicted: np.ndarray | None = None  # (46,) bool: the DoF took no measurement this frame
    #                                        (nil from publishers that predate the field)
    segments_m: np.ndarray | None = None   # (7,) float32 m, MEASURED_SEGMENTS order: the person's
    #                                        estimated segment lengths (nil until estimated)


@dataclass(slots=True)
class FrameMsg:
    stream: str
    pub_seq: int                      # +1 per message on this topic (gaps = transport drops)
    seq: int                          # source frame number (gaps = frames the pipeline dropped)
    capture_ns: int                   # monotonic ns at capture
    capture_utc_ns: int               # wall clock ns at capture
    publish_utc_ns: int               # wall clock ns when encoded for sending
    width: int
    height: int
    intrinsics: Intrinsics | None
    persons: list[PersonMsg] = field(default_factory=list)
    media_pts_s: float | None = None  # presentation time inside a file; None for live sources
    kind: str = "frame"


@dataclass(slots=True)
class HeartbeatMsg:
    stream: str
    pub_seq: int
    publish_utc_ns: int
    seq: int                          # last frame seq seen (-1: none yet)
    capture_ns: int                   # its capture time (0: none)
    ended: bool                       # the stream's source finished
    kind: str = "heartbeat"


@dataclass(slots=True)
class MetaMsg:
    stream: str
    pub_seq: int
    publish_utc_ns: int
    dof_names: list[str]
    dof_lower: list[float | None]     # rad; None = unbounded
    dof_upper: list[float | None]
    dof_joint: list[int]
    joint_names: list[str]
    joint_parents: list[int]
    units: dict[str, str]
    software: str
    raw: dict = field(default_factory=dict)
    kind: str = "meta"


Message = FrameMsg | HeartbeatMsg | MetaMsg

# ------------------------------------------------------------------------------------------
# encoding
# ------------------------------------------------------------------------------------------


def _np_scalar(o):
    """msgpack fallback for numpy scalars (e.g. an int64 track id); only called on a miss."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot serialize {type(o).__name__}")


_packer = msgpack.Packer(use_bin_type=True, autoreset=True, default=_np_scalar)

UNITS = {"q": "rad", "q_vel": "rad/s", "dof_lower": "rad", "dof_upper": "rad", "trans_m": "m",
         "bbox_xyxy": "px", "capture_ns": "ns (monotonic)", "capture_utc_ns": "ns (UTC epoch)",
         "publish_utc_ns": "ns (UTC epoch)", "intrinsics": "px", "media_pts_s": "s"}
FRAMES = {"trans_m": "OpenCV camera frame: x right, y down, z forward",
          "root_orient_wxyz": "pelvis orientation in the camera frame, unit quaternion (w, x, y, z)",
          "bbox_xyxy": "image pixels, x1 y1 x2 y2"}


_STATE = {s: s.value for s in TrackState}
_REMOVED = TrackState.REMOVED


def _b(a: np.ndarray | None, n: int) -> bytes | None:
    """(n,) array -> raw little-endian float32 bytes; None stays None."""
    if a is None:
        return None
    b = (a if a.dtype is _F32 else np.asarray(a, _F32)).tobytes()
    if len(b) != 4 * n:
        raise ValueError(f"array of {len(b) // 4} values where {n} are expected")
    return b


def _mask(a: np.ndarray | None) -> bytes | None:
    if a is None:
        return None
    b = (a if a.dtype is _BOOL else np.asarray(a, _BOOL)).tobytes()  # bool: 1 byte, 0 or 1
    if len(b) != NUM_DOFS:
        raise ValueError(f"mask of {len(b)} values where {NUM_DOFS} are expected")
    return b


def _person_map(p: Person) -> dict:
    # the hot path of publishing: plain attribute reads, one tobytes per array
    st = p.track_state
    return {
        "track_id": p.track_id,
        "state": _STATE[st] if st in _STATE else str(st),
        "bbox_xyxy": _b(p.box_xyxy, 4),
        "score": float(p.score),
        "box_predicted": bool(p.box_predicted),
        "q": _b(p.q, NUM_DOFS),
        "q_vel": _b(p.q_vel, NUM_DOFS),
        "limit_active": _mask(p.limit_active),
        "predicted": bool(p.predicted),
        "q_predicted": _mask(p.q_predicted),
        "betas": _b(p.betas, NUM_BETAS),
        "segments_m": _b(p.segments_m, NUM_SEGMENTS),
        "trans_m": _b(p.trans_m, 3),
        "root_orient_wxyz": _b(p.root_orient_wxyz, 4),
        "confidence": float(p.pose_confidence),
        "model_id": p.model_id,
    }


def encode_frame(packet: Packet, pub_seq: int, publish_utc_ns: int,
                 stream_id: str | None = None) -> bytes:
    """Packet -> 'frame' payload (persons in packet order, REMOVED tracks left out).
    `stream_id`: the id on the wire (default: the packet's own, e.g. without a host prefix).

    `publish_utc_ns` is packed last so the publisher can overwrite it in place with the instant
    it hands the bytes to ZeroMQ (`with_publish_time`), after the encoding."""
    fi, k = packet.frame, packet.intrinsics
    return _packer.pack({
        "schema": SCHEMA_VERSION, "kind": "frame",
        "stream": fi.stream_id if stream_id is None else stream_id, "pub_seq": pub_seq,
        "seq": fi.seq, "capture_ns": fi.capture_ns, "capture_utc_ns": fi.capture_utc_ns,
        "width": fi.width, "height": fi.height, "media_pts_s": fi.media_pts_s,
        "intrinsics": None if k is None else {"fx": float(k.fx), "fy": float(k.fy),
                                              "cx": float(k.cx), "cy": float(k.cy),
                                              "source": k.source},
        "persons": [_person_map(p) for p in packet.persons if p.track_state is not _REMOVED],
        "publish_utc_ns": publish_utc_ns,
    })


_UINT64 = 0xCF  # msgpack's uint64 marker: any real UTC ns stamp (> 2^32) is packed with it


def with_publish_time(payload: bytes, publish_utc_ns: int) -> bytes:
    """A frame payload from `encode_frame` with its publish_utc_ns (the last 9 bytes: uint64
    marker + 8 big-endian bytes) set to `publish_utc_ns`."""
    if len(payload) < 9 or payload[-9] != _UINT64 or not 2 ** 32 <= publish_utc_ns < 2 ** 64:
        raise ValueError("with_publish_time needs a frame encoded with a real UTC ns stamp")
    return payload[:-8] + publish_utc_ns.to_bytes(8, "big")


def encode_heartbeat(stream_id: str, pub_seq: int, publish_utc_ns: int, seq: int = -1,
                     capture_ns: int = 0, ended: bool = False) -> bytes:
    return _packer.pack({"schema": SCHEMA_VERSION, "kind": "heartbeat", "stream": stream_id,
                         "pub_seq": pub_seq, "publish_utc_ns": publish_utc_ns, "seq": seq,
                         "capture_ns": capture_ns, "ended": ended})


def meta_map() -> dict:
    """The stream-independent part of a meta message (also stored in recordings)."""
    bound = lambda v: None if not np.isfinite(v) else float(v)  # noqa: E731
    return {
        "dof_names": list(DOF_NAMES), "dof_lower": [bound(v) for v in DOF_LOWER],
        "dof_upper": [bound(v) for v in DOF_UPPER], "dof_joint": [int(j) for j in DOF_JOINT],
        "joint_names": list(JOINT_NAMES), "joint_parents": list(JOINT_PARENTS),
        "num_betas": NUM_BETAS, "units": UNITS, "frames": FRAMES,
        "array_encoding": "bin: raw little-endian float32; masks: one uint8 (0/1) per element",
        "software": SOFTWARE,
    }


def encode_meta(stream_id: str, pub_seq: int, publish_utc_ns: int) -> bytes:
    return _packer.pack({"schema": SCHEMA_VERSION, "kind": "meta", "stream": stream_id,
                         "pub_seq": pub_seq, "publish_utc_ns": publish_utc_ns, **meta_map()})


def restamp(payload: bytes, pub_seq: int, publish_utc_ns: int) -> bytes:
    """Re-publish a recorded message: same content, new `pub_seq` and `publish_utc_ns`."""
    m = _unpack(payload)
    m["pub_seq"], m["publish_utc_ns"] = pub_seq, publish_utc_ns
    return _packer.pack(m)


# ------------------------------------------------------------------------------------------
# decoding
# ------------------------------------------------------------------------------------------
def _unpack(payload: bytes) -> dict:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise SchemaError(f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > MAX_MESSAGE_BYTES:
        raise SchemaError(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        m = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True,
                            **_UNPACK_LIMITS)
    except Exception as exc:  # noqa: BLE001 - msgpack raises many types on hostile input
        raise SchemaError(f"undecodable msgpack ({type(exc).__name__}: {exc})"[:200]) from None
    if not isinstance(m, dict):
        raise SchemaError(f"message is a {type(m).__name__}, expected a map")
    v = m.get("schema")
    if type(v) is not int:
        raise SchemaError("message has no integer 'schema' field")
    if v != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"publisher speaks schema version {v}, this client reads version {SCHEMA_VERSION}; "
            "upgrade the client (or the publisher) so both match")
    return m


def _get(m: dict, key: str, typ, what: str):
    v = m.get(key, _MISSING)
    if v is _MISSING:
        raise SchemaError(f"{what}: missing field '{key}'")
    if typ is float:
        if type(v) is int:
            return float(v)
        if type(v) is not float:
            raise SchemaError(f"{what}: field '{key}' must be a number")
        return v
    if typ is int and type(v) is bool or not isinstance(v, typ):
        raise SchemaError(f"{what}: field '{key}' has type {type(v).__name__}")
    return v


_MISSING = object()


def _f32(v, n: int, key: str, i: int, optional: bool = True) -> np.ndarray | None:
    if v is None and optional:
        return None
    if type(v) is not bytes or len(v) != 4 * n:
        raise SchemaError(f"person {i}: field '{key}' must be {4 * n} bytes of float32")
    return np.frombuffer(v, _F32)


def _person(p, i: int) -> PersonMsg:
    # hot path of every client: direct lookups, checks inline
    if type(p) is not dict:
        raise SchemaError(f"person {i} is not a map")
    try:
        tid, st, score, conf = p["track_id"], p["state"], p["score"], p["confidence"]
        boxp, pred, model, la = p["box_predicted"], p["predicted"], p["model_id"], p["limit_active"]
        q = _f32(p["q"], NUM_DOFS, "q", i)
        q_vel = _f32(p["q_vel"], NUM_DOFS, "q_vel", i)
        bbox = _f32(p["bbox_xyxy"], 4, "bbox_xyxy", i, optional=False)
        betas = _f32(p["betas"], NUM_BETAS, "betas", i)
        trans = _f32(p["trans_m"], 3, "trans_m", i)
        orient = _f32(p["root_orient_wxyz"], 4, "root_orient_wxyz", i)
    except KeyError as exc:
        raise SchemaError(f"person {i}: missing field {exc}") from None
    if type(tid) is not int or type(st) is not str or type(model) is not str:
        raise SchemaError(f"person {i}: track_id must be an int, state and model_id strings")
    if type(score) not in (float, int) or type(conf) not in (float, int):
        raise SchemaError(f"person {i}: score and confidence must be numbers")
    if type(boxp) is not bool or type(pred) is not bool:
        raise SchemaError(f"person {i}: box_predicted and predicted must be booleans")
    la = _bool_mask(la, "limit_active", i)
    qp = _bool_mask(p.get("q_predicted"), "q_predicted", i)  # optional: absent from older publishers
    seg = _f32(p.get("segments_m"), NUM_SEGMENTS, "segments_m", i)  # optional, as q_predicted
    return PersonMsg(tid, st, bbox, float(score), boxp, q, q_vel, la, pred, betas, trans, orient,
                     float(conf), model, qp, seg)


def _bool_mask(v, key: str, i: int) -> np.ndarray | None:
    if v is None:
        return None
    if type(v) is not bytes or len(v) != NUM_DOFS or v.translate(None, b"\0\1"):
        raise SchemaError(f"person {i}: field '{key}' must be {NUM_DOFS} bytes of 0/1")
    return np.frombuffer(v, _BOOL)


def _intrinsics(k) -> Intrinsics | None:
    if k is None:
        return None
    if not isinstance(k, dict):
        raise SchemaError("frame: field 'intrinsics' must be a map or nil")
    w = "intrinsics"
    return Intrinsics(_get(k, "fx", float, w), _get(k, "fy", float, w), _get(k, "cx", float, w),
                      _get(k, "cy", float, w), _get(k, "source", str, w))


def _media_pts(v) -> float | None:
    """Optional (absent in recordings made before it existed): nil or a number."""
    if v is None:
        return None
    if type(v) not in (float, int):
        raise SchemaError("frame: field 'media_pts_s' must be a number or nil")
    return float(v)


def _is_bound(v) -> bool:
    return v is None or type(v) in (int, float)


def _list_of(m: dict, key: str, n: int | None, ok, what: str) -> list:
    """meta field `key`: a list (of `n` entries if given) whose every entry passes `ok`; a
    hostile publisher's nested lists or maps stop here, not in client code that hashes them."""
    v = _get(m, key, list, "meta")
    if n is not None and len(v) != n:
        raise SchemaError(f"meta: field '{key}' must have {n} entries")
    if not all(ok(x) for x in v):
        raise SchemaError(f"meta: every entry of '{key}' must be {what}")
    return v


def _meta(m: dict) -> MetaMsg:
    w = "meta"
    joint_names = _list_of(m, "joint_names", None, lambda x: type(x) is str, "a string")
    n_joints = len(joint_names)
    units = _get(m, "units", dict, w)
    if not all(type(k) is str and type(v) is str for k, v in units.items()):
        raise SchemaError("meta: field 'units' must map strings to strings")
    return MetaMsg(
        _get(m, "stream", str, w), _get(m, "pub_seq", int, w), _get(m, "publish_utc_ns", int, w),
        _list_of(m, "dof_names", NUM_DOFS, lambda x: type(x) is str, "a string"),
        [None if x is None else float(x)
         for x in _list_of(m, "dof_lower", NUM_DOFS, _is_bound, "a number or nil")],
        [None if x is None else float(x)
         for x in _list_of(m, "dof_upper", NUM_DOFS, _is_bound, "a number or nil")],
        _list_of(m, "dof_joint", NUM_DOFS, lambda x: type(x) is int and 0 <= x < n_joints,
                 "a joint index"), joint_names,
        _list_of(m, "joint_parents", n_joints, lambda x: type(x) is int and -1 <= x < n_joints,
                 "a joint index or -1"), units,
        _get(m, "software", str, w), raw=m)


def decode(payload: bytes) -> Message:
    """Payload -> FrameMsg | HeartbeatMsg | MetaMsg. Raises SchemaError (SchemaVersionError for
    another version); never anything else, whatever the bytes."""
    m = _unpack(payload)
    kind = m.get("kind")
    if kind == "frame":
        persons = _get(m, "persons", list, "frame")
        return FrameMsg(
            stream=_get(m, "stream", str, "frame"), pub_seq=_get(m, "pub_seq", int, "frame"),
            seq=_get(m, "seq", int, "frame"), capture_ns=_get(m, "capture_ns", int, "frame"),
            capture_utc_ns=_get(m, "capture_utc_ns", int, "frame"),
            publish_utc_ns=_get(m, "publish_utc_ns", int, "frame"),
            width=_get(m, "width", int, "frame"), height=_get(m, "height", int, "frame"),
            intrinsics=_intrinsics(m.get("intrinsics")),
            persons=[_person(p, i) for i, p in enumerate(persons)],
            media_pts_s=_media_pts(m.get("media_pts_s")))
    if kind == "heartbeat":
        w = "heartbeat"
        return HeartbeatMsg(_get(m, "stream", str, w), _get(m, "pub_seq", int, w),
                            _get(m, "publish_utc_ns", int, w), _get(m, "seq", int, w),
                            _get(m, "capture_ns", int, w), _get(m, "ended", bool, w))
    if kind == "meta":
        return _meta(m)
    raise SchemaError(f"unknown message kind {kind!r}; expected one of {KINDS}")


def frame_to_packet(msg: FrameMsg) -> Packet:
    """A decoded frame back into a Packet (replay republishes through the same path)."""
    fi = FrameInfo(msg.stream, msg.seq, msg.capture_ns, msg.capture_utc_ns, msg.width, msg.height,
                   media_pts_s=msg.media_pts_s)
    persons = []
    for p in msg.persons:
        try:
            state = TrackState(p.state)
        except ValueError:
            raise SchemaError(f"person {p.track_id}: unknown track state {p.state!r}") from None
        persons.append(Person(
            track_id=p.track_id, track_state=state, box_xyxy=p.bbox_xyxy, score=p.score,
            box_predicted=p.box_predicted, q=p.q, betas=p.betas, trans_m=p.trans_m,
            pose_confidence=p.confidence, model_id=p.model_id, q_vel=p.q_vel,
            limit_active=p.limit_active, predicted=p.predicted, q_predicted=p.q_predicted,
            root_orient_wxyz=p.root_orient_wxyz, segments_m=p.segments_m))
    return Packet(frame=fi, persons=persons, intrinsics=msg.intrinsics)


def frame_message(packet: Packet) -> FrameMsg:
    """Packet -> the `FrameMsg` a subscriber gets for it (adapters consume the published schema)."""
    return decode(encode_frame(packet, 0, 2 ** 32))


def stream_file_stem(stream_id: str) -> str:
    """A stream id as a file-name part: ids may hold '/', ':' or spaces (`gym-a/cam0`,
    `rtsp://...`), file names may not; every export and the recorder's video names agree."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stream_id)
