"""ByteTrack-style multi-person tracker: Kalman box motion vectorized over tracks, IoU association.

Boxes are `xyxy` float32 pixels outside and `xyah` (centre x, centre y, aspect w/h, height) inside
the filter, as in ByteTrack. The filter is filterpy's `KalmanFilter` math written for a stack of
tracks: state `x` (T, 8) = xyah and their rates per SECOND, covariance `P` (T, 8, 8). Real
timestamps drive `F(dt)` and `Q(dt)` (white-noise acceleration), so dropped or irregular frames are
predicted over their true interval.

Lifecycle (events go downstream so per-person state is created, reset and freed with the track):
tentative --confirm_hits--> TRACKED (BORN) --matched--> UPDATED; unmatched: coasting (still TRACKED,
box_predicted) for `carry_misses` detector runs, then LOST (event LOST); re-matched while lost:
REFOUND; lost longer than `max_lost_s` since the last match: REMOVED. Re-matching a coasting or lost
track takes IoU first (ByteTrack), then the centre distance (step 2b), so a person back after a
jump, glare or a short exit gets the old id. Where the caller passes the detections' clothing
colours (`tracking.appearance`), a confirmed track is not matched with a detection that clearly
looks like someone else (the one crossing in front, or walking out beside a person hidden behind
a post), and a new track about to be confirmed near where an unmatched track was expected,
looking alike, and the only such one, takes its id (the person came back under a new track).
Ids are assigned on
confirmation and are per tracker instance (1, 2, 3, ...). A tentative track that dies was never seen
downstream and emits nothing.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from stream.packet import TrackEvent, TrackEventKind, TrackState
from tracking.appearance import DIM as LOOK_DIM
from tracking.appearance import appearance_similarity
from tracking.config import TrackerConfig

_TENTATIVE, _TRACKED, _LOST = 0, 1, 2


# -- box formats ------------------------------------------------------------------------------------
def xyxy_to_xyah(b: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy px -> (N, 4) centre x, centre y, aspect w/h, height (float64)."""
    b = np.asarray(b, dtype=np.float64)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h, w / h, h], axis=1)


def xyah_to_xyxy(m: np.ndarray) -> np.ndarray:
    """(N, >=4) xyah -> (N, 4) xyxy float32 px."""
    h = m[:, 3]
    w = m[:, 2] * h
    return np.stack([m[:, 0] - 0.5 * w, m[:, 1] - 0.5 * h,
                     m[:, 0] + 0.5 * w, m[:, 1] + 0.5 * h], axis=1).astype(np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4), (M, 4) xyxy -> (N, M) IoU in [0, 1]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a = a[:, None, :]
    b = b[None, :, :]
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def share_inside(box: np.ndarray, container: np.ndarray) -> float:
    """Share of the (4,) xyxy `box`'s area that lies inside the (4,) xyxy `container` (0 for an
    empty box)."""
    w = max(0.0, float(min(box[2], container[2]) - max(box[0], container[0])))
    h = max(0.0, float(min(box[3], container[3]) - max(box[1], container[1])))
    area = float((box[2] - box[0]) * (box[3] - box[1]))
    return w * h / area if area > 0 else 0.0


def most_inside(box: np.ndarray, boxes: np.ndarray) -> float:
    """The largest share of the (4,) xyxy `box`'s area inside any one of the (K, 4) `boxes` (0 for
    none; the landmark engine's `covered_share` is the share inside their union)."""
    return max((share_inside(box, b) for b in np.asarray(boxes, np.float32).reshape(-1, 4)), default=0.0)


FIRST_FRAME_WRAP_IOU = 0.35
"""A box wraps another only when of similar size (IoU over this): a far person's box inside a
near one's is two people."""


def nested(a: np.ndarray, b: np.ndarray, min_share: float, min_iou: float) -> bool:
    """Two (4,) xyxy boxes of similar size (IoU over `min_iou`: a far person's box inside a near
    one's overlaps it far less) one of which lies at least `min_share` inside the other."""
    iou = iou_matrix(np.asarray(a, np.float64)[None], np.asarray(b, np.float64)[None])[0, 0]
    return bool(iou > min_iou and max(share_inside(a, b), share_inside(b, a)) >= min_share)


