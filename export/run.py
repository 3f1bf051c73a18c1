"""A training run directory, as ``ser-train`` writes it (the exporter's input).

Layout read here::

    RUN_DIR/model.keras      features -> "normalize" (training-fold mean/std) -> "core"
    RUN_DIR/config.json      features, labels, normalization, model, hop_seconds, training,
                             accuracy, versions
    RUN_DIR/folds/fold-<k>/  the same for each cross-validation fold (optional)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, ModelError
from edge.features import DEFAULT_HOP_SECONDS, FeatureSpec, Normalizer

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
CORE_LAYER = "core"
NORMALIZE_LAYER = "normalize"


@dataclass(frozen=True)
class RunConfig:
    """What ``config.json`` says about one trained model."""

    directory: Path
    spec: FeatureSpec
    labels: tuple[str, ...]
    normalizer: Normalizer
    model: dict[str, Any]
    """``kind``, ``parameters`` (and ``multiply_adds`` when training recorded it)."""
    hop_seconds: float
    training: dict[str, Any]
    accuracy: dict[str, Any]
    label_map: dict[str, str]
    """Corpus label -> model class; corpus labels not in it are not used."""
    versions: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.model.get("kind", "unknown"))

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL_FILE

    def speakers(self, side: str) -> list[str]:
        """``train``, ``val`` or ``test`` speakers recorded by training."""
        return [str(s) for s in self.training.get(f"{side}_speakers") or []]


def read_run(directory: str | Path) -> RunConfig:
    """Read and check ``config.json`` of a run (or fold) directory; ConfigError if unusable."""
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"{directory}: no such run directory (train one with ser-train)")
    path = d / CONFIG_FILE
    if not path.is_file() and (d / "model.pkl").is_file():
        raise ConfigError(f"{d}: a run of a classical kind (model.pkl, scikit-learn) is"
                          " host-only: it has no int8 TFLite form for the device")
    if not path.is_file():
        raise ConfigError(f"{d}: no {CONFIG_FILE}; is this a ser-train run directory?")
    if not (d / MODEL_FILE).is_file():
        raise ConfigError(f"{d}: no {MODEL_FILE}; is this a ser-train run directory?")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not readable JSON ({e})") from None
    try:
        spec = FeatureSpec.from_dict(data["features"])
        normalizer = Normalizer.from_dict(data["normalization"])
        labels = tuple(str(x) for x in data["labels"])
        model = dict(data["model"])
    except KeyError as e:
        raise ConfigError(f"{path}: lacks {e}") from None
    if normalizer.mean.shape != (spec.frontend.n_mfcc, spec.channels):
        raise ConfigError(f"{path}: normalization shape {normalizer.mean.shape} does not fit"
                          f" the features ({spec.frontend.n_mfcc}, {spec.channels})")
    label_map = data.get("label_map") or {c: c for c in labels}
    unknown = sorted(set(label_map.values()) - set(labels))
    if unknown:
        raise ConfigError(f"{path}: label_map names classes not in labels: {unknown}")
    return RunConfig(
        directory=d, spec=spec, labels=labels, normalizer=normalizer, model=model,
        hop_seconds=float(data.get("hop_seconds", DEFAULT_HOP_SECONDS)),
        training=dict(data.get("training") or {}), accuracy=dict(data.get("accuracy") or {}),
        label_map={str(k): str(v) for k, v in label_map.items()},
        versions=dict(data.get("versions") or {}),
    )


def fold_dirs(directory: str | Path) -> list[Path]:
    """``RUN_DIR/folds/fold-<k>`` directories that hold a model, in fold order."""
    root = Path(directory) / "folds"
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = re.fullmatch(r"fold-(\d+)", d.name)
        if m and (d / MODEL_FILE).is_file() and (d / CONFIG_FILE).is_file():
            found.append((int(m.group(1)), d))
    return [d for _, d in sorted(found)]


def load_model(run: RunConfig):
    """The run's Keras model (uncompiled); checks it has the ``normalize`` and ``core`` parts
    and that its normalisation is the one in ``config.json``."""
    import keras

    import train.lstm  # noqa: F401  (registers UnrolledLSTM, the CNN+LSTM's layer)

    try:
        model = keras.models.load_model(run.model_path, compile=False)
    except Exception as e:  # keras raises ValueError, OSError, TypeError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{run.model_path}: Keras cannot load it ({first})") from None
    names = {layer.name for layer in model.layers}
    missing = sorted({CORE_LAYER, NORMALIZE_LAYER} - names)
    if missing:
        raise ModelError(f"{run.model_path}: no layer(s) {', '.join(map(repr, missing))}; the"
                         " exporter needs features -> normalize -> core (as ser-train builds)")
    layer = model.get_layer(NORMALIZE_LAYER)
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean)).reshape(run.normalizer.mean.shape)
    var = np.asarray(keras.ops.convert_to_numpy(layer.variance)).reshape(mean.shape)
    if not (np.allclose(mean, run.normalizer.mean, rtol=1e-4, atol=1e-4)
            and np.allclose(np.sqrt(var), run.normalizer.std, rtol=1e-4, atol=1e-4)):
        raise ModelError(f"{run.model_path}: its normalize layer differs from the"
                         f" normalization in {CONFIG_FILE}; the run directory is inconsistent")
    core = model.get_layer(CORE_LAYER)
    expected = (None, *run.spec.input_shape)
    if tuple(core.input_shape) != expected or core.output_shape[-1] != len(run.labels):
        raise ModelError(f"{run.model_path}: core takes {core.input_shape} and gives"
                         f" {core.output_shape}; the config says {expected} -> "
                         f"{len(run.labels)} labels")
    return model
