"""Who is who on vtest.avi, the tracker alone, over the detector's phases.

The default detector runs on every third frame, so one run of vtest.avi samples one phase of
it; started one, two or three frames later the same code decides differently early on, and that
reshuffles the ids of everything after (IDF1 varies by about +-0.05 between phases). A change to
detection or tracking is judged here on the mean over the phases. The detect_track stage runs
inline (the detector on exactly every third frame: the machine's speed does not matter) with the
default config and any `--set`; its tracker boxes are scored against all of vtest's hand labels
(`bench/labels/multiperson_boxes.csv`, `bench_multiperson.score`), everyone and the visible
people (taller than 15 % of the frame).

    .venv/bin/python bench/bench_tracker_phases.py                         # ~2.5 min, idle
    .venv/bin/python bench/bench_tracker_phases.py --set tracker.reid_max_dist_rel=0
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_multiperson import Published, PublishedFrame, load_labels, score  # noqa: E402
from stream.config_loader import load_config  # noqa: E402
from stream.packet import FrameInfo, Packet  # noqa: E402
from tracking.stage import DetectTrackStage  # noqa: E402

VTEST = Path(os.environ.get("SKELSTREAM_SHARED", REPO.parent / "shared")) / "data" / "vtest.avi"


def track_from(start: int, overrides: list[str]) -> dict[int, PublishedFrame]:
    """The detect_track stage's boxes on vtest.avi from frame `start` on (10 fps media time)."""
    cfg = load_config(None, [*overrides, "detector.schedule=inline"])
    stage = DetectTrackStage(cfg)
    stage.setup()
    cap = cv2.VideoCapture(str(VTEST))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames: dict[int, PublishedFrame] = {}
    seq = start
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            pk = Packet(FrameInfo("vtest", seq, 0, 0, img.shape[1], img.shape[0], media_pts_s=seq / 10.0))
            pk.image = img
            out = stage.process(pk)
            frames[seq] = PublishedFrame([Published(p.track_id, p.box_xyxy) for p in out.persons])
            seq += 1
    finally:
        cap.release()
        stage.close()
    return frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phases", default="0,1,2,3", help="start frames, one run each")
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="config KEY=VALUE")
    args = ap.parse_args()
    if not VTEST.exists():
        sys.exit(f"bench_tracker_phases: {VTEST} not found (set SKELSTREAM_SHARED to the shared folder)")
    labels = load_labels()["vtest"]
    print(f"vtest.avi, tracker alone, --set {' '.join(args.overrides) or '(none)'}")
    print("| start frame | IDF1 | ID sw | MOTA | ids | found / labelled | visible: IDF1 | ID sw |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for start in (int(s) for s in args.phases.split(",")):
        frames = track_from(start, args.overrides)
        lab = {f: v for f, v in labels.items() if f >= start}
        every, visible = (score(frames, lab, 576, h, 0.3, identities=True) for h in (0.0, 0.15))
        rows.append((every["idf1"], every["num_switches"], every["mota"], visible["idf1"], visible["num_switches"]))
        print(f"| {start} | {every['idf1']:.3f} | {every['num_switches']:.0f} | {every['mota']:.3f} | {every['ids']} | "
              f"{every['published']}/{every['visible']} | {visible['idf1']:.3f} | {visible['num_switches']:.0f} |",
              flush=True)
    m = np.mean(rows, axis=0)
    print(f"| mean | **{m[0]:.3f}** | {m[1]:.2f} | {m[2]:.3f} | | | {m[3]:.3f} | {m[4]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
