"""`pose.skelcf.backend: triton` against a REAL tritonserver (nvidia-pytriton's binary, tiny
SKEL-CF in its Python backend on CPU, bound to 127.0.0.1 on free ports): parity with the local
backend, dynamic batching across two processes, server killed and restarted mid-run, and the
start-up errors a user sees."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.triton_helpers import frame_and_persons, server_or_skip, write_test_repo

server_or_skip()

from engines.backends.torch_backend import TorchBackend  # noqa: E402
from engines.backends.triton_backend import RemoteInferenceError, TritonBackend  # noqa: E402
from engines.backends.triton_server import LocalTritonServer, free_port  # noqa: E402
from engines.skelcf.checkpoint import load_skelcf  # noqa: E402
from engines.skelcf.config import SkelCFConfig, TritonConfig  # noqa: E402
from engines.skelcf.engine import SkelCFEngine  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402
from engines.skelcf.preprocess import CropPreprocessor, normalize_uint8  # noqa: E402
from stream.errors import EngineError  # noqa: E402
from stream.packet import Intrinsics  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY_S = 240.0  # a loaded 2-core CI machine: model load imports torch inside the stub


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    repo, ckpt = write_test_repo(tmp_path_factory.mktemp("triton"))
    with LocalTritonServer(repo, ready_timeout_s=READY_S) as srv:
        yield srv, ckpt


def _cfg(url: str, **kw) -> TritonConfig:
    return TritonConfig(url=url, model_name="skelcf_py", request_timeout_s=30, **kw)


def _local(ckpt) -> TorchBackend:
    net = build_skelcf("tiny")
    load_skelcf(net, ckpt)
    return TorchBackend(net.eval(), device="cpu")


@pytest.mark.parametrize("shm", ["system", "none"])
def test_parity_with_the_local_backend(served, shm):
    srv, ckpt = served
    g = torch.Generator().manual_seed(1)
    crops = torch.randint(0, 256, (5, 3, 256, 192), generator=g, dtype=torch.uint8)
    info = torch.cat([torch.rand(5, 2, generator=g) - 0.5, 0.2 + 0.8 * torch.rand(5, 1, generator=g)], 1)
    with TritonBackend(_cfg(srv.url, shared_memory=shm)) as remote:
        assert remote.name == ("triton-shm" if shm == "system" else "triton-grpc")
        got = remote.infer(crops, info)
        assert remote.bytes_sent == 5 * (3 * 256 * 192 + 12)  # uint8 crops: 1 byte per value
    ref = _local(ckpt).infer(normalize_uint8(crops), info)
    for a, b, n in zip(got, ref, (46, 10, 3)):
        assert a.shape == b.shape == (5, n)
        assert float((a - b).abs().max()) <= 1e-5


def test_engine_through_triton_matches_local_backend_on_the_same_crops(served):
    """The whole engine: uint8 crops of a frame, one request, q/betas/trans filled."""
    srv, ckpt = served
    img, persons = frame_and_persons(4)
    k = Intrinsics(500.0, 500.0, 320.0, 240.0, "user")
    cfg = SkelCFConfig(backend="triton", variant="tiny", device="cpu", triton=_cfg(srv.url))
    eng = SkelCFEngine(cfg, focal_px=500.0)
    try:
        eng.estimate(img, persons, k, "cam0")
        assert eng.backend.requests == 1  # all persons of the frame in one request
    finally:
        eng.close()
    boxes = np.stack([p.crop_box_xyxy for p in persons]).astype(np.float64)
    crops, info = CropPreprocessor("cpu", torch.uint8)(img, boxes, 500.0)
    assert crops.shape == (4, 3, 256, 192) and crops.dtype == torch.uint8
    q_ref = _local(ckpt).infer(normalize_uint8(crops), info)[0].numpy()
    q = np.stack([p.q for p in persons])
    assert float(np.abs(q - q_ref).max()) <= 1e-5
    assert all(p.model_id == "skelcf-triton-skelcf_py" for p in persons)


def test_two_pipeline_processes_are_batched_together(served):
    """Two processes, each posing frames of 2 persons; the dynamic batcher merges their requests
    (server-side executions < requests)."""
    srv, _ = served
    with TritonBackend(_cfg(srv.url, shared_memory="none")) as probe:
        before = probe.execution_stats()
        frames = 40
        procs = [subprocess.Popen([sys.executable, "tests/triton_helpers.py", srv.url, str(frames),
                                   "2", shm], cwd=REPO, stdout=subprocess.PIPE, text=True)
                 for shm in ("system", "none")]
        outs = [p.communicate(timeout=600)[0] for p in procs]
        after = probe.execution_stats()
    assert [p.returncode for p in procs] == [0, 0]
    assert [int(o.strip().splitlines()[-1]) for o in outs] == [2 * frames, 2 * frames]
    requests = after["requests"] - before["requests"]
    executions = after["executions"] - before["executions"]
    assert requests == 2 * frames
    assert executions < requests, f"no request merged: {executions} executions for {requests}"


def test_server_killed_and_restarted_mid_run(served, tmp_path):
    """Kill -9 the server mid-run: frames keep coming back at once with persons unposed (the
    smoother predicts them), errors are counted, retries back off; a new server on the same
    port is picked up without restarting the engine."""
    _, ckpt = served
    repo = write_test_repo(tmp_path)[0]
    port = free_port()
    srv = LocalTritonServer(repo, grpc_port=port, ready_timeout_s=READY_S).start()
    img, _ = frame_and_persons(2)
    k = Intrinsics(500.0, 500.0, 320.0, 240.0, "user")
    cfg = SkelCFConfig(backend="triton", variant="tiny", device="cpu", triton=TritonConfig(
        url=srv.url, model_name="skelcf_py", request_timeout_s=60, retry_backoff_s=0.1,
        retry_backoff_max_s=1.0))  # a dead server refuses at once: the timeout is for slow CI
    eng = SkelCFEngine(cfg, focal_px=500.0)
    eng.backend.warmup((2,))  # the first execution of a fresh server is slow on a loaded machine
    srv2 = None

    def frame() -> tuple[list, float]:
        ps = frame_and_persons(2)[1]
        t0 = time.monotonic()
        eng.estimate(img, ps, k, "cam0")
        return ps, time.monotonic() - t0

    try:
        assert all(p.q is not None for p in frame()[0])
        srv.kill()
        down = [frame() for _ in range(30)]
        assert all(p.q is None for ps, _ in down for p in ps)  # nothing invented while down
        assert eng.remote_errors >= 2 and eng.take_error_count() == eng.remote_errors
        calls = eng.backend.requests
        assert calls < 30, "no backoff: every frame went to the network"
        # no frame waited for the request timeout: a lost server fails fast, the stream flows
        assert max(dt for _, dt in down) < cfg.triton.request_timeout_s / 2
        srv2 = LocalTritonServer(repo, grpc_port=port, ready_timeout_s=READY_S).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ps, _ = frame()
            if all(p.q is not None for p in ps):
                break
            time.sleep(0.1)
        assert all(p.q is not None for p in ps), "no recovery after the server came back"
    finally:
        eng.close()
        srv.close()
        if srv2 is not None:
            srv2.close()


def test_lost_server_persons_are_predicted_by_the_smoother(served, tmp_path):
    """Pose stage + smoothing stage in lockstep: after the server is gone, tracked persons come
    out `predicted=True` and the pose stage reports its errors to the runtime."""
    from engines.pose_stage import PoseStage
    from stream.config import PipelineConfig
    from stream.packet import FrameInfo, Packet
    from tracking.smoothing_stage import SmoothingStage

    repo = write_test_repo(tmp_path)[0]
    srv = LocalTritonServer(repo, ready_timeout_s=READY_S).start()
    cfg = PipelineConfig.model_validate({"pose": {"engine": "skelcf", "focal_px": 500.0, "skelcf": {
        "backend": "triton", "variant": "tiny", "device": "cpu",
        "triton": {"url": srv.url, "model_name": "skelcf_py", "request_timeout_s": 60}}}})
    pose, smooth = PoseStage(cfg), SmoothingStage(cfg)
    pose.setup()
    pose.engine.backend.warmup((2,))  # a slow first execution must not count as the outage
    smooth.setup()
    img, _ = frame_and_persons(2)
    out = []
    try:
        for i in range(8):
            if i == 4:
                srv.kill()
            # a 30 fps stream clock, not the wall clock: a slow kill on a loaded machine must not
            # make the smoother's coasting window (max_coast_s) run out between two frames
            fi = FrameInfo("cam0", i, i * 1_000_000_000 // 30, time.time_ns(), 640, 480)
            pkt = Packet(frame=fi, persons=frame_and_persons(2)[1])
            pkt.image = img
            pkt = pose.process(pkt)
            pkt.image = None
            out.append(smooth.process(pkt))
        errors = pose.take_error_count()
    finally:
        pose.close()
        smooth.close()
        srv.close()
    assert all(not p.predicted and p.q is not None for pk in out[:4] for p in pk.persons)
    assert all(p.predicted and p.q is not None for pk in out[4:] for p in pk.persons)
    assert errors >= 1


def test_unreachable_server_is_one_line_naming_the_url():
    url = f"127.0.0.1:{free_port()}"
    with pytest.raises(EngineError) as e:
        TritonBackend(TritonConfig(url=url, connect_timeout_s=2))
    msg = str(e.value)
    assert url in msg and "unreachable" in msg and "\n" not in msg


def test_missing_model_and_wrong_input_shape_name_model_and_expected_shape(served):
    srv, _ = served
    with pytest.raises(EngineError) as e:
        TritonBackend(_cfg(srv.url).model_copy(update={"model_name": "nope"}))
    assert "'nope'" in str(e.value) and "[-1, 3, 256, 192]" in str(e.value)
    assert "skelcf_py" in str(e.value)  # what the server does have
    with pytest.raises(EngineError) as e:
        TritonBackend(_cfg(srv.url).model_copy(update={"model_name": "skelcf_wrong"}))
    msg = str(e.value)
    assert "'skelcf_wrong'" in msg and "FP32 [-1, 3, 256, 256]" in msg
    assert "crops UINT8 [-1, 3, 256, 192]" in msg


def test_remote_error_type_is_not_a_user_error():
    """A lost server mid-run must not stop the stage: the engine handles this type itself."""
    from stream.errors import UserError
    assert not issubclass(RemoteInferenceError, UserError)


def test_shared_memory_choice_follows_url_and_where_the_tensors_are():
    from engines.backends.triton_client import choose_memory, cuda_shm_module

    assert choose_memory("auto", "127.0.0.1:8001", data_on_gpu=False) == "system"
    assert choose_memory("auto", "10.1.2.3:8001", data_on_gpu=True) == "none"  # another host
    gpu = "cuda" if cuda_shm_module() is not None else "system"  # no CUDA here: system
    assert choose_memory("auto", "localhost:8001", data_on_gpu=True) == gpu
    assert choose_memory("cuda", "10.1.2.3:8001", data_on_gpu=False) == "cuda"  # as configured


def test_cuda_shared_memory_without_cuda_is_one_clear_line(served):
    from engines.backends.triton_client import cuda_shm_module

    if cuda_shm_module() is not None:
        pytest.skip("CUDA and cuda-python are present: the GPU test below covers this mode")
    srv, _ = served
    with pytest.raises(EngineError) as e:
        TritonBackend(_cfg(srv.url, shared_memory="cuda"))
    assert "tritonclient[grpc,cuda]" in str(e.value) and "\n" not in str(e.value)


def test_cuda_shared_memory_parity_with_crops_on_the_gpu(served):
    """Client and server on one GPU: crops cut on the GPU go to the server through CUDA IPC
    regions, q/betas/cam come back as CUDA tensors, equal to the local backend's."""
    from engines.backends.triton_client import cuda_shm_module

    if cuda_shm_module() is None:
        pytest.skip("needs a CUDA device and tritonclient's CUDA utilities (pip install "
                    "'tritonclient[grpc,cuda]'): none here; bench/gpu_checks.sh runs it on a GPU")
    srv, ckpt = served
    g = torch.Generator().manual_seed(2)
    crops = torch.randint(0, 256, (3, 3, 256, 192), generator=g, dtype=torch.uint8)
    info = torch.tensor([[0.1, -0.1, 0.5], [0.0, 0.0, 0.8], [-0.2, 0.1, 0.3]])
    with TritonBackend(_cfg(srv.url, shared_memory="auto", crops_on_gpu=True)) as remote:
        assert remote.name == "triton-cudashm" and remote.device.type == "cuda"
        got = remote.infer(crops.cuda(), info.cuda())
        assert all(t.device.type == "cuda" for t in got)
    ref = _local(ckpt).infer(normalize_uint8(crops), info)
    for a, b in zip(got, ref):
        assert float((a.cpu() - b).abs().max()) <= 1e-5
