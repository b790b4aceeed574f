"""VMC protocol sender: one person's SKEL pose as Unity humanoid bones over OSC/UDP.

    python -m sinks.vmc tcp://127.0.0.1:5555 --address 127.0.0.1:39539 [--person largest|ID]

(or `--set vmc.enabled=true` in a run: the `vmc` stage, `sinks/vmc_stage.py`). Each frame is one
OSC bundle: `/VMC/Ext/OK` (loaded, calibration state, calibration mode, tracking status),
`/VMC/Ext/T` (s), `/VMC/Ext/Root/Pos` ("root", position, quaternion) and one
`/VMC/Ext/Bone/Pos` (name, local position, local quaternion) per bone of `sinks.retarget`, all in
Unity's left-handed space, quaternions (x, y, z, w). Root: the pelvis position, identity rotation;
the body's orientation is on Hips. Position and Hips are in the camera frame with y flipped up, or,
for a stream whose camera pose is configured (`sources.N.camera_pose`), in the gravity-aligned
world of `sinks/world_frame.py` (level floor at y = 0, Z away from the camera). While nobody chosen is in view
only OK (tracking status 0) and T go out, so the avatar holds its last pose.

Never blocking: a non-blocking, connected UDP socket. A full send buffer, or a receiver that is not
listening (the kernel reports the ICMP 'port unreachable' as ECONNREFUSED on the next send), makes
a frame a counted drop, never a wait.
"""
from __future__ import annotations

import argparse
import errno
import socket
import struct
import sys
from dataclasses import dataclass

from engines.skel.kinematics import generic_skeleton
from sinks.adapters_config import VmcConfig, parse_host_port
from sinks.osc import bundle, message, message_head
from sinks.retarget import (BONE_NAMES, camera_to_unity_position, humanoid_rig, retarget,
                            unity_from_camera)
from sinks.schema import FrameMsg, PersonMsg
from stream.errors import TransportError

_POS_ROT = struct.Struct(">7f")
_BONE_HEADS = tuple(message_head("/VMC/Ext/Bone/Pos", "sfffffff", n) for n in BONE_NAMES)
_ROOT_HEAD = message_head("/VMC/Ext/Root/Pos", "sfffffff", "root")
_IDENTITY_XYZW = (0.0, 0.0, 0.0, 1.0)


def select_person(persons: list[PersonMsg], choice: str | int) -> PersonMsg | None:
    """The person to drive the avatar: the largest box with a pose, or the given track id."""
    posed = [p for p in persons if p.q is not None]
    if choice == "largest":
        if not posed:
            return None
        return max(posed, key=lambda p: float((p.bbox_xyxy[2] - p.bbox_xyxy[0])
                                              * (p.bbox_xyxy[3] - p.bbox_xyxy[1])))
    return next((p for p in posed if p.track_id == choice), None)


def ok_message(tracking: bool) -> bytes:
    """/VMC/Ext/OK loaded=1, calibration state 3 (calibrated), mode 0 (normal), tracking 1/0."""
    return message("/VMC/Ext/OK", "iiii", 1, 3, 0, 1 if tracking else 0)


def time_message(t_s: float) -> bytes:
    return message("/VMC/Ext/T", "f", t_s)


@dataclass
class VmcStats:
    frames: int = 0          # frames handed to the sender
    sent: int = 0            # bundles the kernel accepted
    dropped: int = 0         # bundles refused (receiver not listening, buffer full, no route)
    no_person: int = 0       # frames without the chosen person (only OK/T sent)
    last_error: str = ""


