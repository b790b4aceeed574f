"""Preview drawing and the overlay video writer (pure functions + one context-managed writer).

Draws on a BGR uint8 frame: tracker boxes and ids, the SKEL skeleton of each person posed by its
q and placed at trans_m (generic skeleton, projected with the packet's intrinsics), the knee/hip/
elbow flexion in degrees, and an optional angle-vs-time plot. The writer encodes with PyAV,
timestamps from the stream clock, so the overlay video keeps the capture timing.
"""
from __future__ import annotations

from collections import deque
from fractions import Fraction
from pathlib import Path

import numpy as np

from engines.skel.dofs import DOF_INDEX, JOINT_PARENTS
from engines.skel.kinematics import Skeleton, forward_kinematics, generic_skeleton, keypoints_from_fk
from stream.errors import RecorderError
from stream.packet import Intrinsics, Packet, Person

KEY_ANGLES: tuple[tuple[str, str], ...] = (
    ("knee R", "knee_angle_r"), ("knee L", "knee_angle_l"),
    ("hip R", "hip_flexion_r"), ("hip L", "hip_flexion_l"),
    ("elbow R", "elbow_flexion_r"), ("elbow L", "elbow_flexion_l"),
)
_PLOT_COLORS = ((0, 200, 255), (255, 160, 0), (0, 255, 0), (255, 0, 255), (255, 255, 0), (0, 0, 255))
# bones drawn: (joint, parent) pairs, minus the zero-length pelvis->lumbar style offsets we keep
_BONES = tuple((j, p) for j, p in enumerate(JOINT_PARENTS) if p >= 0)


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per track id (golden-ratio hue walk)."""
    import cv2

    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def project(points_m: np.ndarray, k: Intrinsics) -> np.ndarray:
    """(N, 3) camera-frame metres -> (N, 2) pixels; points behind the camera come back NaN."""
    z = points_m[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([k.fx * points_m[:, 0] / z + k.cx, k.fy * points_m[:, 1] / z + k.cy], axis=1)
    uv[z <= 1e-3] = np.nan
    return uv


def skeleton_pixels(person: Person, k: Intrinsics, skeleton: Skeleton) -> np.ndarray | None:
    """(24 + 1, 2) pixels of the SKEL joints and the head top of a posed person, or None."""
    if person.q is None or person.trans_m is None:
        return None
    fk = forward_kinematics(person.q, skeleton, np.asarray(person.trans_m, dtype=np.float64))
    pts = np.concatenate([fk.joints_m, keypoints_from_fk(fk, skeleton, ("head_top",))], axis=0)
    return project(pts, k)


def draw_person(img: np.ndarray, person: Person, k: Intrinsics | None, skeleton: Skeleton,
                show_angles: bool = True) -> None:
    """Box, id, projected skeleton and key angles of one person, in place on a BGR image."""
    import cv2

    col = track_color(person.track_id)
    x0, y0, x1, y1 = (int(round(float(v))) for v in person.box_xyxy)
    cv2.rectangle(img, (x0, y0), (x1, y1), col, 1 if person.box_predicted else 2)
    cv2.putText(img, f"#{person.track_id}", (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                col, 1, cv2.LINE_AA)
    if k is not None:
        uv = skeleton_pixels(person, k, skeleton)
        if uv is not None:
            seen = person.dof_observed
            for j, p in list(_BONES) + [(24, 13)]:
                a, b = uv[j], uv[p]
                if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                    continue
                dim = seen is not None and j < 24 and not _joint_seen(seen, j)
                cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])),
                         (128, 128, 128) if dim else col, 2, cv2.LINE_AA)
            for u, v in uv[np.all(np.isfinite(uv), axis=1)]:
                cv2.circle(img, (int(u), int(v)), 3, (255, 255, 255), -1, cv2.LINE_AA)
    if show_angles and person.q is not None:
        lines = [f"{label} {np.degrees(person.q[DOF_INDEX[name]]):5.0f}" for label, name in KEY_ANGLES]
        tx = x1 + 4 if x1 + 90 < img.shape[1] else max(0, x0 - 90)  # keep the numbers on screen
        for i, text in enumerate(lines):
            cv2.putText(img, text, (tx, y0 + 14 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                        col, 1, cv2.LINE_AA)


def _joint_seen(observed: np.ndarray, joint: int) -> bool:
    from engines.skel.dofs import joint_dofs

    d = joint_dofs(joint)
    return bool(d.size == 0 or observed[d].any())


class AnglePlot:
    """Rolling angle-vs-time plot of a few DoFs of one person (degrees over the last seconds)."""

    def __init__(self, dofs: tuple[str, ...], window_s: float, size_px: tuple[int, int] = (260, 120)):
        self.dofs = dofs
        self.idx = np.array([DOF_INDEX[n] for n in dofs])
        self.window_s = window_s
        self.w, self.h = size_px
        self.hist: deque[tuple[float, np.ndarray]] = deque()

    def add(self, t_s: float, q: np.ndarray) -> None:
        self.hist.append((t_s, np.degrees(np.asarray(q)[self.idx])))
        while self.hist and self.hist[0][0] < t_s - self.window_s:
            self.hist.popleft()

    def draw(self, img: np.ndarray) -> None:
        """Paint the plot into the bottom-left corner; y from -30 to 150 degrees."""
        import cv2

        h, w = img.shape[:2]
        if len(self.hist) < 2 or h < self.h + 10 or w < self.w + 10:
            return
        y0 = h - self.h - 5
        roi = img[y0:y0 + self.h, 5:5 + self.w]
        roi[:] = (roi * 0.35).astype(np.uint8)
        t = np.array([s for s, _ in self.hist])
        vals = np.stack([v for _, v in self.hist])
        xs = (t - t[-1] + self.window_s) / self.window_s * (self.w - 1)
        for c in range(vals.shape[1]):
            ys = (1.0 - (vals[:, c] + 30.0) / 180.0) * (self.h - 1)
            pts = np.stack([xs, np.clip(ys, 0, self.h - 1)], axis=1).astype(np.int32)
            cv2.polylines(roi, [pts], False, _PLOT_COLORS[c % len(_PLOT_COLORS)], 1, cv2.LINE_AA)
            cv2.putText(roi, self.dofs[c], (4, 12 + 11 * c), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                        _PLOT_COLORS[c % len(_PLOT_COLORS)], 1, cv2.LINE_AA)


def render(packet: Packet, image_bgr: np.ndarray, skeleton: Skeleton | None = None,
           show_angles: bool = True, plot: AnglePlot | None = None) -> np.ndarray:
    """A drawn copy of the frame (H, W, 3) uint8 BGR with every person of the packet."""
    sk = skeleton or generic_skeleton()
    img = np.ascontiguousarray(image_bgr).copy()
    for p in packet.persons:
        draw_person(img, p, packet.intrinsics, sk, show_angles)
    if plot is not None:
        plot.draw(img)
    return img


class OverlayWriter:
    """Encodes overlay frames to a video file with PyAV; a context manager that always finishes it.

    pts come from the stream's own seconds (media time or capture time) in milliseconds, so a file
    replayed faster than real time and a live camera both keep their timing.
    """

    def __init__(self, path: str | Path, codec: str = "libx264"):
        self.path = Path(path)
        self.codec = codec
        self._container = None
        self._stream = None
        self._t0: float | None = None
        self._last_pts = -1
        self.frames = 0

    def __enter__(self) -> "OverlayWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, width: int, height: int) -> None:
        import av

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w")
        except (OSError, av.error.FFmpegError) as exc:
            raise RecorderError(f"cannot write the preview video {self.path} ({exc}); choose a "
                                "writable preview.video_path") from None
        for codec in (self.codec, "mpeg4"):
            try:
                st = self._container.add_stream(codec, rate=30)
                break
            except (ValueError, av.error.FFmpegError):
                continue
        else:
            raise RecorderError(f"no video encoder for {self.path}; set preview.video_codec to one "
                                "PyAV has (e.g. mpeg4)")
        st.width, st.height = width - width % 2, height - height % 2
        st.pix_fmt = "yuv420p"
        st.codec_context.time_base = Fraction(1, 1000)
        st.time_base = Fraction(1, 1000)
        self._stream = st

    def write(self, image_bgr: np.ndarray, t_s: float) -> None:
        """Append one (H, W, 3) uint8 BGR frame shown at stream time t_s (seconds)."""
        import av

        if self._stream is None:
            self._open(image_bgr.shape[1], image_bgr.shape[0])
            self._t0 = t_s
        st = self._stream
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image_bgr[:st.height, :st.width]),
                                           format="bgr24")
        pts = max(int(round((t_s - self._t0) * 1000.0)), self._last_pts + 1)  # strictly increasing
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        self._last_pts = pts
        for pkt in st.encode(frame):
            self._container.mux(pkt)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            if self._stream is not None:
                for pkt in self._stream.encode(None):
                    self._container.mux(pkt)
        finally:
            self._container.close()
            self._container = None
            self._stream = None
