"""`sources.N.camera_pose`: where a camera sits in a gravity-aligned world (y up, metres).

Two ways to say it, one of them per camera:
- `height_m` (+ `pitch_deg`, `roll_deg`): a tape measure and an inclinometer are enough;
- `rotation_rodrigues` + `translation_m`: OpenCV extrinsics (x_cam = R x_world + t, R from the
  Rodrigues vector), as a calibration file stores them, with `world_up` naming the calibration
  world's up axis (Qualisys and Pose2Sim calibrations: z). A calibration parser can fill these.
Recordings store the config, so exports find the pose there (`sinks/world_frame.py`).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stream.config_base import StrictModel


class CameraPoseConfig(StrictModel):
    height_m: float | None = Field(None, gt=0.0, le=100.0)  # optical centre above the floor
    pitch_deg: float = Field(0.0, ge=-90.0, le=90.0)   # optical axis below the horizon (+ = looking down)
    roll_deg: float = Field(0.0, ge=-90.0, le=90.0)    # about the optical axis (+ = image right edge lower)
    rotation_rodrigues: tuple[float, float, float] | None = None  # extrinsics: world -> camera rotation
    translation_m: tuple[float, float, float] | None = None       # extrinsics: x_cam = R x_world + t
    world_up: Literal["x", "y", "z", "-x", "-y", "-z"] = "z"      # up axis of the extrinsics' world

    @model_validator(mode="after")
    def _one_way(self) -> CameraPoseConfig:
        ext = (self.rotation_rodrigues is not None, self.translation_m is not None)
        if ext[0] != ext[1]:
            raise ValueError("camera_pose: give both rotation_rodrigues and translation_m "
                             "(OpenCV extrinsics), or neither")
        if ext[0] == (self.height_m is not None):
            raise ValueError("camera_pose: give either height_m (with pitch_deg, roll_deg) or the "
                             "extrinsics rotation_rodrigues + translation_m, not both or none")
        return self
