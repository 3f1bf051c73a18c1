"""Shared fixtures. RAVDESS comes from SER_DATA (default ../shared/data/ravdess-speech-16k);
when CI is set, a missing corpus fails the tests that need it instead of skipping them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ravdess-speech-16k"


def data_dir() -> Path:
    return Path(os.environ.get("SER_DATA") or DEFAULT_DATA)


def _present(path: Path, pattern: str, message: str) -> Path:
    """``path`` when it holds files matching ``pattern``; else skip (fail under CI)."""
    if not path.is_dir() or not any(path.rglob(pattern)):
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
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
