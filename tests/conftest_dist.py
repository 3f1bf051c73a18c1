"""The built distribution and the venvs that install it, shared by test_lean and test_package.

- :func:`built_dist`: the wheel and sdist of the working tree, built once per test session by
  ``tools/dist.sh`` (a clean copy of the sources, as a fresh clone has them; never inside the
  checkout), or those of ``$EDGE_SER_DIST`` (a directory: ``make dist`` checks the release it
  built from a tag this way).
- :func:`build_lean_venv`: a venv with only what a device installs, built and cached by
  ``tools/lean_venv.sh`` outside the repository: ``litert`` and ``tflite-runtime`` (editable
  installs of the checkout, with the test tools) and ``wheel`` (``pip install WHEEL``, nothing
  else: what a user of the built wheel gets).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DIST_SH = REPO / "tools" / "dist.sh"
LEAN_VENV_SH = REPO / "tools" / "lean_venv.sh"
DIST_ENV = "EDGE_SER_DIST"

_built: dict[str, tuple[Path, Path]] = {}


def built_dist() -> tuple[Path, Path]:
    """(wheel, sdist): ``$EDGE_SER_DIST``'s, else the working tree's, built once."""
    if "dist" in _built:
        return _built["dist"]
    given = os.environ.get(DIST_ENV)
    if given:
        out = Path(given)
    else:
        out = Path(tempfile.mkdtemp(prefix="edge-ser-test-dist-"))
        atexit.register(shutil.rmtree, out, ignore_errors=True)
        run = subprocess.run(["bash", str(DIST_SH), str(out)], capture_output=True, text=True,
                             env={**os.environ, "PYTHON": sys.executable}, timeout=900)
        if run.returncode != 0:
            pytest.fail(f"tools/dist.sh failed:\n{run.stderr[-3000:]}")
    wheels, sdists = sorted(out.glob("edge_ser-*.whl")), sorted(out.glob("edge_ser-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        pytest.fail(f"{out}: expected one wheel and one sdist, found {wheels + sdists}")
    _built["dist"] = (wheels[0], sdists[0])
    return _built["dist"]


def build_lean_venv(kind: str) -> Path:
    """The cached venv's python (built on first use, from this Python's base interpreter);
    ``wheel``: a venv of the built wheel alone."""
    env = {**os.environ, "PYTHON": getattr(sys, "_base_executable", sys.executable)}
    args = [str(built_dist()[0])] if kind == "wheel" else []
    run = subprocess.run(["bash", str(LEAN_VENV_SH), kind, *args], capture_output=True,
                         text=True, env=env, timeout=1800)
    if run.returncode != 0:
        pytest.fail(f"tools/lean_venv.sh {kind} failed:\n{run.stderr[-2000:]}")
    return Path(run.stdout.strip().splitlines()[-1]) / "bin" / "python"
