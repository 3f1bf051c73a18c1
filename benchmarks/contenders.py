"""The models a benchmark sets side by side: TFLite bundles and Keras run directories.

A contender is described without running anything (what it is, what it was trained on);
:func:`runner` builds the thing that turns model inputs into probabilities:

* a ``.tflite`` bundle runs through the runtime's own :class:`edge.classifier.Classifier`
  (the interpreter wrapper, normalisation and int8 quantisation exactly as on the device);
* a ``ser-train`` RUN_DIR (``model.keras`` + ``config.json``) runs in Keras, float32, the
  normalisation inside the model. It needs TensorFlow; without it (a Raspberry Pi) it is
  skipped with a note, and the float side of the comparison is the float32 TFLite bundle.

TensorFlow is imported only when a Keras contender is actually run.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import METADATA_NAME, Bundle, load_bundle, read_tflite_metadata
from edge.errors import EdgeSerError, ModelError
from edge.features import DEFAULT_HOP_SECONDS, FeatureSpec, Normalizer

TFLITE = "tflite"
KERAS = "keras"


@dataclass(frozen=True)
class Contender:
    """One model under test."""

    name: str
    """Unique short name used in tables and file names (``cnn-int8``, ``cnn-keras``)."""
    path: Path
    """The ``.tflite`` bundle, or the RUN_DIR (or fold directory) of a Keras model."""
    runtime: str
    """``"tflite"`` or ``"keras"``."""
    kind: str
    quantization: str
    """``"int8"`` or ``"float32"``."""
    labels: tuple[str, ...]
    spec: FeatureSpec
    normalizer: Normalizer
    training: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0
    """Bytes of the ``.tflite`` bundle, or of ``model.keras``."""
    parameters: int | None = None
    bundle: Bundle | None = None
    score_speakers: tuple[str, ...] | None = None
    """Only clips of these speakers are scored (a fold model on its own test speakers);
    None: every clip."""
    label_map: dict[str, str] = field(default_factory=dict)
    """Corpus label -> model class when training merged or dropped labels; empty: each
    label is its own class."""
    latency_only: bool = False
    """Untrained weights (an architecture reference for speed and memory): never scored."""
    members: tuple[Contender, ...] = ()
    """Fold models pooled into this one (each scores its own ``score_speakers``); empty for
    a single model."""
    family: str = ""
    """Contenders with the same non-empty family are int8/float versions of the same
    models (pooled folds); empty: decided by :func:`same_training`."""
    hop_seconds: float = DEFAULT_HOP_SECONDS
    """Time between interim results, seconds (the bundle's or the run's)."""

    @property
    def pooled(self) -> bool:
        return bool(self.members)

    def class_of(self, label: str) -> int | None:
        """Index of the model class a corpus label counts as, or None."""
        name = self.label_map.get(label, label) if self.label_map else label
        return self.labels.index(name) if name in self.labels else None

    @property
    def seen_speakers(self) -> list[str]:
        """Speakers whose clips were used to fit or select this model (train + validation)."""
        return sorted(set(self.training.get("train_speakers") or ())
                      | set(self.training.get("val_speakers") or ()))

    @property
    def documents_speakers(self) -> bool:
        """Whether the metadata says which speakers the model was trained on."""
        return "train_speakers" in self.training

    @property
    def is_int8(self) -> bool:
        return self.quantization == "int8"

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (no weights)."""
        return {
            "name": self.name, "path": str(self.path), "runtime": self.runtime,
            "kind": self.kind, "quantization": self.quantization, "labels": list(self.labels),
            "size_bytes": self.size_bytes, "parameters": self.parameters,
            "window_seconds": self.spec.window_seconds,
            "input_shape": list(self.spec.input_shape),
            "trained_on_speakers": self.seen_speakers if self.documents_speakers else None,
            "score_speakers": (list(self.score_speakers) if self.score_speakers is not None
                               else None),
            "label_map": self.label_map or None, "latency_only": self.latency_only,
            "hop_seconds": self.hop_seconds,
            "pooled_folds": [str(m.path) for m in self.members] or None,
        }


