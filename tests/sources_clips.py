"""Small real video files for the source tests, written with PyAV (no binary fixtures in git).

Every frame carries its index in the synthetic pattern's binary strip, so a test can check that
the decoder returned the right frames in the right order.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from stream.sources.synthetic import decode_index, render


def write_clip(path: Path, n: int = 30, width: int = 160, height: int = 120, fps: int = 30,
               codec: str = "libx264", fmt: str | None = None, gop: int = 10) -> list[tuple[int, int]]:
    """Encode n pattern frames; returns (byte offset, size) of each muxed video packet."""
    container = av.open(str(path), "w", format=fmt)
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    if codec == "libx264":
        stream.options = {"g": str(gop), "preset": "ultrafast", "crf": "18"}
    for k in range(n):
        frame = av.VideoFrame.from_ndarray(render(k, width, height, fps), format="bgr24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with av.open(str(path)) as c:
        return [(p.pos, p.size) for p in c.demux(video=0) if p.size]


def frame_indices(images: list[np.ndarray]) -> list[int]:
    return [decode_index(im) for im in images]
