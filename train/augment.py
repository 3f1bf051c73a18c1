"""Training-data augmentation: waveform copies (computed once, cached) and SpecAugment masks
(on the fly). Only ever applied to training utterances, after the speaker split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import librosa
import numpy as np

from edge.clip import clip_window
from edge.features import FeatureSpec


@dataclass(frozen=True)
class WaveAugment:
    """Random waveform changes for one augmented copy of a recording."""

    gain_db: float = 6.0
    """Gain drawn uniformly from ``[-gain_db, +gain_db]``, dB."""
    snr_db: tuple[float, float] = (10.0, 40.0)
    """Additive noise at an SNR drawn uniformly from this range, dB (vs the clip's speech)."""
    noise_prob: float = 0.8
    """Probability of adding noise; its colour is drawn between white and pink."""
    shift_seconds: tuple[float, float] = (-0.1, 0.3)
    """Window start relative to the detected onset, seconds (uniform)."""
    speed: tuple[float, float] = (0.9, 1.1)
    """Speed factor (tempo and pitch together, by resampling), uniform."""
    speed_prob: float = 0.5
    pitch_semitones: float = 1.5
    """Pitch shift drawn uniformly from ``[-pitch_semitones, +pitch_semitones]``."""
    pitch_prob: float = 0.3

    def key(self) -> str:
        """Short hash of the parameters (part of the feature cache key)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def coloured_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum ``1 / f**exponent`` (0 white, 1 pink), float64."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    spectrum /= f ** (exponent / 2.0)
    x = np.fft.irfft(spectrum, n=n)
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-12)


def speech_power(window: np.ndarray, frame: int = 400) -> float:
    """Mean power of the loudest half of the frames (the speech, not the pauses)."""
    n = window.size // frame * frame
    if n == 0:
        return float(np.mean(window.astype(np.float64) ** 2))
    p = np.mean(window[:n].astype(np.float64).reshape(-1, frame) ** 2, axis=1)
    return float(np.mean(np.sort(p)[p.size // 2:]))


def augment_window(signal: np.ndarray, spec: FeatureSpec, aug: WaveAugment,
                   rng: np.random.Generator) -> np.ndarray:
    """One augmented model window of a whole recording.

    Speed and pitch change the whole recording (librosa), then :func:`edge.clip.clip_window`
    cuts the window with a random shift, then gain and coloured noise at a random SNR.

    Returns
    -------
    np.ndarray [shape=(spec.window_samples,)], float32
    """
    sr = spec.frontend.sample_rate
    x = np.asarray(signal, dtype=np.float32)
    # Draw every number up front so each copy uses the same stream whatever is enabled.
    u = rng.uniform(size=8)
    speed = aug.speed[0] + u[0] * (aug.speed[1] - aug.speed[0])
    steps = (2 * u[1] - 1) * aug.pitch_semitones
    shift = aug.shift_seconds[0] + u[2] * (aug.shift_seconds[1] - aug.shift_seconds[0])
    gain_db = (2 * u[3] - 1) * aug.gain_db
    snr_db = aug.snr_db[0] + u[4] * (aug.snr_db[1] - aug.snr_db[0])
    if u[5] < aug.speed_prob and abs(speed - 1.0) > 1e-3:
        x = librosa.resample(x, orig_sr=sr, target_sr=int(round(sr / speed)), res_type="soxr_hq")
    if u[6] < aug.pitch_prob and abs(steps) > 1e-3:
        x = librosa.effects.pitch_shift(x, sr=sr, n_steps=steps)
    window = clip_window(x, spec, offset=int(round(shift * sr))).astype(np.float64)
    window *= 10.0 ** (gain_db / 20.0)
    if u[7] < aug.noise_prob:
        noise = coloured_noise(window.size, rng, exponent=rng.uniform(0.0, 1.0))
        window += noise * np.sqrt(speech_power(window) / 10.0 ** (snr_db / 10.0))
    return np.clip(window, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class SpecAugment:
    """Time and frequency masks (masked cells set to the training mean, i.e. 0 once
    normalised)."""

    time_masks: int = 2
    time_width: int = 20
    """Maximum frames per time mask."""
    freq_masks: int = 2
    freq_width: int = 4
    """Maximum coefficients per frequency mask."""
    prob: float = 0.5
    """Probability that a clip is masked at all."""


def spec_augment(batch: np.ndarray, cfg: SpecAugment, rng: np.random.Generator,
                 fill: np.ndarray | None = None) -> np.ndarray:
    """Masked copy of a batch ``(n, frames, n_mfcc, channels)``.

    ``fill`` (shape ``(n_mfcc, channels)``) is what masked cells become: the normaliser's
    mean for un-normalised inputs, zeros (the default) for normalised ones. Coefficient 0
    (loudness) is never frequency-masked.
    """
    out = np.array(batch, dtype=np.float32, copy=True)
    n, frames, coeffs, channels = out.shape
    fill = np.zeros((coeffs, channels), np.float32) if fill is None else np.asarray(fill)
    for i in range(n):
        if rng.uniform() >= cfg.prob:
            continue
        for _ in range(cfg.time_masks):
            w = int(rng.integers(0, cfg.time_width + 1))
            t0 = int(rng.integers(0, max(1, frames - w)))
            out[i, t0:t0 + w] = fill
        for _ in range(cfg.freq_masks):
            w = int(rng.integers(0, cfg.freq_width + 1))
            f0 = int(rng.integers(1, max(2, coeffs - w)))
            out[i, :, f0:f0 + w] = fill[f0:f0 + w]
    return out
