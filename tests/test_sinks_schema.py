"""Wire schema: encoder vs decoder round trip, and a decoder that survives hostile bytes."""
from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines.skel.dofs import DOF_NAMES, JOINT_PARENTS
from sinks.schema import (SCHEMA_VERSION, FrameMsg, HeartbeatMsg, MetaMsg, SchemaError,
                          SchemaVersionError, decode, encode_frame, encode_heartbeat, encode_meta,
                          frame_to_packet, restamp, with_publish_time)
from sinks.synth import synthetic_packet
from stream.packet import TrackState


def test_publish_time_is_stamped_after_encoding_without_touching_the_rest():
    pkt = synthetic_packet("cam0", 7, 3)
    encoded_at = time.time_ns()
    payload = encode_frame(pkt, 5, encoded_at)
    sent_at = encoded_at + 123_456
    m, ref = decode(with_publish_time(payload, sent_at)), decode(payload)
    assert m.publish_utc_ns == sent_at and ref.publish_utc_ns == encoded_at
    assert (m.seq, m.pub_seq, m.capture_ns) == (ref.seq, ref.pub_seq, ref.capture_ns)
    assert [p.q.tobytes() for p in m.persons] == [p.q.tobytes() for p in ref.persons]
    with pytest.raises(ValueError, match="real UTC ns stamp"):
        with_publish_time(encode_frame(pkt, 5, 0), sent_at)  # 0 is not packed as uint64


def test_frame_round_trip_is_exact():
    pkt = synthetic_packet("cam0", 7, 5)
    pkt.persons[2].q_vel = None  # optional fields travel as nil
    pkt.persons[3].track_id = np.int64(42)  # numpy scalars are accepted
    m = decode(encode_frame(pkt, 3, 123))
    assert isinstance(m, FrameMsg)
    assert (m.stream, m.pub_seq, m.seq, m.publish_utc_ns) == ("cam0", 3, 7, 123)
    assert m.capture_ns == pkt.frame.capture_ns and m.capture_utc_ns == pkt.frame.capture_utc_ns
    assert m.intrinsics.fx == pytest.approx(pkt.intrinsics.fx)
    assert len(m.persons) == 5
    for a, b in zip(pkt.persons, m.persons):
        assert b.track_id == int(a.track_id) and b.state == a.track_state.value
        np.testing.assert_array_equal(b.q, a.q)
        np.testing.assert_array_equal(b.limit_active, a.limit_active)
        np.testing.assert_array_equal(b.root_orient_wxyz, a.root_orient_wxyz)
        np.testing.assert_array_equal(b.trans_m, a.trans_m)
        assert b.predicted == a.predicted
    assert m.persons[2].q_vel is None
    back = frame_to_packet(m)  # replay path: decoded -> packet -> same bytes again
    assert decode(encode_frame(back, 3, 123)).persons[4].q.tobytes() == m.persons[4].q.tobytes()


def test_removed_tracks_are_not_published_and_float64_is_converted():
    pkt = synthetic_packet("cam0", 0, 2)
    pkt.persons[0].track_state = TrackState.REMOVED
    pkt.persons[1].q = pkt.persons[1].q.astype(np.float64)
    m = decode(encode_frame(pkt, 1, 0))
    assert [p.track_id for p in m.persons] == [2]
    assert m.persons[0].q.dtype == np.float32


def test_wrong_length_array_is_refused_at_encode():
    pkt = synthetic_packet("cam0", 0, 1)
    pkt.persons[0].q = np.zeros(45, np.float32)
    with pytest.raises(ValueError, match="46"):
        encode_frame(pkt, 1, 0)


def test_meta_and_heartbeat():
    m = decode(encode_meta("cam1", 1, 5))
    assert isinstance(m, MetaMsg) and m.dof_names == list(DOF_NAMES)
    assert m.joint_parents == list(JOINT_PARENTS) and m.units["q"] == "rad"
    assert m.dof_lower[0] is None and m.dof_lower[6] == 0.0  # pelvis unbounded, knee >= 0
    h = decode(encode_heartbeat("cam1", 2, 6, seq=9, capture_ns=10, ended=True))
    assert isinstance(h, HeartbeatMsg) and h.ended and h.seq == 9


def test_wrong_schema_version_is_a_clear_error():
    bad = msgpack.packb({"schema": SCHEMA_VERSION + 1, "kind": "frame"})
    with pytest.raises(SchemaVersionError, match="schema version 2.*upgrade"):
        decode(bad)


def test_restamp_keeps_content():
    b = encode_frame(synthetic_packet("cam0", 4, 2), 1, 0)
    m = decode(restamp(b, 99, 77))
    assert (m.pub_seq, m.publish_utc_ns, m.seq) == (99, 77, 4)


@pytest.mark.parametrize("payload", [
    b"", b"\xc1", b"\x92\x01", msgpack.packb([1, 2]), msgpack.packb({"schema": "1"}),
    msgpack.packb({"schema": 1, "kind": "nope"}),
    msgpack.packb({"schema": 1, "kind": "frame"}),
    b"\xdd\xff\xff\xff\xff",            # array header claiming 4 G elements
    b"\xdb\xff\xff\xff\xf0abc",         # str header claiming 4 GB
    b"\x91" * 100_000,                  # nesting 100 000 deep
    msgpack.packb({"schema": 1, "kind": "frame", "persons": [{}] * 2000}),
    b"\x00" * (2 << 20),                # over the size cap
])
def test_hostile_payloads_raise_schema_error(payload):
    with pytest.raises(SchemaError):
        decode(payload)


