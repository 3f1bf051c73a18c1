"""Waveform augmentation (training copies, computed once and cached) and SpecAugment masks
(on the fly). The signal building blocks are :mod:`train.room`'s; the room conditions
held-out speakers are scored under are :mod:`train.conditions`' (re-exported here).

Augmentation only ever touches training speakers, after the speaker split; the conditions
only ever touch the audio of held-out speakers, to score them. Where an utterance starts or
ends is not decided here: augmented recordings go through the endpointer like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from train.conditions import CONDITIONS, Condition  # noqa: F401  (re-exported)
from train.room import (
    NOISE_KINDS,
    add_noise,
    band_curve,
    equalize,
    noise,
    reverberate,
    room_response,
    to_16_bit,
    transform_key,
)

# --------------------------------------------------------------------------------------
# Training copies
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaveAugment:
    """Random waveform changes for one augmented copy of a recording (each independently)."""

    gain_db: tuple[float, float] = (-30.0, 6.0)
    """Gain drawn uniformly from this range, dB, before 16-bit rounding. The model input is
    level-normalised, so this is about what a far speaker also brings: the soft parts near
    the 16-bit grid and under the endpointer's absolute floor."""
    speed: tuple[float, float] = (0.9, 1.1)
    """Speed factor (tempo and pitch together, by resampling), uniform."""
    speed_prob: float = 0.5
    pitch_semitones: float = 1.5
    """Pitch shift drawn uniformly from ``[-pitch_semitones, +pitch_semitones]``."""
    pitch_prob: float = 0.3
    reverb_prob: float = 0.5
    rt60: tuple[float, float] = (0.15, 1.0)
    """Reverberation time of the synthetic room, seconds, uniform."""
    drr_db: tuple[float, float] = (-3.0, 12.0)
    """Direct-to-reverberant ratio (near talker high, far talker low), dB, uniform."""
    band_prob: float = 0.4
    """Probability of a band limit or microphone colouring (telephone 0.2, resampler
    low-pass 0.4, random microphone 0.4 of those)."""
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (0.0, 30.0)
    """Additive noise at an SNR drawn uniformly from this range, dB (vs the speech)."""
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    """Noise colours drawn from (white, pink, brown, babble-like)."""

    def key(self) -> str:
        """Short hash of the parameters (part of the feature cache key)."""
        return transform_key(self)

    def __call__(self, x: np.ndarray, sample_rate: int, rng: np.random.Generator
                 ) -> np.ndarray:
        """One augmented copy of the whole recording ``x`` (float, at ``sample_rate``),
        float32 in [-1, 1]."""
        sr = sample_rate
        y = np.asarray(x, dtype=np.float32)
        u = rng.uniform(size=8)  # every decision drawn up front: a stable stream per copy
        if u[0] < self.speed_prob:
            speed = rng.uniform(*self.speed)
            y = librosa.resample(y, orig_sr=sr, target_sr=int(round(sr / speed)),
                                 res_type="soxr_hq")
        if u[1] < self.pitch_prob:
            steps = rng.uniform(-self.pitch_semitones, self.pitch_semitones)
            y = librosa.effects.pitch_shift(y, sr=sr, n_steps=steps)
        y = y.astype(np.float64)
        if u[2] < self.reverb_prob:
            y = reverberate(y, room_response(sr, rng.uniform(*self.rt60),
                                             rng.uniform(*self.drr_db), rng))
        if u[3] < self.band_prob:
            kind = ("telephone", "lowpass", "mic")[int(rng.choice(3, p=(0.2, 0.4, 0.4)))]
            y = equalize(y, band_curve(kind, sr, rng))
        if u[4] < self.noise_prob:
            kind = self.noise_kinds[int(rng.integers(len(self.noise_kinds)))]
            y = add_noise(y, noise(kind, y.size, rng, sr), rng.uniform(*self.snr_db))
        y *= 10.0 ** (rng.uniform(*self.gain_db) / 20.0)
        peak = float(np.abs(y).max()) if y.size else 0.0
        if peak > 1.0:
            y /= peak
        return to_16_bit(y).astype(np.float32)


# --------------------------------------------------------------------------------------
# SpecAugment
# --------------------------------------------------------------------------------------


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
