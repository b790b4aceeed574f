"""Direct swscale conversion into a caller's buffer gives exactly PyAV's `to_ndarray("bgr24")`."""
from __future__ import annotations

import av
import numpy as np
import pytest

from conftest import VTEST, needs_shared
from stream.sources.config import SourceConfig
from stream.sources.factory import open_source
from stream.sources.swscale_into import BgrConverter

pytestmark = pytest.mark.skipif(not BgrConverter.available,
                                reason="PyAV without its bundled libswscale (fallback path is used)")


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    return np.clip(ramp + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


def frame_in(fmt: str, h: int, w: int, colorspace: int | None = None, color_range: int | None = None,
             seed: int = 0) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(textured(h, w, seed), format="bgr24").reformat(format=fmt)
    if colorspace is not None:
        frame.colorspace = colorspace
    if color_range is not None:
        frame.color_range = color_range
    return frame


@pytest.mark.parametrize("fmt, colorspace, color_range", [
    ("yuv420p", None, None),      # what most decoders hand out, untagged (BT.601 limited)
    ("yuv420p", 1, 1),            # BT.709 limited: HD cameras
    ("yuv420p", 1, 2),            # BT.709 full range
    ("yuvj420p", None, None),     # MJPEG webcams: full range by format
    ("yuv422p", 5, None),         # BT.470BG, 4:2:2
    ("nv12", None, None),         # hardware decoders' layout
    ("yuv444p", 9, 1),            # BT.2020
    ("gray", None, None),
    ("rgb24", None, None),
])
def test_pixels_identical_to_to_ndarray(fmt, colorspace, color_range):
    conv = BgrConverter()
    for seed, (h, w) in enumerate([(120, 160), (96, 176), (1080, 1920), (120, 160)]):  # size changes
        frame = frame_in(fmt, h, w, colorspace, color_range, seed)
        guarded = np.full(h * w * 3 + 4096, 77, np.uint8)  # bytes after the image must stay put
        out = guarded[:h * w * 3].reshape(h, w, 3)
        assert conv.convert(frame, out)
        ref = frame.to_ndarray(format="bgr24")
        assert np.array_equal(out, ref), f"{fmt}: max diff {np.abs(out.astype(int) - ref).max()}"
        assert (guarded[h * w * 3:] == 77).all()


def test_every_safe_size_is_exact_and_in_bounds():
    """All widths that are multiples of 16 up to 400 and even heights up to 40, in the formats
    decoders produce: identical to to_ndarray, nothing written past the buffer."""
    for fmt in ("yuv420p", "nv12", "yuv422p", "yuv420p10le"):
        conv = BgrConverter()
        for w in range(16, 401, 16):
            for h in range(2, 41, 2):
                frame = frame_in(fmt, h, w, seed=w + h)
                guarded = np.full(h * w * 3 + 256, 77, np.uint8)
                out = guarded[:h * w * 3].reshape(h, w, 3)
                assert conv.convert(frame, out), (fmt, w, h)
                assert np.array_equal(out, frame.to_ndarray(format="bgr24")), (fmt, w, h)
                assert (guarded[h * w * 3:] == 77).all(), (fmt, w, h)


def test_sizes_the_simd_converter_overruns_are_left_to_pyav():
    """150x121 yuv420p: legacy sws_scale leaves columns 144+ black and writes a row past the end."""
    conv = BgrConverter()
    for h, w in [(121, 160), (120, 150), (121, 150), (120, 162)]:
        out = np.zeros((h, w, 3), np.uint8)
        assert not conv.convert(frame_in("yuv420p", h, w), out)
        assert not out.any()


def test_rejects_buffers_it_cannot_fill_and_leaves_them_untouched():
    conv = BgrConverter()
    frame = frame_in("yuv420p", 120, 160)
    wrong_size = np.zeros((60, 80, 3), np.uint8)
    wrong_dtype = np.zeros((120, 160, 3), np.float32)
    strided = np.zeros((120, 160, 6), np.uint8)[:, :, ::2]  # pixels not packed
    read_only = np.zeros((120, 160, 3), np.uint8)
    read_only.flags.writeable = False
    for out in (wrong_size, wrong_dtype, strided, read_only):
        assert not conv.convert(frame, out)
        assert not out.any()
    padded_rows = np.zeros((120, 200, 3), np.uint8)[:, :160]  # row stride > width*3 is fine
    assert conv.convert(frame, padded_rows)
    assert np.array_equal(padded_rows, frame.to_ndarray(format="bgr24"))
    assert not padded_rows.base[:, 160:].any()  # nothing written past each row


@needs_shared(VTEST)
def test_vtest_read_into_equals_read():
    """A real MPEG-4 camera file: the ring path and the plain path agree on every pixel."""
    cfg = SourceConfig(uri=str(VTEST), pace="fast", max_frames=60)
    with open_source(cfg, "a") as plain, open_source(cfg, "b") as ring:
        slot = np.empty((ring.height, ring.width, 3), np.uint8)
        while (ref := plain.read()) is not None:
            got = ring.read_into(slot)
            assert got.image is slot and np.array_equal(slot, ref.image)
        assert ring.read_into(slot) is None


@pytest.mark.parametrize("width, height, codec", [(160, 120, "libx264"), (150, 122, "libx264"),
                                                  (176, 144, "mjpeg")])
def test_source_read_into_equals_read_on_direct_and_fallback_sizes(tmp_path, width, height, codec):
    """PyAVSource.read_into takes the direct path on safe sizes and PyAV's on others (150x122),
    and gives read()'s pixels either way, for H.264 (yuv420p) and MJPEG (full-range yuvj420p)."""
    from sources_clips import write_clip

    clip = tmp_path / f"clip_{width}x{height}.{'avi' if codec == 'mjpeg' else 'mp4'}"
    write_clip(clip, n=12, width=width, height=height, codec=codec)
    cfg = SourceConfig(uri=str(clip), pace="fast")
    with open_source(cfg, "a") as plain, open_source(cfg, "b") as ring:
        slot = np.zeros((height, width, 3), np.uint8)
        frames = 0
        while (ref := plain.read()) is not None:
            got = ring.read_into(slot)
            assert got.image is slot and np.array_equal(slot, ref.image)
            frames += 1
        assert frames == 12 and ring.read_into(slot) is None
        direct = width % 16 == 0 and height % 2 == 0
        assert (ring._into._key is not None) == direct  # which path converted the frames
