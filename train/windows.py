"""Recordings -> model inputs for training and scoring, through the device's own utterance
path (:mod:`edge.utterance`).

* :func:`device_inputs` — the inputs the device makes of each recording: every window of
  every utterance, with the row -> (recording, utterance) bookkeeping that
  :func:`recording_probabilities` needs to turn window probabilities into one result per
  recording exactly as ``edge-ser predict`` does.
* :func:`augmented_inputs` — what the stream shows the model besides whole utterances, drawn
  afresh every epoch: an utterance cut short (an interim result: the utterance so far), a
  window at another position inside a long utterance, and a start a little early or late.
* :func:`interim_inputs` — the interim inputs of held-out recordings, at every hop after the
  endpointer confirmed the utterance, for the interim accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.endpoint import replay
from edge.features import FeatureSpec
from edge.levels import utterance_level
from edge.utterance import (
    aggregate_utterances,
    centred,
    normalized_log_mel,
    utterance_inputs,
    window_input,
)
from edge.utterance import interim_inputs as device_interim_inputs  # same name as ours
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


@dataclass(frozen=True)
class DeviceInputs:
    """Every window the device makes of a list of recordings."""

    inputs: np.ndarray
    """``(n_windows, *spec.input_shape)`` float32, un-normalised."""
    recording: np.ndarray
    """Recording index of each row, int64 ``(n_windows,)``."""
    utterance: np.ndarray
    """Utterance index (over all recordings) of each row, int64 ``(n_windows,)``."""
    utterance_recording: np.ndarray
    """Recording index of each utterance, int64 ``(n_utterances,)``."""
    utterance_weight: np.ndarray
    """Speech frames of each utterance, float64 ``(n_utterances,)``."""
    n_recordings: int


def device_inputs(recordings: list[Recording], spec: FeatureSpec, *,
                  fallback: bool = False) -> DeviceInputs:
    """The windows of every endpointed utterance of ``recordings``.

    ``fallback``: a recording without utterances counts as one utterance (training); else it
    contributes nothing and :func:`recording_probabilities` gives it no result (the device
    says "no speech").
    """
    rows, rec_of_row, utt_of_row, utt_rec, utt_weight = [], [], [], [], []
    for i, rec in enumerate(recordings):
        for seg in (rec.utterances if fallback else rec.segments):
            x = utterance_inputs(rec.mel[seg.start:seg.end], spec,
                                 levels=rec.levels[seg.start:seg.end])
            rows.append(x)
            rec_of_row += [i] * len(x)
            utt_of_row += [len(utt_rec)] * len(x)
            utt_rec.append(i)
            utt_weight.append(max(seg.speech_frames, 1))
    inputs = np.concatenate(rows) if rows else np.zeros((0, *spec.input_shape), np.float32)
    return DeviceInputs(inputs, np.array(rec_of_row, np.int64), np.array(utt_of_row, np.int64),
                        np.array(utt_rec, np.int64), np.array(utt_weight, np.float64),
                        len(recordings))


def recording_probabilities(window_probs: np.ndarray, d: DeviceInputs) -> np.ndarray:
    """One probability vector per recording from the probabilities of :func:`device_inputs`'
    rows: windows averaged per utterance, utterances averaged weighted by their speech
    frames (:func:`edge.utterance.aggregate_utterances`). A recording without utterances gets
    a row of NaN. float64 ``(n_recordings, n_labels)``."""
    n_labels = window_probs.shape[1] if window_probs.ndim == 2 else 0
    out = np.full((d.n_recordings, n_labels), np.nan)
    n_utt = len(d.utterance_recording)
    if n_utt == 0:
        return out
    utt_probs = mean_by(window_probs, d.utterance, n_utt)
    for i in np.unique(d.utterance_recording):
        mine = d.utterance_recording == i
        out[i] = aggregate_utterances(utt_probs[mine], d.utterance_weight[mine])
    return out


def _cut(rec: Recording, start: int, end: int, spec: FeatureSpec, rng: np.random.Generator
         ) -> np.ndarray:
    """One input of frames ``[start, end)``: level of that stretch, one window (at a random
    position when it is longer than a window)."""
    log_mel, pad = centred(normalized_log_mel(rec.mel[start:end], spec, utterance_level(
        rec.levels[start:end], percentile=spec.level_percentile)), spec)
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


def interim_inputs(recordings: list[Recording], spec: FeatureSpec, hop_frames: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The interim inputs of every recording exactly as ``listen`` makes them: at every hop
    boundary of the stream where an utterance is under way, the newest window of the
    utterance so far (from the onset the endpointer had then; :func:`edge.endpoint.replay`,
    :func:`edge.utterance.interim_inputs`): one row per interim.

    Returns
    -------
    inputs : np.ndarray [shape=(n_windows, *spec.input_shape)], float32
    interim : np.ndarray [shape=(n_windows,)], int64, the interim result each row belongs to
        (one row each; average the rows of one interim to get its probabilities)
    recording : np.ndarray [shape=(n_interims,)], int64, the recording of each interim
    """
    rows, interim, owner = [], [], []
    for i, rec in enumerate(recordings):
        _, under_way = replay(rec.levels, spec.endpoint, spec.frames_per_second, hop_frames)
        for seg in under_way:
            x = device_interim_inputs(rec.mel[seg.start:seg.end], spec,
                                      levels=rec.levels[seg.start:seg.end])
            rows.append(x)
            interim += [len(owner)] * len(x)
            owner.append(i)
    if not rows:
        return (np.zeros((0, *spec.input_shape), np.float32), np.zeros(0, np.int64),
                np.zeros(0, np.int64))
    return np.concatenate(rows), np.array(interim, np.int64), np.array(owner, np.int64)


def mean_by(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Row means of ``values`` per group index, ``(n_groups, width)``."""
    sums = np.zeros((n_groups, values.shape[1]))
    np.add.at(sums, groups, values)
    return sums / np.maximum(np.bincount(groups, minlength=n_groups), 1)[:, None]
