"""Command line of `run_stream.py`: parse, load the config, run the graph (or a replay).

User errors print `error: <one line>` on stderr and exit 2, never a traceback; a crashed stage
exits 1; a clean end (including Ctrl-C/SIGTERM after a graceful drain) exits 0.
"""
from __future__ import annotations

import argparse
import os
import sys
import textwrap

from stream.errors import PipelineError, UserError

DESCRIPTION = """\
Stream the 46 SKEL joint angles of every person in view, live.

Runs a graph of processes: source(s) -> detect/track -> pose -> smoothing -> publish / record /
preview. With no arguments it runs configs/default.yaml (CPU only, nothing to download).
Output: joint angles are published over ZeroMQ on publisher.endpoint (default
tcp://127.0.0.1:5555); with recorder.enabled=true each run is also recorded under sessions/.
A status line (fps, latency, drops per stage) shows while it runs, a summary table at exit.
"""

EPILOG = textwrap.dedent("""\
    sources (--source or sources.N.uri in YAML):
      clip.mp4 / folder/     a video file / a folder of images
      rtsp://host/path       an RTSP camera (TCP)
      webcam:0, /dev/video0  a local camera
      synthetic:             a moving test pattern; 'sample' = the bundled demo clip

    examples:
      run_stream.py                                    # default config
      run_stream.py --source clip.mp4 --lossless       # every frame of a file, offline
      run_stream.py --source webcam:0 --source rtsp://10.0.0.5/stream   # two cameras
      run_stream.py --config configs/offline_analysis.yaml --set runtime.queue_size=4
      run_stream.py --set sources.0.pace=fast --set publisher.enabled=false
      run_stream.py --print-config                     # show every setting and its value
      run_stream.py --replay sessions/run1 --speed 2   # play a recording back

    exit codes: 0 done, 1 a stage crashed, 2 bad input (config, source, files).
    Ctrl-C once: finish the frames in flight and close files; twice: stop now.
    """)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_stream.py", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE",
                   help="YAML config (default: configs/default.yaml); see configs/ for examples")
    p.add_argument("--source", metavar="URI", action="append", default=[],
                   help="video source; repeat for several cameras (replaces the config's "
                        "sources; each gets stream id cam0, cam1, ...)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override one setting, value in YAML syntax, e.g. runtime.queue_size=4 "
                        "or sources.0.uri=clip.mp4 (repeatable; applied after --source)")
    p.add_argument("--lossless", action="store_true",
                   help="process every frame of file sources (blocks instead of dropping; for "
                        "offline analysis, not live cameras)")
    p.add_argument("--replay", metavar="SESSION",
                   help="publish a recorded session instead of running the cameras")
    p.add_argument("--speed", metavar="X", type=float, default=1.0,
                   help="replay speed factor (default 1.0 = real time)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration as YAML and exit")
    p.add_argument("--verbose", action="store_true",
                   help="let native libraries (LiteRT, OpenCV, FFmpeg) log to the terminal")
    return p


def run(argv: list[str] | None = None) -> int:
    """Parse `argv`, run, and return the exit code (raises UserError for bad input)."""
    from stream.config_loader import dump_config, load_config

    args = make_parser().parse_args(argv)
    if args.verbose:
        from engines.blazepose.models import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"   # read by the stage processes, which inherit it
    cfg = load_config(args.config, args.overrides, args.source, args.lossless)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    if args.replay is not None:
        if not args.speed > 0:
            from stream.errors import ConfigError
            raise ConfigError(f"--speed must be > 0 (got {args.speed}); 1.0 is real time")
        try:
            from sinks.replay import run_replay
        except ImportError as exc:
            raise PipelineError(f"replay is not available in this install ({exc})") from None
        return int(run_replay(args.replay, cfg, args.speed))

    from stream.pipeline import build_graph, check_sources

    problems = check_sources(cfg)  # before any stage loads a model; every bad source named
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if problems:
        return 2
    result = build_graph(cfg).run()
    for err in result.errors:
        print(f"error: {err}", file=sys.stderr)
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become `error: <message>` and exit 2, without a traceback."""
    try:
        return run(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the graph took over the signals
        return 130
