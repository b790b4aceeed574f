"""Which detector tiles to look at next: where something moves that no track explains.

The detector sees only a few of its tiles per run, taken in turn (engines/blazepose/detector.py):
a small person walking into view waits until the turn reaches their tile, up to 8 runs (2.4 s on
vtest.avi's 10 fps, every third frame). People move and the background mostly does not, so a few
of each run's tiles go where the frame changed since the detector last looked, outside the
places the tracker already watches; the rest stay in turn, so a person standing still is still
found. A moving camera makes everything move: then the picks are no better than the turn, and no
worse.
"""
from __future__ import annotations

import cv2
import numpy as np

MOTION_WIDTH_PX = 160
"""Motion is looked for on the frame scaled to this width: cheap (~0.1 ms), and a walker 15 % of
a frame tall is still ~20 px there."""
DIFF_LEVEL = 15
"""Grey levels (of 255) a pixel must change by, after a 3 x 3 blur, to count as moving: above
compression and sensor noise on the clips tried (vtest.avi, the Pose2Sim demos)."""


class MotionMap:
    """Per stream, the last frame the detector saw (small, grey); `update` gives what moved since."""

    def __init__(self) -> None:
        self._last: dict[str, np.ndarray] = {}

    def update(self, image_bgr: np.ndarray, stream: str = "") -> np.ndarray | None:
        """(h, w) bool at MOTION_WIDTH_PX wide: pixels that changed since this stream's last call;
        None on its first call or after a change of frame size."""
        h, w = image_bgr.shape[:2]
        small = cv2.resize(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY),
                           (MOTION_WIDTH_PX, max(1, round(h * MOTION_WIDTH_PX / w))), interpolation=cv2.INTER_AREA)
        small = cv2.blur(small, (3, 3))
        last = self._last.get(stream)
        self._last[stream] = small
        if last is None or last.shape != small.shape:
            return None
        return cv2.absdiff(small, last) > DIFF_LEVEL


def tiles_by_motion(moving: np.ndarray, width: int, height: int, tiles: list, watched: list, k: int,
                    min_share: float) -> list[int]:
    """Indices of up to `k` tiles (Regions of a width x height frame) with the largest share of
    moving pixels outside the `watched` Regions (where the tracker expects its people), each at
    least `min_share`: the best tile of each grid, best first. One grid each: a walker a tenth of
    the frame tall is found on a 4 x 4 tile, one a third tall only whole on a 3 x 3 one."""
    if k <= 0 or not tiles:
        return []
    mh, mw = moving.shape
    sx, sy = mw / width, mh / height

    def cells(r) -> tuple[int, int, int, int]:
        """A Region's cells of the motion map, clipped to it (at least one cell where inside)."""
        x0, y0 = min(max(int(r.x0 * sx), 0), mw), min(max(int(r.y0 * sy), 0), mh)
        return x0, y0, min(max(int(np.ceil((r.x0 + r.w) * sx)), x0 + 1), mw), min(max(int(np.ceil((r.y0 + r.h) * sy)), y0 + 1), mh)

    free = moving.copy()
    for r in watched:
        x0, y0, x1, y1 = cells(r)
        free[y0:y1, x0:x1] = False
    counts = cv2.integral(free.astype(np.uint8))    # (mh + 1, mw + 1) sums: each tile in O(1)

    share = []
    for r in tiles:
        x0, y0, x1, y1 = cells(r)
        n = counts[y1, x1] - counts[y0, x1] - counts[y1, x0] + counts[y0, x0]
        share.append(n / max((x1 - x0) * (y1 - y0), 1))
    best: dict[tuple[int, int], int] = {}      # per tile size (grid): its tile with most motion
    for i, r in enumerate(tiles):
        size = (round(r.w), round(r.h))
        if size not in best or share[i] > share[best[size]]:
            best[size] = i
    ranked = sorted(best.values(), key=lambda i: -share[i])
    return [int(i) for i in ranked[:k] if share[i] >= min_share]
