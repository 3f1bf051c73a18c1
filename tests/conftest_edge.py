"""Helpers for the edge runtime and edge-ser CLI tests (imported by tests/test_edge_*.py and
tests/test_cli_*.py).

The tests run against the shipped bundles in ``edge/models/`` and fail clearly when they
are missing. ``EDGE_SER_TEST_MODELS`` (a directory laid out like ``edge/models/``) replaces
them during development only.
"""

from __future__ import annotations

import os
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from edge.audio import write_wav  # noqa: F401  (re-exported for the edge tests)
from edge.shipped import MODELS_DIR, default_model

REPO = Path(__file__).resolve().parents[1]
EDGE_SER = Path(sys.executable).with_name("edge-ser")
TEST_MODELS_ENV = "EDGE_SER_TEST_MODELS"
FOLD_MODELS = Path(__file__).resolve().parent / "models"
"""Fold 1 of the default family's cross-validation (``tools/make_models.sh``), int8 and
float32: its test speakers (RAVDESS 01-04, named in its metadata) are voices it never heard,
whatever corpora the shipped models were trained on."""


def fold_bundle(quantization: str = "int8") -> Path:
    """``tests/models/fold1-<kind>-<quantization>.tflite``; fails the test when it is missing
    (the microphone, benchmark and accuracy tests need voices their model never heard)."""
    found = sorted(FOLD_MODELS.glob(f"fold1-*-{quantization}.tflite"))
    if len(found) != 1:
        pytest.fail(f"expected one fold1-*-{quantization}.tflite in {FOLD_MODELS}, found"
                    f" {[p.name for p in found]}: tools/make_models.sh exports it")
    return found[0]


def models_dir() -> Path:
    return Path(os.environ.get(TEST_MODELS_ENV) or MODELS_DIR)


def shipped(name: str | None = None) -> Path:
    """A shipped bundle by file stem (``cnn-float32``), or the default one; fails the test
    when it is missing."""
    directory = models_dir()
    try:
        path = default_model(directory) if name is None else directory / f"{name}.tflite"
    except Exception as e:  # ModelError: no DEFAULT
        pytest.fail(f"shipped default model missing ({e}); the export step must put the"
                    f" bundles and DEFAULT into {directory}")
    if not path.is_file():
        pytest.fail(f"shipped model {path} is missing; the export step must produce it")
    return path


def read_wav16(path: Path) -> np.ndarray:
    """The samples of a 16-bit WAV as written by :func:`write_wav`, float32."""
    with wave.open(str(path), "rb") as w:
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def ravdess_wavs(ravdess_dir: Path, out_dir: Path, names: list[str]) -> list[Path]:
    """Real RAVDESS clips (``Actor_XX/name`` without extension) converted to 16-bit WAV in
    ``out_dir`` (a temporary directory: the audio is licensed, never in the repo)."""
    import soundfile

    paths = []
    for name in names:
        matches = sorted(ravdess_dir.glob(f"{name}.*"))
        if not matches:
            pytest.fail(f"RAVDESS clip {name} not found under {ravdess_dir}")
        x, rate = soundfile.read(str(matches[0]), dtype="float32")
        paths.append(write_wav(out_dir / (Path(name).name + ".wav"), x, rate))
    return paths


# A few real clips: different actors (male and female), emotions and intensities.
CLIPS = [
    "Actor_01/03-01-05-02-01-01-01",  # angry, strong, male
    "Actor_02/03-01-01-01-01-01-02",  # neutral, female
    "Actor_03/03-01-03-02-02-01-03",  # happy, strong, male
    "Actor_04/03-01-04-01-02-02-04",  # sad, female
]


def foreign_tflite(bundle_bytes: bytes) -> bytes:
    """A valid TFLite model without edge-ser metadata: the bundle with its metadata entry
    renamed (flatbuffer strings are length-prefixed; same length keeps every offset)."""
    name = b"\x08\x00\x00\x00edge_ser\x00"
    if bundle_bytes.count(name) != 1:
        raise AssertionError("metadata name not found exactly once in the bundle")
    return bundle_bytes.replace(name, b"\x08\x00\x00\x00other_md\x00")
