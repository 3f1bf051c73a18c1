"""Held-out figures on this machine: a run's fold models, each scored on its own test speakers.

``ser-bench --folds`` with a ``ser-train`` RUN_DIR: for every ``RUN_DIR/folds/fold-k`` the
Keras float model, and (through the exporter's own conversion, calibrated on that fold's
training speakers exactly as ``ser-export`` does) its int8 and float32 TFLite bundles. Each
clip is predicted by the one fold model that never heard its speaker; the predictions are
pooled into one contender per way of running the model (``cnn-keras folds``,
``cnn-int8 folds``, ``cnn-float32 folds``), so the int8-vs-float gap and agreement are
measured on speakers nobody trained on, even when ``--data`` holds only training speakers.

Needs TensorFlow (imported here, and only when ``--folds`` is given).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.contenders import KERAS, TFLITE, Contender, from_run_dir, same_training
from benchmarks.progress import say
from edge.bundle import Bundle, parse_metadata
from edge.errors import EdgeSerError
from export.run import fold_dirs


def _held_out(fold: Contender) -> tuple[str, ...] | None:
    """The fold's test speakers, when they are disjoint from its training speakers."""
    test = tuple(fold.training.get("test_speakers") or ())
    if not test or set(test) & set(fold.seen_speakers):
        return None
    return test


def _pooled(name: str, members: list[Contender], run_dir: Path) -> Contender:
    """One contender standing for ``members`` (fold models with disjoint test speakers)."""
    first = members[0]
    speakers = tuple(sorted({s for m in members for s in m.score_speakers or ()}))
    return replace(
        first, name=name, path=run_dir, members=tuple(members), score_speakers=speakers,
        training={"train_speakers": [], "val_speakers": [],
                  "note": "pooled folds: each clip scored by the fold model that held its"
                          " speaker out"},
        family=f"{run_dir.resolve()}#folds",
    )


def export_options(recorded: dict[str, Any] | None):
    """``ser-export``'s options for a fold: the int8 calibration settings recorded in the
    shipped bundle of the same run (``training.int8_calibration``), so each fold is converted
    the way that bundle was; the exporter's defaults for anything not recorded."""
    from dataclasses import fields

    from export.data import Calibration
    from export.pipeline import ExportOptions

    recorded = recorded or {}
    calibration: dict[str, Any] = {}
    names = {f.name for f in fields(Calibration)}
    if "augmented_copies" in recorded and "augmented_copies" in names:
        calibration["augmented_copies"] = int(recorded["augmented_copies"])
    if "input_clip_sd" in recorded and "input_clip" in names:
        calibration["input_clip"] = recorded["input_clip_sd"]  # None: no clipping
    options: dict[str, Any] = {"calibration": Calibration(**calibration)}
    if "bias_correction" in recorded and "bias_correction" in {
            f.name for f in fields(ExportOptions)}:
        options["bias_correction"] = bool(recorded["bias_correction"])
    return ExportOptions(**options)


def fold_contenders(run: Contender, *, convert: bool = True,
                    calibration: dict[str, Any] | None = None
                    ) -> tuple[list[Contender], list[str]]:
    """Pooled fold contenders of one RUN_DIR contender, and notes on anything skipped.
    ``calibration``: the int8 calibration record of the run's shipped bundle, if any."""
    notes: list[str] = []
    options = export_options(calibration) if convert else None
    found = fold_dirs(run.path)
    if not found:
        return [], [f"--folds: {run.path} has no folds/fold-k directories"]
    keras_members, tflite_members = [], {"int8": [], "float32": []}
    for d in found:
        fold = from_run_dir(d, name=f"{run.kind}-keras {d.name}")
        test = _held_out(fold)
        if test is None:
            notes.append(f"--folds: {d} has no test speakers disjoint from its training"
                         " speakers; skipped")
            continue
        keras_members.append(replace(fold, score_speakers=test))
        if convert:
            try:
                bundles = _convert(d, options)
            except EdgeSerError as e:
                notes.append(f"--folds: {d} not converted to TFLite ({e}); Keras only")
                convert = False
                continue
            for q, data in bundles.items():
                meta = parse_metadata(data, source=f"{d} {q}")
                tflite_members[q].append(replace(
                    fold, name=f"{run.kind}-{q} {d.name}", runtime=TFLITE, quantization=q,
                    size_bytes=len(data), bundle=Bundle(d / f"{q}.tflite", data, meta),
                    score_speakers=test))
    out = []
    if keras_members:
        out.append(_pooled(f"{run.kind}-keras folds", keras_members, run.path))
    for q, members in tflite_members.items():
        if convert and members and len(members) == len(keras_members):
            out.append(_pooled(f"{run.kind}-{q} folds", members, run.path))
    return out, notes


def _convert(fold_dir: Path, options) -> dict[str, bytes]:
    """int8 and float32 bundles of one fold, as ``ser-export`` converts (calibration on the
    fold's own training speakers)."""
    from export.data import of_speakers, run_utterances
    from export.pipeline import convert_run
    from export.run import load_model, read_run

    run = read_run(fold_dir)
    say(f"--folds: converting {fold_dir} (int8 calibrated on its training speakers)")
    utterances = run_utterances(run).all
    converted = convert_run(run, load_model(run), of_speakers(utterances, run.speakers("train")),
                            options, what=f"{run.kind} {fold_dir.name}")
    return dict(converted.bundles)


def all_fold_contenders(contenders: list[Contender], *, convert: bool = True
                        ) -> tuple[list[Contender], list[str]]:
    """Pooled fold contenders of every RUN_DIR among ``contenders``."""
    out, notes = [], []
    runs = [c for c in contenders if c.runtime == KERAS and not c.latency_only]
    if not runs:
        return [], ["--folds needs a ser-train RUN_DIR among the models"]
    for run in runs:
        shipped = next((c for c in contenders if c.is_int8 and c.bundle is not None
                        and same_training(c, run)), None)
        recorded = (shipped.training.get("int8_calibration") or {}) if shipped else None
        if convert:
            notes.append(f"--folds: {run.path}'s folds converted with "
                         + (f"the int8 calibration settings recorded in {shipped.name}"
                            f" ({_settings(recorded)})" if shipped
                            else "ser-export's default settings (no int8 bundle of this run"
                                 " among the models)"))
        found, n = fold_contenders(run, convert=convert, calibration=recorded)
        out += found
        notes += n
    return out, notes


def _settings(recorded: dict[str, Any] | None) -> str:
    keys = ("augmented_copies", "input_clip_sd", "bias_correction")
    return ", ".join(f"{k} {recorded[k] if k != 'bias_correction' else bool(recorded[k])}"
                     for k in keys if recorded and k in recorded) or "none recorded"
