"""Session recording: poses to MCAP (plus optional H.264 video per stream), crash-safe.

Layout of a session folder (`recorder.directory/<session_name>/`):
  poses.mcap       channel '/<stream>/pose' (msgpack 'frame' messages, byte-identical to what a
                   client receives), channel '/meta' (one 'meta' message); metadata records
                   'skelstream.config' (YAML), 'skelstream.versions', 'skelstream.meta',
                   'skelstream.video.<stream>' (file, t0, time base), 'skelstream.stats' at close
                   (frames, and 'corrupt_skipped.<stream>': undecodable frames its source skipped
                   up to the last recorded frame).
  <stream>.mp4     fragmented MP4 (H.264); frame pts = (capture_ns - t0_capture_ns) in us, so
                   video time t <-> pose capture_ns = t0 + t * 1e9.

Crash safety: MCAP chunks (zstd) are flushed every `flush_interval_s`, so after `kill -9` at most
that much is missing and every complete chunk is on disk. The file then lacks its footer; readers
here tolerate it and `recover(path)` rewrites it as a valid, indexed MCAP. Fragmented MP4 keeps
every finished fragment (one per keyframe interval) readable.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import numpy as np

from sinks.schema import SCHEMA_VERSION, SOFTWARE, encode_frame, encode_meta, meta_map, stream_file_stem
from stream.errors import RecorderError
from stream.packet import Packet

POSES_FILE = "poses.mcap"
META_TOPIC = "/meta"
PROFILE = "skelstream"


def pose_topic(stream_id: str) -> str:
    return f"/{stream_id}/pose"


def software_versions() -> dict[str, str]:
    """Versions of what wrote a session (stored in it; debugging a recording starts here)."""
    out = {"skelstream": SOFTWARE, "python": sys.version.split()[0], "platform": platform.platform(),
           "schema": str(SCHEMA_VERSION)}
    for mod in ("numpy", "zmq", "msgpack", "mcap", "av"):
        try:
            out[mod] = getattr(__import__(mod), "__version__", "?")
        except ImportError:
            out[mod] = "absent"
    return out


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------
class _VideoWriter:
    """One stream's H.264 in fragmented MP4; pts from capture time (us since the first frame)."""

    def __init__(self, path: str, width: int, height: int, t0_ns: int, crf: int, gop: int):
        import av

        self.path, self.t0_ns = path, t0_ns
        self.w, self.h = width - width % 2, height - height % 2  # yuv420p needs even sizes
        self.container = av.open(path, "w", format="mp4", options={
            "movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"})
        self.stream = self.container.add_stream("libx264", rate=30, options={
            "crf": str(crf), "preset": "veryfast", "tune": "zerolatency", "g": str(gop)})
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.w, self.h, "yuv420p"
        self.stream.codec_context.time_base = Fraction(1, 1_000_000)
        self.last_pts = -1
        self.frames = 0

    def write(self, image_bgr: np.ndarray, capture_ns: int) -> None:
        import av

        pts = (capture_ns - self.t0_ns) // 1000
        if pts <= self.last_pts:  # the muxer needs strictly increasing pts
            return
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image_bgr[:self.h, :self.w]),
                                           format="bgr24")
        frame.pts, frame.time_base = pts, Fraction(1, 1_000_000)
        self.last_pts = pts
        for pkt in self.stream.encode(frame):
            self.container.mux(pkt)
        self.frames += 1

    def close(self) -> None:
        try:
            for pkt in self.stream.encode(None):
                self.container.mux(pkt)
        finally:
            self.container.close()


@dataclass
class RecorderStats:
    frames: int = 0
    video_frames: int = 0
    bytes_written: int = 0
    stopped_reason: str = ""
    corrupt_skipped: dict[str, int] = field(default_factory=dict)  # per stream, from its source


