"""Minimal Python consumer: print the right knee angle of everyone in view.

    .venv/bin/python examples/python_subscriber.py tcp://127.0.0.1:5555

Start a source of poses first: `run_stream.py`, `run_stream.py --replay SESSION`, or the
synthetic publisher `python -m sinks.synth --persons 2`.
"""
import sys

import numpy as np

from sinks.client import PoseSubscriber

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"
with PoseSubscriber(endpoint) as sub:
    for frame in sub:  # FrameMsg; sub.meta / sub.dof_index come from the 'meta' message
        knee = sub.dof_index["knee_angle_r"]
        people = ", ".join(f"#{p.track_id}: {np.rad2deg(p.q[knee]):.1f} deg"
                           for p in frame.persons if p.q is not None)
        print(f"{frame.stream} seq {frame.seq} drops {sub.stats.dropped}  {people or '-'}")
