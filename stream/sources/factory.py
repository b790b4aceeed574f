"""URI -> FrameSource: the one entry point the source stage calls (`open_source`).

Supported forms: a video file path (or file://), rtsp:// rtsps:// rtmp:// http(s):// tcp:// udp://
srt:// streams, webcam:N or /dev/videoN, a folder of images, synthetic:[WxH][@FPS], and `sample`
(webcam 0 if present, else the Pose2Sim demo clip).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from stream.errors import SourceError
from stream.packaged import packaged_file
from stream.sources.base import FrameSource
from stream.sources.config import SourceConfig

SUPPORTED_FORMS = ("a video file path, rtsp://host/path, http(s)://..., tcp://..., webcam:0, /dev/video0, "
                   "an image folder, synthetic:[WxH][@FPS] or sample")
SAMPLE_CLIP = ("Demo_SinglePerson", "videos", "cam01.mp4")
SAMPLE_HOWTO = ("pip install --no-deps pose2sim==0.10.49 (ships a demo clip), plug in a webcam, "
                "or pass --source FILE|rtsp://...|synthetic:")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def sample_clip_path() -> Path | None:
    """The demo clip inside the installed Pose2Sim package, found without importing it."""
    return packaged_file("Pose2Sim", *SAMPLE_CLIP)


def resolve_sample(webcam_device: str = "/dev/video0") -> str:
    """`sample` -> 'webcam:0' when a webcam exists, else the Pose2Sim demo clip path."""
    if os.path.exists(webcam_device):
        return "webcam:0"
    clip = sample_clip_path()
    if clip is None:
        raise SourceError(f"--source sample needs a webcam ({webcam_device} is missing) or the demo clip: "
                          f"{SAMPLE_HOWTO}")
    return str(clip)


def _synthetic(uri: str, stream_id: str, cfg: SourceConfig) -> FrameSource:
    from stream.sources.synthetic import SyntheticSource

    spec = uri.split(":", 1)[1].strip() if ":" in uri else ""
    m = re.fullmatch(r"(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?", spec)
    if m is None:
        raise SourceError(f"bad synthetic source '{uri}'; use synthetic:, synthetic:640x480 or "
                          f"synthetic:640x480@30")
    update = {}
    if m.group(1):
        w, h = int(m.group(1)), int(m.group(2))
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise SourceError(f"synthetic size {w}x{h} out of range; use 16..8192 pixels per side")
        update.update(width=w, height=h)
    if m.group(3):
        fps = float(m.group(3))
        if not 0 < fps <= 1000:
            raise SourceError(f"synthetic fps {fps} out of range; use 0 < fps <= 1000")
        update["fps"] = fps
    return SyntheticSource(stream_id, cfg.model_copy(update=update) if update else cfg)


def open_source(cfg: SourceConfig, stream_id: str) -> FrameSource:
    """Open the source named by `cfg.uri`; raises SourceError (one line) when it cannot be used.

    Call this in the process that will read the frames (decoders and devices do not survive
    pickling or fork)."""
    uri = cfg.uri.strip()
    if uri == "sample":
        uri = resolve_sample()
    low = uri.lower()
    if low == "synthetic" or low.startswith("synthetic:"):
        return _synthetic(uri, stream_id, cfg)
    if re.fullmatch(r"webcam:\d+|/dev/video\d+", uri):
        from stream.sources.webcam import WebcamSource

        return WebcamSource(uri, stream_id, cfg)
    from stream.sources.pyav_source import NETWORK_SCHEMES, PyAVSource

    m = _SCHEME.match(uri)
    if m and not os.path.exists(uri):
        scheme = m.group(1).lower()
        if scheme == "file":
            uri = uri[len("file://"):] if low.startswith("file://") else uri[len("file:"):]
        elif scheme in NETWORK_SCHEMES:
            return PyAVSource(uri, stream_id, cfg)
        else:
            raise SourceError(f"unsupported source '{cfg.uri}' (scheme '{scheme}:'); use {SUPPORTED_FORMS}")
    path = Path(uri).expanduser()
    if path.is_dir():
        from stream.sources.images import ImageFolderSource

        return ImageFolderSource(path, stream_id, cfg)
    if not path.exists():
        raise SourceError(f"video file not found: {uri}; check the path or pass --source ({SUPPORTED_FORMS})")
    if not path.is_file():
        raise SourceError(f"{uri} is not a regular file; pass {SUPPORTED_FORMS}")
    if path.stat().st_size == 0:
        raise SourceError(f"video file {uri} is empty (0 bytes); re-copy or re-record it")
    return PyAVSource(str(path), stream_id, cfg)


def check_source(cfg: SourceConfig) -> None:
    """Cheap checks the parent can run before starting any process: unsupported scheme, missing
    file/folder, missing webcam node, unresolvable `sample`. Opens nothing (no decoder, no socket,
    no device), so network reachability is still found out by `open_source` in the child."""
    uri = cfg.uri.strip()
    if uri == "sample":
        uri = resolve_sample()
    low = uri.lower()
    if low == "synthetic" or low.startswith("synthetic:"):
        return
    m = re.fullmatch(r"webcam:(\d+)|/dev/video(\d+)", uri)
    if m:
        device = f"/dev/video{m.group(1) or m.group(2)}"
        if not os.path.exists(device):
            raise SourceError(f"no webcam at {device} (device node missing); plug a camera in, check "
                              f"`ls /dev/video*`, or pass --source with a file or rtsp:// URL")
        return
    from stream.sources.pyav_source import NETWORK_SCHEMES

    m = _SCHEME.match(uri)
    if m and not os.path.exists(uri):
        scheme = m.group(1).lower()
        if scheme in NETWORK_SCHEMES:
            return
        if scheme != "file":
            raise SourceError(f"unsupported source '{cfg.uri}' (scheme '{scheme}:'); use {SUPPORTED_FORMS}")
        uri = uri[len("file://"):] if low.startswith("file://") else uri[len("file:"):]
    if not Path(uri).expanduser().exists():
        raise SourceError(f"video file not found: {uri}; check the path or pass --source ({SUPPORTED_FORMS})")