def tensorflow_available() -> bool:
    """Whether Keras and TensorFlow can be imported (without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "keras"))


def from_bundle(path: str | os.PathLike) -> Contender:
    """A ``.tflite`` bundle (raises :class:`ModelError` if it is not a valid one)."""
    bundle = load_bundle(path)
    meta = bundle.metadata
    parameters = meta.model.get("parameters")
    raw = json.loads(read_tflite_metadata(bundle.model_bytes)[METADATA_NAME])
    label_map = raw.get("label_map") or meta.training.get("label_map") or {}
    return Contender(
        name=Path(path).stem, path=Path(path), runtime=TFLITE, kind=meta.kind,
        quantization=meta.quantization, labels=meta.labels, spec=meta.features,
        normalizer=meta.normalizer, training=dict(meta.training),
        size_bytes=bundle.size_bytes, parameters=int(parameters) if parameters else None,
        bundle=bundle, label_map={str(k): str(v) for k, v in label_map.items()},
        hop_seconds=meta.hop_seconds,
    )


def from_run_dir(path: str | os.PathLike, *, name: str | None = None,
                 score_speakers: tuple[str, ...] | None = None) -> Contender:
    """The Keras float model of a ``ser-train`` RUN_DIR (or of one of its folds), read with
    the exporter's own reader (:func:`export.run.read_run`)."""
    from export.run import read_run

    run = read_run(path)
    parameters = run.model.get("parameters")
    identity = {c: c for c in run.labels}
    return Contender(
        name=name or f"{run.kind}-keras", path=run.directory, runtime=KERAS, kind=run.kind,
        quantization="float32", labels=run.labels, spec=run.spec, normalizer=run.normalizer,
        training=dict(run.training), size_bytes=run.model_path.stat().st_size,
        parameters=int(parameters) if parameters else None, score_speakers=score_speakers,
        label_map={} if run.label_map == identity else dict(run.label_map),
        hop_seconds=run.hop_seconds,
    )


def resolve(argument: str) -> Contender:
    """A ``--models`` argument: a ``.tflite`` path, a RUN_DIR, or a shipped model name."""
    path = Path(argument)
    if path.is_dir():
        return from_run_dir(path)
    if path.is_file():
        return from_bundle(path)
    from edge.shipped import resolve_model

    return from_bundle(resolve_model(argument))


def default_arguments() -> list[str]:
    """The shipped bundles (int8 and their float32 counterparts), as paths."""
    from edge.shipped import shipped_models

    return [str(p) for p in shipped_models()]


def unique_names(contenders: list[Contender]) -> list[Contender]:
    """The same contenders, renamed ``name``, ``name-2``, ... where names repeat."""
    seen: dict[str, int] = {}
    out = []
    for c in contenders:
        seen[c.name] = seen.get(c.name, 0) + 1
        if seen[c.name] > 1:
            c = replace(c, name=f"{c.name}-{seen[c.name]}")
        out.append(c)
    return out


def load_contenders(arguments: list[str]) -> tuple[list[Contender], list[str]]:
    """Contenders for ``arguments``, and one error line per argument that could not be used
    (the others are still benchmarked)."""
    contenders, errors = [], []
    for argument in arguments:
        try:
            contenders.append(resolve(argument))
        except EdgeSerError as e:
            errors.append(str(e))
    return unique_names(contenders), errors


IDENTITY_KEYS = ("seed", "epochs", "loss", "aug_copies", "train_speakers", "val_speakers",
                 "test_speakers")
"""Training-record fields that a bundle and the run it was exported from share."""


