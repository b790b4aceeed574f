"""The whole run's configuration: one YAML file, validated on load, overridable from the CLI."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from engines.detection.config import DetectorConfig
from engines.pose_config import PoseConfig
from sinks.adapters_config import ViewerConfig, VmcConfig
from sinks.config import PreviewConfig, PublisherConfig, RecorderConfig
from stream.config_base import StrictModel
from stream.sources.config import SourceConfig
from tracking.config import TrackerConfig
from tracking.smoothing_config import SmoothingConfig


class RuntimeConfig(StrictModel):
    """Process-graph behaviour (owner: graph runtime)."""
    queue_size: int = Field(2, ge=1, le=1024)  # packets waiting per stage; live mode drops the oldest
    ring_slots: int = Field(16, ge=4, le=256)  # frames per source kept in shared memory
    restart_crashed_stages: bool = False
    max_restarts: int = Field(3, ge=0)
    metrics_interval_s: float = Field(1.0, gt=0.0)
    status_line: bool = True        # one live status line on stderr
    summary_at_exit: bool = True    # per-stage table on stderr when the run ends
    lossless: bool = False          # every source in lossless mode (files: every frame, no drops)
    start_method: Literal["spawn", "forkserver"] = "spawn"  # never fork: torch/mediapipe threads
    setup_timeout_s: float = Field(120.0, gt=0.0)  # stages must finish setup() (model loading)
    drain_timeout_s: float = Field(10.0, gt=0.0)   # after Ctrl-C/SIGTERM, then abort
    abort_grace_s: float = Field(3.0, gt=0.0)      # after abort, then stuck stages are killed
    stage_queue_sizes: dict[str, int] = Field(default_factory=dict)
    """Per-stage exceptions to queue_size by stage name, e.g. {pose: 1}: in front of the slowest
    stage a second waiting frame only adds a frame time of latency (latency first), while the fast
    stages after it keep a cushion against a momentary stall."""

    @field_validator("stage_queue_sizes")
    @classmethod
    def _positive_sizes(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if not 1 <= n <= 1024}
        if bad:
            raise ValueError(f"runtime.stage_queue_sizes {bad}: each size must be 1..1024")
        return v


class PipelineConfig(StrictModel):
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig()], min_length=1)
    runtime: RuntimeConfig = RuntimeConfig()
    detector: DetectorConfig = DetectorConfig()
    tracker: TrackerConfig = TrackerConfig()
    pose: PoseConfig = PoseConfig()
    smoothing: SmoothingConfig = SmoothingConfig()
    publisher: PublisherConfig = PublisherConfig()
    recorder: RecorderConfig = RecorderConfig()
    preview: PreviewConfig = PreviewConfig()
    vmc: VmcConfig = VmcConfig()
    viewer: ViewerConfig = ViewerConfig()
