"""Files with a display rotation (a phone held upright stores its frames on their side and says
so in the file) are delivered the way players show them, so the detector sees people standing."""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from sources_clips import frame_indices, write_clip
from stream.sources.config import SourceConfig
from stream.sources.factory import open_source


@pytest.mark.parametrize("rotation", [-90, 90, 180, 0])
def test_frames_come_upright(tmp_path: Path, rotation: int):
    clip = tmp_path / f"turned_{rotation}.mp4"
    write_clip(clip, n=8, display_rotation=rotation)
    with av.open(str(clip)) as c:
        stored = [f for f in c.decode(video=0)]
        assert stored[0].rotation % 360 == rotation % 360   # the file says how to show it (180 reads -180)
        back = {0: None, 90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, -90: cv2.ROTATE_90_CLOCKWISE}
        ref = [f.to_ndarray(format="bgr24") for f in stored]
        ref = [cv2.rotate(im, back[rotation]) if back[rotation] is not None else im for im in ref]
    cfg = SourceConfig(uri=str(clip), pace="fast")
    with open_source(cfg, "a") as plain, open_source(cfg, "b") as ring:
        assert (plain.width, plain.height, plain.native_width, plain.native_height) == (160, 120, 160, 120)
        slot = np.zeros((120, 160, 3), np.uint8)
        images = []
        for k in range(8):
            a, b = plain.read(), ring.read_into(slot)
            assert np.array_equal(a.image, ref[k]) and b.image is slot and np.array_equal(slot, a.image)
            images.append(a.image.copy())
    assert frame_indices(images) == list(range(8))      # the upright pattern reads


def test_autorotate_off_keeps_the_stored_frames(tmp_path: Path):
    clip = tmp_path / "turned.mp4"
    write_clip(clip, n=4, display_rotation=-90)
    with open_source(SourceConfig(uri=str(clip), pace="fast", autorotate=False), "a") as src:
        assert (src.width, src.height) == (120, 160) and src.read().image.shape == (160, 120, 3)


def test_a_large_turned_file_is_shrunk_then_turned(tmp_path: Path):
    """Stored 480x640 with a quarter turn, capped at 320: delivered 320x240 upright, and its
    scale (delivered / upright native width) is 0.5."""
    clip = tmp_path / "turned_big.mp4"
    write_clip(clip, n=4, width=640, height=480, display_rotation=-90)
    with open_source(SourceConfig(uri=str(clip), pace="fast", max_side_px=320), "a") as src:
        assert (src.width, src.height, src.native_width, src.native_height) == (320, 240, 640, 480)
        slot = np.zeros((240, 320, 3), np.uint8)
        with av.open(str(clip)) as c:
            first = next(iter(c.decode(video=0))).to_ndarray(format="bgr24")
        want = cv2.resize(cv2.rotate(first, cv2.ROTATE_90_CLOCKWISE), (320, 240), interpolation=cv2.INTER_AREA)
        got = src.read_into(slot)
        assert got.image is slot
        assert np.abs(slot.astype(np.int16) - want).mean() < 1.5
