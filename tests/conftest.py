"""Shared test helpers: where ../shared is, and skips with reasons for what is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SKELSTREAM_SHARED", REPO.parent / "shared"))
VTEST = SHARED / "data" / "vtest.avi"
GOLDEN = SHARED / "skelcf" / "golden"


def needs_shared(path: Path):
    """Skip (with the reason) when a file from ../shared is not beside this checkout."""
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present (../shared only exists on dev machines and CI)")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
