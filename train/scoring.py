"""Scoring a model the way the device scores (:mod:`edge.batch`): each held-out recording
through the endpointer, its utterances' windows, the speech-weighted average (``edge-ser
predict``'s answer for the file); the interim results at every hop; the room conditions; a
corpus left out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge import batch
from edge.batch import predicted_labels
from edge.features import DEFAULT_HOP_SECONDS, FeatureSpec
from train.dataset import Recording
from train.evaluate import scores
from train.fit import predict
from train.windows import device_inputs, interim_windows


def clip_predictions(model, recordings: list[Recording], spec: FeatureSpec) -> np.ndarray:
    """Per-recording probabilities ``(n, n_labels)`` (NaN rows: no speech found)."""
    d = device_inputs(recordings, spec)
    return batch.combine(predict(model, d.inputs), d).recording_probs


def held_out_scores(y: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """:func:`train.evaluate.scores` plus how many recordings got no result (counted wrong)."""
    s = scores(y, np.where(y_pred < 0, len(labels), y_pred), labels)
    s["accuracy"] = float(np.mean(y_pred == y)) if len(y) else 0.0
    s["no_speech"] = int(np.count_nonzero(y_pred < 0))
    return s


def interim_accuracy(model, recordings: list[Recording], y: np.ndarray, spec: FeatureSpec
                     ) -> dict[str, Any]:
    """Accuracy of the interim results (utterance so far, every hop) of held-out speakers."""
    w = interim_windows(recordings, spec, spec.hop_frames(DEFAULT_HOP_SECONDS))
    if w.segments == 0:
        return {"accuracy": 0.0, "n": 0}
    probs = batch.combine(predict(model, w.inputs), w).segment_probs
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == y[w.recording])),
            "n": w.segments}


def evaluate_model(model, spec: FeatureSpec, labels: list[str], y: np.ndarray,
                   clean: list[Recording], conditions: dict[str, list[Recording]]
                   ) -> tuple[dict[str, Any], np.ndarray]:
    """Clean, interim and per-condition scores of held-out recordings; also the clean
    predicted labels."""
    y_pred = predicted_labels(clip_predictions(model, clean, spec))
    out = {"test": held_out_scores(y, y_pred, labels),
           "interim": interim_accuracy(model, clean, y, spec), "conditions": {}}
    for name, recs in conditions.items():
        pred = predicted_labels(clip_predictions(model, recs, spec))
        out["conditions"][name] = {"accuracy": float(np.mean(pred == y)),
                                   "no_speech": int(np.count_nonzero(pred < 0))}
    return out, y_pred


@dataclass
class EvalCorpus:
    """A corpus scored but never trained on."""

    name: str
    recordings: list[Recording]
    y: np.ndarray
    """Indices into the run's classes."""
    merge: dict[int, int]


def corpus_scores(model, corpus: EvalCorpus, spec: FeatureSpec, labels: list[str]
                  ) -> dict[str, Any]:
    pred = predicted_labels(clip_predictions(model, corpus.recordings, spec), corpus.merge)
    present = sorted(set(corpus.y.tolist()))
    return {"accuracy": float(np.mean(pred == corpus.y)), "n": int(len(corpus.y)),
            "classes": [labels[i] for i in present],
            "no_speech": int(np.count_nonzero(pred < 0)),
            "macro_recall": float(np.mean([np.mean(pred[corpus.y == c] == c)
                                           for c in present]))}
