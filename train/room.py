"""Signal building blocks of the waveform augmentation and the room conditions: coloured and
babble-like noise, synthetic rooms, band limits, capture at a device's rate, the 16-bit grid.

Pure functions of a float signal (and a random generator); imported by :mod:`train.augment`
and, only where audio is rendered, by :mod:`train.conditions` (which must import without
SciPy or librosa).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
from scipy.signal import fftconvolve

from edge.audio import resample

NOISE_KINDS = ("white", "pink", "brown", "babble")


AUGMENT_VERSION = 2
"""Bump when the code of a transform changes (not only its parameters): cached copies made by
the old code are then not used."""


def transform_key(obj) -> str:
    """Short hash of a transform's parameters, the code version and librosa's (which does
    the speed and pitch changes)."""
    import librosa

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


def noise(kind: str, n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Unit-RMS noise of one of :data:`NOISE_KINDS`, float64 ``(n,)``."""
    if kind == "babble":
        return babble_noise(n, rng, sample_rate)
    return coloured_noise(n, rng, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])


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
