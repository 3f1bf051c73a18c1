"""One ``ser-train`` run: corpora -> features -> speaker-independent folds -> final model.

Layout of RUN_DIR::

    model.keras, core.keras, config.json     the shipped model (all given speakers)
    report.json, report.md, confusion.png    cross-validated scores
    folds/fold-<k>/model.keras, core.keras, config.json, predictions.json
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.clip import FLOOR_DB, MARGIN_SECONDS, TOP_DB
from edge.errors import ConfigError
from edge.features import FeatureSpec, Normalizer
from train.augment import WaveAugment
from train.corpora import Utterance
from train.dataset import (
    CLIP_VERSION,
    choose_validation_speakers,
    extract_inputs,
    sorted_speakers,
    speaker_folds,
)
from train.evaluate import markdown_report, plot_confusion, scores, summarize_folds, write_json
from train.fit import FitResult, TrainConfig, fit_model, predict
from train.labels import LabelMap
from train.models import multiply_adds

HOP_SECONDS = 0.5


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs besides the utterances."""

    out: Path
    spec: FeatureSpec
    train: TrainConfig
    data: tuple[dict[str, str], ...]
    folds: int | None = 4
    test_speakers: tuple[str, ...] | None = None
    val_speakers: int = 2
    augment: WaveAugment | None = field(default_factory=WaveAugment)
    aug_copies: int = 2
    cache_dir: Path | None = None
    use_cache: bool = True
    final: bool = True
    command: str = ""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    out = {"edge_ser": __version__, "python": platform.python_version()}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "librosa", "scikit-learn"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def window_config(plan: RunPlan) -> dict[str, Any]:
    return {"seconds": plan.spec.window_seconds, "clip": "edge.clip.clip_window",
            "trim_top_db": TOP_DB, "margin_seconds": MARGIN_SECONDS, "floor_db": FLOOR_DB,
            "clip_version": CLIP_VERSION}


def _training_dict(plan: RunPlan, train: list[str], val: list[str], test: list[str],
                   epochs: int, augmented: list[str]) -> dict[str, Any]:
    return {
        "data": list(plan.data), "train_speakers": train, "val_speakers": val,
        "test_speakers": test, "augmented_speakers": augmented, "seed": plan.train.seed,
        "epochs": epochs, "augment": asdict(plan.augment) if plan.augment else False,
        "aug_copies": plan.aug_copies if plan.augment else 0,
        "spec_augment": asdict(plan.train.spec_augment) if plan.train.spec_augment else False,
        "loss": plan.train.loss, "cmn": plan.train.cmn, "mixup": plan.train.mixup,
        "label_smoothing": plan.train.label_smoothing, "weight_decay": plan.train.weight_decay,
        "class_weights": plan.train.class_weights,
        "batch_size": plan.train.batch_size, "learning_rate": plan.train.learning_rate,
        "window": window_config(plan),
    }


