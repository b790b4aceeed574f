"""Every person in view, on real footage: who is published, under which id, against hand labels.

Runs `run_stream.py` as a user would (lossless, so every frame counts and the result does not
depend on the machine's speed) on the four Demo_MultiPerson clips of the pose2sim wheel, on
vtest.avi and, where the sports2d wheel is installed (`pip install --no-deps sports2d==0.8.34`), on
its demo clip (a man doing jumping jacks on a box, then a back flip off it, and a woman walking
past: the kind of footage issue 14 was found on), once per configuration (the default and, as
the same-run baseline, `detector.kind=hog`), reads the recorded session back, and scores the
published persons against `bench/labels/multiperson_boxes.csv` (hand-labelled boxes; see its
header).

Per clip and configuration:
  * visible: labelled person-frames (people taller than `--min-height` of the frame: the target's
    "taller than ~15%"); published: those matched by a published box (IoU >= `--iou`, one to one);
  * all-in: labelled frames where every visible person is published;
  * stable: per labelled person, the share of its visible frames published under its most
    frequent id (the target: >= 90% for every person). On vtest a label is one passage of a
    person through the view (`p01/2`); `person` also scores the whole person, across exits;
  * FP: published person-frames on labelled frames that match no labelled person (people under
    the height floor excluded, as are boxes matching them);
  * MOTA, IDF1, ID switches, fragmentations (motmetrics, IoU distance; on vtest per passage);
  * ids: distinct ids published over the whole clip; limit violations: published joint angles
    outside the SKEL limits (every frame, every person).

    .venv/bin/python bench/bench_multiperson.py [--clips cam01,vtest] [--configs default,hog] [--live]

With --live each clip runs as the default command runs it (live, native pace: a 2-core machine
drops frames it cannot keep up with, so the figures depend on the machine and its load) and each
labelled frame is scored on the newest published frame at or before it. Identity counts (ids,
limit violations) then cover only the frames that were posed.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engines.skel.dofs import DOF_LOWER, DOF_UPPER  # noqa: E402
from sinks.recorder import read_session  # noqa: E402
from sinks.schema import FrameMsg, decode  # noqa: E402
from stream.packaged import packaged_file  # noqa: E402
from tracking.bytetrack import iou_matrix, linear_assignment  # noqa: E402

LABELS = REPO / "bench" / "labels" / "multiperson_boxes.csv"
CONFIGS = {"default": [], "hog": ["detector.kind=hog"]}


def clip_paths() -> dict[str, Path]:
    clips = {f"cam0{k}": packaged_file("Pose2Sim", "Demo_MultiPerson", "videos", f"cam0{k}.mp4")
             for k in range(1, 5)}
    if None in clips.values():
        sys.exit("bench_multiperson: pip install --no-deps pose2sim==0.10.49 (its demo clips)")
    vtest = Path(os.environ.get("SKELSTREAM_SHARED", REPO.parent / "shared")) / "data" / "vtest.avi"
    if vtest.exists():
        clips["vtest"] = vtest
    if (s2d := sports2d_demo_clip()) is not None:
        clips["s2d_demo"] = s2d
    return clips


def sports2d_demo_clip() -> Path | None:
    """Sports2D's demo clip, where the sports2d wheel is installed."""
    return packaged_file("Sports2D", "Demo", "demo.mp4")


def load_labels(path: Path = LABELS) -> dict[str, dict[int, list[tuple[str, np.ndarray]]]]:
    """clip -> frame -> [(person, (4,) xyxy)]."""
    out: dict = defaultdict(lambda: defaultdict(list))
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    for row in csv.DictReader(lines):
        box = np.array([float(row[k]) for k in ("x0", "y0", "x1", "y1")])
        out[row["clip"]][int(row["frame"])].append((row["person"], box))
    return out


def run_clip(clip: Path, overrides: list[str], tmp: Path, name: str, live: bool = False
             ) -> tuple[dict[int, FrameMsg], float, str]:
    """Run the pipeline lossless (or `live`: the default command, native pace, stale frames
    dropped) on one clip; the published frames by seq, wall time, stderr."""
    cmd = [sys.executable, str(REPO / "run_stream.py"), "--source", str(clip), *([] if live else ["--lossless"]),
           "--set", "publisher.enabled=false", "--set", f"recorder.directory={tmp}",
           "--set", f"recorder.session_name={name}", "--set", "runtime.status_line=false"]
    for o in overrides:
        cmd += ["--set", o]
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"run failed on {clip}: {res.stderr[-2000:]}")
    frames = {}
    for d in read_session(str(tmp / name)).frames():
        m = decode(d)
        if isinstance(m, FrameMsg) and (m.seq not in frames or m.persons):
            frames[m.seq] = m
    return frames, wall, res.stderr


