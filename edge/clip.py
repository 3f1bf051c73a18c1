"""A whole recording -> the one window of audio the model sees, exactly as in training.

``clip_window`` is the only place where a file's audio becomes a model window, on the
host (training, evaluation) and on the device (``edge-ser predict``):

1. trim leading silence: the window starts ``margin_seconds`` before the first frame whose
   energy is within ``top_db`` of the recording's loudest frame;
2. crop to ``spec.window_samples``, or pad the end when the speech is shorter;
3. add a fixed noise floor (white noise at ``floor_db`` dBFS RMS) to the whole window.

Why the noise floor: RAVDESS stores its pauses as exact digital zeros (up to half of a clip),
and plain zero padding does the same. Such frames hit the MFCC's -100 dB clamp, a value a
live microphone never produces, so a model trained on them meets unseen inputs on a device.
With the floor, digital silence, padding and a quiet room all look alike (about -70 dBFS),
while speech (typically -40..-15 dBFS RMS) is unchanged to within a fraction of a dB.
The noise is deterministic (fixed seed), so the same file always gives the same window.

numpy only.
"""

from __future__ import annotations

import numpy as np

from edge.errors import AudioError
from edge.features import FeatureSpec

TOP_DB = 40.0
"""Frames quieter than the loudest frame by more than this (dB) count as leading silence."""
MARGIN_SECONDS = 0.05
"""Audio kept before the detected onset, seconds."""
FLOOR_DB = -70.0
"""RMS level of the noise floor added to every window, dB relative to full scale."""
ENERGY_FRAME_SECONDS = 0.025
ENERGY_HOP_SECONDS = 0.010
_FLOOR_SEED = 20240517
_SILENT_DB = -120.0


def frame_energy_db(signal: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """RMS energy of each frame in dBFS (``10 log10(mean(x**2))``, floored at -120 dB).

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,)], float
    frame_length, hop_length : int, samples

    Returns
    -------
    np.ndarray [shape=(n_frames,)], float64; one frame (the whole signal) when the signal is
    shorter than ``frame_length``.
    """
    x = np.asarray(signal, dtype=np.float64).ravel()
    if x.size == 0:
        return np.full(1, _SILENT_DB)
    if x.size < frame_length:
        frames = x[None, :]
    else:
        frames = np.lib.stride_tricks.sliding_window_view(x, frame_length)[::hop_length]
    power = np.mean(frames**2, axis=1)
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), _SILENT_DB)


def speech_onset(signal: np.ndarray, sample_rate: int, *, top_db: float = TOP_DB,
                 margin_seconds: float = MARGIN_SECONDS) -> int:
    """Sample index where the window starts: ``margin_seconds`` before the first frame within
    ``top_db`` dB of the loudest frame (0 for silence or sound from the start)."""
    frame = max(1, int(round(ENERGY_FRAME_SECONDS * sample_rate)))
    hop = max(1, int(round(ENERGY_HOP_SECONDS * sample_rate)))
    db = frame_energy_db(signal, frame_length=frame, hop_length=hop)
    if db.max() <= _SILENT_DB:
        return 0
    first = int(np.argmax(db >= db.max() - top_db))
    return max(0, first * hop - int(round(margin_seconds * sample_rate)))


def noise_floor(n_samples: int, *, level_db: float = FLOOR_DB) -> np.ndarray:
    """Deterministic white noise with RMS ``level_db`` dBFS, float32, shape ``(n_samples,)``."""
    rng = np.random.default_rng(_FLOOR_SEED)
    return (rng.standard_normal(n_samples) * 10.0 ** (level_db / 20.0)).astype(np.float32)


def clip_window(signal: np.ndarray, spec: FeatureSpec, *, offset: int = 0,
                top_db: float = TOP_DB, floor_db: float | None = FLOOR_DB) -> np.ndarray:
    """The model's window of a whole recording: leading silence trimmed, cropped or padded to
    ``spec.window_samples``, plus the noise floor.

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,)], float, at ``spec.frontend.sample_rate``
    spec : FeatureSpec
    offset : int
        Samples added to the onset, negative to start earlier (training's time-shift
        augmentation; 0 on the device).
    top_db : float
        Leading-silence threshold below the loudest frame, dB.
    floor_db : float or None
        Noise floor level in dBFS; ``None`` adds nothing (digital zeros stay zeros).

    Returns
    -------
    np.ndarray [shape=(spec.window_samples,)], float32
    """
    x = np.asarray(signal, dtype=np.float32).ravel()
    if x.size == 0:
        raise AudioError("no audio samples (empty recording)")
    if not np.isfinite(x).all():
        raise AudioError("NaN or infinite samples; the recording is corrupt")
    n = spec.window_samples
    start = speech_onset(x, spec.frontend.sample_rate, top_db=top_db) + int(offset)
    start = min(max(0, start), x.size - 1)
    window = np.zeros(n, dtype=np.float32)
    piece = x[start:start + n]
    window[:piece.size] = piece
    if floor_db is not None:
        window += noise_floor(n, level_db=floor_db)
    return window