def same_training(a: Contender, b: Contender) -> bool:
    """Whether two contenders come from one trained model (an int8 bundle and its float
    counterpart): same kind, labels, features and normalisation statistics, and the same
    training record where both have one (seed, epochs, speakers, ...), so a re-trained run on
    the same data is not taken for the bundle's source."""
    if not (a.kind == b.kind and a.labels == b.labels
            and a.spec.to_dict() == b.spec.to_dict()
            and a.normalizer.mean.shape == b.normalizer.mean.shape
            and np.allclose(a.normalizer.mean, b.normalizer.mean, rtol=1e-5, atol=1e-5)
            and np.allclose(a.normalizer.std, b.normalizer.std, rtol=1e-5, atol=1e-5)):
        return False
    common = [k for k in IDENTITY_KEYS if k in a.training and k in b.training]
    return all(a.training[k] == b.training[k] for k in common)


def float_counterparts(contenders: list[Contender]) -> list[tuple[Contender, Contender]]:
    """``(int8, float)`` pairs from the same trained model, int8 first."""
    pairs = []
    for q in contenders:
        if not q.is_int8 or q.latency_only:
            continue
        for f in contenders:
            if f.is_int8 or f.latency_only or q.family != f.family:
                continue
            if q.family or (same_training(q, f) and q.score_speakers == f.score_speakers):
                pairs.append((q, f))
    return pairs


def keras_reference(template: Contender, directory: Path) -> Contender:
    """A Keras float model with ``template``'s architecture (``train.models``), features,
    labels and normalisation but untrained weights, saved as a RUN_DIR in ``directory``:
    what a user without the edge runtime would run, for speed and memory only."""
    from train.models import build_core, with_normalization

    directory.mkdir(parents=True, exist_ok=True)
    core = build_core(template.kind, template.spec.input_shape, len(template.labels))
    with_normalization(core, template.normalizer).save(directory / "model.keras")
    (directory / "config.json").write_text(json.dumps({
        "features": template.spec.to_dict(), "labels": list(template.labels),
        "normalization": template.normalizer.to_dict(),
        "model": {"kind": template.kind, "parameters": int(core.count_params())},
        "hop_seconds": template.hop_seconds,
        "training": {"note": "untrained weights: a latency and memory reference only"},
    }))
    ref = from_run_dir(directory, name=f"{template.kind}-keras (architecture)")
    return replace(ref, latency_only=True)


# --------------------------------------------------------------------------------------
# Running a contender: model inputs -> probabilities
# --------------------------------------------------------------------------------------


class TfliteRunner:
    """A bundle through the runtime's classifier: un-normalised inputs -> probabilities."""

    def __init__(self, contender: Contender, *, threads: int = 1) -> None:
        from edge.classifier import Classifier

        if contender.bundle is None:
            raise ModelError(f"{contender.path}: not a TFLite bundle")
        self.contender = contender
        self.classifier = Classifier(contender.bundle, threads=threads)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, *input_shape)`` un-normalised float32 -> ``(n, n_labels)`` probabilities,
        one window at a time (:meth:`edge.classifier.Classifier.classify_features`)."""
        return self.classifier.probabilities(inputs)


class KerasRunner:
    """A RUN_DIR's ``model.keras`` (normalisation inside): un-normalised inputs -> probs."""

    def __init__(self, contender: Contender) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from export.run import load_model, read_run

        logging.getLogger("tensorflow").setLevel(logging.ERROR)  # no retracing chatter
        self.contender = contender
        self.model = load_model(read_run(contender.path))

    def predict(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        if len(inputs) == 0:
            return np.zeros((0, len(self.contender.labels)), dtype=np.float32)
        return np.asarray(self.model.predict(inputs, batch_size=batch_size, verbose=0),
                          dtype=np.float32)

    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """``model.predict`` on one window, as a user of the Keras model would call it."""
        return self.model.predict(x[None], verbose=0)


def runner(contender: Contender, *, threads: int = 1) -> TfliteRunner | KerasRunner:
    if contender.runtime == KERAS:
        return KerasRunner(contender)
    return TfliteRunner(contender, threads=threads)