class SessionRecorder:
    """Writes one session. A context manager: the MCAP footer/index and the videos are always
    finished, even when an exception leaves the `with` block.

    `directory`: parent folder; the session folder is `directory/session_name`."""

    def __init__(self, directory: str, session_name: str | None = None, config_yaml: str = "",
                 video: bool = False, video_crf: int = 23, video_gop_frames: int = 30,
                 flush_interval_s: float = 0.5, chunk_size_bytes: int = 262_144,
                 fsync: bool = False, min_free_disk_mb: float = 0.0,
                 disk_check_interval_s: float = 2.0):
        self.session_name = session_name or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.path = os.path.join(directory, self.session_name)
        self.config_yaml, self.video = config_yaml, video
        self.video_crf, self.video_gop = video_crf, video_gop_frames
        self.flush_interval_s, self.chunk_size, self.fsync = (
            flush_interval_s, chunk_size_bytes, fsync)
        self.min_free_mb, self.disk_check_s = min_free_disk_mb, disk_check_interval_s
        self.stats = RecorderStats()
        self.active = False
        self._writer = None
        self._file = None
        self._channels: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self._videos: dict[str, _VideoWriter] = {}
        self._next_flush = 0.0
        self._next_disk = 0.0

    @property
    def mcap_path(self) -> str:
        return os.path.join(self.path, POSES_FILE)

    def open(self) -> "SessionRecorder":
        from mcap.writer import CompressionType, Writer

        try:
            os.makedirs(self.path, exist_ok=True)
            self._file = open(self.mcap_path, "xb")
        except FileExistsError:
            raise RecorderError(f"session {self.path} already has {POSES_FILE}; choose another "
                                "recorder.session_name") from None
        except OSError as exc:
            raise RecorderError(f"cannot write recording to {self.path} ({exc.strerror}); set "
                                "recorder.directory to a writable folder") from None
        self._check_disk(force=True)
        if not self.active and self.stats.stopped_reason:
            self._file.close()
            self._remove_empty()
            raise RecorderError(self.stats.stopped_reason)
        self._writer = Writer(self._file, chunk_size=self.chunk_size,
                              compression=CompressionType.ZSTD)
        self._writer.start(profile=PROFILE, library=SOFTWARE)
        self._writer.add_metadata("skelstream.config", {"yaml": self.config_yaml})
        self._writer.add_metadata("skelstream.versions", software_versions())
        self._writer.add_metadata("skelstream.meta", {k: json.dumps(v)
                                                      for k, v in meta_map().items()})
        ch = self._writer.register_channel(META_TOPIC, "msgpack", 0, {"schema": str(SCHEMA_VERSION)})
        now = time.time_ns()
        self._writer.add_message(ch, now, encode_meta("", 0, now), now)
        self._flush()
        self.active = True
        self._next_flush = time.monotonic() + self.flush_interval_s
        return self

    def __enter__(self) -> "SessionRecorder":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- per frame ------------------------------------------------------------------------------
    def write_packet(self, packet: Packet, image_bgr: np.ndarray | None = None) -> bool:
        """Record one frame (and its pixels if video is on). False once recording stopped."""
        if not self.active:
            return False
        fi = packet.frame
        try:
            ch = self._channels.get(fi.stream_id)
            if ch is None:
                ch = self._channels[fi.stream_id] = self._writer.register_channel(
                    pose_topic(fi.stream_id), "msgpack", 0, {"schema": str(SCHEMA_VERSION)})
            n = self._seq[fi.stream_id] = self._seq.get(fi.stream_id, 0) + 1
            self.stats.corrupt_skipped[fi.stream_id] = fi.corrupt_skipped
            now = time.time_ns()
            payload = encode_frame(packet, n, now)
            self._writer.add_message(ch, fi.capture_utc_ns, payload, now, sequence=n)
            self.stats.frames += 1
            self.stats.bytes_written += len(payload)
            if self.video and image_bgr is not None:
                self._write_video(fi.stream_id, image_bgr, fi.capture_ns, fi.capture_utc_ns)
            self.tick()
        except OSError as exc:  # disk full mid-write: stop cleanly, keep what is on disk
            self._stop(f"recording stopped: writing {self.path} failed ({exc.strerror}); "
                       "the session keeps everything flushed before", finish=False)
            return False
        return self.active

    def _write_video(self, stream_id: str, image: np.ndarray, capture_ns: int,
                     capture_utc_ns: int) -> None:
        vw = self._videos.get(stream_id)
        if vw is None:
            safe = stream_file_stem(stream_id)
            h, w = image.shape[:2]
            vw = self._videos[stream_id] = _VideoWriter(
                os.path.join(self.path, f"{safe}.mp4"), w, h, capture_ns, self.video_crf,
                self.video_gop)
            self._writer.add_metadata(f"skelstream.video.{stream_id}", {
                "file": os.path.basename(vw.path), "t0_capture_ns": str(capture_ns),
                "t0_capture_utc_ns": str(capture_utc_ns), "pts_time_base": "1/1000000",
                "codec": "h264", "width": str(vw.w), "height": str(vw.h)})
        before = vw.frames
        vw.write(image, capture_ns)
        self.stats.video_frames += vw.frames - before

    def tick(self) -> None:
        """Time-based duties: flush the chunk (crash-loss bound) and check free disk space."""
        now = time.monotonic()
        if now >= self._next_flush:
            self._flush()
            self._next_flush = now + self.flush_interval_s
        if now >= self._next_disk:
            self._check_disk()

    def _flush(self) -> None:
        self._writer.flush()  # finishes the chunk in progress and writes it out
        if self.fsync:
            os.fsync(self._file.fileno())

    def _check_disk(self, force: bool = False) -> None:
        self._next_disk = time.monotonic() + self.disk_check_s
        if self.min_free_mb <= 0:
            return
        free_mb = shutil.disk_usage(self.path).free / 1e6
        if free_mb < self.min_free_mb:
            msg = (f"recording stopped: {free_mb:.0f} MB free on {self.path} is below "
                   f"recorder.min_free_disk_mb={self.min_free_mb:g}; free space or lower it")
            if force and self._writer is None:
                self.stats.stopped_reason = msg
                return
            self._stop(msg)

    def _stop(self, reason: str, finish: bool = True) -> None:
        self.stats.stopped_reason = reason
        print(f"warning: record: {reason}", file=sys.stderr)
        self._finish(finish)

    # -- closing --------------------------------------------------------------------------------
    def _finish(self, finish_mcap: bool = True) -> None:
        if not self.active:
            return
        self.active = False
        errors = []
        for vw in self._videos.values():
            try:
                vw.close()
            except Exception as exc:  # noqa: BLE001 - finish everything else first
                errors.append(f"{vw.path}: {exc}")
        try:
            if finish_mcap:
                s = self.stats
                self._writer.add_metadata("skelstream.stats", {
                    "frames": str(s.frames), "video_frames": str(s.video_frames),
                    "stopped_reason": s.stopped_reason,
                    **{f"corrupt_skipped.{sid}": str(n) for sid, n in s.corrupt_skipped.items()}})
                self._writer.finish()
            self._file.close()
        except OSError as exc:
            errors.append(f"{self.mcap_path}: {exc.strerror}")
            try:
                self._file.close()
            except OSError:
                pass
        if errors:
            print(f"warning: record: session not finished cleanly ({'; '.join(errors)}); run "
                  f"python -m sinks.recorder recover {self.mcap_path}", file=sys.stderr)

    def close(self) -> None:
        if self.active:
            self._finish()
        elif self._file is not None and not self._file.closed:
            try:
                self._file.close()
            except OSError:
                pass
        if self._file is not None and self.stats.frames == 0:
            self._remove_empty()

    def _remove_empty(self) -> None:
        """A session that never recorded a frame (the source failed, or stopped before its first
        frame) holds only a header: remove it, and its folder when nothing else is in it."""
        self._file = None
        for v in self._videos.values():
            _remove_quietly(v.path)
        _remove_quietly(self.mcap_path)
        try:
            os.rmdir(self.path)
        except OSError:
            pass  # the user's own files are in it: leave the folder


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# ------------------------------------------------------------------------------------------
# reading (tolerates a missing footer) and recovery
# ------------------------------------------------------------------------------------------
class _Exact:
    """File wrapper whose short reads raise EOF, so a cut record is never parsed as complete."""

    def __init__(self, f):
        self._f = f

    def read(self, n: int = -1) -> bytes:
        from mcap.exceptions import EndOfFile

        data = self._f.read(n)
        if n is not None and n > 0 and len(data) < n:
            raise EndOfFile()
        return data