class VmcSender:
    """Frames of the published schema -> VMC bundles. A context manager (the socket closes)."""

    def __init__(self, cfg: VmcConfig, worlds: dict | None = None):
        """`worlds`: stream id -> `sinks.world_frame.WorldFrame` for cameras whose pose is known
        (`sources.N.camera_pose`): the avatar then stands on the level floor (root y = 0 there)."""
        self.cfg = cfg
        self.worlds = worlds or {}
        self.host, self.port = parse_host_port(cfg.address, "vmc.address")
        self.skeleton = generic_skeleton(cfg.body_height_m)
        offsets = humanoid_rig(self.skeleton, cfg.body_height_m).local_offsets_m
        self._offsets = [tuple(float(v) for v in o) for o in offsets]
        self.stats = VmcStats()
        self._sock: socket.socket | None = None
        self._t0_ns: int | None = None

    def open(self) -> "VmcSender":
        try:
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
            self._sock = socket.socket(info[0], socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._sock.connect(info[4])  # connected: refusals are reported to us, never waited on
        except OSError as exc:
            raise TransportError(f"vmc.address {self.cfg.address} cannot be used ({exc}); give a "
                                 "reachable host:port, e.g. 127.0.0.1:39539") from None
        return self

    def __enter__(self) -> "VmcSender":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def bundle_for(self, frame: FrameMsg) -> bytes:
        """The OSC bundle of one frame (chooses the person, retargets, packs)."""
        if self._t0_ns is None:
            self._t0_ns = frame.capture_ns
        t_s = (frame.capture_ns - self._t0_ns) / 1e9
        p = select_person(frame.persons, self.cfg.person)
        if p is None:
            self.stats.no_person += 1
            return bundle([ok_message(False), time_message(t_s)])
        world = self.worlds.get(frame.stream)
        quats = retarget(p.q, self.skeleton, unity_from_camera(None if world is None else world.r_wc))
        root = (0.0, 0.0, 0.0)
        if self.cfg.send_root_translation and p.trans_m is not None:
            root = tuple(float(v) for v in camera_to_unity_position(p.trans_m, world))
        msgs = [ok_message(True), time_message(t_s),
                _ROOT_HEAD + _POS_ROT.pack(*root, *_IDENTITY_XYZW)]
        for head, off, qt in zip(_BONE_HEADS, self._offsets, quats.tolist()):
            msgs.append(head + _POS_ROT.pack(*off, *qt))
        return bundle(msgs)

    def send_frame(self, frame: FrameMsg) -> bool:
        """Send one frame's bundle; False when it was dropped (counted, never waited for)."""
        if self.cfg.stream is not None and frame.stream != self.cfg.stream:
            return False
        self.stats.frames += 1
        data = self.bundle_for(frame)
        try:
            self._sock.send(data)
        except OSError as exc:  # ECONNREFUSED, EAGAIN (buffer full), ENETUNREACH, EMSGSIZE
            self.stats.dropped += 1
            if self.stats.last_error != exc.__class__.__name__:
                self.stats.last_error = exc.__class__.__name__
                reason = ("nothing listens there" if exc.errno == errno.ECONNREFUSED
                          else errno.errorcode.get(exc.errno or 0, str(exc)))
                print(f"warning: vmc: frames to {self.cfg.address} are dropped ({reason}); "
                      "they are counted, the pipeline goes on", file=sys.stderr)
            return False
        self.stats.sent += 1
        self.stats.last_error = ""
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def main(argv: list[str] | None = None) -> int:
    from sinks.client import PoseSubscriber
    from stream.errors import UserError

    ap = argparse.ArgumentParser(prog="python -m sinks.vmc", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("endpoint", help="skelstream publisher, e.g. tcp://127.0.0.1:5555")
    ap.add_argument("--address", default="127.0.0.1:39539", help="VMC receiver host:port")
    ap.add_argument("--person", default="largest", help="'largest' or a track id")
    ap.add_argument("--stream", default=None, help="only this stream id")
    ap.add_argument("--body-height-m", type=float, default=1.70)
    a = ap.parse_args(argv)
    try:
        cfg = VmcConfig(enabled=True, address=a.address, stream=a.stream,
                        person=a.person if a.person == "largest" else int(a.person),
                        body_height_m=a.body_height_m)
        with VmcSender(cfg) as sender, PoseSubscriber(a.endpoint) as sub:
            for frame in sub:
                sender.send_frame(frame)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
