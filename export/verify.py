"""Scoring one model three ways on the same clips: float Keras, float TFLite, int8 TFLite.

The TFLite bundles are run through :class:`edge.classifier.Classifier`, the code the device
runs (normalisation and int8 quantisation folded into one affine map in numpy, int8 output
dequantised and renormalised), so the numbers are the device's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.batch import predicted_labels
from edge.bundle import Bundle
from edge.classifier import Classifier
from train.evaluate import scores

PATHS = ("keras_float", "tflite_float32", "tflite_int8")
"""The three ways a model is run, in the order they appear in reports."""


def keras_probs(model, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities ``(n, n_labels)`` of the full Keras model on un-normalised inputs."""
    if len(inputs) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), np.float32)


def bundle_probs(bundle: Bundle, inputs: np.ndarray) -> np.ndarray:
    """Probabilities ``(n, n_labels)`` of a bundle on un-normalised inputs, one window at a
    time through the device's classifier."""
    return Classifier(bundle, threads=1).probabilities(inputs)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows where two probability arrays have the same top-1 class (rows of NaN,
    recordings without speech, agree)."""
    return float(np.mean(predicted_labels(a) == predicted_labels(b))) if len(a) else 0.0


def compare(labels: np.ndarray, probs: dict[str, np.ndarray],
            class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 of each path, int8/float agreement and probability differences.

    Parameters
    ----------
    labels : np.ndarray [shape=(n,)], int class indices
    probs : {path: np.ndarray [shape=(n, n_labels)]} for every name in :data:`PATHS`
    """
    out: dict[str, Any] = {"clips": int(len(labels))}
    per_path = {name: scores(labels, _as_class(predicted_labels(probs[name]), class_names),
                             list(class_names)) for name in PATHS}
    out["accuracy"] = {name: round(s["accuracy"], 4) for name, s in per_path.items()}
    out["macro_f1"] = {name: round(s["macro_f1"], 4) for name, s in per_path.items()}
    k, f, q = (probs[name] for name in PATHS)
    out["agreement"] = {"int8_vs_float32": round(agreement(q, f), 4),
                        "int8_vs_keras": round(agreement(q, k), 4),
                        "float32_vs_keras": round(agreement(f, k), 4)}
    diff_qf = np.nan_to_num(np.abs(q - f))
    diff_fk = np.nan_to_num(np.abs(f - k))
    out["max_prob_diff"] = {"int8_vs_float32": round(float(diff_qf.max(initial=0.0)), 4),
                            "float32_vs_keras": float(diff_fk.max(initial=0.0))}
    out["mean_prob_diff"] = {"int8_vs_float32": round(float(diff_qf.mean()) if diff_qf.size
                                                      else 0.0, 5)}
    out["accuracy_gap_int8_minus_float32"] = round(
        out["accuracy"]["tflite_int8"] - out["accuracy"]["tflite_float32"], 4)
    return out


def _as_class(pred: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """No result (-1) becomes an extra class index, so it counts as wrong."""
    return np.where(pred < 0, len(class_names), pred)


def pooled(labels: Sequence[np.ndarray], probs: Sequence[dict[str, np.ndarray]],
           class_names: Sequence[str]) -> dict[str, Any]:
    """:func:`compare` over several held-out sets together (every clip counted once)."""
    return compare(np.concatenate(labels),
                   {name: np.concatenate([p[name] for p in probs]) for name in PATHS},
                   class_names)