def save_model(directory: Path, result: FitResult, plan: RunPlan, labels: list[str],
               normalizer: Normalizer, training: dict, accuracy: dict) -> None:
    """model.keras, core.keras and config.json (the contract the exporter reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    core = result.model.get_layer("core")
    result.model.save(directory / "model.keras")
    core.save(directory / "core.keras")
    write_json(directory / "config.json", {
        "features": plan.spec.to_dict(), "labels": labels,
        "normalization": normalizer.to_dict(),
        "model": {"kind": plan.train.kind, "parameters": int(core.count_params()),
                  "multiply_adds": multiply_adds(core)},
        "hop_seconds": HOP_SECONDS, "training": training, "accuracy": accuracy,
        "versions": versions(),
    })


def run(plan: RunPlan, utterances: list[Utterance], label_map: LabelMap) -> dict[str, Any]:
    """Train and evaluate; write RUN_DIR; return the report."""
    started = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    labels = list(label_map.classes)
    utts = [u for u in utterances if label_map(u.label) is not None]
    if not utts:
        raise ConfigError("no utterances left after --classes")
    clean = extract_inputs(utts, plan.spec, cache_dir=plan.cache_dir, use_cache=plan.use_cache,
                           desc="features")
    for _utt, message in clean.failed:
        _log(f"skipped: {message}")
    utts = clean.kept
    x_clean = clean.inputs
    y = np.array([label_map.index(u.label) for u in utts], dtype=np.int64)
    speaker = np.array([u.speaker for u in utts])
    speakers = sorted_speakers(speaker)
    _log(f"{len(utts)} clips, {len(speakers)} speakers, classes: {', '.join(labels)}"
         f" ({clean.computed} feature windows computed, {len(utts) - clean.computed} cached)")

    if plan.test_speakers is not None:
        unknown = sorted(set(plan.test_speakers) - set(speakers))
        if unknown:
            raise ConfigError(f"--test-actors: no clips for {', '.join(unknown)}"
                              f" (speakers in the data: {', '.join(speakers)})")
        test_folds = [sorted_speakers(plan.test_speakers)]
    else:
        test_folds = speaker_folds(speakers, plan.folds or 4)
    held_out = set(test_folds[0]) if plan.test_speakers is not None else set()

    # Augmented copies of every clip that is in some training set (never a held-out one).
    copies: list[np.ndarray] = []
    if plan.augment is not None and plan.aug_copies > 0:
        aug_rows = np.array([s not in held_out for s in speaker])
        aug_utts = [u for u, keep in zip(utts, aug_rows) if keep]
        for c in range(plan.aug_copies):
            ex = extract_inputs(aug_utts, plan.spec, cache_dir=plan.cache_dir,
                                use_cache=plan.use_cache, augment=plan.augment, copy=c,
                                seed=plan.train.seed,
                                desc=f"augmented copy {c + 1}/{plan.aug_copies}")
            if len(ex.kept) != len(aug_utts):
                raise ConfigError("an audio file became unreadable during the run")
            full = np.zeros_like(x_clean)
            full[aug_rows] = ex.inputs
            copies.append(full)
        del ex

    fold_reports: list[dict[str, Any]] = []
    y_true_all: list[np.ndarray] = []
    y_pred_all: list[np.ndarray] = []
    for k, test_spk in enumerate(test_folds):
        rest = [u for u in utts if u.speaker not in set(test_spk)]
        n_rest = len({u.speaker for u in rest})
        val_spk = choose_validation_speakers(rest, min(plan.val_speakers, n_rest - 1),
                                             plan.train.seed + k)
        train_spk = sorted_speakers(u.speaker for u in rest if u.speaker not in set(val_spk))
        tr = np.isin(speaker, train_spk)
        va = np.isin(speaker, val_spk)
        te = np.isin(speaker, test_spk)
        normalizer = Normalizer.fit(x_clean[tr])
        _log(f"fold {k + 1}/{len(test_folds)}: test {', '.join(test_spk)}; val"
             f" {', '.join(val_spk) or '-'}; train {tr.sum()} clips, val {va.sum()},"
             f" test {te.sum()}")
        cfg = replace(plan.train, seed=plan.train.seed + k)
        result = fit_model(len(labels), normalizer, [x_clean[tr]] + [c[tr] for c in copies],
                           y[tr], cfg, x_val=x_clean[va], y_val=y[va],
                           name=f"fold {k + 1} ")
        probs = predict(result.model, x_clean[te])
        y_pred = probs.argmax(axis=1)
        test_scores = scores(y[te], y_pred, labels)
        _log(f"fold {k + 1}: accuracy {test_scores['accuracy']:.3f}, macro-F1"
             f" {test_scores['macro_f1']:.3f}, best epoch {result.best_epoch}"
             f" ({result.seconds:.0f} s)")
        y_true_all.append(y[te])
        y_pred_all.append(y_pred)
        training = _training_dict(plan, train_spk, val_spk, list(test_spk), result.best_epoch,
                                  train_spk if copies else [])
        fold_dir = (plan.out / "folds" / f"fold-{k + 1}") if plan.test_speakers is None \
            else plan.out
        save_model(fold_dir, result, plan, labels, normalizer, training,
                   {"accuracy": test_scores["accuracy"], "macro_f1": test_scores["macro_f1"],
                    "n_clips": test_scores["n"], "test_speakers": list(test_spk)})
        write_json(fold_dir / "predictions.json", {
            "labels": labels,
            "clips": [{"path": str(u.path), "speaker": u.speaker, "label": labels[y[i]],
                       "predicted": labels[int(p)]}
                      for u, i, p in zip([utts[j] for j in np.flatnonzero(te)],
                                         np.flatnonzero(te), y_pred)],
        })
        fold_reports.append({
            "fold": k + 1, "test_speakers": list(test_spk), "val_speakers": val_spk,
            "train_speakers": train_spk,
            "sizes": {"train": int(tr.sum()), "val": int(va.sum()), "test": int(te.sum())},
            "best_epoch": result.best_epoch, "seconds": round(result.seconds, 1),
            "test": test_scores, "history": result.history,
        })

    summary = summarize_folds(fold_reports)
    pooled = scores(np.concatenate(y_true_all), np.concatenate(y_pred_all), labels)
    final_info = None
    if plan.test_speakers is None and plan.final:
        best_epochs = [f["best_epoch"] for f in fold_reports]
        epochs = max(1, int(round(float(np.median(best_epochs)))))
        _log(f"final model: all {len(speakers)} speakers, {epochs} epochs"
             f" (median of the folds' best epochs {best_epochs})")
        normalizer = Normalizer.fit(x_clean)
        cfg = replace(plan.train, epochs=epochs)
        result = fit_model(len(labels), normalizer, [x_clean] + copies, y, cfg, name="final ")
        training = _training_dict(plan, speakers, [], [], epochs, speakers if copies else [])
        training["fold_best_epochs"] = best_epochs
        save_model(plan.out, result, plan, labels, normalizer, training,
                   {**summary, "method": f"{summary['folds']}-fold by speaker"})
        final_info = {"train_speakers": speakers, "epochs": epochs,
                      "fold_best_epochs": best_epochs, "seconds": round(result.seconds, 1)}

    report = {
        "command": plan.command, "model": {"kind": plan.train.kind}, "labels": labels,
        "data": list(plan.data), "n_clips": len(utts), "speakers": speakers,
        "skipped_files": [{"path": str(u.path), "reason": m} for u, m in clean.failed],
        "summary": summary, "pooled": pooled,
        "folds": fold_reports, "final": final_info,
        "seconds": round(time.perf_counter() - started, 1), "versions": versions(),
    }
    write_json(plan.out / "report.json", report)
    (plan.out / "report.md").write_text(markdown_report(report))
    plot_confusion(pooled["confusion"], labels, plan.out / "confusion.png",
                   f"{plan.train.kind}: {summary['folds']} fold(s), accuracy"
                   f" {summary['accuracy_mean']:.3f} ± {summary['accuracy_std']:.3f}")
    return report