def write_clip(frames, out: Path, rate, crf: int, pix_fmt: str = "yuv420p",
               display_rotation: int | None = None) -> None:
    """BGR frames (any iterable: streamed, not held) to an H.264 file as a phone or camera
    writes one (libx264 veryfast at `crf`; 0 = lossless), optionally with a display rotation."""
    import av

    with av.open(str(out), "w") as o:
        st = None
        for img in frames:
            if st is None:
                st = o.add_stream("libx264", rate=rate)
                st.width, st.height, st.pix_fmt = img.shape[1], img.shape[0], pix_fmt
                st.options = {"preset": "veryfast", "crf": str(crf)}
                if display_rotation is not None:
                    st.set_display_rotation(display_rotation)
            for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")):
                o.mux(pkt)
        for pkt in st.encode():
            o.mux(pkt)


def held_at(frames: dict[int, FrameMsg], wanted) -> dict[int, FrameMsg]:
    """Per wanted frame, the newest published frame at or before it: what a client holds when
    that video frame is on the screen (live mode drops frames; lossless has every one)."""
    seqs = np.array(sorted(frames))
    out = {}
    for f in wanted:
        i = np.searchsorted(seqs, f, side="right") - 1
        if i >= 0:
            out[f] = frames[int(seqs[i])]
    return out


class Published:
    """A published person as `score` reads it (track id, box, no angles): to score a tracker's
    boxes without the pipeline (bench_tracker_phases.py, tests)."""

    def __init__(self, track_id: int, box):
        self.track_id, self.bbox_xyxy, self.q = track_id, np.asarray(box, np.float32), None


class PublishedFrame:
    """A frame's `Published` persons, as `score` reads a FrameMsg."""

    def __init__(self, persons: list[Published]):
        self.persons = persons


