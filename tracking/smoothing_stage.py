"""The `smooth` stage: joint-limit-aware Kalman smoothing of every tracked person's pose.

Consumes the tracker's events and the pose engine's raw q / betas / trans_m and writes back
smoothed q, q_vel, limit_active, q_predicted, predicted, betas, trans_m, trans_vel_mps,
root_orient_wxyz. Per-person state lives in slots of vectorized filter banks, keyed by
(stream_id, track_id): BORN/UPDATED persons are filtered, REFOUND restarts the track, REMOVED and
`flush(stream_id)` free it.

Honest flags: a DoF that took no measurement this frame (unobserved, or skipped as an outlier) is
a prediction and says so in `q_predicted`; a person none of whose DoFs took one is `predicted`.
A person without a pose, or with a pose that has nothing observed, is not a measurement: it is
predicted for at most `max_coast_s` after the last accepted measurement, then passed on without
pose until a real measurement starts the track again.

Time: a file's presentation time (`media_pts_s`) when there is one, else `capture_ns`, because a
file decodes faster than real time and its capture stamps would compress the motion.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from engines.skel.dofs import DOF_BOUNDED, DOF_LOWER, DOF_UPPER, NUM_BETAS, NUM_DOFS
from stream.config import PipelineConfig
from stream.packet import Packet, Person, TrackEventKind
from stream.stage import Stage
from tracking.joint_filter import JointFilterBank
from tracking.rts import FixedLagHistory
from tracking.shape_root import BetasBank, root_quaternions, translation_channels
from tracking.smoothing_config import SmoothingConfig

Key = tuple[str, int]


def has_measurement(p: Person) -> bool:
    """A pose with at least one observed DoF. The landmark engine sends its last pose with
    nothing observed when it finds nobody in the crop: that is no measurement."""
    # (count_nonzero: np.any's reduction machinery cost ~2 us a person, ten times a frame)
    return p.q is not None and (p.dof_observed is None or np.count_nonzero(p.dof_observed) > 0)


TRANS = slice(NUM_DOFS, NUM_DOFS + 3)
"""Channels of the pose bank that hold the root translation (after the 46 DoFs)."""
_NO_TRANS = np.full(3, np.nan)


def make_pose_bank(cfg: SmoothingConfig, capacity: int = 16) -> JointFilterBank:
    """One bank, 49 channels: the 46 DoFs (limits from engines/skel/dofs.py, pelvis wraps on the
    circle) and the root translation's own filter (tracking/shape_root.py)."""
    tr = translation_channels(cfg)
    q = np.concatenate([cfg.joint_process_noise(), tr["q"]])
    return JointFilterBank(
        q=q,
        meas_std=np.concatenate([cfg.joint_meas_noise(), tr["meas_std"]]),
        lower=np.concatenate([DOF_LOWER, tr["lower"]]),
        upper=np.concatenate([DOF_UPPER, tr["upper"]]),
        wrap=np.concatenate([~DOF_BOUNDED, tr["wrap"]]),
        outlier_rate=cfg.outlier_rate,
        outlier_range=np.concatenate([np.full(NUM_DOFS, cfg.outlier_range_rad), tr["outlier_range"]]),
        gate_max_frames=cfg.gate_max_frames, limit_margin=cfg.limit_margin_rad,
        unseen_std=np.concatenate([np.full(NUM_DOFS, 0.5), tr["unseen_std"]]),
        coast_tau_s=cfg.coast_velocity_time_constant_s,
        q_mult=cfg.model_q_multipliers(), switch_rate_hz=cfg.maneuver_switch_rate_hz,
        agile_prior_min=cfg.effective_maneuver_prior_min, guess_std=cfg.unobserved_guess_std_rad,
        lookback_frames=cfg.effective_lookback_frames, lookback_gate_sigma=cfg.lookback_gate_sigma,
        coast_periodic=cfg.periodic_coast, follow_pace=cfg.periodic_pace, capacity=capacity,
        outlier_memory_s=cfg.outlier_rate_memory_s,
        outlier_prior_values=cfg.effective_outlier_prior_values, noise_memory_s=cfg.meas_noise_memory_s,
        noise_channels=NUM_DOFS, noise_margin=cfg.effective_noise_margin,
        tuned_frame_s=1.0 / cfg.tuned_fps if cfg.tuned_fps > 0.0 else 0.0)


