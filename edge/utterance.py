"""One utterance -> the model's inputs, the same way in training, ``predict`` and ``listen``.

An utterance is a run of front-end frames (mel power, :class:`~edge.frontend.MelStream`)
between the endpointer's boundaries (:mod:`edge.endpoint`). It becomes model inputs in three
steps, all set by the bundle's :class:`~edge.features.FeatureSpec`:

1. **Level normalisation.** ``L`` is the utterance's level (a high percentile of its frame
   levels, :func:`edge.levels.utterance_level`). Each frame's mel power gets a pink-noise
   floor at ``L + floor_db`` and is then expressed relative to ``L``::

       log_mel = 10 log10(mel + floor(L + floor_db)) - L        (dB)

   A gain of ``g`` dB on the audio raises ``mel`` by ``g`` dB and ``L`` by ``g``: the result
   does not change. Digital silence, the padding and a quiet room all sit at the floor, so
   a model never meets a level it was not trained on because the speaker was near or far.
2. **Windows.** An utterance up to one window long is one window, starting with the
   utterance and padded with the floor after it. A longer one gets ``k`` windows spread
   evenly from its start to its end, at most ``stride_seconds`` apart; their
   probabilities are averaged (:class:`edge.classifier.Classifier`).
3. **Cepstra.** Each window's log-mel frames go through the orthonormal DCT (the front end's
   MFCC) and get their deltas as a second channel. With ``utterance_mean`` the bands' means
   over the utterance are removed first (:func:`centred`).

The normalisation with the training speakers' mean/std and the int8 quantisation follow in
:class:`~edge.classifier.Classifier`. numpy only.
"""

from __future__ import annotations

import functools

import numpy as np

from edge.endpoint import Segment, speech_segments
from edge.features import FeatureSpec
from edge.frontend import cepstral_matrix, mel_power, stack_deltas, white_noise_mel_power
from edge.levels import frame_levels, mel_centres, speech_band_weights, utterance_level


@functools.lru_cache(maxsize=16)
def _floor_mel(spec: FeatureSpec) -> np.ndarray:
    """Mel power of the floor for an utterance at 0 dB, float64 ``(n_mels,)``: pink noise
    (power falling 3 dB per octave, like a quiet room; a white floor would bury the weak high
    bands of speech) whose level (:func:`edge.levels.frame_levels`) is ``floor_db``."""
    centres = mel_centres(spec.frontend)
    pink = white_noise_mel_power(spec.frontend) * (1000.0 / np.maximum(centres, 50.0))
    level = float(pink @ speech_band_weights(spec.frontend))
    floor = pink * 10.0 ** (spec.floor_db / 10.0) / level
    floor.setflags(write=False)
    return floor


def normalized_log_mel(mel: np.ndarray, spec: FeatureSpec, level_db: float) -> np.ndarray:
    """Log-mel frames relative to the utterance level, with the floor.

    Parameters
    ----------
    mel : np.ndarray [shape=(n_frames, n_mels)]
        Mel power frames.
    level_db : float
        The utterance's level (:func:`edge.levels.utterance_level` of its frames).

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mels)], float32, dB relative to ``level_db``.
    """
    scale = 10.0 ** (level_db / 10.0)
    floored = np.asarray(mel, dtype=np.float64) + _floor_mel(spec) * scale
    return (10.0 * np.log10(floored) - level_db).astype(np.float32)


@functools.lru_cache(maxsize=16)
def floor_log_mel(spec: FeatureSpec) -> np.ndarray:
    """The log-mel frame of pure floor (what padding becomes), float32 ``(n_mels,)``,
    read-only."""
    floor = (10.0 * np.log10(_floor_mel(spec))).astype(np.float32)
    floor.setflags(write=False)
    return floor


