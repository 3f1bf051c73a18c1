"""Frame levels: how loud each front-end frame is in the speech band, in dB.

The level comes from the mel power the front end computes anyway (no second pass over the
samples): the power of the mel bands whose centres lie in ``band_hz`` (the speech band;
mains hum, rumble and hiss outside it do not count), scaled so that white noise of RMS
``r`` has the level ``20 log10(r)``. A full-scale white noise is 0 dB, digital silence
``SILENT_DB``. The endpointer (speech / no speech, utterance boundaries) and the utterance
normaliser (how loud the speaker is) both read these levels.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from edge.errors import ConfigError
from edge.frontend import FrontendConfig, hz_to_mel, mel_to_hz, white_noise_mel_power

SPEECH_BAND_HZ = (250.0, 4000.0)
"""Mel bands with centres in this range make up a frame's level, Hz."""
SILENT_DB = -120.0
"""Level of digital silence (and the floor of every level), dB."""


@functools.lru_cache(maxsize=16)
def speech_band_weights(config: FrontendConfig,
                        band_hz: tuple[float, float] = SPEECH_BAND_HZ) -> np.ndarray:
    """``w`` such that ``mel @ w`` is the band power relative to unit white noise, float64
    ``(n_mels,)``, read-only."""
    if config.convention != "librosa":
        raise ConfigError("frame levels need the librosa front-end convention")
    centres = mel_centres(config)
    inside = (centres >= band_hz[0]) & (centres <= band_hz[1])
    if not inside.any():
        raise ConfigError(f"no mel band has its centre in {band_hz[0]:g}-{band_hz[1]:g} Hz"
                          f" (fmin {config.fmin:g}, fmax {config.fmax:g}, {config.n_mels} mels)")
    reference = white_noise_mel_power(config)
    weights = np.where(inside, 1.0, 0.0) / float(reference[inside].sum())
    weights.setflags(write=False)
    return weights


def mel_centres(config: FrontendConfig) -> np.ndarray:
    """Centre frequency of each mel band, Hz, float64 ``(n_mels,)``."""
    edges = mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax),
                                  config.n_mels + 2))
    return edges[1:-1]


def frame_levels(mel: np.ndarray, config: FrontendConfig, *,
                 band_hz: tuple[float, float] = SPEECH_BAND_HZ) -> np.ndarray:
    """Speech-band level of each frame.

    Parameters
    ----------
    mel : np.ndarray [shape=(n_frames, n_mels)]
        Mel power frames (:func:`edge.frontend.mel_power` / :class:`~edge.frontend.MelStream`).
    config : FrontendConfig
        The front end that made ``mel``.

    Returns
    -------
    np.ndarray [shape=(n_frames,)], float64, dB (white noise of RMS ``r``: ``20 log10 r``),
    never below ``SILENT_DB``.
    """
    power = np.asarray(mel, dtype=np.float64) @ speech_band_weights(config, tuple(band_hz))
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), SILENT_DB)


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (its default, linear interpolation), to the last bit, for a
    1-D float64 array without NaNs, at a tenth of the cost: one partition and the same
    interpolation numpy does (``_lerp``), without the bookkeeping of its general form. The
    endpointer calls it ten times a second and every hop asks for an utterance's level.

    Parameters
    ----------
    values : np.ndarray [shape=(n,)], float64, ``n >= 1``
    q : float, in [0, 100]
    """
    n = values.shape[0]
    virtual = (n - 1) * (q / 100.0)
    if virtual >= n - 1:
        return float(values.max())
    if virtual < 0:
        return float(values.min())
    below = int(math.floor(virtual))
    gamma = virtual - below
    part = np.partition(values, (below, below + 1))
    a, b = float(part[below]), float(part[below + 1])
    diff = b - a
    return b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma


def utterance_level(levels: np.ndarray, *, percentile: float = 90.0) -> float:
    """How loud an utterance is: the ``percentile`` of its frame levels, dB.

    A high percentile follows the voiced part of the speech and ignores pauses and the odd
    click; a gain of ``g`` dB on the audio adds exactly ``g`` to it.
    """
    x = np.asarray(levels, dtype=np.float64).ravel()
    if x.size == 0:
        return SILENT_DB
    return _percentile(x, percentile)


_percentile = percentile  # utterance_level's argument has the same name
