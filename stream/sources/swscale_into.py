"""Convert decoded PyAV frames to BGR straight into a caller's buffer (e.g. a shared-memory slot).

Why this exists: PyAV's `to_ndarray`/`reformat` always allocate the output frame, so putting a
decoded 1080p frame into the source stage's ring costs a conversion *and* a 6 MB copy; on two
cores the copy alone was the 20% that kept the graph below bare PyAV (bench/bench_decode.py).
swscale itself can write anywhere: this calls the libswscale that PyAV loaded (its own bundled
copy, found beside the `av` package) through ctypes with the frame's plane pointers and the
destination's address. Same scaler, flags, colour matrix and range as `to_ndarray(format="bgr24")`
(tests check the pixels are identical), one pass over memory instead of two.

Only frames `width % 16 == 0` with an even height go this way (1080p, 720p, 4K, VGA, PAL...).
The legacy `sws_scale` entry point's SIMD YUV->RGB converter works in blocks of 8-16 pixels and
pairs of rows: on other sizes it leaves the last columns unwritten and writes one row past the
end of the buffer (a heap overrun, seen here at 150x121). PyAV's own path (sws_scale_frame into
a padded frame it allocates) is safe there, so those sizes use it. tests/test_sources_swscale.py
checks identical pixels and untouched guard bytes over 4000 sizes and formats.

`BgrConverter.available` is False when the libraries cannot be found (a PyAV built against a
system FFmpeg, another platform); callers then fall back to `to_ndarray` + one copy.
"""
from __future__ import annotations

import ctypes
import glob
import logging
import os

import av
import numpy as np

log = logging.getLogger(__name__)

_SWS_BILINEAR = 2  # PyAV's default interpolation for reformat/to_ndarray
_AVCOL_RANGE_JPEG = 2  # full-range YUV
_UNIT = 1 << 16  # swscale's fixed-point 1.0 for brightness/contrast/saturation
_WIDTH_MULTIPLE = 16  # sizes the SIMD converters fill exactly and never overrun (module docstring)
_FULL_RANGE_FORMATS = ("yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p")


def _bundled_library(prefix: str) -> str | None:
    """Path of PyAV's bundled `libswscale`/`libavutil` (manylinux wheels ship them in av.libs)."""
    site = os.path.dirname(os.path.dirname(av.__file__))
    for folder in (os.path.join(site, "av.libs"), os.path.join(site, "av", ".dylibs")):
        found = sorted(glob.glob(os.path.join(folder, f"{prefix}*")))
        if found:
            return found[0]
    return None


def _load() -> tuple[ctypes.CDLL, ctypes.CDLL] | None:
    sws_path, util_path = _bundled_library("libswscale"), _bundled_library("libavutil")
    if sws_path is None or util_path is None:
        return None
    try:
        sws, util = ctypes.CDLL(sws_path), ctypes.CDLL(util_path)
    except OSError as exc:
        log.debug("cannot load %s / %s: %s", sws_path, util_path, exc)
        return None
    vp, c_int, c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    sws.sws_alloc_context.restype = vp
    sws.sws_alloc_context.argtypes = []
    sws.sws_init_context.restype = c_int
    sws.sws_init_context.argtypes = [vp, vp, vp]
    sws.sws_free_context.restype = None
    sws.sws_free_context.argtypes = [ctypes.POINTER(vp)]
    sws.sws_getCoefficients.restype = ctypes.POINTER(c_int)
    sws.sws_getCoefficients.argtypes = [c_int]
    sws.sws_setColorspaceDetails.restype = c_int
    sws.sws_setColorspaceDetails.argtypes = [vp, ctypes.POINTER(c_int), c_int, ctypes.POINTER(c_int),
                                             c_int, c_int, c_int, c_int]
    ptr4, int4 = vp * 4, c_int * 4
    sws.sws_scale.restype = c_int
    sws.sws_scale.argtypes = [vp, ptr4, int4, c_int, c_int, ptr4, int4]
    util.av_get_pix_fmt.restype = c_int
    util.av_get_pix_fmt.argtypes = [c_char_p]
    util.av_opt_set_int.restype = c_int
    util.av_opt_set_int.argtypes = [vp, c_char_p, ctypes.c_int64, c_int]
    return sws, util


