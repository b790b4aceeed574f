"""The `detect_track` stage: person detection every N frames, ByteTrack association, crop boxes.

Per stream (`packet.frame.stream_id`): a `ByteTracker`, a `CropBoxes` and a frame counter. The
detector runs on every `detector.every_n_frames`-th frame; the others only advance the Kalman
filters (boxes flagged `box_predicted`). Downstream get the confirmed tracked persons (coasting ones
within `tracker.carry_misses` included, `box_predicted=True`) and a `TrackEvent` for every lifecycle
change; at the end of a stream (`flush`, which the runtime calls after the packet marked
FrameInfo.last) every remaining track is REMOVED so no per-person state outlives its track.
Invariant: a packet never carries a person whose track it also REMOVES.

Time: a file's presentation time (`media_pts_s`) when there is one, else `capture_ns`: a file
decodes faster than real time, and its capture stamps would squeeze the motion model's dt.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from engines.detection.detectors import Detector, build_detector
from stream.config import PipelineConfig
from stream.packet import FrameInfo, Packet, Person, TrackEventKind, TrackState
from stream.stage import Stage
from tracking.bytetrack import ByteTracker, TrackFrame
from tracking.crop_boxes import CropBoxes


def frame_time_s(packet: Packet) -> float:
    """Seconds on the stream's own clock: media time for files, monotonic capture time otherwise."""
    if packet.frame.media_pts_s is not None:
        return float(packet.frame.media_pts_s)
    return packet.frame.capture_ns * 1e-9


@dataclass
class _Stream:
    tracker: ByteTracker
    crops: CropBoxes
    frames: int = 0
    last_frame: FrameInfo | None = None


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

    def setup(self) -> None:
        self.detector = self._detector_arg or build_detector(self.det_cfg)
        self.detector.open()

    def _stream(self, sid: str) -> _Stream:
        st = self.streams.get(sid)
        if st is None:
            tracker = ByteTracker(self.trk_cfg, first_id=self._next_ids.get(sid, 1))
            st = self.streams[sid] = _Stream(tracker, CropBoxes(self.trk_cfg.crop))
        return st

    def process(self, packet: Packet) -> Packet:
        fi = packet.frame
        st = self._stream(fi.stream_id)
        t_s = frame_time_s(packet)
        run_detector = st.frames % self.det_cfg.every_n_frames == 0
        st.frames += 1
        if run_detector:
            t0 = time.perf_counter_ns()
            image = packet.image
            if image is None or image.size == 0:
                boxes, scores = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
            else:
                boxes, scores = self.detector.detect(image)
            packet.timings_ns["detect_track.detect"] = time.perf_counter_ns() - t0
            packet.detections_xyxy, packet.detection_scores = boxes, scores
            out = st.tracker.update(boxes, scores, t_s)
        else:
            out = st.tracker.predict(t_s)
        self._fill(packet, st, out, t_s)
        st.last_frame = fi
        return packet

    def _fill(self, packet: Packet, st: _Stream, out: TrackFrame, t_s: float) -> None:
        fi = packet.frame
        for ev in out.events:
            if ev.kind in (TrackEventKind.LOST, TrackEventKind.REFOUND, TrackEventKind.REMOVED):
                st.crops.forget(ev.track_id)
        packet.events.extend(out.events)
        for tid, box, score, pred in zip(out.track_ids, out.boxes_xyxy, out.scores, out.predicted):
            crop = st.crops.update(int(tid), box, t_s, fi.width, fi.height)
            packet.persons.append(Person(track_id=int(tid), track_state=TrackState.TRACKED,
                                         box_xyxy=box.astype(np.float32), score=float(score),
                                         crop_box_xyxy=crop, box_predicted=bool(pred)))

    def flush(self, stream_id: str) -> list[Packet]:
        """The stream ended (the runtime calls this after its last packet): one events-only packet
        (no persons, no pixels: ring '', the last frame's seq and times, last=True) with REMOVED for
        every remaining track. Not folded into the last frame's packet, because downstream stages
        apply events before persons and would re-create the state of a person removed there."""
        st = self.streams.pop(stream_id, None)
        if st is None:
            return []
        self._next_ids[stream_id] = st.tracker.next_id
        events = st.tracker.finish()
        if not events or st.last_frame is None:
            return []
        fi = replace(st.last_frame, ring="", slot=-1, last=True)
        return [Packet(frame=fi, events=events)]

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()
        self.streams.clear()

