"""``ser-export``'s work: a run directory -> a verified ``.tflite`` bundle and its report.

1. Read the run (``config.json`` + ``model.keras``) and its corpora.
2. Convert ``core`` to int8 (calibrated on training-fold clips) and to float32; refuse any
   graph with non-builtin ops, or (int8) any float tensor.
3. Verify on held-out speakers — the run's test speakers, or, for a model trained on every
   speaker, each cross-validation fold's model converted the same way and scored on that
   fold's test speakers: float Keras vs float32 TFLite vs int8 TFLite.
4. Write the requested bundle (metadata embedded) and ``<name>.export.json`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.bundle import Bundle, load_bundle
from edge.errors import ConfigError
from export.convert import QUANTIZATIONS, convert, convert_full_int8
from export.correct import bias_corrected
from export.data import (
    Calibration,
    RunClips,
    calibration_inputs,
    clips,
    of_speakers,
    run_utterances,
)
from export.embed import write_bundle_metadata
from export.errors import ExportError
from export.files import write_atomic
from export.graph import GraphSummary, require_builtin_ops, summarize
from export.metadata import bundle_metadata
from export.run import CORE_LAYER, RunConfig, fold_dirs, load_model, read_run
from export.verify import bundle_probs, compare, keras_probs, pooled
from train.kinds import require_exportable

SIZE_TARGETS = {"cnn": 100 * 1024, "cnn-lstm": 150 * 1024}
"""int8 bundle size targets per model kind, bytes (KB = 1024 bytes, as ``edge-ser info``
prints sizes)."""
AGREEMENT_TARGET = 0.97
"""int8 vs float32 TFLite top-1 agreement on held-out speakers, at least."""
ACCURACY_GAP_TARGET = 0.01
"""int8 accuracy may be at most this far below float32 accuracy on held-out speakers."""


@dataclass(frozen=True)
class ExportOptions:
    """What ``ser-export`` was asked for."""

    quantization: str = "int8"
    calibration: Calibration = field(default_factory=Calibration)
    bias_correction: bool = True
    """Cancel the mean output shift of int8 weight rounding before converting (correct.py)."""
    data: tuple[Path, ...] = ()
    """Corpus directories replacing the paths recorded in the run, one per corpus."""
    cache_dir: Path | None = None
    progress: bool = True


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Converted:
    """One Keras model as float32 and int8 TFLite bundles (metadata embedded)."""

    bundles: dict[str, bytes]
    graphs: dict[str, GraphSummary]
    calibration: dict[str, Any]


def convert_run(run: RunConfig, model, train_utterances, options: ExportOptions, *,
                what: str) -> Converted:
    """Calibrate on ``train_utterances`` and convert ``model``'s core to both formats; each
    graph is checked (builtin ops only; int8: nothing float)."""
    x_cal, cal_info = calibration_inputs(run, train_utterances, options.calibration,
                                         cache_dir=options.cache_dir, progress=options.progress)
    _log(f"{what}: converting (int8 calibrated on {len(x_cal)} inputs from"
         f" {cal_info['clips']} training clips of {len(cal_info['speakers'])} speakers)")
    core = model.get_layer(CORE_LAYER)
    int8_source = core
    if options.bias_correction:
        int8_source, record = bias_corrected(core, x_cal[::max(1, len(x_cal) // 400)])
        cal_info["bias_correction"] = record.to_dict()
    else:
        cal_info["bias_correction"] = False
    int8 = convert_full_int8(int8_source, x_cal, what=f"{what} int8")
    raw = {"int8": int8, "float32": convert(core, "float32")}
    graphs = {q: summarize(b) for q, b in raw.items()}
    require_builtin_ops(graphs["float32"], what=f"{what} float32")
    bundles = {q: write_bundle_metadata(b, bundle_metadata(run, q, calibration=cal_info))
               for q, b in raw.items()}
    return Converted(bundles, graphs, cal_info)


def _in_memory(name: str, model_bytes: bytes) -> Bundle:
    from edge.bundle import parse_metadata

    return Bundle(Path(name), model_bytes, parse_metadata(model_bytes, source=name))


def _check_held_out(run: RunConfig, what: str) -> list[str]:
    test = run.speakers("test")
    seen = set(run.speakers("train")) | set(run.speakers("val"))
    overlap = sorted(set(test) & seen)
    if overlap:
        raise ExportError(f"{what}: speakers {overlap} are both held out and used in training;"
                          " the run's split is not speaker-independent")
    return test


def verify_held_out(run: RunConfig, model, converted: Converted, corpus: RunClips,
                    options: ExportOptions, *, what: str) -> tuple[np.ndarray, dict, dict]:
    """Score the three paths of one model on its held-out speakers (not used for training or
    calibration). Returns labels, probabilities per path, and the comparison."""
    test = _check_held_out(run, what)
    held = clips(run, of_speakers(corpus.scored, test),
                 cache_dir=options.cache_dir,
                 progress=options.progress, desc=f"{what} held-out")
    windows = {
        "keras_float": keras_probs(model, held.inputs),
        "tflite_float32": bundle_probs(_in_memory(f"{what} float32",
                                                  converted.bundles["float32"]), held.inputs),
        "tflite_int8": bundle_probs(_in_memory(f"{what} int8", converted.bundles["int8"]),
                                    held.inputs),
    }
    probs = {k: held.recording_probs(v) for k, v in windows.items()}
    report = compare(held.labels, probs, run.labels)
    report["windows"] = int(len(held.inputs))
    report["speakers"] = test
    _log(f"{what}: held-out {report['clips']} clips of {len(test)} speakers: accuracy"
         f" keras {report['accuracy']['keras_float']:.3f}, float32"
         f" {report['accuracy']['tflite_float32']:.3f}, int8"
         f" {report['accuracy']['tflite_int8']:.3f}; int8/float32 agreement"
         f" {report['agreement']['int8_vs_float32']:.3f}")
    return held.labels, probs, report


def _targets(kind: str, size: int, verification: dict[str, Any]) -> dict[str, Any]:
    agree = verification["agreement"]["int8_vs_float32"]
    gap = verification["accuracy"]["tflite_float32"] - verification["accuracy"]["tflite_int8"]
    out: dict[str, Any] = {
        "int8_vs_float32_agreement_min": AGREEMENT_TARGET,
        "agreement_met": agree >= AGREEMENT_TARGET,
        "int8_accuracy_gap_max": ACCURACY_GAP_TARGET,
        "accuracy_gap_met": gap <= ACCURACY_GAP_TARGET + 1e-9,
    }
    if kind in SIZE_TARGETS:
        out["size_bytes_max"] = SIZE_TARGETS[kind]
        out["size_met"] = size <= SIZE_TARGETS[kind]
    return out




def portable_path(path: Path, base: Path | None = None) -> str:
    """``path`` as the report records it: relative to ``base`` (the working directory) when
    it lies under it (``runs/cnn``), else its name alone. Never absolute: the report is
    committed and copied beside the bundle, and a path of the machine that exported it means
    nothing elsewhere (tests/test_package.py fails a distribution that carries one)."""
    resolved, base = path.resolve(), (base or Path.cwd()).resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return resolved.name


def report_path(out: Path) -> Path:
    """``model.tflite`` -> ``model.export.json`` (beside the bundle)."""
    return out.with_name(f"{out.stem}.export.json")


@dataclass(frozen=True)
class HeldOutCase:
    """One model scored on speakers it never saw: the run itself, or one of its folds."""

    name: str
    run: RunConfig
    model: Any = None
    """The loaded Keras model, or None to load it from ``run``."""


def held_out_cases(run: RunConfig, model) -> tuple[list[HeldOutCase], str, str]:
    """Where the run is verified: its own test speakers, else each fold's model on that
    fold's test speakers. Returns the cases and a long and a short description."""
    if run.speakers("test"):
        return ([HeldOutCase(run.kind, run, model)],
                "the run's test speakers (not used for training or calibration)",
                "test speakers")
    folds = fold_dirs(run.directory)
    if not folds:
        raise ConfigError(f"{run.directory}: no held-out speakers to verify on (no test"
                          " speakers and no folds/); train with --folds K or --test-actors")
    cases = [HeldOutCase(f"{run.kind} {d.name.replace('-', ' ')}", read_run(d)) for d in folds]
    names = ", ".join(d.name for d in folds)
    return (cases,
            f"cross-validation by speaker ({names}): each fold's model converted the same way"
            " (calibrated on its training speakers) and scored on its test speakers",
            f"cross-validation by speaker ({names}; fold models)")


