"""Model inputs of recordings, and the model's window probabilities back to one result per
recording, the way the recogniser combines them.

For a list of :class:`~benchmarks.recordings.DeviceRecording`, :func:`build` makes every
window the device would classify (:func:`edge.utterance.utterance_inputs` of each final and,
optionally, :func:`edge.utterance.interim_inputs` of each interim segment: its newest window)
with the bookkeeping to put the results together again:

* an utterance's probabilities are the mean of its windows' (as
  :meth:`edge.classifier.Classifier.classify_inputs`: float32 mean);
* a recording's are its utterances' averaged with weights ``max(speech seconds, 1e-3)``
  (:func:`edge.predict.prediction_of`); a recording without an utterance gets a NaN row
  (``edge-ser predict`` says ``"label": null``);
* an interim's are its one window's.

Any function ``(n, *input_shape) float32 -> (n, n_labels)`` can be scored this way: a TFLite
bundle through the runtime's classifier, or a Keras model on a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.recordings import DeviceRecording
from edge.endpoint import Segment
from edge.features import FeatureSpec
from edge.utterance import aggregate_utterances, interim_inputs, utterance_inputs

SPEECH_WEIGHT_FLOOR = 1e-3
"""Smallest weight of an utterance in a recording's average, seconds (as ``predict``)."""


@dataclass(frozen=True)
class Windows:
    """Windows of a set of segments and whom they belong to."""

    inputs: np.ndarray
    """``(n_windows, *spec.input_shape)`` float32, un-normalised."""
    owner: np.ndarray
    """Segment index of each window, int64 ``(n_windows,)``."""
    recording: np.ndarray
    """Recording index (into the list given to :func:`build`) of each segment, int64."""
    speech_seconds: np.ndarray
    """Speech of each segment, seconds, float64."""

    @property
    def segments(self) -> int:
        return len(self.recording)


@dataclass(frozen=True)
class Inputs:
    """Everything the device classifies for a list of recordings."""

    finals: Windows
    interims: Windows | None
    """None when interims were not asked for."""
    n_recordings: int


def _windows(recordings: Sequence[DeviceRecording], spec: FeatureSpec, which: str,
             keep: np.ndarray) -> Windows:
    rows, owner, rec_of, speech = [], [], [], []
    fps = spec.frames_per_second
    for i, rec in enumerate(recordings):
        if not keep[i]:
            continue
        segments: tuple[Segment, ...] = getattr(rec, which)
        inputs_of = interim_inputs if which == "interims" else utterance_inputs
        for seg in segments:
            x = inputs_of(rec.mel[seg.start:seg.end], spec,
                          levels=rec.levels[seg.start:seg.end])
            rows.append(x)
            owner += [len(rec_of)] * len(x)
            rec_of.append(i)
            speech.append(seg.speech_frames / fps)
    inputs = np.concatenate(rows) if rows else np.zeros((0, *spec.input_shape), np.float32)
    return Windows(inputs, np.asarray(owner, np.int64), np.asarray(rec_of, np.int64),
                   np.asarray(speech, np.float64))


def build(recordings: Sequence[DeviceRecording], spec: FeatureSpec, *, interims: bool = False,
          keep: np.ndarray | None = None) -> Inputs:
    """The windows of every final (and interim) segment of the ``keep`` recordings (all by
    default)."""
    keep = np.ones(len(recordings), bool) if keep is None else np.asarray(keep, bool)
    return Inputs(_windows(recordings, spec, "finals", keep),
                  _windows(recordings, spec, "interims", keep) if interims else None,
                  len(recordings))


def segment_probabilities(window_probs: np.ndarray, w: Windows) -> np.ndarray:
    """Each segment's probabilities: the float32 mean of its windows', ``(n_segments,
    n_labels)``."""
    out = np.zeros((w.segments, window_probs.shape[1]), np.float32)
    if not len(w.owner):
        return out
    bounds = np.flatnonzero(np.diff(w.owner)) + 1  # windows of one segment are contiguous
    for s, rows in zip(w.owner[np.r_[0, bounds]],
                       np.split(np.asarray(window_probs, np.float32), bounds)):
        out[s] = np.mean(rows, axis=0).astype(np.float32)
    return out


def recording_probabilities(final_probs: np.ndarray, w: Windows, n_recordings: int
                            ) -> np.ndarray:
    """One row per recording from its utterances' probabilities ``(n_segments, n_labels)``:
    weighted by speech (``edge-ser predict``'s rule); NaN rows for recordings without an
    utterance. float64 ``(n_recordings, n_labels)``."""
    out = np.full((n_recordings, final_probs.shape[1]), np.nan)
    for i in np.unique(w.recording):
        mine = w.recording == i
        out[i] = aggregate_utterances(final_probs[mine].astype(np.float64),
                                      np.maximum(w.speech_seconds[mine], SPEECH_WEIGHT_FLOOR))
    return out


@dataclass(frozen=True)
class Scored:
    """A model's results on a list of recordings."""

    recording_probs: np.ndarray
    """``(n_recordings, n_labels)`` float64; NaN rows: no utterance (or not scored)."""
    utterances: np.ndarray
    """Final utterances per recording, int64 ``(n_recordings,)``."""
    interim_probs: np.ndarray | None
    """``(n_interims, n_labels)`` float32, or None."""
    interim_recording: np.ndarray | None
    """Recording of each interim, int64."""


def score(predict: Callable[[np.ndarray], np.ndarray], x: Inputs, n_labels: int) -> Scored:
    """Run ``predict`` on every window of ``x`` and put the results together."""
    def run(w: Windows) -> np.ndarray:
        if not len(w.inputs):
            return np.zeros((0, n_labels), np.float32)
        return np.asarray(predict(w.inputs), np.float32)

    finals = segment_probabilities(run(x.finals), x.finals)
    rec = recording_probabilities(finals, x.finals, x.n_recordings)
    counts = np.bincount(x.finals.recording, minlength=x.n_recordings).astype(np.int64)
    if x.interims is None:
        return Scored(rec, counts, None, None)
    return Scored(rec, counts, segment_probabilities(run(x.interims), x.interims),
                  x.interims.recording)
