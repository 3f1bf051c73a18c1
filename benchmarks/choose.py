"""Which models a benchmark sets side by side: the arguments (or the shipped bundles), Keras
run directories only with TensorFlow, pooled fold models with ``--folds``, Keras references
for the latency table; and which pooled fold figures stand for which model."""

from __future__ import annotations

from pathlib import Path

from benchmarks.contenders import (
    KERAS,
    Contender,
    default_arguments,
    keras_reference,
    load_contenders,
    same_training,
    tensorflow_available,
)
from benchmarks.data import SpecGroup
from benchmarks.progress import say
from edge.errors import ConfigError
from edge.extras import TRAIN_EXTRA, ExtraMissingError


def choose_models(arguments: list[str], folds: bool, notes: list[str],
                  errors: list[str]) -> list[Contender]:
    """The contenders: ``arguments`` or the shipped bundles; Keras ones only with
    TensorFlow; pooled fold models with ``--folds``. Unusable arguments go to ``errors``."""
    chosen = arguments or default_arguments()
    if not chosen:
        raise ConfigError("no models: no shipped bundles are installed; pass --models"
                          " MODEL.tflite or a RUN_DIR")
    contenders, bad = load_contenders(chosen)
    for message in bad:
        say(message)
    errors += bad
    has_tf = tensorflow_available()
    if not has_tf:
        skipped = [c for c in contenders if c.runtime == KERAS]
        contenders = [c for c in contenders if c.runtime != KERAS]
        for c in skipped:  # asked for by name: an error (exit 2) that names the extra
            message = (f"{c.path}: a Keras RUN_DIR needs TensorFlow, which this install does"
                       f" not have; install the host extra: {TRAIN_EXTRA}")
            say(message)
            errors.append(message)
        notes.append("TensorFlow is not installed: no Keras models or reference; the float"
                     f" side is the float32 TFLite bundle ({TRAIN_EXTRA} adds them).")
    if folds and has_tf:
        from benchmarks.folds import all_fold_contenders

        pooled, fold_notes = all_fold_contenders(contenders)
        contenders += pooled
        notes += fold_notes
    elif folds:
        message = ("--folds needs TensorFlow (Keras fold models), which this install does not"
                   f" have: skipped; install the host extra: {TRAIN_EXTRA}")
        say(message)
        errors.append(message)
    if not contenders:
        if not has_tf and any(e.endswith(TRAIN_EXTRA) for e in errors):
            raise ExtraMissingError("no usable models: Keras RUN_DIRs need TensorFlow;"
                                    f" install the host extra: {TRAIN_EXTRA}")
        raise ConfigError("no usable models (see the messages above)")
    contenders.sort(key=table_order)
    for c in contenders:
        say(f"  {c.name}: {c.runtime} {c.kind} {c.quantization}, {c.size_bytes} bytes")
    return contenders


def table_order(c: Contender) -> tuple:
    """Kind by kind: int8, float32 TFLite, Keras; pooled folds after the single models."""
    rank = 0 if c.is_int8 else 1 if c.runtime != KERAS else 2
    return (c.kind, c.pooled, rank)


def group_of(groups: list[SpecGroup], contender: Contender) -> int:
    return next(i for i, g in enumerate(groups) if contender.name in
                {c.name for c in g.contenders})


def keras_references(models: list[Contender], directory: Path,
                     notes: list[str]) -> list[Contender]:
    """Keras models of the same architecture for kinds that have no RUN_DIR contender."""
    have = {c.kind for c in models if c.runtime == KERAS}
    refs = []
    for c in models:
        if c.bundle is None or c.kind in have or c.kind not in ("cnn", "cnn-lstm"):
            continue
        have.add(c.kind)
        try:
            refs.append(keras_reference(c, directory / c.kind))
        except Exception as e:  # a reference is a nicety; never fail the benchmark for it
            notes.append(f"no Keras reference for {c.kind}: {type(e).__name__}: {e}")
            continue
        notes.append(f"{refs[-1].name}: the {c.kind} architecture in Keras with untrained"
                     " weights, for Keras predict latency and memory only (pass the RUN_DIR"
                     " to time the trained model).")
    return refs


def held_out_by(contenders: list[Contender]) -> dict[str, str]:
    """Model name -> the pooled fold contender that stands for it on held-out speakers: the
    folds of its RUN_DIR (or of the run it was exported from), run the same way."""
    links: dict[str, str] = {}
    runs = {c.path: c for c in contenders if c.runtime == KERAS and not c.pooled}
    for p in (c for c in contenders if c.pooled):
        run = runs.get(p.path)
        if run is None:
            continue
        for c in contenders:
            if c.pooled or c.latency_only or (c.runtime, c.quantization) != (p.runtime,
                                                                              p.quantization):
                continue
            if c is run or same_training(c, run):
                links[c.name] = p.name
    return links
