"""Large frames scaled down at the source (`sources.N.max_side_px`): a 4K clip costs what 1080p
costs downstream (divided by a whole factor; 4:2:0 video shrunk plane by plane before
conversion, anything else converted and then shrunk), and a user focal length kept in the camera's pixels."""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from sources_clips import write_clip
from stream.config import PipelineConfig, RuntimeConfig
from stream.graph import Graph
from stream.packet import FrameInfo, Packet
from stream.source_stage import SourceStage
from stream.sources.base import capped_size, shrink_interpolation
from stream.sources.config import SourceConfig
from stream.sources.factory import open_source
from stream.stage import Stage


def test_capped_size_keeps_the_aspect_and_even_sides():
    assert capped_size(3840, 2160, 2560) == (1920, 1080)      # 4K: halved
    assert capped_size(2160, 3840, 2560) == (1080, 1920)      # a phone held upright
    assert capped_size(2560, 1440, 2560) == (2560, 1440)      # fits: unchanged
    assert capped_size(7680, 4320, 2560) == (2560, 1440)      # 8K: a third
    assert capped_size(3840, 2160, 0) == (3840, 2160)         # 0: no cap
    assert capped_size(4000, 3000, 1000) == (1000, 750)
    w, h = capped_size(2704, 1521, 1920)                      # GoPro 2.7K, odd height: halved, even
    assert (w, h) == (1352, 760)
    with pytest.raises(ValueError, match="max_side_px 100"):
        SourceConfig(uri="a.mp4", max_side_px=100)


@pytest.mark.parametrize("cap, size, pix_fmt", [
    (320, (320, 240), "yuv420p"),    # halved in YUV, converted by swscale straight into the slot
    (300, (214, 160), "yuv420p"),    # a third, not exact; a width swscale's fast path cannot fill
    (320, (320, 240), "yuv444p"),    # other formats: converted, then shrunk
    (1000, (640, 480), "yuv420p")])  # fits: as it is
def test_a_large_file_is_delivered_scaled_down(tmp_path: Path, cap: int, size: tuple[int, int], pix_fmt: str):
    """The frames come at the capped size, the same by read() and read_into(), and look like the
    whole frame converted and then shrunk (chroma is resampled before conversion, so edges of
    saturated colour differ by a few levels)."""
    clip = tmp_path / f"vga_{pix_fmt}.mp4"
    write_clip(clip, n=12, width=640, height=480, pix_fmt=pix_fmt)   # 4:4:4: not shrunk plane by plane
    with av.open(str(clip)) as c:
        ref = [cv2.resize(f.to_ndarray(format="bgr24"), size, interpolation=shrink_interpolation((640, 480), size))
               for f in c.decode(video=0)]
    cfg = SourceConfig(uri=str(clip), pace="fast", max_side_px=cap)
    with open_source(cfg, "a") as plain, open_source(cfg, "b") as ring:
        assert (plain.width, plain.height, plain.native_width, plain.native_height) == (*size, 640, 480)
        slot = np.zeros((size[1], size[0], 3), np.uint8)
        for k in range(12):
            a, b = plain.read(), ring.read_into(slot)
            assert a.image.shape == (size[1], size[0], 3)
            assert b.image is slot and np.array_equal(slot, a.image)
            diff = np.abs(a.image.astype(np.int16) - ref[k])
            assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 12, (k, diff.mean(), np.percentile(diff, 99))
            if pix_fmt != "yuv420p" or size == (640, 480):
                assert np.array_equal(a.image, ref[k])
        assert plain.read() is None
    with open_source(SourceConfig(uri=str(clip), pace="fast", max_side_px=0), "c") as full:
        assert (full.width, full.height) == (640, 480) and full.read().image.shape == (480, 640, 3)


def test_an_image_folder_is_delivered_scaled_down(tmp_path: Path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (600, 800, 3), dtype=np.uint8) for _ in range(3)]
    for k, im in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{k:03d}.png"), im)
    with open_source(SourceConfig(uri=str(tmp_path), pace="fast", max_side_px=400), "a") as src:
        assert (src.width, src.height, src.native_width, src.native_height) == (400, 300, 800, 600)
        for im in images:
            got = src.read().image
            assert np.array_equal(got, cv2.resize(im, (400, 300), interpolation=cv2.INTER_AREA))


class SizeSink(Stage):
    """Writes `width height px_scale image-shape` of each packet it gets."""
    needs_image = True

    def __init__(self, path: str):
        self.name, self.path = "sizes", path

    def process(self, packet: Packet) -> None:
        fi = packet.frame
        with open(self.path, "a") as f:
            f.write(f"{fi.width} {fi.height} {fi.px_scale} {packet.image.shape[1]} {packet.image.shape[0]}\n")
        return None


def test_the_graph_carries_the_scaled_frame_and_its_scale(tmp_path: Path):
    """A real source process on a 640x480 file capped at 320: the ring, every packet and its
    image are 320x240, and `px_scale` says 0.5 frame pixels per camera pixel."""
    clip = tmp_path / "vga.mp4"
    write_clip(clip, n=10, width=640, height=480)
    out = tmp_path / "sizes.txt"
    g = Graph(RuntimeConfig(status_line=False, summary_at_exit=False), lossless=True)
    g.add(SourceStage(SourceConfig(uri=str(clip), mode="lossless", max_side_px=320), "cam0", 4), to=["sizes"])
    g.add(SizeSink(str(out)))
    res = g.run()
    assert res.exit_code == 0, res.errors
    rows = [line.split() for line in out.read_text().splitlines()]
    assert len(rows) == 10 and all(r == ["320", "240", "0.5", "320", "240"] for r in rows)


def test_a_user_focal_length_stays_in_the_camera_pixels():
    """pose.focal_px is the camera's; on a frame scaled to half size it is half as many pixels."""
    from engines.pose_stage import PoseStage

    stage = PoseStage(PipelineConfig.model_validate({"pose": {"focal_px": 1400.0}}))
    full = Packet(FrameInfo("cam0", 0, 0, 0, 3840, 2160))
    half = Packet(FrameInfo("cam1", 0, 0, 0, 1920, 1080, px_scale=0.5))
    k_full, k_half = stage.intrinsics(full), stage.intrinsics(half)
    assert (k_full.fx, k_full.cx, k_full.source) == (1400.0, 1920.0, "user")
    assert (k_half.fx, k_half.fy, k_half.cx, k_half.cy) == (700.0, 700.0, 960.0, 540.0)
