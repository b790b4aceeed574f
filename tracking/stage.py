"""The `detect_track` stage: person detection every N frames, ByteTrack association, crop boxes.

Per stream (`packet.frame.stream_id`): a `ByteTracker`, a `CropBoxes` and a frame counter. The
detector runs on every `detector.every_n_frames`-th frame; the others only advance the Kalman
filters (boxes flagged `box_predicted`). Downstream get the confirmed tracked persons (coasting ones
within `tracker.carry_misses` included, `box_predicted=True`) and a `TrackEvent` for every lifecycle
change; at the end of a stream (`flush`, which the runtime calls after the packet marked
FrameInfo.last) every remaining track is REMOVED so no per-person state outlives its track.
Invariant: a packet never carries a person whose track it also REMOVES.

Scheduling (`detector.schedule`): inline, a detector frame waits for its detections. In the
background (the default for live sources) the detector works on a copy of the frame in a worker
thread while later frames pass with predicted boxes; when it finishes, its detections update a
snapshot of the tracker taken at that frame, the frames since are replayed as predictions, and the
snapshot becomes the tracker. The result equals the inline tracker with the detection applied a few
frames late, and the detector's time leaves the latency path. Tracks already announced REMOVED
during the wait stay removed. A stream's first detection is waited for in either schedule: nothing
is tracked before it (and a file played live holds its clock for it, `first_frame_wait_s`).

Time: a file's presentation time (`media_pts_s`) when there is one, else `capture_ns`: a file
decodes faster than real time, and its capture stamps would squeeze the motion model's dt.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from engines.detection.detectors import Detector, build_detector
from stream.config import PipelineConfig
from stream.packet import FrameInfo, Packet, Person, TrackEventKind, TrackState
from stream.stage import Stage
from tracking.appearance import appearance_features
from tracking.bytetrack import ByteTracker, TrackFrame
from tracking.crop_boxes import CropBoxes
from tracking.shot_cut import ShotCuts


FULL_PRIORITY_CALLS = 2   # a stream's first detector calls run at normal priority (see _background_detect)


def _lower_thread_priority(nice: int) -> None:
    """The background detector yields the CPU to the frame path (Linux: per-thread nice)."""
    try:
        tid = threading.get_native_id()
        if nice > os.getpriority(os.PRIO_PROCESS, tid):     # only ever raised: lowering needs privilege
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        pass


@dataclass
class _Stream:
    tracker: ByteTracker
    crops: CropBoxes
    cuts: ShotCuts
    frames: int = 0
    last_frame: FrameInfo | None = None
    background: bool = False
    pending: Future | None = None           # detections of a frame still being computed
    snapshot: ByteTracker | None = None     # the tracker as it was before that frame
    snapshot_t_s: float = 0.0
    replay_t_s: list[float] = field(default_factory=list)  # frames predicted since then
    removed_while_pending: set[int] = field(default_factory=set)
    last_submit: int = -(1 << 30)           # st.frames when the detector last got a frame
    detector_calls: int = 0                 # frames the detector got (the first inline, then the worker)


class DetectTrackStage(Stage):
    name = "detect_track"
    needs_image = True

    def __init__(self, config: PipelineConfig, detector: Detector | None = None):
        self.det_cfg = config.detector
        self.trk_cfg = config.tracker
        self._detector_arg = detector          # tests/benches may pass a built (unopened) detector
        self.detector: Detector | None = None
        self.streams: dict[str, _Stream] = {}
        self._next_ids: dict[str, int] = {}   # a stream that ends and starts again keeps counting
        self._background_ids = self._background_streams(config)
        self._worker: ThreadPoolExecutor | None = None
        self.shot_cuts = 0   # cuts between shots seen (all streams)

    def _background_streams(self, config: PipelineConfig) -> set[str] | None:
        """Stream ids whose detector runs in the background (None: every stream)."""
        if self.det_cfg.schedule == "inline":
            return set()
        if self.det_cfg.schedule == "background":
            return None
        if config.runtime.lossless:
            return set()
        from stream.pipeline import stream_ids

        return {sid for sid, s in zip(stream_ids(config), config.sources) if s.mode == "live"}

    def setup(self) -> None:
        self.detector = self._detector_arg or build_detector(self.det_cfg)
        self.detector.open()

    def _stream(self, sid: str) -> _Stream:
        st = self.streams.get(sid)
        if st is None:
            tracker = ByteTracker(self.trk_cfg, first_id=self._next_ids.get(sid, 1))
            st = self.streams[sid] = _Stream(tracker, CropBoxes(self.trk_cfg.crop),
                                             ShotCuts(self.trk_cfg.shot_cut_distance,
                                                      self.trk_cfg.shot_cut_max_layout_similarity))
            st.background = self._background_ids is None or sid in self._background_ids
        return st

    def process(self, packet: Packet) -> Packet:
        fi = packet.frame
        st = self._stream(fi.stream_id)
        t_s = fi.stream_time_s
        st.frames += 1
        cut = st.cuts.is_cut(packet.image)
        if cut:
            packet.events.extend(self._end_shot(st))
        if st.background and st.detector_calls:
            # as soon as the worker is free and n frames have passed since its last frame
            due = cut or st.frames - st.last_submit >= self.det_cfg.every_n_frames
            return self._process_background(packet, st, t_s, due)
        # a stream's first detection is waited for in the background schedule too: nothing is
        # tracked before it, so the frames passing meanwhile would carry nobody, and a file played
        # live holds its clock until this frame is through the graph (the source's
        # `first_frame_wait_s`), so its first frames are not lost to the detector's first look
        if st.background or cut or (st.frames - 1) % self.det_cfg.every_n_frames == 0:
            st.last_submit, st.detector_calls = st.frames, st.detector_calls + 1
            t0 = time.perf_counter_ns()
            boxes, scores = self._detect(packet.image, st.tracker.expected_boxes(), fi.stream_id)
            packet.timings_ns["detect_track.detect"] = time.perf_counter_ns() - t0
            packet.detections_xyxy, packet.detection_scores = boxes, scores
            out = st.tracker.update(boxes, scores, t_s, self._looks(packet.image, boxes))
        else:
            out = st.tracker.predict(t_s)
        self._fill(packet, st, out, t_s)
        st.last_frame = fi
        return packet

    def _end_shot(self, st: _Stream) -> list:
        """A cut: every track of the last shot ends (REMOVED) and the tracker starts anew (ids go
        on counting; the new shot's first detections are confirmed at once, as a stream's first).
        A detection still running on the last shot's frame is never applied."""
        events = st.tracker.finish()
        for ev in events:
            st.crops.forget(ev.track_id)
        if st.pending is not None:
            st.pending.cancel()
            st.pending, st.snapshot = None, None
        self.shot_cuts += 1
        return events

    def _detect(self, image, expected_xyxy: np.ndarray | None = None, sid: str = "") -> tuple[np.ndarray, np.ndarray]:
        if image is None or image.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        if expected_xyxy is None or not len(expected_xyxy):
            return self.detector.detect(image, stream_id=sid)
        return self.detector.detect(image, expected_xyxy, stream_id=sid)

    def _process_background(self, packet: Packet, st: _Stream, t_s: float, due: bool) -> Packet:
        events = []
        if st.pending is not None and st.pending.done():
            events = self._apply_background_result(packet, st)
        if due and st.pending is None:
            full_priority = st.detector_calls < FULL_PRIORITY_CALLS
            st.last_submit, st.detector_calls = st.frames, st.detector_calls + 1
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="detector")
            image = packet.image
            image = None if image is None else image.copy()  # the ring slot is reused later
            st.snapshot, st.snapshot_t_s = st.tracker.copy(), t_s
            st.replay_t_s, st.removed_while_pending = [], set()
            st.pending = self._worker.submit(self._background_detect, image, st.tracker.expected_boxes(),
                                             packet.frame.stream_id, full_priority)
        elif st.pending is not None:
            st.replay_t_s.append(t_s)
        out = st.tracker.predict(t_s)
        if st.pending is not None:
            st.removed_while_pending |= {e.track_id for e in out.events
                                         if e.kind == TrackEventKind.REMOVED}
        out.events[:0] = events
        self._fill(packet, st, out, t_s)
        st.last_frame = packet.frame
        return packet

    def _looks(self, image, boxes: np.ndarray) -> np.ndarray | None:
        """The detections' clothing colours for the tracker's veto and re-identification (None
        when both are off)."""
        if not self.trk_cfg.uses_appearance or image is None or image.size == 0:
            return None
        return appearance_features(image, boxes)

    def _background_detect(self, image, expected_xyxy: np.ndarray, sid: str, full_priority: bool
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        """`_timed_detect` on the worker thread, which yields the CPU (`detector.background_nice`)
        once a stream has had its first FULL_PRIORITY_CALLS calls: at nice 10 from the start, two
        busy processes on a 2-core machine held a webcam call's first result back for 2.6 s and
        its second past the clip's end (4 s): nobody was published. The first result makes the
        track, the second lets a detection the detector is sure of publish an unsure pose. Only
        ever raised (an unprivileged thread cannot lower it again), so a stream that starts after
        that runs at the raised nice from its first call on."""
        if not full_priority:
            _lower_thread_priority(self.det_cfg.background_nice)   # a no-op once it is there
        return self._timed_detect(image, expected_xyxy, sid)

    def _timed_detect(self, image, expected_xyxy: np.ndarray | None = None,
                      sid: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
        t0 = time.perf_counter_ns()
        boxes, scores = self._detect(image, expected_xyxy, sid)
        looks = self._looks(image, boxes)
        return boxes, scores, looks, time.perf_counter_ns() - t0

    def _apply_background_result(self, packet: Packet, st: _Stream) -> list:
        """Update the snapshot with the finished detections, replay the frames since as
        predictions, and make it the tracker. Returns the events that produced."""
        boxes, scores, looks, ns = st.pending.result()  # a detector exception surfaces here
        st.pending = None
        packet.timings_ns["detect_track.detect"] = ns
        packet.detections_xyxy, packet.detection_scores = boxes, scores
        tracker = st.snapshot
        gone = st.removed_while_pending
        events = tracker.update(boxes, scores, st.snapshot_t_s, looks).events
        for t in st.replay_t_s:
            events += tracker.predict(t).events
        tracker.drop_ids(gone)
        events = [e for e in events if e.track_id not in gone]
        st.tracker, st.snapshot = tracker, None
        return events

    def _fill(self, packet: Packet, st: _Stream, out: TrackFrame, t_s: float) -> None:
        fi = packet.frame
        for ev in out.events:
            if ev.kind in (TrackEventKind.LOST, TrackEventKind.REFOUND, TrackEventKind.REMOVED):
                st.crops.forget(ev.track_id)
        packet.events.extend(out.events)
        for tid, box, score, pred, hits in zip(out.track_ids, out.boxes_xyxy, out.scores, out.predicted, out.hits):
            crop = st.crops.update(int(tid), box, t_s, fi.width, fi.height)
            packet.persons.append(Person(track_id=int(tid), track_state=TrackState.TRACKED,
                                         box_xyxy=box.astype(np.float32), score=float(score),
                                         crop_box_xyxy=crop, box_predicted=bool(pred),
                                         detector_hits=int(hits)))

    def flush(self, stream_id: str) -> list[Packet]:
        """The stream ended (the runtime calls this after its last packet): one events-only packet
        (no persons, no pixels: ring '', the last frame's seq and times, last=True) with REMOVED for
        every remaining track. Not folded into the last frame's packet, because downstream stages
        apply events before persons and would re-create the state of a person removed there."""
        st = self.streams.pop(stream_id, None)
        if st is None:
            return []
        if st.pending is not None:
            st.pending.cancel()
        self._next_ids[stream_id] = st.tracker.next_id
        events = st.tracker.finish()
        if not events or st.last_frame is None:
            return []
        fi = replace(st.last_frame, ring="", slot=-1, last=True)
        return [Packet(frame=fi, events=events, events_only=True)]  # seq is not a new frame

    def take_error_count(self) -> int:
        """Remote detector calls that did not come back since the last call (status line)."""
        take = getattr(self.detector, "take_error_count", None)  # optional: remote detectors
        return take() if take is not None else 0

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
        if self.detector is not None:
            self.detector.close()
        self.streams.clear()

