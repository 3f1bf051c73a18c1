"""Classification scores from predictions: accuracy, macro-F1, per-class recall, confusion.

numpy only. Labels are indices into one label list; scores are computed over the classes
that occur in the truth (a class nobody said cannot be recalled), so a test set without,
say, "calm" does not drag macro-F1 down with an undefined zero.

A prediction of ``-1`` is *no result* (``edge-ser predict`` found no utterance in the file:
``"label": null``): it counts as wrong, in the accuracy and in the recall of its true class,
and is counted per class in ``no_result``; it claims no class, so no precision changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Scores of ``n`` predictions against the truth over ``labels``."""

    labels: tuple[str, ...]
    n: int
    accuracy: float
    macro_f1: float
    recall: dict[str, float | None]
    """Per-class recall; None for classes absent from the truth."""
    confusion: np.ndarray
    """Counts, shape ``(n_labels, n_labels)``: row = true label, column = predicted."""
    no_result: np.ndarray
    """Predictions without a result per true label, int64 ``(n_labels,)``."""

    def to_dict(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "recall": self.recall, "labels": list(self.labels),
                "confusion": self.confusion.astype(int).tolist(),
                "no_result": int(self.no_result.sum()),
                "no_result_per_class": self.no_result.astype(int).tolist()}


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_labels: int) -> np.ndarray:
    """Counts ``(n_labels, n_labels)``, int64: row = true index, column = predicted index."""
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    m = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(m, (truth, predicted), 1)
    return m


def score(truth: np.ndarray, predicted: np.ndarray, labels: tuple[str, ...]) -> Scores:
    """Scores of predicted label indices (``-1``: no result) against true label indices (both
    shape ``(n,)``)."""
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and predictions {predicted.shape} differ")
    answered = predicted >= 0
    m = confusion_matrix(truth[answered], predicted[answered], len(labels))
    no_result = np.bincount(truth[~answered], minlength=len(labels)).astype(np.int64)
    support = m.sum(axis=1) + no_result
    claimed = m.sum(axis=0)
    hits = np.diag(m)
    present = support > 0
    recall = np.divide(hits, support, out=np.zeros(len(labels)), where=present)
    precision = np.divide(hits, claimed, out=np.zeros(len(labels)), where=claimed > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(len(labels)), where=both > 0)
    n = int(truth.size)
    return Scores(
        labels=tuple(labels), n=n,
        accuracy=float(hits.sum() / n) if n else float("nan"),
        macro_f1=float(f1[present].mean()) if present.any() else float("nan"),
        recall={lab: (float(recall[i]) if present[i] else None)
                for i, lab in enumerate(labels)},
        confusion=m, no_result=no_result,
    )


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of rows whose top-1 class is the same in two ``(n, n_labels)`` score arrays."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"cannot compare predictions of shapes {a.shape} and {b.shape}")
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` measured on ``n`` independent clips."""
    return float(np.sqrt(max(p * (1 - p), 0.0) / n)) if n else float("nan")
