"""Settings of the protocol adapters that feed other tools (owner: sinks): VMC over OSC."""
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
