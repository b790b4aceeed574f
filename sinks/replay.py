"""Replay: republish a recorded session with its original timing (or `speed` times faster).

`run_stream.py --replay SESSION --speed X` lands here. Frames go through the same `Publisher`
as live ones (decoded, turned back into packets), so clients cannot tell replay from live except
by the timestamps, which are the recorded capture times. A truncated session (recorder killed)
is replayed up to its last complete chunk, with a warning.
"""
from __future__ import annotations

import sys
import time

from sinks.publisher import Publisher
from sinks.recorder import read_session
from sinks.schema import FrameMsg, SchemaError, decode, frame_to_packet
from stream.config import PipelineConfig
from stream.errors import ConfigError, RecorderError


def load_frames(session_path: str) -> list[FrameMsg]:
    """Every decodable frame of a session, in capture order (warns if the file is truncated)."""
    data = read_session(session_path)
    if not data.complete:
        print(f"warning: {data.path} is truncated ({data.problem}); using the "
              f"{len(data.messages)} complete messages; fix the file with "
              f"python -m sinks.recorder recover {data.path}", file=sys.stderr)
    frames, bad = [], 0
    for payload in data.frames():
        try:
            m = decode(payload)
        except SchemaError:
            bad += 1
            continue
        if isinstance(m, FrameMsg):
            frames.append(m)
    if bad:
        print(f"warning: {bad} undecodable messages in {data.path} skipped", file=sys.stderr)
    if not frames:
        raise RecorderError(f"{data.path} holds no pose frames to replay")
    frames.sort(key=lambda f: f.capture_ns)
    return frames


def run_replay(session_path: str, config: PipelineConfig, speed: float) -> int:
    """Publish the session on `config.publisher`; returns the exit code (0)."""
    if not speed > 0:
        raise ConfigError(f"replay speed must be > 0 (got {speed}); 1.0 is real time")
    frames = load_frames(session_path)
    streams = sorted({f.stream for f in frames})
    t0_ns = frames[0].capture_ns
    with Publisher(config.publisher) as pub:
        pub.wait_for_subscriber(config.publisher.replay_wait_for_subscriber_s)
        start = time.monotonic()
        for f in frames:
            due = start + (f.capture_ns - t0_ns) / 1e9 / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pub.publish(frame_to_packet(f))
        for sid in streams:
            pub.end_stream(sid)
        took = time.monotonic() - start
    span = (frames[-1].capture_ns - t0_ns) / 1e9
    print(f"replay: {len(frames)} frames of {len(streams)} stream(s), {span:.1f} s recorded, "
          f"published in {took:.1f} s on {config.publisher.endpoint}", file=sys.stderr)
    return 0
