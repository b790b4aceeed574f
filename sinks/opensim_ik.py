"""OpenSim's own scaling and inverse kinematics on an exported .trc, with Pose2Sim's BlazePose
setup (the model, marker set and setup files ship in the `pose2sim` wheel).

    python -m sinks.opensim_ik out/cam0_track1.trc --out out/opensim/

Writes `<stem>_scaled.osim` (Pose2Sim's simple model scaled by the setup's marker-pair
measurements over the whole file) and `<stem>_ik.mot` (OpenSim's joint angles, degrees). Needs
`pip install -e '.[opensim]'` and `pip install --no-deps pose2sim==0.10.49`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from stream.errors import DependencyError, UserError, require
from stream.packaged import packaged_file

MODEL_FILE = "Model_Pose2Sim_simple.osim"
MARKERS_FILE = "Markers_BlazePose.xml"
SCALING_FILE = "Scaling_Setup_Pose2Sim_Blazepose.xml"
IK_FILE = "IK_Setup_Pose2Sim_Blazepose.xml"


def pose2sim_setup_dir() -> Path:
    """Pose2Sim/OpenSim_Setup inside the installed wheel, found without importing Pose2Sim."""
    model = packaged_file("Pose2Sim", "OpenSim_Setup", MODEL_FILE)
    if model is not None:
        return model.parent
    raise DependencyError("OpenSim's Pose2Sim model and setup files come with the pose2sim "
                          "wheel: pip install --no-deps pose2sim==0.10.49")


@dataclass
class IKResult:
    scaled_model: str
    motion: str          # OpenSim IK output (.mot, degrees)
    marker_errors: str   # per-frame marker errors (.sto)


def _write_setup(template: Path, path: Path, values: dict[str, str]) -> str:
    """A copy of an OpenSim setup XML with every element named by a key of `values` set to it."""
    tree = ET.parse(template)
    for tag, text in values.items():
        for el in tree.getroot().iter(tag):
            el.text = text
    tree.write(path, xml_declaration=True, encoding="UTF-8")
    return str(path)


def _run_in(folder: Path, tool) -> bool:
    """Run an OpenSim tool with `folder` as the working directory: some outputs (the scaled
    model) are written relative to it, others relative to the setup file."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return bool(tool())
    finally:
        os.chdir(cwd)


def _trc_time_range(trc: str) -> tuple[float, float]:
    with open(trc) as f:
        rows = [ln.split("\t") for ln in f.read().splitlines()[5:] if ln.strip()]
    if not rows:
        raise UserError(f"{trc} holds no marker frames")
    return float(rows[0][1]), float(rows[-1][1])


def scale_and_ik(trc: str, out_dir: str, mass_kg: float = 70.0) -> IKResult:
    """Scale Pose2Sim's simple model to `trc` (measurement-based, Pose2Sim's marker pairs), then
    run OpenSim's InverseKinematicsTool with Pose2Sim's BlazePose IK weights on every frame."""
    osim = require("opensim", "opensim", "OpenSim scaling and inverse kinematics")
    setup = pose2sim_setup_dir()
    os.makedirs(out_dir, exist_ok=True)
    stem = Path(trc).stem
    out = Path(out_dir).resolve()
    t0, t1 = _trc_time_range(trc)
    # OpenSim resolves a setup's file names against the setup's folder (an absolute path gets
    # that folder prefixed too), so everything the setups name sits in `out_dir`
    local_trc = out / f"{stem}.trc"
    if not local_trc.exists() or not local_trc.samefile(trc):
        shutil.copyfile(trc, local_trc)
    trc = local_trc.name

    generic = osim.Model(str(setup / MODEL_FILE))
    generic.set_MarkerSet(osim.MarkerSet(str(setup / MARKERS_FILE)))
    generic.initSystem()
    generic_path = f"{stem}_generic.osim"
    generic.printToXML(str(out / generic_path))
    scaled_path = f"{stem}_scaled.osim"

    scale_setup = _write_setup(setup / SCALING_FILE, out / f"{stem}_scaling_setup.xml", {
        "mass": str(mass_kg), "model_file": generic_path, "marker_set_file": "Unassigned",
        "marker_file": trc, "time_range": f"{t0} {t1}", "output_model_file": scaled_path,
        "output_scale_file": "Unassigned"})
    _run_in(out, lambda: osim.ScaleTool(scale_setup).run())  # its return value is not reliable
    if not (out / scaled_path).is_file():
        raise UserError(f"OpenSim scaling failed on {trc}; see OpenSim's log above")

    motion = f"{stem}_ik.mot"
    ik_setup = _write_setup(setup / IK_FILE, out / f"{stem}_ik_setup.xml", {
        "model_file": scaled_path, "marker_file": trc, "time_range": f"{t0} {t1}",
        "output_motion_file": motion, "results_directory": "."})
    if not _run_in(out, lambda: osim.InverseKinematicsTool(ik_setup).run()) or not (out / motion).is_file():
        raise UserError(f"OpenSim inverse kinematics failed on {trc}; see OpenSim's log above")
    errors = out / "_ik_marker_errors.sto"
    return IKResult(str(out / scaled_path), str(out / motion), str(errors) if errors.is_file() else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinks.opensim_ik", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trc", help="a .trc written by python -m sinks.export --format trc")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--mass-kg", type=float, default=70.0)
    a = ap.parse_args(argv)
    try:
        r = scale_and_ik(a.trc, a.out, a.mass_kg)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(r.scaled_model)
    print(r.motion)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