_LIBS = _load()


class BgrConverter:
    """swscale context for one (width, height, pixel format, colour space, range) -> BGR24.

    Rebuilt only when the stream's frames change any of those (a resolution change mid-stream).
    `threads=0` lets swscale pick, like PyAV's reformat does.
    """

    available = _LIBS is not None

    def __init__(self, threads: int = 0):
        if _LIBS is None:
            raise RuntimeError("PyAV's bundled libswscale was not found; use frame.to_ndarray")
        self._sws, self._util = _LIBS
        self._threads = threads
        self._ctx: int | None = None
        self._key: tuple | None = None
        self._dst_fmt = self._util.av_get_pix_fmt(b"bgr24")
        self._src_ptrs, self._src_strides = (ctypes.c_void_p * 4)(), (ctypes.c_int * 4)()
        self._dst_ptrs, self._dst_strides = (ctypes.c_void_p * 4)(), (ctypes.c_int * 4)()

    def convert(self, frame: av.VideoFrame, out: np.ndarray) -> bool:
        """Write `frame` as BGR into `out` ((H, W, 3) uint8, rows contiguous). False when this
        frame cannot go this way (a GPU frame, a size mismatch, an unsafe size): the caller
        converts as usual."""
        width, height = frame.width, frame.height
        if width % _WIDTH_MULTIPLE or height % 2:
            return False
        if (out.shape != (height, width, 3) or out.dtype != np.uint8 or out.strides[1:] != (3, 1)
                or not out.flags.writeable):
            return False
        planes = frame.planes
        if not planes or frame.format.name in ("cuda", "vaapi", "videotoolbox", "qsv", "d3d11"):
            return False
        key = (width, height, frame.format.name, frame.colorspace, frame.color_range)
        if key != self._key and not self._configure(key):
            return False
        for i, plane in enumerate(planes[:4]):
            self._src_ptrs[i] = plane.buffer_ptr
            self._src_strides[i] = plane.line_size
        self._dst_ptrs[0] = out.ctypes.data
        self._dst_strides[0] = out.strides[0]
        rows = self._sws.sws_scale(self._ctx, self._src_ptrs, self._src_strides, 0, height,
                                   self._dst_ptrs, self._dst_strides)
        return rows == height

    def _configure(self, key: tuple) -> bool:
        width, height, fmt_name, colorspace, color_range = key
        self.close()
        src_fmt = self._util.av_get_pix_fmt(fmt_name.encode())
        if src_fmt < 0:
            return False
        ctx = self._sws.sws_alloc_context()
        if not ctx:
            raise MemoryError("could not allocate a swscale context")
        opts = {b"srcw": width, b"srch": height, b"src_format": src_fmt, b"dstw": width,
                b"dsth": height, b"dst_format": self._dst_fmt, b"sws_flags": _SWS_BILINEAR,
                b"threads": self._threads}
        for name, value in opts.items():
            if self._util.av_opt_set_int(ctx, name, value, 0) < 0:
                self._free(ctx)
                return False
        if self._sws.sws_init_context(ctx, None, None) < 0:
            self._free(ctx)
            return False
        # the colour matrix and range the frame carries (unspecified = BT.601 limited), as
        # sws_scale_frame would read them from the frame inside PyAV's reformat
        src_range = int(color_range == _AVCOL_RANGE_JPEG or fmt_name in _FULL_RANGE_FORMATS)
        coefficients = self._sws.sws_getCoefficients(int(colorspace))
        self._sws.sws_setColorspaceDetails(ctx, coefficients, src_range, coefficients, 1, 0,
                                           _UNIT, _UNIT)
        self._ctx, self._key = ctx, key
        return True

    def _free(self, ctx: int) -> None:
        holder = ctypes.c_void_p(ctx)
        self._sws.sws_free_context(ctypes.byref(holder))

    def close(self) -> None:
        if self._ctx is not None:
            self._free(self._ctx)
            self._ctx, self._key = None, None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass
