"""SKEL-CF pose engine: all persons of a frame -> one batched crop op -> one network call.

Order per frame: (focal length: user value, else FLNet once per stream and every
`flnet_refresh_s`), batched crops + bbox_info on the backend's device, backend inference, then
camera -> camera-frame translation on the host. Weights come from `pose.skelcf.checkpoint`; nothing
is downloaded.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engines.backends import create_backend
from engines.pose_engine import PoseEngine
from engines.skelcf.config import SkelCFConfig
from engines.skelcf.preprocess import CropPreprocessor, square_boxes
from stream.errors import EngineError
from stream.packet import Intrinsics, Person

log = logging.getLogger(__name__)
N_DOFS = 46
DOWNLOAD_HINT = ("download best.pth from Hugging Face (Intellindust/SKEL_CF_vitpose_H) and set "
                 "pose.skelcf.checkpoint to its path")


def checkpoint_fingerprint(path: str | Path) -> str:
    """Cheap identity of a (multi-GB) checkpoint: name, size and mtime, not a full hash."""
    st = Path(path).stat()
    return f"{Path(path).stem}-{st.st_size:x}-{int(st.st_mtime):x}"


def visible_fraction(centre: np.ndarray, side: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Fraction of each square crop that lies inside the frame, (N,) in [0, 1]."""
    h, w = image_hw
    half = side / 2.0
    iw = np.clip(np.minimum(centre[:, 0] + half, w) - np.maximum(centre[:, 0] - half, 0), 0, None)
    ih = np.clip(np.minimum(centre[:, 1] + half, h) - np.maximum(centre[:, 1] - half, 0), 0, None)
    return (iw * ih) / np.maximum(side * side, 1e-9)


class SkelCFEngine(PoseEngine):
    """PoseEngine running the SKEL-CF network through the configured backend.

    focal_px: user-given focal length (px); overrides FLNet and the 60 degree default.
    clock: seconds, for the FLNet refresh period (injectable so the period can be tested)."""

    def __init__(self, cfg: SkelCFConfig, focal_px: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.focal_px = focal_px
        self._clock = clock
        self.remote_errors = 0     # inferences that did not come back (remote backends)
        self._errors_taken = 0
        self._outage = False
        if cfg.backend == "triton":
            self._init_remote(cfg)
        else:
            self._init_local(cfg)
        self.device = self.backend.device
        self.pre = CropPreprocessor(self.device, self.backend.input_dtype)
        if self.flnet is not None:
            self.flnet = self.flnet.to(self.device).eval()
        self._focal: dict[str, tuple[float, float]] = {}  # stream -> (focal px, monotonic time)
        self._refresh: set[str] = set()

    def _init_remote(self, cfg: SkelCFConfig) -> None:
        """The network runs on a Triton server; FLNet (when a checkpoint has it) runs here."""
        self.flnet = None
        ck = cfg.flnet_checkpoint or cfg.checkpoint
        if ck is not None:
            from engines.skelcf.checkpoint import load_flnet
            try:
                self.flnet = load_flnet(ck, allow_unsafe=cfg.allow_unsafe_checkpoint)
            except EngineError as exc:
                if cfg.flnet_checkpoint is not None:
                    raise
                log.warning("no FLNet from %s (%s); focal length from the config/default", ck, exc)
        self.model_id = f"skelcf-triton-{cfg.triton.model_name}"
        self.backend = create_backend("triton", lambda: None, triton_cfg=cfg.triton)

    def _init_local(self, cfg: SkelCFConfig) -> None:
        if cfg.checkpoint is None:
            raise EngineError(f"pose.skelcf.checkpoint is not set; {DOWNLOAD_HINT}")
        if not Path(cfg.checkpoint).is_file():
            raise EngineError(f"SKEL-CF checkpoint '{cfg.checkpoint}' does not exist; {DOWNLOAD_HINT}")
        from engines.skelcf.checkpoint import load_from_config

        net, self.flnet = load_from_config(cfg)
        fp = checkpoint_fingerprint(cfg.checkpoint)
        self.model_id = f"skelcf-{cfg.variant}-{fp}"
        device = None if cfg.device == "auto" else cfg.device
        cache = Path(cfg.cache_dir)
        onnx_path = cache / f"skelcf-{cfg.variant}-{fp}.onnx"

        def onnx_factory() -> Path:
            if not onnx_path.is_file():
                from engines.skelcf.export import export_skelcf
                export_skelcf(net, onnx_path)
            return onnx_path

        cpu_auto = cfg.backend == "auto" and (device == "cpu" or not torch.cuda.is_available())
        # on CPU 'auto' measures torch vs onnxruntime only when an export is already cached:
        # exporting ViT-H just to time it would cost minutes at start-up
        factory = onnx_factory if not cpu_auto or onnx_path.is_file() else None
        self.backend = create_backend(cfg.backend, lambda: net, factory, cache, device)

    def take_error_count(self) -> int:
        """Remote inference errors since the last call (the pose stage counts them)."""
        n = self.remote_errors - self._errors_taken
        self._errors_taken = self.remote_errors
        return n

    # focal length ------------------------------------------------------------------------------
    def estimate_intrinsics(self, image_bgr: np.ndarray) -> Intrinsics | None:
        """FLNet intrinsics of a frame (f px, principal point at the centre); None without FLNet
        or when FLNet's answer is not a positive finite focal length (the caller falls back)."""
        if self.flnet is None:
            return None
        # RGB is the convention FLNet was trained with (the official demo's BGR is a bug)
        f = self.flnet.focal_px(np.ascontiguousarray(image_bgr[:, :, ::-1]), self.device)
        if not (np.isfinite(f) and f > 0):
            log.warning("FLNet gave focal %.4g px; ignoring it", f)
            return None
        h, w = image_bgr.shape[:2]
        return Intrinsics(fx=f, fy=f, cx=w / 2.0, cy=h / 2.0, source="flnet")

    def refresh_focal(self, stream_id: str) -> None:
        """Re-run FLNet on the next frame of this stream (e.g. after a zoom)."""
        self._refresh.add(stream_id)

    def _focal_for(self, image_bgr: np.ndarray, intrinsics: Intrinsics, stream_id: str,
                   timings: dict[str, int]) -> float:
        if intrinsics.source == "user":  # the pose stage's, scaled with the frame (max_side_px)
            return float(intrinsics.fy)
        if self.focal_px is not None:
            return float(self.focal_px)
        if self.flnet is None:
            return float(intrinsics.fy)
        cached = self._focal.get(stream_id)
        if (cached is None or stream_id in self._refresh
                or self._clock() - cached[1] >= self.cfg.flnet_refresh_s):
            t0 = time.perf_counter_ns()
            k = self.estimate_intrinsics(image_bgr)
            timings["flnet"] = time.perf_counter_ns() - t0
            # a bad FLNet answer must not stop the stream: keep the stage's intrinsics
            f = float(k.fy) if k is not None else float(intrinsics.fy)
            cached = (f, self._clock())  # period counts from the end of the (slow) FLNet run
            self._focal[stream_id] = cached
            self._refresh.discard(stream_id)
        return cached[0]

    # per frame ---------------------------------------------------------------------------------
    def estimate(self, image_bgr: np.ndarray, persons: list[Person], intrinsics: Intrinsics,
                 stream_id: str) -> dict[str, int]:
        """Fill q (46,) rad, betas (10,), trans_m (3,) m camera frame, model_id, pose_confidence
        (visible fraction of the crop), dof_observed (all True) of every person."""
        timings: dict[str, int] = {}
        if not persons:
            return timings
        from engines.skelcf.geometry import cam_to_translation

        f = self._focal_for(image_bgr, intrinsics, stream_id, timings)
        boxes = np.stack([np.asarray(p.crop_box_xyxy if p.crop_box_xyxy is not None else p.box_xyxy,
                                     dtype=np.float64) for p in persons])
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        t0 = time.perf_counter_ns()
        crops, info = self.pre(image_bgr, boxes, f)
        sync()
        t1 = time.perf_counter_ns()
        submit = getattr(self.backend, "submit", None)
        pending = None
        if submit is None:
            q, betas, cam = self.backend.infer(crops, info)
        elif len(persons) <= self.backend.max_batch:
            pending = submit(crops, info)  # in flight while the host-side geometry is computed
        centre, side = square_boxes(boxes)
        hw = image_bgr.shape[:2]
        vis = visible_fraction(centre, side, hw)
        if submit is not None:
            from engines.backends.triton_backend import RemoteInferenceError
            try:
                q, betas, cam = (pending.result() if pending is not None
                                 else self.backend.infer(crops, info))
            except RemoteInferenceError as exc:
                self._remote_failed(exc)
                timings["infer"] = time.perf_counter_ns() - t1
                return timings  # persons keep q=None: the smoother predicts them
            if self._outage:
                self._outage = False
                log.warning("%s answers again; persons are measured again", self.backend.name)
        q, betas, cam = (t.detach().float().cpu().numpy() for t in (q, betas, cam))  # syncs
        t2 = time.perf_counter_ns()
        trans = cam_to_translation(cam.astype(np.float64), centre, side, f, hw)
        for i, p in enumerate(persons):
            p.q = q[i].astype(np.float32)
            p.betas = betas[i].astype(np.float32)
            p.trans_m = np.asarray(trans[i], dtype=np.float32)
            p.model_id = self.model_id
            p.pose_confidence = float(np.clip(vis[i], 0.0, 1.0))
            p.dof_observed = np.ones(N_DOFS, dtype=bool)
        timings["preprocess"] = t1 - t0
        timings["infer"] = t2 - t1
        timings["postprocess"] = time.perf_counter_ns() - t2
        return timings

    def _remote_failed(self, exc: Exception) -> None:
        self.remote_errors += 1
        if not self._outage:
            self._outage = True
            log.warning("%s; persons are predicted until it answers (retrying with backoff)", exc)

    def forget(self, stream_id: str, track_id: int) -> None:
        """SKEL-CF is per-frame: no per-track state to drop."""

    def close(self) -> None:
        if getattr(self, "backend", None) is not None:
            self.backend.close()
            self.backend = None
        self.flnet = None