def window_starts(n_frames: int, spec: FeatureSpec) -> np.ndarray:
    """First frame of each window of an ``n_frames`` utterance: ``[0]`` when it fits one
    window, else evenly spread from 0 to ``n_frames - window_frames``, at most
    ``stride_frames`` apart. int64 ``(k,)``."""
    w = spec.window_frames
    if n_frames <= w:
        return np.zeros(1, dtype=np.int64)
    k = 1 + -(-(n_frames - w) // spec.stride_frames)
    return np.round(np.linspace(0, n_frames - w, k)).astype(np.int64)


def centred(log_mel: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """With ``spec.utterance_mean``: the utterance's log-mel frames minus each band's mean
    over them, and the padding frame moved by the same amount; else both unchanged.

    Returns
    -------
    log_mel : np.ndarray [shape=(n, n_mels)], float32
    pad : np.ndarray [shape=(n_mels,)], float32, what padding frames hold
    """
    pad = floor_log_mel(spec)
    if not spec.utterance_mean or len(log_mel) == 0:
        return log_mel, pad
    mean = np.asarray(log_mel, np.float64).mean(axis=0)
    return (log_mel - mean).astype(np.float32), (pad - mean).astype(np.float32)


def normalised_frames(mel: np.ndarray, spec: FeatureSpec, levels: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A stretch of frames made relative to its own level (:func:`normalized_log_mel`,
    :func:`centred`): the log-mel frames ``(n, n_mels)`` and the padding frame ``(n_mels,)``,
    float32.

    Parameters
    ----------
    mel : np.ndarray [shape=(n, n_mels)]
        Mel power frames.
    levels : np.ndarray [shape=(n,)]
        Their frame levels (:func:`edge.levels.frame_levels`).
    """
    level = utterance_level(levels, percentile=spec.level_percentile)
    return centred(normalized_log_mel(mel, spec, level), spec)


def window_input(log_mel: np.ndarray, spec: FeatureSpec, pad: np.ndarray | None = None
                 ) -> np.ndarray:
    """One model input from up to one window of normalised log-mel frames.

    Parameters
    ----------
    log_mel : np.ndarray [shape=(n, n_mels)], ``n <= window_frames``
        :func:`normalized_log_mel` frames (:func:`centred`); fewer than a window are padded.
    pad : np.ndarray [shape=(n_mels,)] or None
        The padding frame (:func:`centred`); None: the floor.

    Returns
    -------
    np.ndarray [shape=spec.input_shape], float32, not yet normalised with the training mean/std
    """
    w = spec.window_frames
    frames = np.asarray(log_mel, dtype=np.float32)[:w]
    if len(frames) < w:
        row = floor_log_mel(spec) if pad is None else pad
        pad = np.broadcast_to(row, (w - len(frames), frames.shape[1]))
        frames = np.concatenate((frames, pad))
    cepstra = (frames.astype(np.float64) @ cepstral_matrix(spec.frontend)).astype(np.float32)
    if spec.delta_width is None:
        return cepstra[..., None]
    return stack_deltas(cepstra, width=spec.delta_width)


def utterance_inputs(mel: np.ndarray, spec: FeatureSpec, *,
                     levels: np.ndarray | None = None) -> np.ndarray:
    """The model inputs of one utterance: its windows, level-normalised.

    Parameters
    ----------
    mel : np.ndarray [shape=(n_frames, n_mels)], ``n_frames >= 1``
        The utterance's mel power frames.
    levels : np.ndarray [shape=(n_frames,)] or None
        Their frame levels, when already computed.

    Returns
    -------
    np.ndarray [shape=(k, *spec.input_shape)], float32; ``k = len(window_starts(n_frames))``.
    """
    if levels is None:
        levels = frame_levels(mel, spec.frontend)
    log_mel, pad = normalised_frames(mel, spec, levels)
    w = spec.window_frames
    return np.stack([window_input(log_mel[s:s + w], spec, pad)
                     for s in window_starts(len(log_mel), spec)])


def interim_inputs(mel: np.ndarray, spec: FeatureSpec, *,
                   levels: np.ndarray | None = None) -> np.ndarray:
    """The model input of an utterance still under way: its newest window only.

    The last window :func:`utterance_inputs` gives for the same frames (it starts at
    ``max(0, n_frames - window_frames)``), normalised with the level (and, with
    ``utterance_mean``, the band means) of the whole utterance so far: an utterance up to one
    window long gets exactly its :func:`utterance_inputs`. One window whatever the length, so
    a live interim costs about the same at 1 s and at 6 s (only the level's percentile over
    the utterance's frame levels grows, and it is small).

    Parameters
    ----------
    mel : np.ndarray [shape=(m, n_mels)]
        The utterance's mel power frames so far: all ``n_frames`` of them, or (with
        ``levels`` given and without ``utterance_mean``) at least the last
        ``min(n_frames, window_frames)``.
    levels : np.ndarray [shape=(n_frames,)] or None
        The frame levels of the whole utterance so far; None: computed from ``mel`` (which
        must then be the whole utterance).

    Returns
    -------
    np.ndarray [shape=(1, *spec.input_shape)], float32.
    """
    if levels is None:
        levels = frame_levels(mel, spec.frontend)
    n = len(levels)
    level = utterance_level(levels, percentile=spec.level_percentile)
    newest = len(mel) - (n - max(0, n - spec.window_frames))
    if spec.utterance_mean:
        if len(mel) != n:
            raise ValueError(f"utterance_mean needs all {n} frames, got {len(mel)}")
        log_mel, pad = centred(normalized_log_mel(mel, spec, level), spec)
        log_mel = log_mel[newest:]
    else:
        log_mel, pad = normalized_log_mel(mel[newest:], spec, level), floor_log_mel(spec)
    return window_input(log_mel, spec, pad)[None]


SPEECH_WEIGHT_FLOOR = 1e-3
"""Smallest weight of an utterance in a recording's average, seconds."""


def aggregate_utterances(probs: np.ndarray, speech_seconds: np.ndarray) -> np.ndarray:
    """A recording's probabilities from its utterances': their average weighted by each
    utterance's speech (at least :data:`SPEECH_WEIGHT_FLOOR`), float64 ``(n_labels,)``.

    Parameters
    ----------
    probs : np.ndarray [shape=(n_utterances, n_labels)]
    speech_seconds : np.ndarray [shape=(n_utterances,)], seconds
    """
    w = np.maximum(np.asarray(speech_seconds, dtype=np.float64), SPEECH_WEIGHT_FLOOR)
    p = np.asarray(probs, dtype=np.float64)
    return (p * w[:, None]).sum(axis=0) / w.sum()


def recording_frames(signal: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Mel power frames ``(n_frames, n_mels)`` float32 and their levels ``(n_frames,)`` (dB)
    of a whole recording at the front end's rate."""
    mel = mel_power(signal, spec.frontend)
    return mel, frame_levels(mel, spec.frontend)


def recording_segments(levels: np.ndarray, spec: FeatureSpec) -> list[Segment]:
    """The utterances of a whole recording (the endpointer run over its frame levels)."""
    return speech_segments(levels, spec.endpoint, spec.frames_per_second)
