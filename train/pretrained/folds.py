"""Speaker folds and the report of a clip-level model, as ``--model rf`` writes them.

One row of features per clip and a ``fit_predict`` function: each fold trains on the other
speakers and predicts its own (speakers from :func:`train.dataset.speaker_folds`, or the
``--test-actors``), and the run directory gets report.json, report.md and confusion.png with
the keys and helpers of :mod:`train.baseline` (:mod:`train.evaluate`'s scores, summary,
Markdown and confusion plot).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError
from train.dataset import sorted_speakers, speaker_folds
from train.evaluate import markdown_report, plot_confusion, scores, summarize_folds, write_json
from train.plan import versions

FitPredict = Callable[[int, np.ndarray, np.ndarray], np.ndarray]
"""``(fold index, train rows mask, test rows mask) -> predicted class indices of the test
rows``."""


def held_out_folds(speaker: np.ndarray, folds: int, test_speakers: tuple[str, ...] | None
               ) -> list[list[str]]:
    """The test speakers of each fold: ``--test-actors`` as one fold, else K-fold."""
    speakers = sorted_speakers(speaker)
    if test_speakers is not None:
        if not set(test_speakers) <= set(speakers):
            raise ConfigError("--test-actors: some speakers have no clips")
        return [sorted_speakers(test_speakers)]
    return speaker_folds(speakers, folds)


def cross_validate(y: np.ndarray, speaker: np.ndarray, labels: list[str],
                   folds: list[list[str]], fit_predict: FitPredict) -> dict[str, Any]:
    """Every fold scored on its held-out speakers: ``{"folds", "summary", "pooled"}`` as in
    rf's report."""
    fold_reports, trues, preds = [], [], []
    for k, test_spk in enumerate(folds):
        te = np.isin(speaker, test_spk)
        started = time.perf_counter()
        pred = fit_predict(k, ~te, te)
        s = scores(y[te], pred, labels)
        print(f"fold {k + 1}/{len(folds)}: accuracy {s['accuracy']:.3f}, macro-F1"
              f" {s['macro_f1']:.3f}", file=sys.stderr)
        trues.append(y[te])
        preds.append(pred)
        fold_reports.append({
            "fold": k + 1, "test_speakers": list(test_spk), "val_speakers": [],
            "train_speakers": sorted_speakers(speaker[~te]),
            "sizes": {"train": int((~te).sum()), "val": 0, "test": int(te.sum())},
            "seconds": round(time.perf_counter() - started, 1), "test": s,
        })
    return {"folds": fold_reports, "summary": summarize_folds(fold_reports),
            "pooled": scores(np.concatenate(trues), np.concatenate(preds), labels)}


def write_report(out: Path, cv: dict[str, Any], *, command: str, model: dict[str, Any],
                 labels: list[str], data: tuple[dict, ...], n_clips: int, speakers: list[str],
                 skipped: list[dict[str, str]], started: float) -> dict[str, Any]:
    """report.json, report.md and confusion.png of ``cv`` in ``out``; returns the report."""
    summary = cv["summary"]
    report = {
        "command": command, "model": model, "labels": labels, "data": list(data),
        "extra_data": [], "eval_data": [], "n_clips": n_clips, "n_extra_clips": 0,
        "speakers": speakers, "skipped_files": skipped,
        "summary": summary, "pooled": cv["pooled"], "folds": cv["folds"], "final": None,
        "cv_from": None,
        "seconds": round(time.perf_counter() - started, 1), "versions": versions(),
    }
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown_report(report))
    plot_confusion(cv["pooled"]["confusion"], labels, out / "confusion.png",
                   f"{model['kind']}: {summary['folds']} fold(s), accuracy"
                   f" {summary['accuracy_mean']:.3f} ± {summary['accuracy_std']:.3f}")
    return report