def verify_cases(cases: list[HeldOutCase], run: RunConfig, corpus: RunClips,
                 options: ExportOptions) -> tuple[dict[str, Any], Converted | None]:
    """Convert and score every case; the pooled comparison (with per-fold details), and the
    conversion of ``run`` itself when it is one of the cases."""
    main: Converted | None = None
    labels_all, probs_all, per_case = [], [], []
    for case in cases:
        model = case.model if case.model is not None else load_model(case.run)
        train_utts = of_speakers(corpus.all, case.run.speakers("train"))
        converted = convert_run(case.run, model, train_utts, options, what=case.name)
        if case.run is run:
            main = converted
        labels, probs, rep = verify_held_out(case.run, model, converted, corpus, options,
                                             what=case.name)
        rep["calibration"] = converted.calibration
        rep["size_bytes"] = {q: len(b) for q, b in converted.bundles.items()}
        labels_all.append(labels)
        probs_all.append(probs)
        per_case.append({"name": case.name, **rep})
    verification = pooled(labels_all, probs_all, run.labels)
    if len(per_case) > 1:
        verification["folds"] = per_case
    else:
        verification["speakers"] = per_case[0]["speakers"]
    return verification, main


def training_clips_check(run: RunConfig, model, converted: Converted, utterances,
                         options: ExportOptions) -> dict[str, Any]:
    """The three paths of a model on its own training clips: not a held-out score, only a
    check that the shipped model's conversion matches its float model."""
    own = clips(run, of_speakers(utterances, run.speakers("train")),
                cache_dir=options.cache_dir, progress=options.progress,
                desc=f"{run.kind} training clips")
    probs = {"keras_float": keras_probs(model, own.inputs)}
    for q in ("float32", "int8"):
        probs[f"tflite_{q}"] = bundle_probs(_in_memory(f"{run.kind} {q}", converted.bundles[q]),
                                            own.inputs)
    check = compare(own.labels, {k: own.recording_probs(v) for k, v in probs.items()},
                    run.labels)
    check["note"] = ("the shipped model on its own training clips: NOT held-out; only a check"
                     " that its conversion matches its float model")
    _log(f"{run.kind}: on its {check['clips']} training clips (not held-out) int8/float32"
         f" agreement {check['agreement']['int8_vs_float32']:.3f}")
    return check


