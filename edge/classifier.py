"""A bundle's model as a function: one window of MFCC features -> emotion probabilities.

Normalisation (from the bundle metadata) and int8 input quantisation (from the interpreter)
fold into one per-coefficient, per-channel affine map applied in numpy::

    q = clip(round(x * a + b), -128, 127)      a = 1 / (std * scale)
                                               b = zero_point - mean / (std * scale)

For a float32 model the same map is plain normalisation (``a = 1 / std``, ``b = -mean / std``)
and nothing is rounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.bundle import Bundle
from edge.errors import ModelError
from edge.features import FeatureSpec
from edge.interpreter import TfliteModel
from edge.utterance import utterance_inputs


@dataclass(frozen=True)
class InputMap:
    """``x -> x * a + b`` per (coefficient, channel), then int8 rounding and clipping when
    ``quantized``. ``a`` and ``b`` have shape ``(n_mfcc, channels)``, float32."""

    a: np.ndarray
    b: np.ndarray
    quantized: bool

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Model input from features ``(frames, n_mfcc, channels)``: int8 or float32."""
        y = np.multiply(x, self.a, dtype=np.float32)
        y += self.b
        if not self.quantized:
            return y
        np.rint(y, out=y)
        np.clip(y, -128, 127, out=y)
        return y.astype(np.int8)


def input_map(mean: np.ndarray, std: np.ndarray, scale: float, zero_point: int) -> InputMap:
    """Fold ``(x - mean) / std`` and int8 quantisation (``scale == 0``: none) into one map."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    step = std * scale if scale else std
    a = 1.0 / step
    b = (zero_point if scale else 0.0) - mean / step
    return InputMap(a.astype(np.float32), b.astype(np.float32), quantized=bool(scale))


@dataclass(frozen=True)
class WindowScores:
    """What the model says about one window."""

    probs: np.ndarray
    """Probabilities per label, float32, shape ``(n_labels,)``, summing to 1."""
    scores: np.ndarray | None
    """Raw int8 outputs of a quantised model, shape ``(n_labels,)``; None for float models."""


@dataclass(frozen=True)
class UtteranceScores:
    """What the model says about one utterance."""

    probs: np.ndarray
    """Probabilities per label, averaged over the utterance's windows, float32 ``(n_labels,)``."""
    scores: list[np.ndarray] | None
    """Raw int8 outputs of each window, ``(n_labels,)`` each; None for float models."""
    windows: int


class Classifier:
    """Runs a bundle on feature windows. Checks once that model and metadata agree."""

    def __init__(self, bundle: Bundle, *, threads: int = 1, backend: str | None = None) -> None:
        meta = bundle.metadata
        self.bundle = bundle
        self.spec: FeatureSpec = meta.features
        self.labels: tuple[str, ...] = meta.labels
        self.model = TfliteModel(bundle.model_bytes, threads=threads, source=str(bundle.path),
                                 backend=backend)
        expected = (1, *self.spec.input_shape)
        if self.model.input_shape != expected:
            raise ModelError(f"{bundle.path}: model input {self.model.input_shape} does not match"
                             f" its metadata's features {expected}")
        if self.model.output_shape not in ((1, len(self.labels)), (len(self.labels),)):
            raise ModelError(f"{bundle.path}: model output {self.model.output_shape} does not"
                             f" match its {len(self.labels)} labels")
        q = self.model.input_quantization
        self.input_map = input_map(meta.normalizer.mean, meta.normalizer.std, q.scale,
                                   q.zero_point)

    @property
    def quantized_output(self) -> bool:
        return self.model.output_quantization.quantized

    def classify_utterance(self, mel: np.ndarray, levels: np.ndarray | None = None
                           ) -> UtteranceScores:
        """Scores of one utterance's mel power frames ``(n_frames, n_mels)``
        (:func:`edge.utterance.utterance_inputs`: level-normalised windows, averaged)."""
        return self.classify_inputs(utterance_inputs(mel, self.spec, levels=levels))

    def classify_inputs(self, inputs: np.ndarray) -> UtteranceScores:
        """Scores of an utterance's windows ``(k, *spec.input_shape)``: the average of the
        windows' probabilities."""
        windows = [self.classify_features(x) for x in inputs]
        probs = np.mean([w.probs for w in windows], axis=0).astype(np.float32)
        scores = None if windows[0].scores is None else [w.scores for w in windows]
        return UtteranceScores(probs, scores, len(windows))

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities of windows ``(n, *spec.input_shape)`` of unnormalised features, one
        at a time as the device runs them: float32 ``(n, n_labels)``."""
        out = np.zeros((len(inputs), len(self.labels)), dtype=np.float32)
        for i, x in enumerate(inputs):
            out[i] = self.classify_features(x).probs
        return out

    def classify_features(self, features: np.ndarray) -> WindowScores:
        """Scores of one window of unnormalised features ``spec.input_shape``."""
        x = self.input_map(features)[None]
        raw = self.model.invoke(x).reshape(-1)
        probs = to_probabilities(self.model.dequantize(raw))
        return WindowScores(probs, raw.copy() if self.quantized_output else None)


def to_probabilities(values: np.ndarray) -> np.ndarray:
    """Model outputs as probabilities summing to 1, float32.

    Softmax outputs (non-negative, summing to about 1; int8 rounding leaves them off by a
    few 1/256) are renormalised; anything else is taken as logits and put through a softmax.
    """
    v = np.asarray(values, dtype=np.float64)
    total = v.sum()
    if v.min() >= 0.0 and 0.9 <= total <= 1.1:
        return (v / total).astype(np.float32)
    if v.min() >= 0.0 and total == 0.0:  # an int8 softmax can round everything to 0
        return np.full(v.shape, 1.0 / v.size, dtype=np.float32)
    e = np.exp(v - v.max())
    return (e / e.sum()).astype(np.float32)
