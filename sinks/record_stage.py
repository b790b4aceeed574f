"""The 'record' stage: packets (and pixels, if recorder.video) to a session folder, in its own
process. `process` only copies what it needs and hands it to a writer thread through a bounded
drop-oldest buffer, so a slow disk or the H.264 encoder never holds up the graph's queue either;
both kinds of drop are counted (`buffer_drops` here, the runtime's queue drops in its metrics).
"""
from __future__ import annotations

import collections
import os
import sys
import threading

import numpy as np

from sinks.recorder import SessionRecorder
from sinks.schema import frame_message
from stream.config import PipelineConfig
from stream.packet import Packet
from stream.stage import Stage


class RecordStage(Stage):
    """Sink: records every packet it gets; returns None."""
    name = "record"

    def __init__(self, config: PipelineConfig):
        from stream.config_loader import dump_config

        self.cfg = config.recorder
        self.config_yaml = dump_config(config)
        self.body_height_m = config.pose.landmarks.body_height_m  # skeleton of the ROS 2 channels
        from sinks.session_skeleton import configured_camera_poses

        self.camera_poses = configured_camera_poses(config)     # world frames of the ROS 2 TF
        self.needs_image = bool(self.cfg.video)
        self.buffer_drops = 0
        self._rec: SessionRecorder | None = None
        self._ros2 = None
        self._buf: collections.deque | None = None
        self._cv: threading.Condition | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._error: BaseException | None = None

    def setup(self) -> None:
        c = self.cfg
        self._rec = SessionRecorder(
            c.directory, c.session_name, self.config_yaml, c.video, c.video_crf,
            c.video_gop_frames, c.flush_interval_s, c.chunk_size_bytes, c.fsync,
            c.min_free_disk_mb, c.disk_check_interval_s).open()  # RecorderError -> user error
        if c.ros2:
            from engines.skel.kinematics import generic_skeleton
            from sinks.ros2_mcap import ROS2_FILE, Ros2McapWriter
            from sinks.session_skeleton import worlds_from_camera_poses

            self._ros2 = Ros2McapWriter(os.path.join(self._rec.path, ROS2_FILE),
                                        generic_skeleton(self.body_height_m), c.flush_interval_s,
                                        worlds_from_camera_poses(self.camera_poses),
                                        self.body_height_m).open()
        self._buf = collections.deque()
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self._thread.start()
        print(f"record: session {self._rec.path}", file=sys.stderr)

    def process(self, packet: Packet) -> Packet | None:
        if self._error is not None:
            raise self._error
        if packet.events_only:  # end-of-stream events only: not a frame to record
            return None
        image = None
        if self.needs_image and packet.image is not None:
            image = np.array(packet.image, copy=True)  # the ring slot is only valid during process
        with self._cv:
            if len(self._buf) >= self.cfg.queue_frames:
                self._buf.popleft()
                self.buffer_drops += 1
            self._buf.append((packet, image))
            self._cv.notify()
        return None

    def _run(self) -> None:
        rec = self._rec
        try:
            while True:
                with self._cv:  # never do I/O under the lock: process() must not wait on it
                    if not self._buf and not self._closing:
                        self._cv.wait(timeout=rec.flush_interval_s / 2)
                    if self._buf:
                        item = self._buf.popleft()
                    elif self._closing:
                        return
                    else:
                        item = None
                if item is None:
                    if rec.active:
                        rec.tick()  # flush on time even when frames stop coming
                        if self._ros2 is not None:
                            self._ros2.tick()
                elif rec.active:
                    rec.write_packet(*item)
                    if self._ros2 is not None:
                        self._write_ros2(item[0])
        except BaseException as exc:  # noqa: BLE001 - surfaced by the next process() call
            self._error = exc

    def _write_ros2(self, packet: Packet) -> None:
        """ROS 2 channels of one frame; a failure stops them, never the pose recording."""
        try:
            self._ros2.write_frame(frame_message(packet))
        except Exception as exc:  # noqa: BLE001 - poses.mcap goes on; export --format ros2 rebuilds
            print(f"warning: record: ROS 2 channels stopped ({exc}); poses.mcap goes on, rebuild "
                  "them with python -m sinks.export SESSION --format ros2", file=sys.stderr)
            ros2, self._ros2 = self._ros2, None
            try:
                ros2.close()
            except Exception:  # noqa: BLE001 - already reported
                pass

    def close(self) -> None:
        if self._thread is not None:
            with self._cv:
                self._closing = True
                self._cv.notify()
            self._thread.join()
        if self._ros2 is not None:
            self._ros2.close()
            if self._rec is not None and self._rec.stats.frames == 0:
                try:  # nothing recorded: the session folder goes, its ROS 2 file with it
                    os.remove(self._ros2.path)
                except OSError:
                    pass
        if self._rec is not None:
            self._rec.close()
            s = self._rec.stats
            if s.frames == 0 and not os.path.exists(self._rec.path):
                print(f"record: no frame recorded; removed the empty session {self._rec.path}",
                      file=sys.stderr)
            elif s.frames == 0:
                print(f"record: no frame recorded in {self._rec.path}", file=sys.stderr)
            else:
                print(f"record: {s.frames} frames ({s.video_frames} video) in {self._rec.path}; "
                      f"{self.buffer_drops} dropped by the writer buffer", file=sys.stderr)
            self._rec = None
