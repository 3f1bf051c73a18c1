"""Recordings -> model inputs for training and scoring, through the device's own batch path
(:mod:`edge.batch`).

* :func:`device_inputs` — the inputs the device makes of each recording: every window of
  every utterance (:func:`edge.batch.windows_of`), with the window -> utterance -> recording
  bookkeeping that :func:`edge.batch.combine` needs to turn window probabilities into one
  result per recording exactly as ``edge-ser predict`` does.
* :func:`interim_windows` — the interim inputs of held-out recordings, at every hop after the
  endpointer confirmed the utterance (:func:`edge.endpoint.replay`), for the interim accuracy.
* :func:`augmented_inputs` — what the stream shows the model besides whole utterances, drawn
  afresh every epoch: an utterance cut short (an interim result: the utterance so far), a
  window at another position inside a long utterance, and a start a little early or late.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.batch import Windows, windows_of
from edge.endpoint import replay
from edge.features import FeatureSpec
from edge.utterance import normalised_frames, window_input
from train.dataset import Recording


@dataclass(frozen=True)
class WindowAugment:
    """How training inputs differ from whole, endpointed utterances."""

    shift_seconds: tuple[float, float] = (-0.1, 0.25)
    """The utterance's start moved by this much (uniform; earlier takes in more of the
    recording's lead-in, later drops the first sounds), seconds."""
    interim_prob: float = 0.3
    """Probability that an input is the utterance so far, cut at a random point."""
    min_interim_seconds: float = 0.3
    """The shortest utterance-so-far drawn, seconds (about when the endpointer confirms)."""


def device_inputs(recordings: list[Recording], spec: FeatureSpec, *,
                  fallback: bool = False) -> Windows:
    """The windows of every endpointed utterance of ``recordings``.

    ``fallback``: a recording without utterances counts as one utterance (training); else it
    contributes nothing and gets no result (the device says "no speech").
    """
    return windows_of(recordings, [r.utterances if fallback else r.segments
                                   for r in recordings], spec)


def interim_windows(recordings: list[Recording], spec: FeatureSpec, hop_frames: int
                    ) -> Windows:
    """The interim inputs of every recording exactly as ``listen`` makes them: at every hop
    boundary of the stream where an utterance is under way, the newest window of the
    utterance so far (from the onset the endpointer had then; :func:`edge.endpoint.replay`):
    one segment (and one window) per interim."""
    return windows_of(recordings, [replay(r.levels, spec.endpoint, spec.frames_per_second,
                                          hop_frames)[1] for r in recordings],
                      spec, interim=True)


def _cut(rec: Recording, start: int, end: int, spec: FeatureSpec, rng: np.random.Generator
         ) -> np.ndarray:
    """One input of frames ``[start, end)``: level of that stretch, one window (at a random
    position when it is longer than a window)."""
    log_mel, pad = normalised_frames(rec.mel[start:end], spec, rec.levels[start:end])
    w = spec.window_frames
    offset = int(rng.integers(0, len(log_mel) - w + 1)) if len(log_mel) > w else 0
    return window_input(log_mel[offset:offset + w], spec, pad)


def augmented_inputs(recordings: list[Recording], labels: np.ndarray, spec: FeatureSpec,
                     cfg: WindowAugment, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One input per utterance of every recording, as the stream may show it: the start
    shifted, sometimes only the utterance so far, a random window of a long one.

    Returns
    -------
    inputs : np.ndarray [shape=(n, *spec.input_shape)], float32, un-normalised
    labels : np.ndarray [shape=(n,)], the recording's label for each
    """
    fps = spec.frames_per_second
    rows, ys = [], []
    for rec, y in zip(recordings, labels):
        n = len(rec.mel)
        for seg in rec.utterances:
            shift = int(round(rng.uniform(*cfg.shift_seconds) * fps))
            start = min(max(0, seg.start + shift), max(0, seg.end - 1))
            end = seg.end
            if rng.uniform() < cfg.interim_prob:
                shortest = min(end - start, max(1, int(round(cfg.min_interim_seconds * fps))))
                end = start + int(rng.integers(shortest, end - start + 1))
            rows.append(_cut(rec, start, min(end, n), spec, rng))
            ys.append(y)
    return np.stack(rows), np.asarray(ys)
