"""The whole run's configuration: one YAML file, validated on load, overridable from the CLI."""
from __future__ import annotations

from pydantic import Field

from engines.detection.config import DetectorConfig
from engines.pose_config import PoseConfig
from sinks.config import PreviewConfig, PublisherConfig, RecorderConfig
from stream.config_base import StrictModel
from stream.sources.config import SourceConfig
from tracking.config import TrackerConfig
from tracking.smoothing_config import SmoothingConfig


class RuntimeConfig(StrictModel):
    """Process-graph behaviour (owner: graph runtime)."""
    queue_size: int = Field(2, ge=1, le=1024)
    ring_slots: int = Field(16, ge=4, le=256)
    restart_crashed_stages: bool = False
    max_restarts: int = Field(3, ge=0)
    metrics_interval_s: float = Field(1.0, gt=0.0)
    status_line: bool = True


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