def held_out_summary(verification: dict[str, Any], quantization: str,
                     method: str) -> dict[str, Any]:
    """The verification in a few numbers, for the bundle's own metadata."""
    path = f"tflite_{quantization}"
    return {
        "method": method,
        "clips": verification["clips"],
        "accuracy": verification["accuracy"][path],
        "macro_f1": verification["macro_f1"][path],
        "float32_accuracy": verification["accuracy"]["tflite_float32"],
        "int8_vs_float32_agreement": verification["agreement"]["int8_vs_float32"],
    }


def export_run(run_dir: str | Path, out: str | Path, options: ExportOptions) -> dict[str, Any]:
    """Convert, verify and write one bundle; returns the report written beside it."""
    started = time.perf_counter()
    if options.quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization {options.quantization!r}: choose"
                          f" {' or '.join(QUANTIZATIONS)}")
    out = Path(out)
    if out.suffix != ".tflite":
        raise ConfigError(f"--out {out}: the bundle's name must end in .tflite")
    run = read_run(run_dir)
    require_exportable(run.kind)
    corpus = run_utterances(run, options.data)
    model = load_model(run)

    cases, method, short_method = held_out_cases(run, model)
    verification, main = verify_cases(cases, run, corpus, options)
    verification["method"] = method
    check = None
    if main is None:  # a model trained on every speaker: convert it as its folds were
        main = convert_run(run, model, of_speakers(corpus.all, run.speakers("train")),
                           options, what=run.kind)
        check = training_clips_check(run, model, main, corpus.all, options)

    final = {
        q: write_bundle_metadata(main.bundles[q], bundle_metadata(
            run, q, calibration=main.calibration if q == "int8" else None,
            held_out=held_out_summary(verification, q, short_method)))
        for q in QUANTIZATIONS
    }
    q = options.quantization
    write_atomic(out, final[q])
    bundle = load_bundle(out)  # read back exactly as the device will
    graph = summarize(bundle.model_bytes)
    report: dict[str, Any] = {
        "bundle": out.name,
        "run": portable_path(run.directory),
        "quantization": q,
        "kind": run.kind,
        "size_bytes": bundle.size_bytes,
        "sha256": hashlib.sha256(bundle.model_bytes).hexdigest(),
        "sizes_bytes": {qq: len(b) for qq, b in final.items()},
        "ops": graph.op_counts,
        "graph": graph.to_dict(),
        "labels": list(run.labels),
        "frontend_hash": run.spec.frontend.config_hash(),
        "calibration": main.calibration,
        "verification": verification,
        "targets": _targets(run.kind, len(final["int8"]), verification),
        "versions": _versions(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if check is not None:
        report["training_clips_check"] = check
    write_atomic(report_path(out), (json.dumps(report, indent=2) + "\n").encode())
    return report


def _versions() -> dict[str, str]:
    import importlib.metadata

    out = {"edge_ser": __version__}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
