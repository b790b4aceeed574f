"""A small graph run as its own program, so tests can signal or kill -9 its parent process.

usage: python graph_driver.py OUT_FILE {live|lossless} [STAGE_DELAY_S]
Prints `TOKEN <ring name prefix>` before running and `EXIT <code>` after.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from graph_helpers import OPENER, CheckStage, CollectSink  # noqa: E402
from stream.config import RuntimeConfig  # noqa: E402
from stream.graph import Graph  # noqa: E402
from stream.source_stage import SourceStage  # noqa: E402
from stream.sources.config import SourceConfig  # noqa: E402

if __name__ == "__main__":
    out, mode = sys.argv[1], sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.005
    lossless = mode == "lossless"
    uri = "test:n=-1,w=320,h=240" + ("" if lossless else ",fps=100,live=1")
    g = Graph(RuntimeConfig(status_line=False, summary_at_exit=True, drain_timeout_s=5,
                            metrics_interval_s=0.2, queue_size=4), lossless=lossless)
    g.add(SourceStage(SourceConfig(uri=uri, mode=mode), "cam0", 8, OPENER), to=["check"])
    g.add(CheckStage("check", delay_s=delay), to=["collect"])
    g.add(CollectSink(out, "collect", delay_s=delay))
    print(f"TOKEN {g._token}", flush=True)
    res = g.run()
    for e in res.errors:
        print(f"error: {e}", file=sys.stderr)
    print(f"EXIT {res.exit_code}", flush=True)
    sys.exit(res.exit_code)
