"""Small real video files for the source tests, written with PyAV (no binary fixtures in git).

Every frame carries its index in the synthetic pattern's binary strip, so a test can check that
the decoder returned the right frames in the right order.
"""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from stream.sources.synthetic import decode_index, render


STORED_TURNED = {0: None, 90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, -90: cv2.ROTATE_90_COUNTERCLOCKWISE}
"""display rotation (degrees counter-clockwise, as FFmpeg and PyAV give it) -> how the upright
picture is turned to be stored so that a player's turn shows it upright again"""


def write_clip(path: Path, n: int = 30, width: int = 160, height: int = 120, fps: int = 30,
               codec: str = "libx264", fmt: str | None = None, gop: int = 10, pix_fmt: str | None = None,
               display_rotation: int = 0) -> list[tuple[int, int]]:
    """Encode n upright `width` x `height` pattern frames; returns (byte offset, size) of each
    muxed video packet. `display_rotation` stores them turned, with the rotation that turns them
    back (what a phone held upright writes)."""
    container = av.open(str(path), "w", format=fmt)
    stream = container.add_stream(codec, rate=fps)
    quarter = display_rotation in (90, -90)
    stream.width, stream.height = (height, width) if quarter else (width, height)
    stream.pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
    if codec == "libx264":
        stream.options = {"g": str(gop), "preset": "ultrafast", "crf": "18"}
    if display_rotation:
        stream.set_display_rotation(display_rotation)
    for k in range(n):
        image = render(k, width, height, fps)
        if STORED_TURNED[display_rotation] is not None:
            image = np.ascontiguousarray(cv2.rotate(image, STORED_TURNED[display_rotation]))
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with av.open(str(path)) as c:
        return [(p.pos, p.size) for p in c.demux(video=0) if p.size]


def frame_indices(images: list[np.ndarray]) -> list[int]:
    return [decode_index(im) for im in images]
