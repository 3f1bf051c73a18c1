"""The model bundles shipped inside the package (``edge/models/``) and ``--model`` lookup.

``edge/models/DEFAULT`` names the default bundle's file. A model argument is either a path
to a ``.tflite`` bundle or a shipped name: the file name with or without ``.tflite``
(``cnn-lstm-int8``), or a kind alone (``cnn-lstm``), which means its int8 bundle.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.bundle import Bundle, load_bundle
from edge.errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_FILE = "DEFAULT"
MODEL_ENV = "EDGE_SER_MODEL"
"""Environment variable naming the model used when none is given (path or shipped name)."""


def shipped_models(models_dir: Path = MODELS_DIR) -> list[Path]:
    """The shipped bundle files, sorted by name."""
    return sorted(models_dir.glob("*.tflite")) if models_dir.is_dir() else []


def default_model(models_dir: Path = MODELS_DIR) -> Path:
    """The shipped default bundle (named by ``edge/models/DEFAULT``)."""
    marker = models_dir / DEFAULT_FILE
    if not marker.is_file():
        raise ModelError(f"no default model: {marker} is missing (a broken install?);"
                         " pass --model PATH to a .tflite bundle")
    name = marker.read_text().strip()
    path = models_dir / name
    if not path.is_file():
        raise ModelError(f"the default model {name!r} named in {marker} is missing;"
                         " pass --model PATH to a .tflite bundle")
    return path


def resolve_model(model: str | os.PathLike | None = None,
                  models_dir: Path = MODELS_DIR) -> Path:
    """Path of a model given as a path, a shipped name, or None (``$EDGE_SER_MODEL``, else
    the default)."""
    if model is None or str(model) == "":
        model = os.environ.get(MODEL_ENV) or None
        if model is None:
            return default_model(models_dir)
    text = str(model)
    path = Path(text)
    if path.exists() or os.sep in text:
        return path  # a path; load_bundle reports a missing or wrong file
    for candidate in (text, f"{text}.tflite", f"{text}-int8.tflite"):
        if (models_dir / candidate).is_file():
            return models_dir / candidate
    if text.endswith(".tflite"):
        return path  # meant as a file here: load_bundle says it does not exist
    names = ", ".join(p.stem for p in shipped_models(models_dir)) or "none installed"
    raise ModelError(f"{text}: no such model file or shipped model (shipped: {names})")


def load_model_bundle(model: str | os.PathLike | None = None) -> Bundle:
    """Load a model given as a path, a shipped name, or None (the default)."""
    return load_bundle(resolve_model(model))
