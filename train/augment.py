"""Waveform augmentation (training copies, computed once and cached), the named room
conditions held-out speakers are scored under, and SpecAugment masks (on the fly).

Augmentation only ever touches training speakers, after the speaker split; the conditions
only ever touch the audio of held-out speakers, to score them. Where an utterance starts or
ends is not decided here: augmented recordings go through the endpointer like any other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import librosa
import numpy as np
from scipy.signal import fftconvolve

from edge.audio import resample

NOISE_KINDS = ("white", "pink", "brown", "babble")


AUGMENT_VERSION = 2
"""Bump when the code of a transform changes (not only its parameters): cached copies made by
the old code are then not used."""


def _key(obj) -> str:
    """Short hash of a transform's parameters, the code version and librosa's (which does
    the speed and pitch changes)."""
    text = json.dumps({"params": dataclasses.asdict(obj), "version": AUGMENT_VERSION,
                       "librosa": librosa.__version__, "kind": type(obj).__name__},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# --------------------------------------------------------------------------------------
# Building blocks (pure functions of a signal and a random generator)
# --------------------------------------------------------------------------------------


def coloured_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum ``1 / f**exponent`` (0 white, 1 pink, 2 brown),
    float64 ``(n,)``."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    spectrum /= f ** (exponent / 2.0)
    x = np.fft.irfft(spectrum, n=n)
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-12)


def babble_noise(n: int, rng: np.random.Generator, sample_rate: int,
                 talkers: int | None = None) -> np.ndarray:
    """Babble-like noise, unit RMS, float64 ``(n,)``: a few "talkers", each speech-shaped
    noise (pink, band-limited to about 100-5000 Hz) under its own syllable-rate envelope
    (2-7 Hz). No recorded voice is used, so no speaker can leak into another's training."""
    talkers = talkers or int(rng.integers(3, 8))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    shape = 1.0 / np.maximum(freqs, 100.0) ** 0.5 / (1.0 + (freqs / 5000.0) ** 4)
    out = np.zeros(n)
    t = np.arange(n) / sample_rate
    for _ in range(talkers):
        voice = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shape, n=n)
        rate = rng.uniform(2.0, 7.0)
        envelope = 0.5 * (1.0 + np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
        envelope *= coloured_noise(n, rng, 2.0) > rng.uniform(-1.0, 0.5)  # pauses
        out += voice * envelope**2
    return out / max(float(np.sqrt(np.mean(out**2))), 1e-12)


def speech_power(x: np.ndarray, frame: int = 400) -> float:
    """Mean power of the loudest half of the frames (the speech, not the pauses)."""
    n = x.size // frame * frame
    if n == 0:
        return float(np.mean(x.astype(np.float64) ** 2))
    p = np.mean(x[:n].astype(np.float64).reshape(-1, frame) ** 2, axis=1)
    return float(np.mean(np.sort(p)[p.size // 2:]))


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` scaled to ``snr_db`` below the speech (:func:`speech_power`)."""
    return x + noise * np.sqrt(speech_power(x) / 10.0 ** (snr_db / 10.0))


def room_response(sample_rate: int, rt60: float, drr_db: float,
                  rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response, float64: a unit direct path, then exponentially
    decaying noise (60 dB in ``rt60`` seconds, darker as it decays) whose energy is
    ``drr_db`` below the direct path's (a far talker: low or negative DRR)."""
    n = int(round(min(1.5 * rt60, 1.2) * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail[: int(0.0025 * sample_rate)] = 0.0  # first reflections after 2.5 ms
    # air absorption: high frequencies decay faster, a one-pole low-pass that closes in time
    spectrum = np.fft.rfft(tail)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum /= 1.0 + (freqs / 6000.0) ** 2
    tail = np.fft.irfft(spectrum, n=n)
    energy = float(np.sum(tail**2))
    h = tail * np.sqrt(10.0 ** (-drr_db / 10.0) / max(energy, 1e-12))
    h[0] += 1.0
    return h


def reverberate(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` convolved with the room response ``h``, same length, same speech level."""
    y = fftconvolve(x, h)[: x.size]
    return y * np.sqrt(speech_power(x) / max(speech_power(y), 1e-20))


def equalize(x: np.ndarray, gain_db) -> np.ndarray:
    """Filter ``x`` with a zero-phase gain curve: ``gain_db(freqs_hz) -> dB`` over the rfft
    bins of the whole signal (band limits, microphone colouring)."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size)
    return np.fft.irfft(spectrum * 10.0 ** (gain_db(freqs) / 20.0), n=x.size)


def band_curve(kind: str, sample_rate: int, rng: np.random.Generator):
    """A gain curve (for :func:`equalize`, frequencies in cycles per sample):

    * ``telephone``: 300-3400 Hz, steep skirts;
    * ``lowpass``: a resampler's cut between 5.5 and 7.8 kHz;
    * ``mic``: a random microphone: tilt of +-3 dB/octave around 1 kHz and two +-6 dB bumps.
    """
    def hz(f):
        return np.maximum(f * sample_rate, 1.0)

    if kind == "telephone":
        return lambda f: -40.0 * (np.clip(np.log2(300.0 / hz(f)), 0, None)
                                  + np.clip(np.log2(hz(f) / 3400.0), 0, None))
    if kind == "lowpass":
        cut = rng.uniform(5500.0, 7800.0)
        return lambda f: -60.0 * np.clip(np.log2(hz(f) / cut), 0, None)
    tilt = rng.uniform(-3.0, 3.0)
    bumps = [(rng.uniform(np.log2(200), np.log2(6000)), rng.uniform(0.3, 1.5),
              rng.uniform(-6.0, 6.0)) for _ in range(2)]

    def mic(f):
        octave = np.log2(hz(f))
        out = tilt * (octave - np.log2(1000.0))
        for centre, width, gain in bumps:
            out += gain * np.exp(-0.5 * ((octave - centre) / width) ** 2)
        return out

    return mic


def capture_at(x: np.ndarray, sample_rate: int, device_rate: int) -> np.ndarray:
    """What a device capturing at ``device_rate`` (stereo, averaged back) delivers after
    resampling to ``sample_rate``: both band-limited resampling passes."""
    if device_rate == sample_rate:
        return x
    up = resample(np.asarray(x, np.float32), sample_rate, device_rate)
    stereo = np.stack((up, up), axis=1).mean(axis=1)
    return resample(stereo, device_rate, sample_rate)[: x.size].astype(np.float64)


def to_16_bit(x: np.ndarray) -> np.ndarray:
    """Rounded to the 16-bit grid and clipped, as a recording would store it."""
    return np.clip(np.round(np.asarray(x) * 32768.0), -32768, 32767) / 32768.0


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
        return _key(self)

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
            noise = (babble_noise(y.size, rng, sr) if kind == "babble" else
                     coloured_noise(y.size, rng, {"white": 0.0, "pink": 1.0,
                                                  "brown": 2.0}[kind]))
            y = add_noise(y, noise, rng.uniform(*self.snr_db))
        y *= 10.0 ** (rng.uniform(*self.gain_db) / 20.0)
        peak = float(np.abs(y).max()) if y.size else 0.0
        if peak > 1.0:
            y /= peak
        return to_16_bit(y).astype(np.float32)


# --------------------------------------------------------------------------------------
# Conditions held-out speakers are scored under
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """A deterministic room condition: the recording as a microphone would meet it."""

    name: str
    gain_db: float = 0.0
    rt60: float | None = None
    drr_db: float = 0.0
    noise: str | None = None
    snr_db: float = 20.0
    device_rate: int | None = None
    """Captured at this rate (stereo) and resampled back, Hz; None: not."""

    def key(self) -> str:
        return _key(self)

    def __call__(self, x: np.ndarray, sample_rate: int, rng: np.random.Generator
                 ) -> np.ndarray:
        y = np.asarray(x, dtype=np.float64)
        if self.rt60 is not None:
            y = reverberate(y, room_response(sample_rate, self.rt60, self.drr_db, rng))
        if self.noise is not None:
            noise = (babble_noise(y.size, rng, sample_rate) if self.noise == "babble" else
                     coloured_noise(y.size, rng, {"white": 0.0, "pink": 1.0,
                                                  "brown": 2.0}[self.noise]))
            y = add_noise(y, noise, self.snr_db)
        y = y * 10.0 ** (self.gain_db / 20.0)
        if self.device_rate is not None:
            y = capture_at(y, sample_rate, self.device_rate)
        return to_16_bit(y).astype(np.float32)


CONDITIONS = {
    "quiet": Condition("quiet", gain_db=-24.0),
    "reverb": Condition("reverb", rt60=0.5, drr_db=0.0),
    "noise": Condition("noise", noise="pink", snr_db=10.0),
    "combined": Condition("combined", rt60=0.5, drr_db=0.0, noise="pink", snr_db=15.0,
                          gain_db=-12.0, device_rate=44100),
}
"""The conditions ``ser-train`` and ``ser-bench`` report beside the clean figure: 24 dB
quieter (a speaker a few metres away), a reverberant room (RT60 0.5 s), pink noise at 10 dB
SNR, and all of it at once (reverb, noise at 15 dB, 12 dB quieter, captured at 44.1 kHz
stereo)."""


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
