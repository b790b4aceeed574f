"""Settings of publishing, recording and preview (owner: sinks)."""
from __future__ import annotations

from pydantic import Field, field_validator

from stream.config_base import StrictModel


def _check_endpoint(value: str | None, what: str) -> str | None:
    if value is None:
        return value
    if not (value.startswith("tcp://") or value.startswith("ipc://")):
        raise ValueError(f"{what} must start with tcp:// or ipc:// (got {value!r}), "
                         "e.g. tcp://127.0.0.1:5555 or ipc:///tmp/skelstream.sock")
    return value


class PublisherConfig(StrictModel):
    """ZeroMQ publishing. Binding beyond 127.0.0.1 without CURVE keys prints a warning."""
    enabled: bool = True
    endpoint: str = "tcp://127.0.0.1:5555"   # XPUB, multipart [topic, msgpack]; tcp:// or ipc://
    conflated_endpoint: str | None = None   # latest-only PUB (single-part topic+payload), control loops
    send_hwm_msgs: int = Field(100, ge=1, le=100_000)  # per subscriber; beyond it ZeroMQ drops
    meta_interval_s: float = Field(2.0, gt=0.0)       # meta re-sent this often (and on subscribe)
    heartbeat_interval_s: float = Field(1.0, gt=0.0)  # while nobody is in view
    linger_ms: int = Field(200, ge=0, le=10_000)      # flush window for the last messages at close
    curve_server_secret_file: str | None = None  # zmq.auth secret cert (python -m sinks.curve DIR)
    curve_authorized_dir: str | None = None      # public certs of allowed clients; None = any key
    wait_for_subscriber_s: float = Field(0.0, ge=0.0)  # live: hold the sources until a client joins
    replay_wait_for_subscriber_s: float = Field(1.0, ge=0.0)  # replay waits this long for a client
    # Prepended to every stream id on the wire (topic and messages), e.g. "gym-a/": each camera
    # host of a site sets its own, so ids stay unique when a fan-in proxy (python -m sinks.proxy)
    # merges several hosts into one stream. Recordings keep the local ids.
    stream_prefix: str = Field("", max_length=64)

    @field_validator("stream_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("publisher.stream_prefix must not contain NUL (it ends the topic)")
        return v

    @field_validator("endpoint", "conflated_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None, info) -> str | None:
        return _check_endpoint(v, f"publisher.{info.field_name}")


class RecorderConfig(StrictModel):
    """MCAP session recording (plus optional H.264 video per stream), in its own process."""
    enabled: bool = False
    directory: str = "sessions"          # one sub-folder per session
    session_name: str | None = None      # default: UTC start time, e.g. 20260101T120000Z
    video: bool = False                  # also encode each stream's frames (fragmented MP4, H.264)
    video_crf: int = Field(23, ge=0, le=51)  # x264 quality (lower = better, bigger)
    video_gop_frames: int = Field(30, ge=1, le=600)  # keyframe interval = crash-loss bound of video
    flush_interval_s: float = Field(0.5, gt=0.0, le=10.0)  # MCAP chunk flushed this often (kill -9 loss)
    chunk_size_bytes: int = Field(262_144, ge=1024)        # or when a chunk grows this big
    fsync: bool = False                  # also fsync at each flush (power loss, not just kill -9)
    min_free_disk_mb: float = Field(200.0, ge=0.0)  # below this, stop recording with a warning
    disk_check_interval_s: float = Field(2.0, gt=0.0)
    queue_frames: int = Field(256, ge=1, le=100_000)  # writer-thread backlog; oldest dropped beyond
    ros2: bool = False                   # also ROS 2 channels (JointState, /tf, markers) in ros2.mcap


class PreviewConfig(StrictModel):
    """Overlay of boxes, ids, the fitted skeleton and key angles (owner: landmarks/preview)."""
    window: bool = False                 # live cv2 window (needs a display)
    video_path: str | None = None        # overlay video (.mp4/.mkv); several streams: <stem>_<id><ext>
    video_codec: str = "libx264"         # PyAV encoder; falls back to mpeg4 when missing
    body_height_m: float = Field(1.70, gt=0.5, lt=2.5)  # generic skeleton drawn from q
    show_angles: bool = True             # knee/hip/elbow flexion in degrees beside each person
    plot: bool = True                    # small angle-vs-time plot (first person) in a corner
    plot_window_s: float = Field(5.0, gt=0.5, le=120.0)
    plot_dofs: tuple[str, ...] = ("knee_angle_r", "knee_angle_l", "elbow_flexion_r", "elbow_flexion_l")
    max_width_px: int = Field(1280, ge=160, le=7680)  # larger frames are downscaled for display

    @field_validator("plot_dofs")
    @classmethod
    def _dofs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from engines.skel.dofs import DOF_INDEX

        bad = [n for n in v if n not in DOF_INDEX]
        if bad:
            raise ValueError(f"preview.plot_dofs: unknown DoF names {bad}; use names from "
                             "engines/skel/dofs.py, e.g. knee_angle_r")
        return v
