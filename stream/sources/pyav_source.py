"""Video files and network streams (RTSP, HTTP, TCP, ...) decoded with PyAV.

Why PyAV and not OpenCV's VideoCapture: PyAV exposes open/read timeouts, RTSP transport, NVDEC
and the decoder's own error per packet, so a dropped camera becomes a reconnect with backoff and
a corrupt packet becomes a counted skip instead of a hang or a dead process.

Files end (`read()` returns None) after the last decodable frame, also when the file is truncated
mid-stream; network streams never "end": EOF or an I/O error is a drop, followed by reconnects
with exponential backoff until `reconnect_max_attempts` consecutive failures.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import av
import cv2
import numpy as np

from stream.errors import SourceError
from stream.sources.base import (DecodedFrame, FrameSource, SourceStats, capped_size, scaled_down,
                                 shrink_interpolation)
from stream.sources.config import SourceConfig
from stream.sources.swscale_into import BgrConverter

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "srt", "rtp")
_STOP_POLL_S = 0.05  # backoff sleeps wake this often so close() is honoured quickly
_REANCHOR_LATE_NS = 1_000_000_000  # paced playback more than 1 s late restarts its clock (no burst)


_SHRINKABLE = ("yuv420p", "yuvj420p")  # 8-bit 4:2:0, what software H.264/HEVC/VP9 decoding gives


def _plane_view(plane, width: int, height: int) -> np.ndarray:
    """(height, width) uint8 view of one picture plane (its rows padded to line_size)."""
    rows = np.frombuffer(plane, np.uint8, count=plane.line_size * height).reshape(height, plane.line_size)
    return rows[:, :width]


def _upright_turn(frame: av.VideoFrame) -> int | None:
    """The cv2.rotate code that shows `frame` as players do (its stream's display rotation:
    `frame.rotation` degrees counter-clockwise, to the nearest quarter turn); None for none."""
    quarter = round(float(getattr(frame, "rotation", 0) or 0) / 90.0) % 4
    return {0: None, 1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180,
            3: cv2.ROTATE_90_CLOCKWISE}[quarter]


def is_network_uri(uri: str) -> bool:
    return urlsplit(uri).scheme.lower() in NETWORK_SCHEMES


def cuda_decode_available() -> bool:
    """True when this FFmpeg build has CUDA and a device node is present (cheap; no context)."""
    try:
        from av.codec.hwaccel import hwdevices_available
        return "cuda" in hwdevices_available() and os.path.exists("/dev/nvidia0")
    except Exception:  # an FFmpeg build without hwaccel support simply decodes in software
        return False


class _Dropped(Exception):
    """A network stream stopped delivering (EOF or I/O error); triggers a reconnect."""


class PyAVSource(FrameSource):
    """Frames of a file or network stream as (H, W, 3) uint8 BGR.

    `media_pts_s` is the presentation time in seconds for files (restarts at 0 when looping) and
    None for network streams (their clock restarts on every reconnect).
    """

    def __init__(self, uri: str, stream_id: str, cfg: SourceConfig):
        self.uri = uri
        self.stream_id = stream_id
        self.cfg = cfg
        self.is_network = is_network_uri(uri)
        self.is_live = cfg.live if cfg.live is not None else self.is_network
        # a camera stream never ends: EOF means it dropped. `live: false` on a URL = a finite
        # file on a server (http://host/clip.mp4): EOF is its end
        self._eof_is_drop = self.is_network and cfg.live is not False
        self.width = self.height = 0
        self.fps: float | None = None
        self._stats = SourceStats()
        self._closed = False
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._pending: av.VideoFrame | None = None
        want_hw = cfg.hwaccel == "cuda" or (cfg.hwaccel == "auto" and cuda_decode_available())
        self._hw = want_hw
        self._hw_warned = False
        self._anchor: tuple[int, float] | None = None  # (monotonic ns, pts s) of the pacing clock
        self._into = BgrConverter() if BgrConverter.available else None
        self._small: av.VideoFrame | None = None  # a scaled-down stream's frame, reused
        self._last_pts: float | None = None
        self._open()

    # ---- opening -------------------------------------------------------------------------------
    def _open(self) -> None:
        """Open the container, pick the first video stream and decode its first frame (so a file
        that probes but never decodes fails here, and width/height are known)."""
        if self._hw:
            try:
                self._open_once(hw=True)
                return
            except SourceError:
                self._close_container()
                if self.is_network or not os.path.isfile(self.uri):
                    raise  # unreachable/missing either way; a software retry would only double the wait
                why = "no frame decoded on the GPU"
            except Exception as err:  # no GPU / no NVDEC for this codec: software, say so once
                self._close_container()
                why = f"{type(err).__name__}: {err}"
            self._hw = False
            self._stats.corrupt_skipped = 0  # what the GPU attempt could not decode is retried below
            if not self._hw_warned:
                self._hw_warned = True
                log.warning("%s: NVDEC hardware decoding unavailable (%s); decoding in software",
                            self.stream_id, why)
        self._open_once(hw=False)

    def _open_once(self, hw: bool) -> None:
        cfg = self.cfg
        kwargs: dict = {}
        if self.is_network:
            options = {}
            if urlsplit(self.uri).scheme.lower().startswith("rtsp"):
                options["rtsp_transport"] = cfg.rtsp_transport
            kwargs = {"options": options, "timeout": (cfg.open_timeout_s, cfg.read_timeout_s)}
        if hw:
            from av.codec.hwaccel import HWAccel
            kwargs["hwaccel"] = HWAccel(device_type="cuda", allow_software_fallback=False)
        t0 = time.monotonic()
        try:
            container = av.open(self.uri, **kwargs)
        except av.FFmpegError as exc:
            if hw and not isinstance(exc, (av.FileNotFoundError, av.InvalidDataError)):
                raise  # let _open fall back to software
            raise SourceError(self._open_error(exc, time.monotonic() - t0)) from None
        except OSError as exc:
            raise SourceError(self._open_error(exc, time.monotonic() - t0)) from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.uri} has no video stream (audio only or data); "
                              f"pass a video file or camera URL")
        self._container = container
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: the decode rate a live camera needs
        if cfg.decode_threads:
            stream.codec_context.thread_count = cfg.decode_threads
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self._frames = self._decode(container, stream)
        try:
            first = next(self._frames)
        except StopIteration:
            self._close_container()
            raise SourceError(f"{self.uri}: no decodable video frame (garbled or truncated file, or a "
                              f"stream that sent nothing); check the file or camera") from None
        except _Dropped as exc:
            self._close_container()
            raise SourceError(f"{self.uri}: stream dropped before the first frame ({exc}); check the "
                              f"camera or raise sources.N.read_timeout_s") from None
        self._pending = first
        # sizes as stored (decoded), then as delivered: capped, and turned upright
        self._stored = (int(first.width), int(first.height))
        self._stored_size = capped_size(*self._stored, cfg.max_side_px)
        self._turn = _upright_turn(first) if cfg.autorotate else None
        quarter = self._turn in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE)
        self.native_width, self.native_height = self._stored[::-1] if quarter else self._stored
        self.width, self.height = self._stored_size[::-1] if quarter else self._stored_size

    def _open_error(self, exc: BaseException, elapsed_s: float = 0.0) -> str:
        """One line naming what failed and what to do."""
        what = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}".replace("\n", " ")
        if not self.is_network:
            if isinstance(exc, FileNotFoundError) or not os.path.exists(self.uri):
                return f"video file not found: {self.uri}; check the path or pass --source URI"
            if os.path.isdir(self.uri):
                return (f"{self.uri} is a directory with no images; put .jpg/.png files in it "
                        f"or pass a video file")
            if isinstance(exc, PermissionError):
                return f"cannot read {self.uri} (permission denied); fix its permissions"
            return (f"cannot read video file {self.uri} ({what}): garbled, truncated before its index "
                    f"or an unsupported format; re-encode it (e.g. to H.264 .mp4) or pick another file")
        if isinstance(exc, ConnectionRefusedError):
            return (f"cannot connect to {self.uri}: connection refused; check the host/port and that "
                    f"the camera/server is streaming")
        # FFmpeg's RTSP client reports an interrupted (timed-out) open as "invalid data"
        if isinstance(exc, (TimeoutError, av.ExitError)) or elapsed_s >= 0.95 * self.cfg.open_timeout_s:
            return (f"no answer from {self.uri} within open_timeout_s={self.cfg.open_timeout_s}; check the "
                    f"address and network, or raise sources.N.open_timeout_s")
        return (f"cannot open stream {self.uri} ({what}); check the address, credentials and network "
                f"(rtsp_transport={self.cfg.rtsp_transport})")

    # ---- decoding ------------------------------------------------------------------------------
    def _decode(self, container, stream) -> Iterator[av.VideoFrame]:
        """Decoded frames; undecodable packets/frames are skipped and counted. A demux error ends a
        file (truncated) and is a drop for a network stream."""
        demux = container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                if self._eof_is_drop:
                    raise _Dropped("end of stream") from None
                return
            except (av.FFmpegError, OSError) as exc:
                if self.is_network:
                    raise _Dropped(f"{type(exc).__name__}: {exc}") from None
                self._stats.corrupt_skipped += 1  # truncated/damaged container: keep what decoded
                log.warning("%s: %s ends early (%s)", self.stream_id, self.uri, exc)
                yield from self._flush(stream)
                return
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                self._stats.corrupt_skipped += 1
                continue
            for frame in frames:
                if frame.is_corrupt:
                    self._stats.corrupt_skipped += 1
                    continue
                yield frame

    def _flush(self, stream) -> Iterator[av.VideoFrame]:
        try:
            for frame in stream.codec_context.decode(None):
                if not frame.is_corrupt:
                    yield frame
        except av.FFmpegError:
            return

    def read(self) -> DecodedFrame | None:
        """Next frame; None at the end of a file (unless looping). Raises SourceError when a
        network stream cannot be reconnected within `reconnect_max_attempts`."""
        return self._produce(None)

    def read_into(self, out: np.ndarray) -> DecodedFrame | None:
        """Like `read`, but converts straight into `out` ((H, W, 3) uint8, e.g. a shared-memory
        ring slot), saving one full-frame copy. Returns a frame whose image is `out`, or one with
        its own image when the size differs (a stream that changed resolution)."""
        return self._produce(out)

    def _produce(self, out: np.ndarray | None) -> DecodedFrame | None:
        if self.cfg.max_frames and self._stats.frames >= self.cfg.max_frames:
            return None
        frame = self._next_frame()
        if frame is None:
            return None
        pts = None if self.is_network else self._pts(frame)
        image = self._to_bgr(frame, out)
        if pts is not None and self.cfg.pace == "native":
            self._pace(pts)
        self._last_pts = pts
        self._stats.frames += 1
        return DecodedFrame(image=image, capture_ns=time.monotonic_ns(), capture_utc_ns=time.time_ns(),
                            media_pts_s=pts)

    def _to_bgr(self, frame: av.VideoFrame, out: np.ndarray | None) -> np.ndarray:
        """(H, W, 3) uint8 BGR at the delivered size (`max_side_px`) and upright (`autorotate`);
        into `out` when given and the size matches.

        A phone held upright stores its frames on their side with a display rotation that
        players apply and the decoder does not: turned here (after any shrink, on the smaller
        frame), else the detector sees everyone lying down (Demo cam02 stored so: 2.1 of its 3
        people found a frame, and their bodies fitted on their side)."""
        if self._turn is None or (frame.width, frame.height) != self._stored:
            return self._stored_bgr(frame, out)
        image = self._stored_bgr(frame, None)
        into = out is not None and out.shape == (self.height, self.width, 3) and out.dtype == np.uint8
        return cv2.rotate(image, self._turn, dst=out if into else None)

    def _stored_bgr(self, frame: av.VideoFrame, out: np.ndarray | None) -> np.ndarray:
        """`frame` as BGR in its stored orientation, at the capped size; into `out` when given
        and the size matches.

        Into `out`, swscale writes the slot directly (no intermediate frame, no copy); without
        the bundled libswscale, or on a size its fast path cannot fill safely, swscale's bgr24
        output is viewed and copied once. A frame scaled down is shrunk first (`_shrink`) and
        then converted the same way. A frame of another size than the first (a stream that
        changed resolution) keeps its own size."""
        if (frame.width, frame.height) == self._stored and self._stored_size != self._stored:
            small = self._shrink(frame)
            if small is None:  # not 8-bit 4:2:0 (or an NVDEC frame): convert, then shrink the BGR
                image = scaled_down(frame.to_ndarray(format="bgr24"), self._stored, self._stored_size)
                return self._into_out(image, out)
            frame = small
        if out is not None and self._into is not None and self._into.convert(frame, out):
            return out
        return self._into_out(frame.to_ndarray(format="bgr24"), out)

    @staticmethod
    def _into_out(image: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        if out is not None and out.shape == image.shape and out.dtype == np.uint8:
            np.copyto(out, image)
            return out
        return np.ascontiguousarray(image)

    def _shrink(self, frame: av.VideoFrame) -> av.VideoFrame | None:
        """An 8-bit 4:2:0 frame scaled down to the delivered size plane by plane (a whole factor:
        the mean of k x k pixels), into a frame kept for it; None for other formats.

        Why in YUV: a 4K frame's three planes shrink and the 1080p result converts for ~1.5 ms
        of CPU more than converting the 4K frame whole (the source process, decoding included:
        15.3-15.9 against 13.9-14.2 ms a frame here); converting it and then shrinking the BGR
        cost 3.3 ms more, PyAV's reformat (swscale's scaling path) 2.7-4.9 ms more and a new
        array per frame."""
        if frame.format.name not in _SHRINKABLE:
            return None
        small, (w, h) = self._small, self._stored_size
        if small is None or small.format.name != frame.format.name:
            small = self._small = av.VideoFrame(w, h, frame.format.name)
        sizes = ((frame.width, frame.height, w, h),) + \
            (((frame.width + 1) // 2, (frame.height + 1) // 2, w // 2, h // 2),) * 2
        for src, dst, (sw, sh, dw, dh) in zip(frame.planes, small.planes, sizes):
            cv2.resize(_plane_view(src, sw, sh), (dw, dh), dst=_plane_view(dst, dw, dh),
                       interpolation=shrink_interpolation((sw, sh), (dw, dh)))
        small.colorspace, small.color_range = frame.colorspace, frame.color_range
        return small

    def _next_frame(self) -> av.VideoFrame | None:
        while not self._closed:
            if self._pending is not None:
                frame, self._pending = self._pending, None
                return frame
            try:
                return next(self._frames)
            except StopIteration:
                if self.cfg.loop:
                    self._close_container()
                    self._open()
                    continue
                return None
            except _Dropped as exc:
                self._reconnect(str(exc))
        return None

    def _pts(self, frame: av.VideoFrame) -> float:
        if frame.time is not None:
            return float(frame.time)
        step = 1.0 / self.fps if self.fps else 1.0 / 30.0  # no timestamps: assume a steady rate
        return (self._last_pts + step) if self._last_pts is not None else 0.0

    @property
    def paced_file(self) -> bool:
        return self.cfg.pace == "native" and not self.is_live and not self.is_network

    def restart_clock(self) -> None:
        if self._last_pts is not None:
            self._anchor = (time.monotonic_ns(), self._last_pts)

    def _pace(self, pts: float) -> None:
        """Sleep until the frame's media time, like a camera delivering it live."""
        now = time.monotonic_ns()
        if self._anchor is None or self._last_pts is None or pts < self._last_pts:
            self._anchor = (now, pts)  # first frame, or the file restarted (loop)
        due = self._anchor[0] + int((pts - self._anchor[1]) * 1e9)
        if due > now:
            time.sleep((due - now) / 1e9)
        elif now - due > _REANCHOR_LATE_NS:
            self._anchor = (now, pts)  # we were stalled; resume at the camera rate, no burst

    # ---- reconnects ----------------------------------------------------------------------------
    def _reconnect(self, why: str) -> None:
        cfg = self.cfg
        self._close_container()
        log.warning("%s: %s dropped (%s); reconnecting", self.stream_id, self.uri, why)
        delay, failures, last = cfg.reconnect_initial_s, 0, "no attempt"
        while not self._closed:
            self._stats.reconnect_attempts += 1
            try:
                self._open()
                if self._closed:  # close() came from another thread while we were connecting
                    self._close_container()
                    return
                self._stats.reconnects += 1
                log.warning("%s: reconnected to %s after %d failed attempt(s)", self.stream_id,
                            self.uri, failures)
                return
            except SourceError as exc:
                last = str(exc)
            failures += 1
            if cfg.reconnect_max_attempts and failures >= cfg.reconnect_max_attempts:
                raise SourceError(f"{self.uri} dropped ({why}) and {failures} reconnect attempts failed "
                                  f"(last: {last}); check the camera/network or raise "
                                  f"sources.N.reconnect_max_attempts (0 = forever)")
            self._sleep(delay)
            delay = min(delay * 2.0, cfg.reconnect_max_s)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._closed and time.monotonic() < end:
            time.sleep(min(_STOP_POLL_S, max(0.0, end - time.monotonic())))

    # ---- bookkeeping ---------------------------------------------------------------------------
    @property
    def stats(self) -> SourceStats:
        self._stats.extra["hwaccel"] = 1.0 if self._hw else 0.0
        return self._stats

    @property
    def hw_decoding(self) -> bool:
        """True while NVDEC decodes this stream."""
        return self._hw

    def _close_container(self) -> None:
        self._frames = None
        self._pending = None
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # closing a broken network stream may fail again; it is gone anyway
                pass
            self._container = None

    def close(self) -> None:
        self._closed = True
        self._close_container()
        if self._into is not None:
            self._into.close()
