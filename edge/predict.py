"""One prediction per recording, with one result per utterance in it.

The file is read as a stream (:class:`edge.audio.AudioStream`: bounded memory whatever its
length) through the same :class:`~edge.recognizer.Recognizer` as ``edge-ser listen``: the
endpointer cuts it into utterances, each gets its final result, and the file's result is
their average weighted by each utterance's speech (:func:`edge.utterance.aggregate_utterances`).
A recording of one utterance (a RAVDESS clip, a short voice note) gets exactly that
utterance's result; one without any speech gets ``label: null``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.audio import AudioStream, to_mono
from edge.classifier import Classifier
from edge.errors import AudioError
from edge.recognizer import Recognizer, Result
from edge.utterance import aggregate_utterances

BLOCK_SECONDS = 1.0
"""Audio read per block, seconds."""


@dataclass(frozen=True)
class FilePrediction:
    """The prediction for one recording."""

    file: str
    label: str | None
    """Top label of the speech-weighted average; None when no utterance was found."""
    confidence: float | None
    probs: dict[str, float]
    utterances: list[Result]
    """The final result of each utterance, in order."""
    duration: float
    """Seconds of audio."""

    @property
    def speech(self) -> bool:
        return bool(self.utterances)

    def to_dict(self, *, digits: int = 4) -> dict[str, Any]:
        keep = ("utterance", "start", "end", "label", "confidence", "uncertain", "probs",
                "scores", "speech_seconds")
        return {
            "file": self.file,
            "label": self.label,
            "confidence": None if self.confidence is None else round(self.confidence, digits),
            "probs": {k: round(v, digits) for k, v in self.probs.items()},
            "speech": self.speech,
            "duration": round(self.duration, 3),
            "utterances": [{k: v for k, v in u.to_dict(digits=digits).items() if k in keep}
                           for u in self.utterances],
        }


def predict_file(path: str | os.PathLike, classifier: Classifier, *,
                 threshold: float = 0.5) -> FilePrediction:
    """Predict one audio file (any rate: resampled to the model's; any length: streamed).

    Raises :class:`~edge.errors.AudioError` for a file that cannot be used (missing, not
    audio, empty, shorter than one frame, NaN or infinite samples).
    """
    name = str(path)
    with AudioStream(path, block_frames=1) as stream:
        stream.block_frames = max(1, int(BLOCK_SECONDS * stream.sample_rate))
        rec = Recognizer(classifier.bundle, input_rate=stream.sample_rate,
                         threshold=threshold, classifier=classifier, interims=False)
        results: list[Result] = []
        samples = 0
        for block in stream:
            x = to_mono(block)
            if not np.isfinite(x).all():
                bad = int(np.count_nonzero(~np.isfinite(x)))
                raise AudioError(f"{name}: {bad} NaN or infinite samples (in the block at"
                                 f" {samples / stream.sample_rate:.1f} s); the recording is"
                                 " corrupt")
            samples += x.size
            results += rec.push(x)
        results += rec.finish()
        rate = stream.sample_rate
    if samples == 0:
        raise AudioError(f"{name}: no audio samples (empty recording)")
    frame = classifier.spec.frontend.frame_length
    if rec.frames_seen == 0:
        raise AudioError(f"{name}: too short ({samples} samples at {rate} Hz; need at"
                         f" least one {frame}-sample frame at"
                         f" {classifier.spec.frontend.sample_rate} Hz)")
    return prediction_of(name, [r for r in results if r.final], classifier.labels,
                         samples / rate)


def speech_weighted(finals: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """A recording's probabilities from its utterances' final results (as ``listen --json``
    prints them, or their ``to_dict()``): their ``probs`` averaged, weighted by their
    ``speech_seconds`` (:func:`edge.utterance.aggregate_utterances`); ``{}`` without any."""
    if not finals:
        return {}
    labels = list(finals[0]["probs"])
    probs = aggregate_utterances(
        np.array([[f["probs"][k] for k in labels] for f in finals]),
        np.array([float(f["speech_seconds"] or 0.0) for f in finals]))
    return {k: float(p) for k, p in zip(labels, probs)}


def prediction_of(name: str, finals: list[Result], labels: tuple[str, ...],
                  duration: float) -> FilePrediction:
    """A recording's prediction from its utterances' final results."""
    probs = speech_weighted([{"probs": u.probs, "speech_seconds": u.speech_seconds}
                             for u in finals])
    if not probs:
        return FilePrediction(name, None, None, {}, [], duration)
    top = max(probs, key=probs.get)
    return FilePrediction(name, top, probs[top], {k: probs[k] for k in labels}, finals,
                          duration)
