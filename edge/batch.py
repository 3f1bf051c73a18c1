"""Many recordings through the device's scoring path at once: the batch API.

``edge-ser predict`` and ``listen`` stream audio through :class:`edge.recognizer.Recognizer`.
A program that scores many recordings, perhaps with several models (training's held-out
scores, :mod:`train.scoring`; the benchmark, :mod:`benchmarks.accuracy`), runs the front end
and the endpointer once per recording here and each model once on a batch of windows. Every
step is the recogniser's own, so the results are ``predict``'s and ``listen``'s by
construction:

1. :class:`Recording` — a recording as the recogniser sees it: mel frames, their levels, the
   endpointer's utterances (``finals``) and the utterance so far at every hop (``interims``,
   :func:`edge.endpoint.replay`). From a waveform and its sample rate
   (:func:`recording_of`), a path (:func:`load_recording`) or mel frames (:func:`from_mel`).
2. :func:`windows_of` — every model input of a list of segments
   (:func:`edge.utterance.utterance_inputs` for a final, :func:`~edge.utterance.interim_inputs`
   for an interim: its newest window), with the utterance and recording each belongs to
   (:class:`Windows`).
3. :func:`score` — a model ``(n, *input_shape) float32 -> (n, n_labels)`` over the windows,
   combined by the recogniser's rules: an utterance's probabilities are the float32 mean of its
   windows' (:meth:`edge.classifier.Classifier.classify_inputs`); a recording's are its
   utterances' averaged with their speech seconds as weights
   (:func:`edge.utterance.aggregate_utterances`, as :func:`edge.predict.speech_weighted`); a
   recording without an utterance gets a NaN row (``predict`` says ``"label": null``).
   A bundle's model as the device runs it (normalisation and int8 quantisation) is
   :meth:`edge.classifier.Classifier.probabilities`; a Keras model's ``predict`` is another.

numpy and the edge package only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.audio import load, resample, to_mono
from edge.endpoint import Segment, replay
from edge.features import FeatureSpec
from edge.frontend import mel_power
from edge.levels import frame_levels
from edge.utterance import aggregate_utterances, interim_inputs, utterance_inputs

Model = Callable[[np.ndarray], np.ndarray]
"""Un-normalised model inputs ``(n, *spec.input_shape)`` float32 -> probabilities
``(n, n_labels)``."""


class Frames(Protocol):
    """A recording's front-end frames (a :class:`Recording`, or ``train.dataset``'s)."""

    @property
    def mel(self) -> np.ndarray:
        """Mel power frames ``(n_frames, n_mels)``, float32."""

    @property
    def levels(self) -> np.ndarray:
        """Their levels ``(n_frames,)``, dB (:func:`edge.levels.frame_levels`)."""


@dataclass(frozen=True)
class Recording:
    """One recording as the recogniser sees it."""

    mel: np.ndarray
    """Mel power frames ``(n_frames, n_mels)``, float32."""
    levels: np.ndarray
    """Their speech-band levels ``(n_frames,)``, dB (:func:`edge.levels.frame_levels`)."""
    finals: tuple[Segment, ...]
    """The utterances (one final result each), in order; empty: no speech found."""
    interims: tuple[Segment, ...]
    """The utterance so far at each hop during speech (one interim result each)."""

    @property
    def frames(self) -> int:
        return len(self.mel)


def from_mel(mel: np.ndarray, spec: FeatureSpec, hop_frames: int) -> Recording:
    """A recording from its mel power frames ``(n_frames, n_mels)``; ``hop_frames``
    (:meth:`edge.features.FeatureSpec.hop_frames`) places the interims."""
    mel = np.asarray(mel, dtype=np.float32)
    levels = frame_levels(mel, spec.frontend)
    finals, interims = replay(levels, spec.endpoint, spec.frames_per_second, hop_frames)
    return Recording(mel, levels, tuple(finals), tuple(interims))


def recording_of(signal: np.ndarray, spec: FeatureSpec, hop_frames: int, *,
                 sample_rate: int | None = None) -> Recording:
    """A recording from samples ``(n,)`` or ``(n, channels)`` (averaged to mono) at
    ``sample_rate`` Hz (None: the front end's), resampled as :func:`edge.audio.load` does."""
    x = to_mono(np.asarray(signal, dtype=np.float32))
    rate = spec.frontend.sample_rate
    if sample_rate is not None and sample_rate != rate:
        x = resample(x, sample_rate, rate)
    return from_mel(mel_power(x, spec.frontend), spec, hop_frames)


def load_recording(path: str | os.PathLike, spec: FeatureSpec, hop_frames: int) -> Recording:
    """A recording from an audio file (any rate). Raises :class:`~edge.errors.AudioError`
    for one that cannot be used, as ``predict`` does."""
    x = load(path, spec.frontend.sample_rate, min_samples=spec.frontend.frame_length)
    return recording_of(x, spec, hop_frames)


@dataclass(frozen=True)
class Windows:
    """Every model input of a set of segments (utterances or interims) and whom they belong
    to. A segment's windows are contiguous rows."""

    inputs: np.ndarray
    """``(n_windows, *spec.input_shape)`` float32, un-normalised."""
    owner: np.ndarray
    """Segment index of each window, int64 ``(n_windows,)``."""
    recording: np.ndarray
    """Recording index of each segment, int64 ``(n_segments,)``."""
    speech_seconds: np.ndarray
    """Speech of each segment, seconds, float64 ``(n_segments,)``."""
    n_recordings: int

    @property
    def segments(self) -> int:
        return len(self.recording)

    @property
    def window_recording(self) -> np.ndarray:
        """Recording index of each window, int64 ``(n_windows,)``."""
        return self.recording[self.owner]

    def subset(self, keep: np.ndarray) -> Windows:
        """The windows of the ``keep`` recordings (bool ``(n_recordings,)``); recording
        indices unchanged."""
        segs = np.asarray(keep, bool)[self.recording]
        rows = segs[self.owner]
        new_index = np.cumsum(segs) - 1
        return Windows(self.inputs[rows], new_index[self.owner[rows]], self.recording[segs],
                       self.speech_seconds[segs], self.n_recordings)


def windows_of(recordings: Sequence[Frames], segments: Sequence[Sequence[Segment]],
               spec: FeatureSpec, *, interim: bool = False) -> Windows:
    """The windows of ``segments[i]`` of each ``recordings[i]``: all of a final's windows
    (:func:`edge.utterance.utterance_inputs`), or with ``interim`` the newest window of an
    utterance so far (:func:`edge.utterance.interim_inputs`)."""
    if len(recordings) != len(segments):
        raise ValueError(f"{len(recordings)} recordings but {len(segments)} lists of segments")
    inputs_of = interim_inputs if interim else utterance_inputs
    rows, owner, rec_of, speech = [], [], [], []
    for i, (rec, segs) in enumerate(zip(recordings, segments)):
        for seg in segs:
            x = inputs_of(rec.mel[seg.start:seg.end], spec, levels=rec.levels[seg.start:seg.end])
            rows.append(x)
            owner += [len(rec_of)] * len(x)
            rec_of.append(i)
            speech.append(spec.seconds(seg.speech_frames))
    inputs = np.concatenate(rows) if rows else np.zeros((0, *spec.input_shape), np.float32)
    return Windows(inputs, np.asarray(owner, np.int64), np.asarray(rec_of, np.int64),
                   np.asarray(speech, np.float64), len(recordings))


def final_windows(recordings: Sequence[Recording], spec: FeatureSpec) -> Windows:
    """The windows of every utterance of ``recordings`` (what their final results see)."""
    return windows_of(recordings, [r.finals for r in recordings], spec)


def interim_windows(recordings: Sequence[Recording], spec: FeatureSpec) -> Windows:
    """The window of every interim of ``recordings`` (one each)."""
    return windows_of(recordings, [r.interims for r in recordings], spec, interim=True)


def segment_probabilities(window_probs: np.ndarray, w: Windows) -> np.ndarray:
    """Each segment's probabilities: the float32 mean of its windows'
    (:meth:`edge.classifier.Classifier.classify_inputs`), ``(n_segments, n_labels)``."""
    window_probs = np.asarray(window_probs, np.float32)
    out = np.zeros((w.segments, window_probs.shape[1]), np.float32)
    if not len(w.owner):
        return out
    bounds = np.flatnonzero(np.diff(w.owner)) + 1
    for s, rows in zip(w.owner[np.r_[0, bounds]], np.split(window_probs, bounds)):
        out[s] = np.mean(rows, axis=0).astype(np.float32)
    return out


def recording_probabilities(segment_probs: np.ndarray, w: Windows) -> np.ndarray:
    """One row per recording from its utterances' probabilities ``(n_segments, n_labels)``,
    weighted by their speech (``predict``'s rule); a NaN row for a recording without an
    utterance. float64 ``(n_recordings, n_labels)``."""
    out = np.full((w.n_recordings, np.shape(segment_probs)[1]), np.nan)
    for i in np.unique(w.recording):
        mine = w.recording == i
        out[i] = aggregate_utterances(segment_probs[mine], w.speech_seconds[mine])
    return out


@dataclass(frozen=True)
class Scores:
    """A model's results on the segments of :class:`Windows`."""

    segment_probs: np.ndarray
    """``(n_segments, n_labels)`` float32: each utterance's (or interim's) result."""
    recording_probs: np.ndarray
    """``(n_recordings, n_labels)`` float64; NaN rows: no utterance."""
    segments: np.ndarray
    """Segments per recording, int64 ``(n_recordings,)``."""


def run_model(model: Model, inputs: np.ndarray, n_labels: int) -> np.ndarray:
    """``model`` on ``inputs``, float32 ``(n, n_labels)`` (not called when there are none)."""
    if not len(inputs):
        return np.zeros((0, n_labels), np.float32)
    return np.asarray(model(inputs), np.float32)


def combine(window_probs: np.ndarray, w: Windows) -> Scores:
    """The results of the segments and recordings of ``w`` from its windows' probabilities
    ``(n_windows, n_labels)``."""
    segs = segment_probabilities(window_probs, w)
    return Scores(segs, recording_probabilities(segs, w),
                  np.bincount(w.recording, minlength=w.n_recordings).astype(np.int64))


def score(model: Model, w: Windows, n_labels: int) -> Scores:
    """Run ``model`` on every window of ``w`` and put the results together."""
    return combine(run_model(model, w.inputs, n_labels), w)


def predicted_labels(probs: np.ndarray, merge: dict[int, int] | None = None) -> np.ndarray:
    """Top class of each row of ``(n, n_labels)`` probabilities, -1 for a NaN row (no
    utterance: no result); ``merge`` maps predicted classes onto others afterwards
    (``calm -> neutral`` for a corpus without calm). int64 ``(n,)``."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be 2-D, got shape {p.shape}")
    out = np.where(np.isnan(p).any(axis=1), -1,
                   np.nan_to_num(p, nan=-1.0).argmax(axis=1) if p.shape[1] else -1)
    for a, b in (merge or {}).items():
        out[out == a] = b
    return out.astype(np.int64)