def test_bad_person_fields_are_refused():
    raw = msgpack.unpackb(encode_frame(synthetic_packet("cam0", 0, 1), 1, 0))
    for key, val in (("q", b"\x00" * 10), ("limit_active", b"\x05" * 46), ("track_id", "x"),
                     ("score", None), ("predicted", 1)):
        r = msgpack.unpackb(msgpack.packb(raw))
        r["persons"][0][key] = val
        with pytest.raises(SchemaError):
            decode(msgpack.packb(r, use_bin_type=True))


_GOOD = encode_frame(synthetic_packet("cam0", 1, 3), 1, time.time_ns())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data):
    try:
        decode(data)
    except SchemaError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_GOOD) - 1), st.integers(0, 255), st.booleans())
def test_fuzz_truncated_and_flipped(pos, byte, truncate):
    data = _GOOD[:pos] if truncate else _GOOD[:pos] + bytes([byte]) + _GOOD[pos + 1:]
    try:
        m = decode(data)
    except SchemaError:
        return
    assert isinstance(m, FrameMsg)  # a flip that still decodes must still be a valid frame
    for p in m.persons:
        assert p.q is None or p.q.shape == (46,)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=200),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=40)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["schema", "kind", "stream", "pub_seq", "seq", "persons",
                                        "capture_ns", "intrinsics", "ended", "dof_names"]),
                       _json, max_size=10),
       st.sampled_from(["frame", "meta", "heartbeat"]))
def test_fuzz_structured_hostile_maps(m, kind):
    m = dict(m, schema=SCHEMA_VERSION, kind=kind)
    try:
        decode(msgpack.packb(m, use_bin_type=True))
    except SchemaError:
        pass


_FLAGS = np.zeros(46, dtype=bool)
_FLAGS[[4, 7]] = True


@pytest.mark.parametrize("field, value, bad", [
    ("q_predicted", _FLAGS, b"\x02" * 46),   # per-DoF predicted flags (issue 15): 46 bytes of 0/1
    ("segments_m", np.array([0.44, 0.43, 0.33, 0.26, 0.18, 0.39, 0.50], np.float32),
     b"\x00" * 12),                            # estimated segment lengths (issue 17): 7 float32
])
def test_optional_person_fields_round_trip_and_may_be_absent(field, value, bad):
    """Fields added after version 1 shipped round-trip; a payload from a publisher (or a
    recording) that predates them still decodes, with the field None; a malformed one is named."""
    pkt = synthetic_packet("cam0", 3, 2)
    setattr(pkt.persons[0], field, value)
    payload = encode_frame(pkt, 1, 123)
    m = decode(payload)
    np.testing.assert_array_equal(getattr(m.persons[0], field), value)
    assert getattr(m.persons[1], field) is None
    np.testing.assert_array_equal(getattr(frame_to_packet(m).persons[0], field), value)
    old = msgpack.unpackb(payload)
    for p in old["persons"]:
        del p[field]
    m_old = decode(msgpack.packb(old))
    assert getattr(m_old.persons[0], field) is None
    np.testing.assert_array_equal(m_old.persons[0].q, m.persons[0].q)
    broken = msgpack.unpackb(payload)
    broken["persons"][0][field] = bad
    with pytest.raises(SchemaError, match=field):
        decode(msgpack.packb(broken))


_META = msgpack.unpackb(encode_meta("cam0", 1, 5))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(_META)), _json, min_size=1, max_size=4),
       st.sampled_from(["dof_names", "dof_lower", "dof_upper", "dof_joint", "joint_names",
                        "joint_parents"]),
       st.lists(_json, min_size=1, max_size=3), st.integers(0, 45))
def test_fuzz_meta_fields(replaced, key, entries, at):
    """A valid meta with fields replaced by anything, or list entries swapped for lists, maps,
    numbers: either SchemaError, or a meta whose every field a client uses is well typed."""
    m = dict(_META, **replaced)
    if isinstance(m.get(key), list) and m[key]:
        m[key] = list(m[key])
        for j, e in enumerate(entries):
            m[key][(at + j) % len(m[key])] = e
    try:
        meta = decode(msgpack.packb(m, use_bin_type=True))
    except SchemaError:
        return
    assert isinstance(meta, MetaMsg)
    assert len(meta.dof_names) == 46 and all(type(n) is str for n in meta.dof_names)
    assert {n: i for i, n in enumerate(meta.dof_names)}  # what PoseSubscriber builds from it
    for bounds in (meta.dof_lower, meta.dof_upper):
        assert len(bounds) == 46 and all(b is None or type(b) is float for b in bounds)
    n = len(meta.joint_names)
    assert all(type(j) is str for j in meta.joint_names)
    assert all(type(j) is int and 0 <= j < n for j in meta.dof_joint)
    assert len(meta.joint_parents) == n and all(-1 <= j < n for j in meta.joint_parents)
    assert all(type(k) is str and type(v) is str for k, v in meta.units.items())
    assert type(meta.software) is str and type(meta.stream) is str
