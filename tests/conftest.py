"""Shared fixtures. RAVDESS comes from SER_DATA (default ../shared/data/ravdess-speech-16k);
when CI is set, a missing corpus fails the tests that need it instead of skipping them."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ravdess-speech-16k"


def data_dir() -> Path:
    return Path(os.environ.get("SER_DATA") or DEFAULT_DATA)


LEAN_ENV = "EDGE_SER_LEAN_VENV"
"""Set (by tests/test_lean.py) in the lean edge venvs, which lack the host stack by design."""


def skip_or_fail(message: str, *, fail_under_ci: bool = True) -> NoReturn:
    """Skip the test (or the module, at import), or fail it when CI is set: what a test needs
    is missing (data, a tool, the host stack), and CI must not pass by running less."""
    if fail_under_ci and os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)


def require_module(name: str, hint: str = "pip install -e '.[train]'") -> ModuleType:
    """``pytest.importorskip`` that fails under CI: the module, or skip (fail under CI, except
    in the lean edge venvs, which lack the host stack and LiteRT or tflite-runtime on purpose)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        skip_or_fail(f"{name} not importable ({e}); {hint}",
                     fail_under_ci=not os.environ.get(LEAN_ENV))


def _present(path: Path, pattern: str, message: str) -> Path:
    """``path`` when it holds files matching ``pattern``; else skip (fail under CI)."""
    if not path.is_dir() or not any(path.rglob(pattern)):
        skip_or_fail(message)
    return path


def require_data() -> Path:
    """The RAVDESS directory, or skip (fail under CI) when it is missing."""
    path = data_dir()
    return _present(path, "*-*-*-*-*-*-*.*", f"RAVDESS data not found at {path} (set SER_DATA)")


def require_corpus(name: str) -> Path:
    """A corpus beside RAVDESS in the shared data (``ravdess-song-16k``, ``savee-16k``), or
    skip (fail under CI) when it is missing."""
    path = require_data().parent / name
    return _present(path, "*.*", f"{name} data not found at {path}")


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def song_dir() -> Path:
    """RAVDESS song of the same actors (``ravdess-song-16k``)."""
    return require_corpus("ravdess-song-16k")


@pytest.fixture(scope="session")
def savee_dir() -> Path:
    """SAVEE (``savee-16k``)."""
    return require_corpus("savee-16k")


@pytest.fixture(scope="session")
def nemo_dir() -> Path:
    """nEMO, Polish acted speech (``nemo-16k``)."""
    return require_corpus("nemo-16k")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