@dataclass
class SessionData:
    """Everything readable from a session file, in file order."""
    path: str
    messages: list[tuple[str, int, bytes]] = field(default_factory=list)  # (topic, log_time, data)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    complete: bool = True           # False: truncated (no footer); `messages` = complete chunks
    problem: str = ""

    def frames(self) -> Iterator[bytes]:
        return (d for t, _, d in self.messages if t != META_TOPIC)


def resolve_session(path: str) -> str:
    """A session folder or its poses.mcap -> the .mcap path (RecorderError if absent)."""
    p = os.path.join(path, POSES_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(p):
        raise RecorderError(f"no recording at {path}; pass a session folder (holding "
                            f"{POSES_FILE}) or an .mcap file")
    return p


def read_session(path: str) -> SessionData:
    """Read every complete record, stopping cleanly where a killed recorder cut the file."""
    from mcap.records import Channel, Chunk, Footer, Message, Metadata
    from mcap.stream_reader import StreamReader, breakup_chunk

    p = resolve_session(path)
    out = SessionData(p)
    channels: dict[int, str] = {}
    seen_footer = False
    with open(p, "rb") as f:
        try:
            reader = StreamReader(_Exact(f), emit_chunks=True, record_size_limit=1 << 30)
            for rec in reader.records:
                if isinstance(rec, Chunk):  # all-or-nothing per chunk, CRC-checked
                    recs = breakup_chunk(rec, validate_crc=True)
                else:
                    recs = [rec]
                for r in recs:
                    if isinstance(r, Channel):
                        channels[r.id] = r.topic
                    elif isinstance(r, Message):
                        out.messages.append((channels.get(r.channel_id, "?"), r.log_time, r.data))
                    elif isinstance(r, Metadata):
                        out.metadata[r.name] = dict(r.metadata)
                    elif isinstance(r, Footer):
                        seen_footer = True
        except Exception as exc:  # noqa: BLE001 - any parse failure = the cut point
            out.complete, out.problem = False, f"{type(exc).__name__}: {exc}"[:200]
    if not seen_footer and out.complete:
        out.complete, out.problem = False, "no footer"
    if not out.messages and not out.metadata:
        raise RecorderError(f"{p} holds no readable MCAP records ({out.problem or 'empty'}); "
                            "the recording is lost or this is not a skelstream session")
    return out


def recover(path: str, out: str | None = None) -> int:
    """Rewrite a truncated session file as a complete, indexed MCAP holding every complete
    message; returns how many. In place (via a temp file + rename) unless `out` is given."""
    from mcap.writer import CompressionType, Writer

    data = read_session(path)
    src = data.path
    dst = out or src + ".recovering"
    try:
        with open(dst, "wb") as f:
            w = Writer(f, compression=CompressionType.ZSTD)
            w.start(profile=PROFILE, library=SOFTWARE)
            for name, md in data.metadata.items():
                w.add_metadata(name, md)
            if not data.complete:
                w.add_metadata("skelstream.recovered", {"problem": data.problem,
                                                        "messages": str(len(data.messages))})
            chans: dict[str, int] = {}
            for topic, log_time, payload in data.messages:
                ch = chans.get(topic)
                if ch is None:
                    ch = chans[topic] = w.register_channel(topic, "msgpack", 0,
                                                           {"schema": str(SCHEMA_VERSION)})
                w.add_message(ch, log_time, payload, log_time)
            w.finish()
    except OSError as exc:
        raise RecorderError(f"cannot write the recovered file {dst} ({exc.strerror}); pass "
                            "out= on a disk with free space") from None
    if out is None:
        os.replace(dst, src)
    return len(data.messages)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m sinks.recorder",
                                 description="Recover a session cut by a crash or kill -9.")
    ap.add_argument("command", choices=["recover", "info"])
    ap.add_argument("session", help="session folder or .mcap file")
    ap.add_argument("--out", help="recover into this file instead of in place")
    a = ap.parse_args(argv)
    try:
        if a.command == "recover":
            n = recover(a.session, a.out)
            print(f"recovered {n} messages into {a.out or resolve_session(a.session)}")
        else:
            d = read_session(a.session)
            print(f"{d.path}: {len(d.messages)} messages, complete={d.complete} {d.problem}")
            for name in d.metadata:
                print(f"  metadata {name}")
    except RecorderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
