"""What the benchmark classifies of its recordings, and one model's results on them.

For a list of :class:`edge.batch.Recording`, :func:`build` makes every window the device would
classify: each final's (:func:`edge.batch.windows_of`) and, optionally, each interim's (its
newest window). :func:`score` runs any function ``(n, *input_shape) float32 -> (n, n_labels)``
on them (a TFLite bundle through the runtime's classifier, or a Keras model on a batch) and
combines the results by the recogniser's rules (:func:`edge.batch.score`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.batch import Model, Recording, Windows, run_model, segment_probabilities, windows_of
from edge.batch import score as score_windows
from edge.features import FeatureSpec


@dataclass(frozen=True)
class Inputs:
    """Everything the device classifies for a list of recordings."""

    finals: Windows
    interims: Windows | None
    """None when interims were not asked for."""

    @property
    def n_recordings(self) -> int:
        return self.finals.n_recordings

    def subset(self, keep: np.ndarray) -> Inputs:
        """The windows of the ``keep`` recordings (bool ``(n_recordings,)``)."""
        return Inputs(self.finals.subset(keep),
                      None if self.interims is None else self.interims.subset(keep))


def build(recordings: Sequence[Recording], spec: FeatureSpec, *, interims: bool = False,
          keep: np.ndarray | None = None) -> Inputs:
    """The windows of every final (and interim) segment of the ``keep`` recordings (all by
    default)."""
    keep = np.ones(len(recordings), bool) if keep is None else np.asarray(keep, bool)

    def segments(which: str) -> list:
        return [getattr(r, which) if k else () for r, k in zip(recordings, keep)]

    return Inputs(windows_of(recordings, segments("finals"), spec),
                  windows_of(recordings, segments("interims"), spec, interim=True)
                  if interims else None)


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


def score(predict: Model, x: Inputs, n_labels: int) -> Scored:
    """Run ``predict`` on every window of ``x`` and put the results together."""
    finals = score_windows(predict, x.finals, n_labels)
    if x.interims is None:
        return Scored(finals.recording_probs, finals.segments, None, None)
    interims = segment_probabilities(run_model(predict, x.interims.inputs, n_labels),
                                     x.interims)
    return Scored(finals.recording_probs, finals.segments, interims, x.interims.recording)