def warm_up_kernels(cfg: SmoothingConfig) -> None:
    """Compile the filters' numba kernels (or load them from numba's on-disk cache) on scratch
    state, so the first frames of a stream do not wait ~2 s for the compiler."""
    bank, betas = make_pose_bank(cfg, capacity=1), BetasBank(1.0, 1.0, capacity=1)
    slot, t, one = np.zeros(1, dtype=np.int64), np.zeros(1), np.ones(1)
    z = np.zeros((1, bank.channels))
    bank.initialize(slot, t, z, one, np.ones_like(z, dtype=bool))
    bank.step(slot, t + 0.03, z, one, np.ones_like(z, dtype=bool))
    betas.update(slot, t, np.zeros((1, NUM_BETAS)), one)
    root_quaternions(bank.state(slot)[0])


@dataclass(slots=True)
class _Track:
    slot: int
    has_trans: bool = False
    history: FixedLagHistory | None = None


class PoseSmoother:
    """All per-person filter state of one stage (any number of streams); no process plumbing."""

    def __init__(self, cfg: SmoothingConfig, capacity: int = 16):
        self.cfg = cfg
        self.bank = make_pose_bank(cfg, capacity)
        self.betas = BetasBank(cfg.betas_time_constant_s, cfg.betas_huber_sigma, capacity)
        self.tracks: dict[Key, _Track] = {}
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self._capacity = capacity
        self._all_seen = np.ones(NUM_DOFS, dtype=bool)

    # -- slots --------------------------------------------------------------------------------
    def _alloc(self, key: Key) -> _Track:
        if not self._free:
            new_cap = 2 * self._capacity
            self.bank.grow(new_cap)
            self.betas.grow(new_cap)
            self._free = list(range(new_cap - 1, self._capacity - 1, -1))
            self._capacity = new_cap
        lag = self.cfg.fixed_lag_frames
        track = _Track(self._free.pop(), history=FixedLagHistory(lag) if lag else None)
        self.betas.reset(np.array([track.slot]))
        self.tracks[key] = track
        return track

    def forget(self, key: Key) -> None:
        """Free a track's slot (REMOVED, REFOUND, end of stream)."""
        track = self.tracks.pop(key, None)
        if track is not None:
            self._free.append(track.slot)

    def forget_stream(self, stream_id: str) -> None:
        for key in [k for k in self.tracks if k[0] == stream_id]:
            self.forget(key)

    # -- one frame ----------------------------------------------------------------------------
    def confidence(self, pose_confidence: np.ndarray, score: np.ndarray) -> np.ndarray:
        """Trust in measurements in [floor, 1]: engine confidence x detection score (saturating)."""
        det = np.minimum(score / self.cfg.score_full_trust, 1.0)
        return np.minimum(np.maximum(pose_confidence * det, self.cfg.confidence_floor), 1.0)

    def smooth(self, stream_id: str, t_s: float, persons: list[Person]) -> None:
        """Filter one frame's persons in place (events already applied)."""
        new: list[tuple[Person, _Track]] = []
        old: list[tuple[Person, _Track]] = []
        coast: list[tuple[Person, _Track]] = []
        t_meas = self.bank.t_meas_s
        for p in persons:
            key = (stream_id, p.track_id)
            track = self.tracks.get(key)
            # too long unseen (or the clock jumped back: a looped file): the state is stale
            stale = track is not None and abs(t_s - t_meas[track.slot]) > self.cfg.max_coast_s
            if has_measurement(p):
                if stale:
                    self.forget(key)
                    track = None
                if track is None:
                    new.append((p, self._alloc(key)))
                else:
                    old.append((p, track))
                continue
            # no pose, or one with nothing observed (the engine's held pose): not a measurement
            p.trans_m = p.betas = None
            if track is not None and not stale:
                coast.append((p, track))
            else:                            # nothing to offer: passed through without pose
                p.q = p.q_vel = p.limit_active = p.q_predicted = None
                p.predicted = False
        rows = new + old + coast  # coasting rows are a step with nothing observed: one bank call
        if not rows:
            return
        n_measured = len(new) + len(old)
        slots, z, observed, conf = self._measurements(rows, n_measured)
        t = np.full(len(slots), t_s)
        k = len(new)
        measured = observed & np.isfinite(z)     # what reached the filter as a measurement
        if k:
            self.bank.initialize(slots[:k], t[:k], z[:k], conf[:k], observed[:k])
        if k < len(slots):
            measured[k:] = self.bank.step(slots[k:], t[k:], z[k:], conf[k:], observed[k:])
        with_b = [i for i, (p, _) in enumerate(rows[:n_measured]) if p.betas is not None]
        if with_b:
            idx = np.array(with_b)
            b = np.array([rows[i][0].betas for i in with_b], dtype=np.float64)
            self.betas.update(slots[idx], t[idx], b, conf[idx])
        self._write(t_s, rows, slots, measured[:, :NUM_DOFS])

    def _measurements(self, batch: list[tuple[Person, _Track]], n_measured: int):
        """slots (n,), z (n, 49) (q then trans_m, NaN = none), observed (n, 49), confidence (n,).
        The first `n_measured` rows carry a pose; the rest coast (a row with nothing observed).
        Built from per-field lists so numpy converts each field once, not a row at a time."""
        n = len(batch)
        slots = np.fromiter((track.slot for _, track in batch), dtype=np.int64, count=n)
        z = np.full((n, NUM_DOFS + 3), np.nan)
        observed = np.zeros((n, NUM_DOFS + 3), dtype=bool)
        conf = np.ones(n)
        if n_measured:
            m = slice(0, n_measured)
            qs, trans, seen, quality = [], [], [], []
            for p, track in batch[:n_measured]:
                qs.append(p.q)
                if p.trans_m is not None:
                    track.has_trans = True
                    trans.append(p.trans_m)
                else:
                    trans.append(_NO_TRANS)
                seen.append(self._all_seen if p.dof_observed is None else p.dof_observed)
                quality.append((p.pose_confidence, p.score))
            z[m, :NUM_DOFS] = qs
            z[m, TRANS] = trans
            observed[m, :NUM_DOFS] = seen
            observed[m, TRANS] = True
            conf[m] = self.confidence(*np.array(quality).T)
        return slots, z, observed, conf

    def _write(self, t_s: float, batch: list[tuple[Person, _Track]], slots: np.ndarray,
               measured: np.ndarray) -> None:
        """Write the bank's state of `slots` (n,) into the batch's persons; measured (n, 46) bool:
        which DoFs took a measurement this frame (the rest are predictions, flagged in
        q_predicted)."""
        x, v, active = self.bank.state(slots)
        q32 = x[:, :NUM_DOFS].astype(np.float32)
        v32 = v[:, :NUM_DOFS].astype(np.float32)
        tr32 = x[:, TRANS].astype(np.float32)
        trv32 = v[:, TRANS].astype(np.float32)
        active = active[:, :NUM_DOFS].copy()
        quats = root_quaternions(x[:, :3])
        betas32 = self.betas.mean[slots].astype(np.float32)
        has_b = self.betas.weight[slots] > 0.0
        unmeasured = ~measured
        predicted = unmeasured.all(axis=1)
        for i, (p, track) in enumerate(batch):
            p.q, p.q_vel, p.limit_active = q32[i], v32[i], active[i]
            p.q_predicted = unmeasured[i]
            p.predicted = bool(predicted[i])
            p.root_orient_wxyz = quats[i]
            if track.has_trans:
                p.trans_m, p.trans_vel_mps = tr32[i], trv32[i]
            if has_b[i]:
                p.betas = betas32[i]
            if track.history is not None:
                x_slot, P_slot = self.bank.posterior(track.slot)
                track.history.append(t_s, x_slot[:NUM_DOFS], P_slot[:NUM_DOFS],
                                     self.bank.effective_q(track.slot)[:NUM_DOFS])

    def smoothed_at(self, track: _Track, t_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Fixed-lag RTS estimate (q (46,), q_vel (46,)) of a track at a past frame time."""
        if track.history is None:
            return None
        b = self.bank
        return track.history.smoothed_at(t_s, b.lower[:NUM_DOFS],
                                         b.upper[:NUM_DOFS], b.wrap[:NUM_DOFS])


class SmoothingStage(Stage):
    """Process-graph stage 'smooth'. With `fixed_lag_frames` N > 0 it holds each stream's packets
    N frames and emits them RTS-smoothed (for recordings; live use keeps N = 0)."""
    name = "smooth"

    def __init__(self, config: PipelineConfig):
        self.cfg = config.smoothing
        self._smoother: PoseSmoother | None = None
        self._held: dict[str, deque[tuple[float, Packet]]] = {}
        self._retired: dict[str, list[tuple[int, Key, _Track]]] = {}

    def setup(self) -> None:
        warm_up_kernels(self.cfg)
        self._smoother = PoseSmoother(self.cfg)

    @property
    def smoother(self) -> PoseSmoother:
        if self._smoother is None:
            self.setup()
        return self._smoother

    def process(self, packet: Packet) -> Packet | None:
        if not self.cfg.enabled:
            return packet
        sm = self.smoother
        sid = packet.frame.stream_id
        t_s = packet.frame.stream_time_s
        lag = self.cfg.fixed_lag_frames
        for ev in packet.events:
            key = (sid, ev.track_id)
            if ev.kind in (TrackEventKind.REMOVED, TrackEventKind.REFOUND):
                if lag and key in sm.tracks:
                    # held packets still need this track's history: retire it after N frames
                    self._retired.setdefault(sid, []).append((lag + 1, key, sm.tracks[key]))
                sm.forget(key)
        sm.smooth(sid, t_s, packet.persons)
        if not lag:
            return packet
        held = self._held.setdefault(sid, deque())
        held.append((t_s, packet))
        out = self._emit(sid) if len(held) > lag else None
        self._age_retired(sid)
        return out

    def _emit(self, sid: str) -> Packet:
        """Pop the oldest held packet of a stream and overwrite its poses with RTS estimates."""
        t_s, packet = self._held[sid].popleft()
        retired = {k: tr for _, k, tr in self._retired.get(sid, [])}
        sm = self.smoother
        for p in packet.persons:
            key = (sid, p.track_id)
            if p.q is None:
                continue
            res = None
            for track in (sm.tracks.get(key), retired.get(key)):  # a REFOUND track has both
                if track is not None and res is None:
                    res = sm.smoothed_at(track, t_s)
            if res is not None:
                q, q_vel = res
                p.q = q.astype(np.float32)
                p.q_vel = q_vel.astype(np.float32)
                p.limit_active = (q <= DOF_LOWER) | (q >= DOF_UPPER)
                p.root_orient_wxyz = root_quaternions(q[None])[0]
        return packet

    def _age_retired(self, sid: str) -> None:
        items = self._retired.get(sid)
        if items:
            self._retired[sid] = [(n - 1, k, tr) for n, k, tr in items if n > 1]

    def flush(self, stream_id: str) -> list[Packet]:
        out: list[Packet] = []
        while self._held.get(stream_id):
            out.append(self._emit(stream_id))
        self._held.pop(stream_id, None)
        self._retired.pop(stream_id, None)
        self.smoother.forget_stream(stream_id)
        return out

    def close(self) -> None:
        self._smoother = None
        self._held.clear()
        self._retired.clear()
