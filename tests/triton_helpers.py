"""A real tritonserver (from the nvidia-pytriton wheel) serving the tiny SKEL-CF in Triton's
Python backend, for the Triton tests; and the loop a 'pipeline process' runs against it."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest


def server_or_skip():
    """Skip (with the reason) only when the server binary cannot run here."""
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed")
    from engines.backends.triton_server import glibc_ok, pytriton_dist
    from stream.errors import DependencyError

    ok, why = glibc_ok()
    if not ok:
        pytest.skip(why)
    try:
        pytriton_dist()
    except DependencyError as exc:
        pytest.skip(str(exc))


def write_test_repo(root: Path, queue_delay_us: int = 20_000) -> tuple[Path, Path]:
    """(repository, checkpoint): tiny SKEL-CF as `skelcf_py`, plus `skelcf_wrong` whose crops
    input is float32 256x256 (what a stale export would serve)."""
    from engines.skelcf.checkpoint import make_manifest_checkpoint
    from engines.skelcf.triton_repo import model_config, python_code_path, write_config, write_repository

    ckpt = make_manifest_checkpoint("tiny", root / "best.pth", seed=3, flnet_width=4)
    repo = root / "model_repository"
    write_repository(repo, str(ckpt), "tiny", backends=("python",), flnet=False, max_batch=16,
                     preferred=(4, 8), queue_delay_us=queue_delay_us, kind="KIND_CPU",
                     python_threads=1, check=False)
    wrong = model_config("skelcf_wrong", "python", 16, (), 0, "KIND_CPU", 1, parameters={
        "checkpoint": str(ckpt), "variant": "tiny", "code_path": python_code_path(),
        "threads": "1", "device": "cpu"})
    wrong.input[0].data_type = wrong.input[1].data_type  # FP32
    del wrong.input[0].dims[:]
    wrong.input[0].dims.extend([3, 256, 256])
    write_config(repo / "skelcf_wrong", wrong)
    (repo / "skelcf_wrong" / "1").mkdir()
    (repo / "skelcf_wrong" / "1" / "model.py").write_bytes(
        (repo / "skelcf_py" / "1" / "model.py").read_bytes())
    return repo, ckpt


def frame_and_persons(n: int, seed: int = 0):
    """A 480x640 frame and `n` tracked persons with boxes inside it."""
    from stream.packet import Person, TrackState

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    persons = []
    for i in range(n):
        x0 = 20.0 + 70.0 * i
        b = np.array([x0, 60.0, x0 + 110.0, 420.0], np.float32)
        persons.append(Person(track_id=i + 1, track_state=TrackState.TRACKED, box_xyxy=b,
                              score=0.9, crop_box_xyxy=b))
    return img, persons


def pipeline_process(url: str, frames: int, persons: int, shared_memory: str) -> int:
    """What a camera host's pose stage does, frame after frame, against one Triton server."""
    from engines.skelcf.config import SkelCFConfig, TritonConfig
    from engines.skelcf.engine import SkelCFEngine
    from stream.packet import Intrinsics

    cfg = SkelCFConfig(backend="triton", variant="tiny", device="cpu", triton=TritonConfig(
        url=url, model_name="skelcf_py", shared_memory=shared_memory, request_timeout_s=30))
    eng = SkelCFEngine(cfg, focal_px=500.0)
    k = Intrinsics(500.0, 500.0, 320.0, 240.0, "user")
    posed = 0
    try:
        for i in range(frames):
            img, ps = frame_and_persons(persons, seed=i)
            eng.estimate(img, ps, k, "cam0")
            posed += sum(p.q is not None for p in ps)
    finally:
        eng.close()
    return posed


if __name__ == "__main__":  # python tests/triton_helpers.py URL FRAMES PERSONS SHM
    print(pipeline_process(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