def wraps_another(boxes: np.ndarray, min_share: float, min_iou: float) -> np.ndarray:
    """(N,) bool: the (N, 4) xyxy box holds at least `min_share` of a smaller one of similar size
    (`nested`): a box across two people one of whom is found on their own, or a body read once
    more with its arms."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.array([any(area[j] < area[i] and nested(b[i], b[j], min_share, min_iou) for j in range(len(b)))
                     for i in range(len(b))], bool)


REFIND_WRAP_IOU = 0.1
"""A box wraps a matched one for re-finding only when they overlap over this IoU."""


def wraps_any(boxes: np.ndarray, inner: np.ndarray, min_share: float, min_iou: float) -> np.ndarray:
    """(N,) bool: the (N, 4) xyxy box holds at least `min_share` of one of the (K, 4) `inner`
    boxes and overlaps it by more than `min_iou` IoU."""
    a = np.asarray(boxes, np.float64).reshape(-1, 4)
    b = np.asarray(inner, np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros(len(a), bool)
    share = np.array([[share_inside(k, box) for k in b] for box in a])
    return ((share >= min_share) & (iou_matrix(a, b) > min_iou)).any(1)


def body_sizes(boxes: np.ndarray, longer_side: bool) -> np.ndarray:
    """(N, 4) xyxy -> (N,) a person's size in px: the box's height, or its longer side (the width
    of someone lying, in a flip, or crouched with arms out; the height of anyone upright)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = b[:, 3] - b[:, 1]
    if longer_side:
        size = np.maximum(size, b[:, 2] - b[:, 0])
    return np.maximum(size, 1e-6)


def proximity_matrix(a: np.ndarray, b: np.ndarray, max_dist_rel: float, max_size_ratio: float,
                     longer_side: bool = False) -> np.ndarray:
    """(N, 4), (M, 4) xyxy -> (N, M) similarity in [0, 1): 1 - centre distance / (max_dist_rel x
    the larger size), 0 beyond that distance or where the sizes differ by more than the ratio.
    Size: the box height, or its longer side (`body_sizes`)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ca = 0.5 * (a[:, None, :2] + a[:, None, 2:])
    cb = 0.5 * (b[None, :, :2] + b[None, :, 2:])
    ha = body_sizes(a, longer_side)[:, None]
    hb = body_sizes(b, longer_side)[None, :]
    d = np.linalg.norm(ca - cb, axis=-1) / (max_dist_rel * np.maximum(ha, hb))
    ratio = np.maximum(ha, hb) / np.minimum(ha, hb)
    return np.where((d < 1.0) & (ratio <= max_size_ratio), 1.0 - d, 0.0)


def linear_assignment(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one matching maximizing similarity; pairs below `min_similarity` are dropped.
    Returns (row indices, col indices)."""
    if similarity.size == 0:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    # A pair under the gate costs what leaving its row unmatched costs (1: nothing gained), so
    # the solver maximises the matched similarity and may leave a row or a column unmatched. A
    # huge cost there instead made it, filling every row of a square matrix, avoid such pairs
    # first: two poor matches won over one good one (a person's detection went to a stale lost
    # track and his track took a box across him and his neighbour: Demo_MultiPerson cam02
    # re-encoded, frame 51). Not lapjv's cost_limit (each match worth its margin over the gate):
    # on vtest.avi that leaves small walkers unmatched, IDF1 0.89 -> 0.77 (BENCHMARKS.md).
    cost = np.where(similarity >= min_similarity, 1.0 - similarity, 1.0)
    rows, cols = linear_sum_assignment(cost)
    keep = similarity[rows, cols] >= min_similarity
    return rows[keep], cols[keep]