def score(frames: dict[int, FrameMsg], labels: dict[int, list], height: int, min_height: float,
          iou: float, identities: bool, out_of_view: set[tuple[int, str]] = frozenset()) -> dict:
    """Per clip: visible people published, false positives, ids (motmetrics). A labelled person
    under `min_height` x `height`, or (frame, name) in `out_of_view`, is neither a hit nor a miss,
    and a box on them is no false positive."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    visible = published = all_in = n_frames = fp = pub_on_labelled = 0
    ids_of: dict[str, Counter] = defaultdict(Counter)
    seen_of: Counter = Counter()
    names: dict[str, int] = {}
    for f in sorted(labels):
        people = labels[f]
        msg = frames.get(f)
        persons = msg.persons if msg is not None else []
        boxes = np.array([p.bbox_xyxy for p in persons], np.float64).reshape(-1, 4)
        tids = [p.track_id for p in persons]
        gt = np.array([b for _, b in people]).reshape(-1, 4)
        big = ((gt[:, 3] - gt[:, 1]) >= min_height * height) & \
            np.array([(f, name) not in out_of_view for name, _ in people], bool).reshape(-1)
        rows, cols = linear_assignment(iou_matrix(gt, boxes), iou)
        match = dict(zip(rows.tolist(), cols.tolist()))
        n_frames += 1
        visible += int(big.sum())
        hit = [i for i in range(len(people)) if big[i] and i in match]
        published += len(hit)
        all_in += int(len(hit) == int(big.sum()))
        for i in range(len(people)):
            if big[i]:
                seen_of[people[i][0]] += 1
                if i in match:
                    ids_of[people[i][0]][tids[match[i]]] += 1
        matched_cols = set(match.values())
        fp += sum(1 for j in range(len(persons)) if j not in matched_cols)
        pub_on_labelled += len(persons)
        if identities:
            keep = np.flatnonzero(big)
            # a box on someone under the height floor is neither a hit nor a false positive
            on_small = {c for r, c in match.items() if not big[r]}
            hyp = [j for j in range(len(persons)) if j not in on_small]
            # motmetrics' own iou_matrix calls np.asfarray (gone in NumPy 2): the same distance here
            d = 1.0 - iou_matrix(gt[keep], boxes[hyp])
            dist = np.where(d <= 1.0 - iou, d, np.nan)
            gt_ids = [names.setdefault(people[i][0], len(names) + 1) for i in keep]   # motmetrics wants numbers
            acc.update(gt_ids, [tids[j] for j in hyp], dist, frameid=f)
    stable = {p: (ids_of[p].most_common(1)[0][1] if ids_of[p] else 0) / seen_of[p] for p in seen_of}
    ids_of_person: dict[str, Counter] = defaultdict(Counter)    # a person's passages together
    seen_of_person: Counter = Counter()
    for p, n in seen_of.items():
        ids_of_person[p.split("/")[0]].update(ids_of[p])
        seen_of_person[p.split("/")[0]] += n
    stable_person = {p: (ids_of_person[p].most_common(1)[0][1] if ids_of_person[p] else 0) / n
                     for p, n in seen_of_person.items()}
    q = [p.q for m in frames.values() for p in m.persons if p.q is not None]
    q = np.stack(q) if q else np.zeros((0, len(DOF_LOWER)))
    viol = int(np.sum((q < DOF_LOWER - 1e-4) | (q > DOF_UPPER + 1e-4)))
    out = {"frames": n_frames, "visible": visible, "published": published, "all_in": all_in, "fp": fp,
           "pub_on_labelled": pub_on_labelled, "stable": stable, "stable_person": stable_person,
           "violations": viol,
           "ids": len({p.track_id for m in frames.values() for p in m.persons}),
           "person_frames": sum(len(m.persons) for m in frames.values()), "video_frames": len(frames)}
    if identities:
        s = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches", "num_fragmentations"],
                                        name="x")
        out.update({k: float(s[k].iloc[0]) for k in ("mota", "idf1", "num_switches", "num_fragmentations")})
    return out


def format_stable(r: dict) -> str:
    """Every label's share where there are a few; else how many reach 90%, and who does not."""
    st = r["stable"]
    if len(st) <= 4:
        return " ".join(f"{p} {v:.0%}" for p, v in sorted(st.items()))
    low = " ".join(f"{p} {v:.0%}" for p, v in sorted(st.items()) if v < 0.9)
    whole = r["stable_person"]
    return (f"passages {sum(v >= 0.9 for v in st.values())}/{len(st)} >= 90% (under: {low or '-'}); "
            f"whole persons {sum(v >= 0.9 for v in whole.values())}/{len(whole)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", default="cam01,cam02,cam03,cam04,vtest,s2d_demo")
    ap.add_argument("--configs", default="default,hog")
    ap.add_argument("--min-height", type=float, default=0.15, help="people shorter than this fraction "
                    "of the frame are not counted as visible (nor as false positives when published)")
    ap.add_argument("--iou", type=float, default=0.3, help="minimum IoU of a published box with a label")
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="extra --set for every run")
    ap.add_argument("--live", action="store_true", help="run as the default command does (live, native "
                    "pace, frames dropped when behind) and score what a client holds at each labelled frame")
    args = ap.parse_args()
    clips, labels = clip_paths(), load_labels()
    print(f"load average at start {os.getloadavg()[0]:.1f}; labels: {LABELS.relative_to(REPO)}; "
          f"visible = taller than {args.min_height:.0%} of the frame; match = IoU >= {args.iou}")
    print("| clip | config | visible published | all-in frames | stable id (per person) | FP person-frames | "
          "MOTA | IDF1 | ID sw | frag | ids | limit viol | wall s |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.clips.split(","):
            for cfg in args.configs.split(","):
                frames, wall, _ = run_clip(clips[name], CONFIGS[cfg] + args.overrides, Path(tmp), f"{name}_{cfg}",
                                           live=args.live)
                any_frame = next(iter(frames.values()))
                if args.live:
                    processed = len(frames)
                    frames = held_at(frames, labels[name])
                    wall_note = f"{wall:.0f} ({processed} frames posed)"
                else:
                    wall_note = f"{wall:.0f}"
                r = score(frames, labels[name], any_frame.height, args.min_height, args.iou, identities=True)
                stable = format_stable(r)
                mot = f"{r['mota']:.2f} | {r['idf1']:.2f} | {r['num_switches']:.0f} | {r['num_fragmentations']:.0f}"
                print(f"| {name} | {cfg} | {r['published']}/{r['visible']} | {r['all_in']}/{r['frames']} | {stable} | "
                      f"{r['fp']}/{r['pub_on_labelled']} | {mot} | {r['ids']} | {r['violations']} | {wall_note} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
