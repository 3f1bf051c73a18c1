"""One prediction per recording.

A recording that is one utterance (its speech, from the onset to the last frame within
``TOP_DB`` of the loudest, fits in the window plus ``CLIP_SLACK_SECONDS``: a RAVDESS clip, a
short voice note) is prepared exactly as in training by
:func:`edge.clip.clip_window` and classified once. A longer recording is streamed through a
:class:`~edge.recognizer.Recognizer` (windows every hop, the speech gate on each) and the
window probabilities are averaged over the windows with speech (over all windows, with
``speech: false`` and no label, when none has any).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from edge.audio import load
from edge.classifier import Classifier
from edge.clip import (
    ENERGY_FRAME_SECONDS,
    ENERGY_HOP_SECONDS,
    TOP_DB,
    clip_window,
    frame_energy_db,
    speech_onset,
)
from edge.errors import ConfigError
from edge.features import signal_input
from edge.gate import GateConfig, decide
from edge.recognizer import Recognizer
from edge.smoothing import SmoothingConfig

CLIP_SLACK_SECONDS = 1.5
"""Speech beyond one window that still counts as one utterance, seconds (training crops it
the same way; every RAVDESS clip is within 3 s + 1.2 s)."""
MIN_SECONDS = 0.1
"""Shortest recording predicted, seconds."""

Mode = Literal["auto", "clip", "windows"]


@dataclass(frozen=True)
class FilePrediction:
    """The prediction for one recording."""

    file: str
    label: str | None
    """Top label; None when no window holds speech."""
    confidence: float
    probs: dict[str, float]
    scores: list[int] | None
    """Raw int8 outputs (clip mode: of the one window; windows mode: of the speech window
    closest to the average); None for float models."""
    windows: list[dict[str, Any]]
    """Per window: ``t`` (end, seconds into the file), label, confidence, probs, speech."""
    speech: bool
    mode: str
    duration: float
    """Seconds of audio."""

    def to_dict(self, *, digits: int = 4) -> dict[str, Any]:
        return {
            "file": self.file,
            "label": self.label,
            "confidence": round(self.confidence, digits),
            "probs": {k: round(v, digits) for k, v in self.probs.items()},
            "scores": self.scores,
            "windows": self.windows,
            "speech": self.speech,
            "mode": self.mode,
            "duration": round(self.duration, 3),
        }


def predict_file(path: str | os.PathLike, classifier: Classifier, *, mode: Mode = "auto",
                 hop_seconds: float | None = None, gate: GateConfig = GateConfig()
                 ) -> FilePrediction:
    """Predict one audio file (any rate; resampled to the model's)."""
    spec = classifier.spec
    rate = spec.frontend.sample_rate
    x = load(path, rate, min_samples=max(spec.frontend.frame_length,
                                         int(MIN_SECONDS * rate)))
    return predict_signal(x, classifier, name=str(path), mode=mode, hop_seconds=hop_seconds,
                          gate=gate)


def predict_signal(x: np.ndarray, classifier: Classifier, *, name: str = "signal",
                   mode: Mode = "auto", hop_seconds: float | None = None,
                   gate: GateConfig = GateConfig()) -> FilePrediction:
    """Predict a mono float32 signal at the model's rate."""
    spec = classifier.spec
    rate = spec.frontend.sample_rate
    if mode not in ("auto", "clip", "windows"):
        raise ConfigError(f"mode={mode!r}: use 'auto', 'clip' or 'windows'")
    onset = speech_onset(x, rate)
    if mode == "auto":
        fits = speech_end(x, rate) - onset <= spec.window_samples + CLIP_SLACK_SECONDS * rate
        mode = "clip" if fits or x.size < spec.window_samples else "windows"
    if mode == "clip":
        return _predict_clip(x, onset, classifier, name, gate)
    return _predict_windows(x, classifier, name, hop_seconds, gate)


def speech_end(signal: np.ndarray, sample_rate: int, *, top_db: float = TOP_DB) -> int:
    """Sample index just after the last frame within ``top_db`` dB of the loudest frame (the
    mirror of :func:`edge.clip.speech_onset`, with the same frames)."""
    frame = max(1, int(round(ENERGY_FRAME_SECONDS * sample_rate)))
    hop = max(1, int(round(ENERGY_HOP_SECONDS * sample_rate)))
    db = frame_energy_db(signal, frame_length=frame, hop_length=hop)
    last = db.size - 1 - int(np.argmax(db[::-1] >= db.max() - top_db))
    return min(signal.size, last * hop + frame)


def _predict_clip(x: np.ndarray, onset: int, classifier: Classifier, name: str,
                  gate: GateConfig) -> FilePrediction:
    spec = classifier.spec
    c = spec.frontend
    window = clip_window(x, spec)
    result = classifier.classify_features(signal_input(window, spec))
    levels = frame_energy_db(window, frame_length=c.frame_length, hop_length=c.hop_length)
    verdict = decide(levels, spec.window_frames, gate, c.sample_rate / c.hop_length)
    probs = {k: float(p) for k, p in zip(classifier.labels, result.probs)}
    top = int(np.argmax(result.probs))
    label = classifier.labels[top]
    t = min(onset + spec.window_samples, x.size) / c.sample_rate
    windows = [{"t": round(t, 4), "label": label if verdict.speech else None,
                "confidence": round(float(result.probs[top]), 4),
                "probs": {k: round(v, 4) for k, v in probs.items()}, "speech": verdict.speech}]
    return FilePrediction(
        file=name, label=label if verdict.speech else None,
        confidence=float(result.probs[top]), probs=probs,
        scores=None if result.scores is None else [int(v) for v in result.scores],
        windows=windows, speech=verdict.speech, mode="clip", duration=x.size / c.sample_rate,
    )


def _predict_windows(x: np.ndarray, classifier: Classifier, name: str,
                     hop_seconds: float | None, gate: GateConfig) -> FilePrediction:
    spec = classifier.spec
    rate = spec.frontend.sample_rate
    if x.size < spec.window_samples:  # one window, padded with the clip's noise floor
        x = clip_window(x, spec, top_db=np.inf)
    rec = Recognizer(classifier.bundle, hop_seconds=hop_seconds, gate=gate,
                     smoothing=SmoothingConfig(average_seconds=0.0),
                     classifier=classifier)
    results = rec.push(x)
    probs = np.stack([list(r.window_probs.values()) for r in results])
    speech = np.array([r.speech for r in results])
    chosen = speech if speech.any() else np.ones_like(speech)
    average = probs[chosen].mean(axis=0)
    top = int(np.argmax(average))
    # the raw outputs of the speech window closest to the average
    nearest = int(np.flatnonzero(chosen)[np.argmin(
        np.abs(probs[chosen] - average).sum(axis=1))])
    windows = [{"t": round(r.t, 4), "label": r.window_label if r.speech else None,
                "confidence": round(max(r.window_probs.values()), 4),
                "probs": {k: round(v, 4) for k, v in r.window_probs.items()},
                "speech": r.speech, "scores": r.scores} for r in results]
    label = classifier.labels[top] if speech.any() else None
    return FilePrediction(
        file=name, label=label, confidence=float(average[top]),
        probs={k: float(p) for k, p in zip(classifier.labels, average)},
        scores=results[nearest].scores, windows=windows, speech=bool(speech.any()),
        mode="windows", duration=x.size / rate,
    )
