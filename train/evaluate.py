"""Scores and reports: accuracy, macro-F1, per-class figures, confusion matrix, fold summary.

``report.json`` is the machine-readable record; ``report.md`` and ``confusion.png`` are for
people. Per-class figures and the confusion matrix pool the test predictions of all folds
(every clip is tested exactly once); accuracy and macro-F1 are also given per fold with
their mean and standard deviation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from train.plots import plot_confusion  # noqa: F401  (re-exported for run/baseline)


def scores(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix
    (rows true, columns predicted) over ``labels``."""
    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=idx, average="macro",
                                   zero_division=0)),
        "n": int(len(y_true)),
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                  "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


def summarize_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and population standard deviation over folds of accuracy and macro-F1, and (when
    the folds have them) of the interim accuracy, each room condition and each other
    corpus."""
    def stats(values: list[float]) -> tuple[float, float]:
        a = np.asarray(values, dtype=np.float64)
        return float(a.mean()), float(a.std())

    acc = stats([f["test"]["accuracy"] for f in folds])
    f1 = stats([f["test"]["macro_f1"] for f in folds])
    out: dict[str, Any] = {
        "folds": len(folds),
        "accuracy_mean": acc[0], "accuracy_std": acc[1],
        "macro_f1_mean": f1[0], "macro_f1_std": f1[1],
        "n_clips": int(sum(f["test"]["n"] for f in folds)),
        "no_speech": int(sum(f["test"].get("no_speech", 0) for f in folds)),
    }
    if all("interim" in f for f in folds):
        out["interim_accuracy_mean"], out["interim_accuracy_std"] = stats(
            [f["interim"]["accuracy"] for f in folds])
    for group in ("conditions", "corpora"):
        names = folds[0].get(group, {}).keys() if folds else []
        if names:
            out[group] = {n: dict(zip(("mean", "std"), stats(
                [f[group][n]["accuracy"] for f in folds]))) for n in names}
    return out


def differences_text(differences: dict[str, dict[str, Any]], *, code: bool = False) -> str:
    """``--cv-from``'s recipe differences as one line ("none" without any)."""
    q = "`" if code else ""
    return "; ".join(f"{q}{k}{q} {v['cv_run']} there, {v['this_run']} here"
                     for k, v in differences.items()) or "none"


def _cv_from_lines(report: dict[str, Any]) -> list[str]:
    cv = report.get("cv_from")
    if not cv:
        return []
    diffs = differences_text(cv["differences"], code=True)
    return [f"Cross-validation taken from `{cv['run']}` (`{cv['command']}`); this run trained"
            f" only the shipped model. Differences of the recipe: {diffs}.", ""]


def _folds_text(summary: dict[str, Any]) -> str:
    """``4``, or ``1, 2 of 4`` for part of a cross-validation (``--only-folds``)."""
    if summary.get("only_folds"):
        return f"{', '.join(map(str, summary['only_folds']))} of {summary['of_folds']}"
    return str(summary["folds"])


def _final_speaker_lines(report: dict[str, Any]) -> list[str]:
    per = (report.get("final") or {}).get("speakers_per_corpus")
    if not per:
        return []
    return ["The shipped model trained on " + ", ".join(f"{n} {c} speakers" for c, n in
                                                        per.items()) + ".", ""]


def markdown_report(report: dict[str, Any]) -> str:
    """``report.md``: the summary table, per-fold figures, per-class figures."""
    s = report["summary"]
    labels = report["labels"]
    lines = [
        f"# ser-train report: {report['model']['kind']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Data: {', '.join(d['corpus'] + ' ' + d['path'] for d in report['data'])};"
        f" {report['n_clips']} clips, {len(report['speakers'])} speakers, "
        f"{len(labels)} classes.",
        "",
        *_cv_from_lines(report),
        *_final_speaker_lines(report),
        "| model | folds | accuracy | macro-F1 | interim accuracy | clips tested |",
        "|---|---|---|---|---|---|",
        f"| {report['model']['kind']} | {_folds_text(s)} | {s['accuracy_mean']:.3f} ±"
        f" {s['accuracy_std']:.3f} | {s['macro_f1_mean']:.3f} ± {s['macro_f1_std']:.3f} |"
        f" {_pm(s, 'interim_accuracy')} | {s['n_clips']} |",
        "",
        "Mean ± standard deviation over speaker-independent folds (no speaker in two"
        " sides of a split). Each held-out recording is scored as `edge-ser predict` scores"
        " a file: endpointed utterances, their windows, the speech-weighted average"
        f" ({s.get('no_speech', 0)} recordings got no result and count as wrong). Interim:"
        " the utterance so far at every hop, as `edge-ser listen` shows it live.",
        "",
    ]
    if s.get("conditions") or s.get("corpora"):
        lines += ["| held-out speakers under | accuracy |", "|---|---|",
                  f"| as recorded | {s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f} |"]
        lines += [f"| {n} | {v['mean']:.3f} ± {v['std']:.3f} |"
                  for n, v in s.get("conditions", {}).items()]
        lines += [f"| other corpus: {n} (fold models) | {v['mean']:.3f} ± {v['std']:.3f} |"
                  for n, v in s.get("corpora", {}).items()]
        final = (report.get("final") or {}).get("corpora", {})
        lines += [f"| other corpus: {n} (shipped model) | {v['accuracy']:.3f} |"
                  for n, v in final.items()]
        lines += [""]
    lines += [
        "## Folds",
        "",
        "| fold | test speakers | val speakers | train/val/test clips | best epoch |"
        " accuracy | macro-F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in report["folds"]:
        sizes = f["sizes"]
        lines.append(
            f"| {f['fold']} | {', '.join(f['test_speakers'])} |"
            f" {', '.join(f['val_speakers']) or '-'} |"
            f" {sizes['train']}/{sizes['val']}/{sizes['test']} | {f.get('best_epoch', '-')} |"
            f" {f['test']['accuracy']:.3f} | {f['test']['macro_f1']:.3f} |"
        )
    pooled = report["pooled"]
    lines += ["", "## Per class (test predictions of all folds pooled)", "",
              "| class | precision | recall | F1 | clips |", "|---|---|---|---|---|"]
    for lab in labels:
        c = pooled["per_class"][lab]
        lines.append(f"| {lab} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |"
                     f" {c['support']} |")
    lines += ["", f"Pooled accuracy {pooled['accuracy']:.3f}, macro-F1"
              f" {pooled['macro_f1']:.3f}. Confusion matrix: `confusion.png`.", ""]
    if report.get("final"):
        fin = report["final"]
        lines += ["## Shipped model", "",
                  f"Trained on all {len(fin['train_speakers'])} speakers for {fin['epochs']}"
                  f" epochs (chosen from the folds' best epochs {fin['fold_best_epochs']}).",
                  ""]
    return "\n".join(lines)


def _pm(summary: dict[str, Any], key: str) -> str:
    if f"{key}_mean" not in summary:
        return "-"
    return f"{summary[key + '_mean']:.3f} ± {summary[key + '_std']:.3f}"


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