# -- Kalman filter over a stack of tracks -------------------------------------------------------------
class BoxKalman:
    """Constant-velocity Kalman filter on xyah, vectorized over tracks; velocities per second.

    Noise scales with the box height (ByteTrack's trick), so near and far people behave alike."""

    _H = np.hstack([np.eye(4), np.zeros((4, 4))])

    def __init__(self, cfg: TrackerConfig):
        self.cfg = cfg

    def _accel_q(self, h: np.ndarray) -> np.ndarray:
        """(T,) heights -> (T, 4) white-noise acceleration spectral densities per coordinate."""
        q_rel = (self.cfg.accel_std_rel_per_s2 * h) ** 2
        return np.stack([q_rel, q_rel, np.full_like(h, self.cfg.aspect_accel_std_per_s2 ** 2), q_rel], 1)

    def _meas_r(self, h: np.ndarray) -> np.ndarray:
        """(T,) heights -> (T, 4) measurement variances of xyah."""
        r_rel = (self.cfg.meas_std_rel * h) ** 2
        return np.stack([r_rel, r_rel, np.full_like(h, self.cfg.aspect_meas_std ** 2), r_rel], 1)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) xyah measurements -> x (N, 8), P (N, 8, 8)."""
        n = len(z)
        x = np.hstack([z, np.zeros((n, 4))])                        # x = [z, 0]
        pos_var = 4.0 * self._meas_r(z[:, 3])                       # twice the measurement std
        vel_std = self.cfg.init_vel_std_rel_per_s * z[:, 3]
        vel_var = np.stack([vel_std ** 2, vel_std ** 2, np.full(n, 0.1 ** 2), vel_std ** 2], 1)
        P = np.zeros((n, 8, 8))
        idx = np.arange(8)
        P[:, idx, idx] = np.hstack([pos_var, vel_var])
        return x, P

    def F(self, dt: float) -> np.ndarray:
        F = np.eye(8)
        F[range(4), range(4, 8)] = dt                               # position += dt * velocity
        return F

    def Q(self, dt: float, h: np.ndarray) -> np.ndarray:
        """(T, 8, 8) discrete white-noise-acceleration process noise over `dt` seconds."""
        q = self._accel_q(h)                                        # (T, 4)
        Qm = np.zeros((len(h), 8, 8))
        i = np.arange(4)
        Qm[:, i, i] = q * dt ** 3 / 3.0
        Qm[:, i, i + 4] = Qm[:, i + 4, i] = q * dt ** 2 / 2.0
        Qm[:, i + 4, i + 4] = q * dt
        return Qm

    def _bound_height_rate(self, x: np.ndarray) -> np.ndarray:
        """Clip each track's height rate to max_height_rate_per_s x its height."""
        limit = self.cfg.max_height_rate_per_s * np.maximum(x[:, 3], 1.0)
        x[:, 7] = np.clip(x[:, 7], -limit, limit)
        return x

    def predict(self, x: np.ndarray, P: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance every track by `dt` seconds."""
        if len(x) == 0 or dt <= 0.0:
            return x, P
        x = self._bound_height_rate(x.copy())
        F = self.F(dt)
        h = np.maximum(x[:, 3], 1.0)
        x = x @ F.T                                                 # x = F x
        P = F @ P @ F.T + self.Q(dt, h)                             # P = F P F' + Q
        return x, P

    def update(self, x: np.ndarray, P: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct tracks with their matched (T, 4) xyah measurements."""
        if len(x) == 0:
            return x, P
        R = np.zeros((len(z), 4, 4))
        i = np.arange(4)
        R[:, i, i] = self._meas_r(np.maximum(x[:, 3], 1.0))
        y = z - x[:, :4]                                            # y = z - H x
        PHt = P[:, :, :4]                                           # P H'
        S = P[:, :4, :4] + R                                        # S = H P H' + R
        # K = P H' S^-1, via a solve with the symmetric positive definite S (never inv(S))
        K = np.linalg.solve(S, PHt.transpose(0, 2, 1)).transpose(0, 2, 1)
        x = x + np.einsum("tij,tj->ti", K, y)                       # x = x + K y
        P = P - K @ S @ K.transpose(0, 2, 1)                        # P = P - K S K'
        P = 0.5 * (P + P.transpose(0, 2, 1))                        # keep it symmetric
        return x, P


# -- tracker --------------------------------------------------------------------------------------
@dataclass(slots=True)
class TrackFrame:
    """What one tracker step outputs: the confirmed tracks to send downstream, and the events."""
    track_ids: np.ndarray     # (K,) int64
    boxes_xyxy: np.ndarray    # (K, 4) float32 px
    scores: np.ndarray        # (K,) float32 in [0, 1]
    predicted: np.ndarray     # (K,) bool: no detection matched this frame
    events: list[TrackEvent]
    hits: np.ndarray          # (K,) int: detector runs that matched each track so far

    @property
    def states(self) -> list[TrackState]:
        return [TrackState.TRACKED] * len(self.track_ids)


class ByteTracker:
    """One stream's tracker. `update` on frames with detector output, `predict` on frames without."""

    PER_TRACK = ("x", "P", "ids", "state", "hits", "misses", "score", "last_match_s", "look")
    """The arrays with one row per track (kept, dropped and copied together)."""

    def __init__(self, cfg: TrackerConfig | None = None, first_id: int = 1):
        self.cfg = cfg or TrackerConfig()
        self.kf = BoxKalman(self.cfg)
        self._next_id = first_id
        self._t_s: float | None = None
        self._frames = 0
        self.x = np.zeros((0, 8))
        self.P = np.zeros((0, 8, 8))
        self.ids = np.zeros(0, np.int64)          # 0 until confirmed
        self.state = np.zeros(0, np.int8)
        self.hits = np.zeros(0, np.int32)
        self.misses = np.zeros(0, np.int32)       # detector runs since the last match
        self.score = np.zeros(0, np.float32)
        self.last_match_s = np.zeros(0)
        self.look = np.zeros((0, LOOK_DIM), np.float32)   # clothing colours; a zero row: unknown

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def next_id(self) -> int:
        """The id the next confirmed track gets (to continue numbering in a new tracker)."""
        return self._next_id

    @property
    def live_ids(self) -> list[int]:
        """Ids of confirmed tracks (tracked or lost) still held."""
        return [int(i) for i in self.ids[self.state != _TENTATIVE]]

    # -- time -------------------------------------------------------------------------------------
    def _advance(self, t_s: float) -> None:
        t_s = float(t_s)
        if self._t_s is not None and t_s < self._t_s:
            # the clock went back (a looping file restarts its media time, a camera re-syncs):
            # no motion, and the track ages stay as they were relative to the new clock
            self.last_match_s += t_s - self._t_s
            self._t_s = t_s
            return
        dt = 0.0 if self._t_s is None else min(t_s - self._t_s, self.cfg.max_dt_s)
        self._t_s = t_s
        self.x, self.P = self.kf.predict(self.x, self.P, dt)

    def _expire(self, events: list[TrackEvent]) -> None:
        """Remove confirmed tracks unmatched for longer than max_lost_s."""
        old = (self._t_s - self.last_match_s) > self.cfg.max_lost_s
        old &= self.state != _TENTATIVE
        for tid in self.ids[old]:
            events.append(TrackEvent(int(tid), TrackEventKind.REMOVED))
        if old.any():
            self._keep(~old)

    def _keep(self, mask: np.ndarray) -> None:
        for name in self.PER_TRACK:
            setattr(self, name, getattr(self, name)[mask])

    # -- public -----------------------------------------------------------------------------------
    def predict(self, t_s: float) -> TrackFrame:
        """A frame the detector skipped: move every track to `t_s` (seconds), count no miss."""
        events: list[TrackEvent] = []
        self._advance(t_s)
        self._expire(events)
        self._frames += 1
        # no detection was compared with these boxes: they come from the motion model
        return self._output(events, np.ones(len(self.ids), bool))

    def update(self, boxes_xyxy: np.ndarray, scores: np.ndarray, t_s: float,
               looks: np.ndarray | None = None) -> TrackFrame:
        """Associate one frame's detections (N, 4) xyxy px with scores (N,) at time `t_s` seconds;
        `looks` (N, appearance.DIM), their clothing colours (`appearance_features`), optional.

        Non-finite or empty boxes are dropped here so a bad detector cannot corrupt the filter."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError(f"tracker got {len(boxes)} boxes but {len(scores)} scores; pass one score per box")
        looks = (np.zeros((len(boxes), LOOK_DIM), np.float32) if looks is None
                 else np.asarray(looks, np.float32).reshape(len(boxes), LOOK_DIM))
        ok = np.isfinite(boxes).all(1) & np.isfinite(scores)
        boxes, scores, looks = boxes[ok], scores[ok], looks[ok]
        ok = (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0)
        boxes, scores, looks = boxes[ok], scores[ok], looks[ok]
        scores = np.clip(scores, 0.0, 1.0)
        cfg = self.cfg
        events: list[TrackEvent] = []
        first_frame = self._frames == 0
        self._frames += 1
        self._advance(t_s)

        # 1. split detections by score
        high = np.flatnonzero(scores >= cfg.high_score)
        low = np.flatnonzero((scores >= cfg.low_score) & (scores < cfg.high_score))
        track_boxes = xyah_to_xyxy(self.x) if len(self.x) else np.zeros((0, 4), np.float32)
        matched_track = np.full(len(self.ids), -1, np.intp)     # track -> detection index
        allowed = self._looks_allowed(looks)                    # (T, N) False: clearly someone else

        # 2. first association: high detections with confirmed tracks (tracked, coasting and lost;
        #    with lost_after_tracked the lost ones get what the others left: DeepSORT's cascade)
        pool = np.flatnonzero(self.state != _TENTATIVE)
        used = np.zeros(len(scores), bool)
        tiers = ([pool[self.state[pool] == _TRACKED], pool[self.state[pool] == _LOST]]
                 if cfg.lost_after_tracked else [pool])
        for tier in tiers:
            left = high[~used[high]]
            sim = iou_matrix(track_boxes[tier], boxes[left]) * allowed[np.ix_(tier, left)]
            if cfg.fuse_score:
                sim = sim * scores[left][None, :]
            r, c = linear_assignment(sim, cfg.match_iou_high)
            matched_track[tier[r]] = left[c]
            used[left[c]] = True
        high_left = high[~used[high]]

        # 2b. re-find: high detections left with unmatched confirmed tracks, by centre distance
        #     (a jump, glare or blur can move a box off its prediction too far for any IoU)
        #     no further than a person can have gone since the track's last match, and not a
        #     box around someone matched just now (that person again)
        reach = cfg.refind_base_dist_rel + cfg.refind_dist_rel_per_s * (self._t_s - self.last_match_s)
        wrap = np.zeros(len(high_left), bool)
        if cfg.refind_skip_wrap_share > 0:
            wrap = wraps_any(boxes[high_left], boxes[matched_track[matched_track >= 0]],
                             cfg.refind_skip_wrap_share, REFIND_WRAP_IOU)
        high_left = np.sort(np.concatenate([
            self._match_by_distance(pool, high_left[~wrap], track_boxes, boxes, matched_track, used,
                                    cfg.refind_max_dist_rel, allowed, reach),
            high_left[wrap]]))

        # 3. second association: low detections with still-unmatched TRACKED tracks
        pool2 = pool[(matched_track[pool] < 0) & (self.state[pool] == _TRACKED)]
        sim = iou_matrix(track_boxes[pool2], boxes[low]) * allowed[np.ix_(pool2, low)]
        r, c = linear_assignment(sim, cfg.match_iou_low)
        matched_track[pool2[r]] = low[c]

        # 4. tentative tracks with the remaining high detections
        tent = np.flatnonzero(self.state == _TENTATIVE)
        sim = iou_matrix(track_boxes[tent], boxes[high_left])
        if cfg.fuse_score:
            sim = sim * scores[high_left][None, :]
        r, c = linear_assignment(sim, cfg.match_iou_tentative)
        matched_track[tent[r]] = high_left[c]
        used[high_left[c]] = True
        high_left = high_left[~used[high_left]]

        # 4b. ... and by centre distance: a tentative track has no velocity yet, so a small person
        #     walking across moves off their first box too far for the IoU between two runs
        high_left = self._match_by_distance(tent, high_left, track_boxes, boxes, matched_track, used,
                                            cfg.confirm_max_dist_rel, allowed)

        # 5. Kalman update of matched tracks, lifecycle of everyone
        m = np.flatnonzero(matched_track >= 0)
        det = matched_track[m]
        self.x[m], self.P[m] = self.kf.update(self.x[m], self.P[m], xyxy_to_xyah(boxes[det]))
        was = self.state[m].copy()
        self.hits[m] += 1
        self.misses[m] = 0
        self.score[m] = scores[det]
        self.last_match_s[m] = self._t_s
        self._learn_looks(m, det, boxes, scores, looks)
        refound = m[was == _LOST]
        self.state[refound] = _TRACKED
        confirm = m[(was == _TENTATIVE) & (self.hits[m] >= cfg.confirm_hits)]
        ids = self.ids
        events += [TrackEvent(t, TrackEventKind.UPDATED) for t in ids[m[was == _TRACKED]].tolist()]
        events += [TrackEvent(t, TrackEventKind.REFOUND) for t in ids[refound].tolist()]
        absorbed = np.zeros(len(self.ids), bool)
        for ti in confirm.tolist():
            if not self._reidentify(ti, matched_track, absorbed, events):
                self._confirm(ti, events)
        if absorbed.any():
            self._keep(~absorbed)
            matched_track = matched_track[~absorbed]

        unmatched = matched_track < 0
        self.misses[unmatched & (self.state == _TENTATIVE)] += 1
        drop_tentative = unmatched & (self.state == _TENTATIVE) & (self.misses > cfg.tentative_max_misses)
        coasting = unmatched & (self.state == _TRACKED)
        self.misses[coasting] += 1
        # size does not extrapolate while unseen (ByteTrack zeroes vh too): partial occlusion
        # before a miss shrinks boxes, and a shrinking prediction can no longer be re-found
        self.x[unmatched & (self.state != _TENTATIVE), 6:8] = 0.0
        self.score[coasting] *= cfg.score_decay_per_miss
        to_lost = coasting & (self.misses > cfg.carry_misses)
        self.state[to_lost] = _LOST
        events += [TrackEvent(t, TrackEventKind.LOST) for t in self.ids[to_lost].tolist()]
        if drop_tentative.any():
            self._keep(~drop_tentative)
            matched_track = matched_track[~drop_tentative]
        self._remove_duplicates(matched_track >= 0, events)
        self._expire(events)

        # 6. new tracks from confident unmatched detections
        new = high_left[scores[high_left] >= cfg.new_track_score]
        room = cfg.max_tracks - len(self.ids)
        if len(new) > room:
            warnings.warn(f"tracker holds {len(self.ids)} tracks (max_tracks={cfg.max_tracks}); "
                          f"{len(new) - max(room, 0)} detections start no track; raise tracker.max_tracks",
                          RuntimeWarning, stacklevel=2)
            new = new[np.argsort(-scores[new])][:max(room, 0)]
        if len(new):
            confirm = np.full(len(new), first_frame)
            if first_frame and cfg.first_frame_wrap_share > 0:
                confirm &= ~wraps_another(boxes[new], cfg.first_frame_wrap_share, FIRST_FRAME_WRAP_IOU)
            self._birth(boxes[new], scores[new], looks[new], confirm, events)
        predicted = self.misses > 0
        return self._output(events, predicted)

    def finish(self) -> list[TrackEvent]:
        """End of stream: REMOVED for every confirmed track; the tracker is empty afterwards."""
        events = [TrackEvent(int(t), TrackEventKind.REMOVED) for t in self.ids[self.state != _TENTATIVE]]
        self._keep(np.zeros(len(self.ids), bool))
        self._t_s = None
        self._frames = 0
        return events

    def copy(self) -> "ByteTracker":
        """An independent snapshot (arrays copied): a background detection is applied to the
        tracker as it was at that detection's frame, then replayed forward."""
        twin = ByteTracker.__new__(ByteTracker)
        twin.cfg, twin.kf = self.cfg, self.kf
        twin._next_id, twin._t_s, twin._frames = self._next_id, self._t_s, self._frames
        for name in self.PER_TRACK:
            setattr(twin, name, getattr(self, name).copy())
        return twin

    def expected_boxes(self) -> np.ndarray:
        """(K, 4) float32 xyxy px where every held track (tentative, tracked, lost) is now
        expected: a detector that can look closer there does."""
        return xyah_to_xyxy(self.x) if len(self.x) else np.zeros((0, 4), np.float32)

    def drop_ids(self, track_ids: set[int]) -> None:
        """Forget confirmed tracks whose REMOVED was already announced (no new event)."""
        gone = np.isin(self.ids, list(track_ids)) & (self.state != _TENTATIVE)
        if gone.any():
            self._keep(~gone)

    # -- helpers ----------------------------------------------------------------------------------
    def _match_by_distance(self, pool: np.ndarray, dets: np.ndarray, track_boxes: np.ndarray,
                           boxes: np.ndarray, matched_track: np.ndarray, used: np.ndarray,
                           max_dist_rel: float, allowed: np.ndarray,
                           reach: np.ndarray | None = None) -> np.ndarray:
        """Match the still-unmatched tracks of `pool` with detections `dets` by centre distance
        (within max_dist_rel box heights, and within `reach[track]` where given; similar heights;
        0 = off; pairs not `allowed` never), writing matched_track and used in place. Returns the
        detections left."""
        left = pool[matched_track[pool] < 0]
        if max_dist_rel <= 0 or not len(left) or not len(dets):
            return dets
        sim = proximity_matrix(track_boxes[left], boxes[dets], max_dist_rel, self.cfg.refind_max_height_ratio,
                               self.cfg.size_by_longer_side)
        sim = sim * allowed[np.ix_(left, dets)]
        if reach is not None:              # distance in body sizes = (1 - sim) x max_dist_rel
            sim = np.where((1.0 - sim) * max_dist_rel <= reach[left][:, None], sim, 0.0)
        r, c = linear_assignment(sim, 1e-6)
        matched_track[left[r]] = dets[c]
        used[dets[c]] = True
        return dets[~used[dets]]

    def _looks_allowed(self, looks: np.ndarray) -> np.ndarray:
        """(T, N) bool: may track t be matched with detection n, by clothing colour? A confirmed
        track may not where the colours clearly differ (similarity under
        appearance_min_similarity; an unknown look never vetoes, and a tentative track has seen
        one detection only)."""
        allowed = np.ones((len(self.ids), len(looks)), bool)
        thr = self.cfg.appearance_min_similarity
        held = np.flatnonzero(self.state != _TENTATIVE)
        if thr <= 0 or not len(held) or not len(looks):
            return allowed
        allowed[held] = appearance_similarity(self.look[held], looks) >= thr
        return allowed

    def _learn_looks(self, m: np.ndarray, det: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                     looks: np.ndarray) -> None:
        """Blend the looks of matched high detections into their tracks' (a running mean, rate
        appearance_learning_rate); not where the box overlaps another detection (it shows two
        people then), nor an unknown look. A track's first known look is taken whole."""
        if not self.cfg.uses_appearance or not len(m):
            return
        overlap = iou_matrix(boxes[det], boxes)
        overlap[np.arange(len(det)), det] = 0.0
        ok = (scores[det] >= self.cfg.high_score) & (overlap.max(1, initial=0.0) < self.cfg.appearance_max_overlap_iou)
        ok &= looks[det].sum(1) > 0
        t, d = m[ok], det[ok]
        rate = np.where(self.look[t].sum(1) > 0, self.cfg.appearance_learning_rate, 1.0)[:, None]
        self.look[t] = (1.0 - rate) * self.look[t] + rate * looks[d]

    def _remove_duplicates(self, matched: np.ndarray, events: list[TrackEvent]) -> None:
        """ByteTrack's remove_duplicate_stracks: an unmatched confirmed track lying on a matched
        one (IoU > duplicate_iou) is the same person twice; keep the one with more hits. Where that
        is the unmatched one and the other a newcomer confirmed in this run, the old track takes
        over its match (box, state and clothing colours) and the old id lives on: it went unmatched
        because its prediction or its learnt colours were stale (a person who took off a jacket is
        vetoed by colour), and would otherwise stay so while a new track on the person was
        dropped run after run. Two tracks both long followed keep ByteTrack's rule (one person
        in front of another)."""
        if self.cfg.duplicate_iou >= 1.0:
            return
        conf = self.state != _TENTATIVE
        a = np.flatnonzero(conf & matched)
        b = np.flatnonzero(conf & ~matched)
        if not len(a) or not len(b):
            return
        boxes = xyah_to_xyxy(self.x)
        iou = iou_matrix(boxes[a], boxes[b])
        drop = np.zeros(len(self.ids), bool)
        for i, j in zip(*np.nonzero(iou > self.cfg.duplicate_iou)):
            ta, tb = a[i], b[j]
            if drop[ta] or drop[tb]:
                continue
            if self.hits[ta] >= self.hits[tb]:
                drop[tb] = True
                continue
            drop[ta] = True
            if self.hits[ta] > self.cfg.confirm_hits:
                continue      # two people long followed, one in front of the other: as ByteTrack
            if self.state[tb] == _LOST:
                events.append(TrackEvent(int(self.ids[tb]), TrackEventKind.REFOUND))
            for name in ("x", "P", "misses", "score", "last_match_s", "look"):
                getattr(self, name)[tb] = getattr(self, name)[ta]
            self.state[tb] = _TRACKED
            self.hits[tb] += 1
        if drop.any():
            events += [TrackEvent(int(t), TrackEventKind.REMOVED) for t in self.ids[drop].tolist()]
            self._keep(~drop)

    def _reidentify(self, ti: int, matched_track: np.ndarray, absorbed: np.ndarray,
                    events: list[TrackEvent]) -> bool:
        """A track about to be confirmed takes the id of an unmatched confirmed track (lost, or
        coasting since its last detector run) that looks alike (reid_min_similarity), is within
        reid_max_dist_rel body heights of where it was expected, of a similar height, and is the
        only such track: the person came back under a new track (a detector gap too long, or a
        box too far off, for re-finding). The old row is absorbed (no REMOVED: the id lives on).
        Returns whether it did."""
        cfg = self.cfg
        if cfg.reid_max_dist_rel <= 0 or not self.look[ti].any():
            return False
        cand = np.flatnonzero((self.state != _TENTATIVE) & (matched_track < 0) & (self.misses > 0) & ~absorbed
                              & (self.look.sum(1) > 0))
        if not len(cand):
            return False
        boxes = xyah_to_xyxy(self.x)
        near = proximity_matrix(boxes[ti:ti + 1], boxes[cand], cfg.reid_max_dist_rel, cfg.refind_max_height_ratio,
                                cfg.size_by_longer_side)[0] > 0
        alike = appearance_similarity(self.look[ti:ti + 1], self.look[cand])[0] >= cfg.reid_min_similarity
        hit = cand[near & alike]
        if len(hit) != 1:
            return False
        old = int(hit[0])
        self.state[ti] = _TRACKED
        self.ids[ti] = self.ids[old]
        self.hits[ti] += self.hits[old]
        self.look[ti] = 0.5 * (self.look[ti] + self.look[old])
        absorbed[old] = True
        events.append(TrackEvent(int(self.ids[ti]), TrackEventKind.REFOUND))
        return True

    def _confirm(self, ti: int, events: list[TrackEvent]) -> None:
        self.state[ti] = _TRACKED
        self.ids[ti] = self._next_id
        self._next_id += 1
        events.append(TrackEvent(int(self.ids[ti]), TrackEventKind.BORN))

    def _birth(self, boxes: np.ndarray, scores: np.ndarray, looks: np.ndarray, confirm: np.ndarray,
               events: list[TrackEvent]) -> None:
        """New tracks, tentative but where `confirm` (N,) bool says (or confirm_hits <= 1)."""
        x, P = self.kf.initiate(xyxy_to_xyah(boxes))
        n = len(boxes)
        start = len(self.ids)
        self.x = np.vstack([self.x, x])
        self.P = np.concatenate([self.P, P])
        self.ids = np.concatenate([self.ids, np.zeros(n, np.int64)])
        self.state = np.concatenate([self.state, np.full(n, _TENTATIVE, np.int8)])
        self.hits = np.concatenate([self.hits, np.ones(n, np.int32)])
        self.misses = np.concatenate([self.misses, np.zeros(n, np.int32)])
        self.score = np.concatenate([self.score, scores.astype(np.float32)])
        self.last_match_s = np.concatenate([self.last_match_s, np.full(n, self._t_s)])
        self.look = np.concatenate([self.look, looks.astype(np.float32)])
        for k in range(n):
            # ByteTrack activates the first frame's detections at once (nothing to confirm against)
            if confirm[k] or self.cfg.confirm_hits <= 1:
                self._confirm(start + k, events)

    def _output(self, events: list[TrackEvent], predicted: np.ndarray) -> TrackFrame:
        out = self.state == _TRACKED
        return TrackFrame(track_ids=self.ids[out].copy(), boxes_xyxy=xyah_to_xyxy(self.x[out]),
                          scores=self.score[out].copy(), predicted=predicted[out].copy(), events=events,
                          hits=self.hits[out].copy())
