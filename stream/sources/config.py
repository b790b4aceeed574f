"""Settings of one video source (owner: sources).

Units are in the field names. Network fields (timeouts, reconnects, rtsp_transport) only matter
for network URIs; `fps`/`width`/`height` for image folders, the synthetic pattern and webcams.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stream.config_base import StrictModel
from stream.sources.camera_pose import CameraPoseConfig


class SourceConfig(StrictModel):
    uri: str = "sample"  # file path, rtsp://..., webcam:0, /dev/video0, folder/, synthetic:, sample
    stream_id: str | None = None  # default: cam0, cam1, ... in config order
    mode: Literal["live", "lossless"] = "live"
    pace: Literal["native", "fast"] = "native"  # files: simulate a live camera or go flat out
    loop: bool = False              # files/folders/synthetic: start again at the end (forever)
    max_frames: int = Field(0, ge=0)  # stop after this many frames (0 = no limit)
    fps: float | None = Field(None, gt=0.0, le=1000.0)  # folders/synthetic (default 30), webcam request
    width: int | None = Field(None, ge=16, le=8192)     # synthetic (default 640) / webcam request
    height: int | None = Field(None, ge=16, le=8192)    # synthetic (default 480) / webcam request
    # None: URLs and webcams are live, files are not; false on a URL = a finite file on a server
    live: bool | None = None
    # a file played live (pace native, not lossless) starts its clock once its first frame has
    # been through every image-reading stage (the detector's first look, the first landmark
    # call), waiting at most this long: else the clip's first 0.2-0.5 s pass while nobody is
    # tracked yet. 0 = start at once (a camera cannot wait, so it never does)
    first_frame_wait_s: float = Field(10.0, ge=0.0, le=600.0)
    # network streams (rtsp://, http://, tcp://, ...)
    rtsp_transport: Literal["tcp", "udp"] = "tcp"  # tcp survives lossy Wi-Fi/NAT; udp is lower latency
    open_timeout_s: float = Field(5.0, gt=0.0, le=600.0)  # connect + probe must finish in this time
    read_timeout_s: float = Field(5.0, gt=0.0, le=600.0)  # no data for this long = the stream dropped
    reconnect_initial_s: float = Field(0.5, gt=0.0, le=600.0)  # first backoff; doubles per failure
    reconnect_max_s: float = Field(10.0, gt=0.0, le=3600.0)    # backoff ceiling
    reconnect_max_attempts: int = Field(0, ge=0)  # consecutive failed attempts before giving up (0 = forever)
    # a frame whose longer side is larger is divided by the smallest whole factor that fits as
    # it is decoded (a 4K phone clip becomes 1920x1080; 1440p stays): the detector and the
    # landmark/SKEL-CF crops still see a person larger than they use, and the ring, its copies
    # and the detector's resizes cost a quarter (a 4K run's memory 2.4 -> 1.6 GB). Boxes,
    # intrinsics and sizes are then in the scaled frame's pixels; pose.focal_px stays in the
    # camera's own pixels. 0 = keep every frame at its own size
    max_side_px: int = Field(2560, ge=0, le=16384)
    # files and streams: show frames the way players do, turned by the stream's display rotation
    # (a phone held upright records its frames on their side and says so in the file)
    autorotate: bool = True
    # decoding
    hwaccel: Literal["auto", "cuda", "none"] = "auto"  # cuda = NVDEC; falls back to software if absent
    decode_threads: int = Field(0, ge=0, le=64)  # 0 = FFmpeg picks (frame+slice threads)
    # where the camera sits (y-up world, metres): exports place people in it; None = estimated
    camera_pose: CameraPoseConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if not self.uri.strip():
            raise ValueError("sources.N.uri is empty; give a file, rtsp://..., webcam:0, a folder, "
                             "synthetic: or sample")
        if 0 < self.max_side_px < 160:
            raise ValueError(f"sources.N.max_side_px {self.max_side_px} would shrink frames below what "
                             f"the detector can use; give 0 (keep the camera's size) or >= 160")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(f"reconnect_max_s ({self.reconnect_max_s}) is below reconnect_initial_s "
                             f"({self.reconnect_initial_s}); raise it or lower the initial backoff")
        return self
