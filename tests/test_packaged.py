"""stream.packaged.packaged_file: files that installed packages ship, found without importing them."""
from __future__ import annotations

import subprocess
import sys

from stream.packaged import packaged_file


def test_a_file_of_an_installed_package_is_found():
    path = packaged_file("stream", "packaged.py")
    assert path is not None and path.is_file() and path.name == "packaged.py"


def test_nothing_where_the_package_or_the_file_is_missing():
    assert packaged_file("stream", "no_such_file.mp4") is None
    assert packaged_file("stream", "sources") is None                 # a folder is not a file
    assert packaged_file("no_such_package_here", "x.mp4") is None
    assert packaged_file("no_such_package_here.sub", "x.mp4") is None  # its parent is missing
    assert packaged_file("json.decoder", "x") is None                 # a module, not a package


def test_the_package_is_located_not_imported():
    """Pose2Sim's and Sports2D's own imports are heavy and some predate NumPy 2: finding their
    clips must not import them (checked in a fresh interpreter)."""
    code = ("import sys; from stream.packaged import packaged_file; "
            "packaged_file('Pose2Sim', 'Demo_SinglePerson', 'videos', 'cam01.mp4'); "
            "packaged_file('Sports2D', 'Demo', 'demo.mp4'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('Pose2Sim', 'Sports2D')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
