"""Settings of the adapters that feed other tools (owner: sinks): VMC over OSC, the live viewer."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from stream.config_base import StrictModel


def parse_host_port(value: str, what: str) -> tuple[str, int]:
    """'host:port' -> (host, port); ValueError naming the setting otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be host:port (got {value!r}), e.g. 127.0.0.1:39539")
    return host.strip("[]"), int(port)


class VmcConfig(StrictModel):
    """VMC protocol over OSC/UDP: one person's pose as Unity humanoid bones, one bundle per frame."""
    enabled: bool = False
    address: str = "127.0.0.1:39539"     # the receiver ("Marionette"): VSeeFace, EVMC4U, VMC4UE ...
    person: Literal["largest"] | int = "largest"  # largest box in view, or this track id
    stream: str | None = None            # only this stream id (default: every stream's frames)
    body_height_m: float = Field(1.70, gt=0.5, lt=2.5)  # generic skeleton the bones are derived on
    send_root_translation: bool = True   # root = pelvis position (camera frame, y up); else fixed

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        parse_host_port(v, "vmc.address")
        return v


class ViewerConfig(StrictModel):
    """Live web view (rerun): camera image with boxes, ids and 2D skeletons, a 3D skeleton per
    person, joint-angle plots. Served locally and offline: open http://HOST:web_port."""
    enabled: bool = False
    web_port: int = Field(9090, ge=1, le=65535)     # the viewer page (rerun's web viewer, bundled)
    grpc_port: int = Field(9876, ge=1, le=65535)    # the data the page streams from
    memory_limit: str = "512MiB"                    # oldest data dropped beyond (nobody watching)
    max_fps: float = Field(15.0, gt=0.0, le=240.0)  # display rate: frames closer in time are skipped
    image: bool = True                              # send the camera image (JPEG)
    image_fps: float = Field(7.5, gt=0.0, le=240.0)  # camera panel (image, boxes, 2D) rate; 3D and plots: max_fps
    image_max_width_px: int = Field(640, ge=64, le=7680)  # shrunk by an integer factor to fit
    jpeg_quality: int = Field(70, ge=10, le=100)
    body_height_m: float = Field(1.70, gt=0.5, lt=2.5)  # generic skeleton drawn from q
    plot_dofs: tuple[str, ...] = ("knee_angle_r", "knee_angle_l", "elbow_flexion_r", "elbow_flexion_l")
    save_rrd: str | None = None    # also write everything shown to this .rrd file (`rerun FILE` replays it)

    @field_validator("plot_dofs")
    @classmethod
    def _dofs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from engines.skel.dofs import DOF_INDEX

        bad = [n for n in v if n not in DOF_INDEX]
        if bad:
            raise ValueError(f"viewer.plot_dofs: unknown DoF names {bad}; use names from "
                             "engines/skel/dofs.py, e.g. knee_angle_r")
        return v
