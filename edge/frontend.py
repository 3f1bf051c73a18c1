"""The MFCC front end: numpy only, shared by training on the host and the device.

One frozen :class:`FrontendConfig` describes the whole computation. Two conventions are
supported:

* ``FrontendConfig()`` (the shipped models): librosa's ``melspectrogram(center=False)`` ->
  ``power_to_db(top_db=None)`` -> orthonormal DCT-II, with a periodic Hann window of
  ``win_length`` centred in an ``n_fft`` frame and Slaney mel filters with Slaney area
  normalisation.
* ``FrontendConfig.python_speech_features()``: ``python_speech_features.mfcc`` with its own
  defaults (pre-emphasis 0.97, rectangular 25 ms window, HTK mel filters on FFT bins, natural
  log, lifter 22, log frame energy in c0).

Framing never pads (librosa's ``center=False``): frame ``t`` covers samples
``[t * hop_length, t * hop_length + frame_length)`` and depends on nothing else, so the
streaming form (:class:`MfccStream`) gives the same frames as :func:`mfcc` on the whole signal.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from edge.errors import ConfigError

LIBROSA = "librosa"
PSF = "python_speech_features"


@dataclass(frozen=True)
class FrontendConfig:
    """Parameters of the MFCC front end (librosa's names where librosa has one)."""

    sample_rate: int = 16000
    """Sampling rate of the input signal, Hz."""
    n_fft: int = 512
    """FFT size, samples. Each frame's spectrum has ``1 + n_fft // 2`` bins."""
    win_length: int = 400
    """Window length, samples (<= n_fft); 400 at 16 kHz is 25 ms."""
    hop_length: int = 160
    """Samples between the starts of consecutive frames; 160 at 16 kHz is 10 ms."""
    n_mels: int = 40
    """Number of mel bands."""
    n_mfcc: int = 40
    """Number of cepstral coefficients kept (<= n_mels)."""
    fmin: float = 20.0
    """Lowest mel filter edge, Hz."""
    fmax: float = 8000.0
    """Highest mel filter edge, Hz (<= sample_rate / 2)."""
    convention: Literal["librosa", "python_speech_features"] = LIBROSA
    """Whose MFCC to reproduce; see the module docstring. The fields below follow from it
    unless set explicitly for the python_speech_features convention."""
    preemphasis: float = 0.0
    """Pre-emphasis coefficient ``a`` in ``y[n] = x[n] - a * x[n-1]`` (0 disables)."""
    lifter: int = 0
    """Sinusoidal cepstral lifter ``1 + (L/2) sin(pi n / L)`` (0 disables)."""

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def python_speech_features(cls, **overrides: Any) -> FrontendConfig:
        """The defaults of ``python_speech_features.mfcc`` (13 coefficients from 26 filters)."""
        params: dict[str, Any] = dict(
            sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=26,
            n_mfcc=13, fmin=0.0, fmax=8000.0, convention=PSF, preemphasis=0.97, lifter=22,
        )
        params.update(overrides)
        if "fmax" not in overrides and "sample_rate" in overrides:
            params["fmax"] = params["sample_rate"] / 2
        return cls(**params)

    @property
    def frame_length(self) -> int:
        """Samples one frame depends on: ``n_fft`` (librosa) or ``win_length`` (psf)."""
        return self.n_fft if self.convention == LIBROSA else self.win_length

    @property
    def n_bins(self) -> int:
        """Frequency bins of the one-sided spectrum, ``1 + n_fft // 2``."""
        return 1 + self.n_fft // 2

    def n_frames(self, n_samples: int) -> int:
        """Frames produced from ``n_samples`` samples (0 when shorter than one frame)."""
        if n_samples < self.frame_length:
            return 0
        return 1 + (n_samples - self.frame_length) // self.hop_length

    def samples_for(self, n_frames: int) -> int:
        """Fewest samples that produce ``n_frames`` frames."""
        return 0 if n_frames <= 0 else self.frame_length + (n_frames - 1) * self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrontendConfig:
        """Build from :meth:`to_dict` output; unknown keys are refused with a message."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"front-end config has fields this edge-ser does not know: {', '.join(unknown)}"
                " (was the model made by a newer edge-ser? upgrade edge-ser)"
            )
        return cls(**data)

    def config_hash(self) -> str:
        """Short stable hash of the config, stored in model bundles (16 hex digits)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check(c: FrontendConfig) -> None:
    def bad(name: str, why: str) -> ConfigError:
        return ConfigError(f"FrontendConfig.{name}={getattr(c, name)!r}: {why}")

    for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "n_mfcc"):
        value = getattr(c, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise bad(name, "must be a positive integer")
    if c.convention not in (LIBROSA, PSF):
        raise bad("convention", f"must be {LIBROSA!r} or {PSF!r}")
    if c.win_length > c.n_fft:
        raise bad("win_length", f"must be <= n_fft ({c.n_fft})")
    if c.n_mfcc > c.n_mels:
        raise bad("n_mfcc", f"must be <= n_mels ({c.n_mels})")
    if not 0 <= c.fmin < c.fmax:
        raise bad("fmin", f"must satisfy 0 <= fmin < fmax ({c.fmax})")
    if c.fmax > c.sample_rate / 2:
        raise bad("fmax", f"must be <= sample_rate / 2 ({c.sample_rate / 2})")
    if not 0 <= c.preemphasis < 1:
        raise bad("preemphasis", "must be in [0, 1)")
    if c.lifter < 0:
        raise bad("lifter", "must be >= 0")


# --------------------------------------------------------------------------------------
# Mel scales and the matrices, built once per config
# --------------------------------------------------------------------------------------

_F_SP = 200.0 / 3  # Slaney: Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Hz -> mel, Slaney's scale (linear below 1 kHz, log above) or HTK's ``2595 log10``."""
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    mel = hz / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(mel: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    hz = _F_SP * mel
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, hz)


def mel_filterbank(config: FrontendConfig) -> np.ndarray:
    """Mel filter weights, float64, shape ``(n_mels, 1 + n_fft // 2)``.

    librosa convention: Slaney scale, triangles on exact FFT frequencies, each scaled by
    ``2 / (upper - lower edge)`` (constant area). psf convention: HTK scale, triangles on
    integer FFT bins ``floor((n_fft + 1) * f / sample_rate)``, peak 1, no normalisation.
    """
    return _matrices(config).filterbank.copy()


def _slaney_filterbank(c: FrontendConfig) -> np.ndarray:
    mel_f = mel_to_hz(np.linspace(hz_to_mel(c.fmin), hz_to_mel(c.fmax), c.n_mels + 2))
    fft_f = np.linspace(0.0, c.sample_rate / 2, c.n_bins)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]


def _htk_bin_filterbank(c: FrontendConfig) -> np.ndarray:
    mel_points = np.linspace(hz_to_mel(c.fmin, htk=True), hz_to_mel(c.fmax, htk=True),
                             c.n_mels + 2)
    bins = np.floor((c.n_fft + 1) * mel_to_hz(mel_points, htk=True) / c.sample_rate)
    bins = bins.astype(np.int64)
    weights = np.zeros((c.n_mels, c.n_bins))
    for m in range(c.n_mels):
        lo, mid, hi = bins[m], bins[m + 1], bins[m + 2]
        for k in range(lo, mid):
            weights[m, k] = (k - lo) / (mid - lo)
        for k in range(mid, hi):
            weights[m, k] = (hi - k) / (hi - mid)
    return weights


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a matrix, float64, shape ``(n_in, n_out)``: ``y = x @ D``."""
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    d = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    d[:, 0] /= np.sqrt(2.0)
    return d


@dataclass(frozen=True)
class _Matrices:
    window: np.ndarray  # (frame_length,) applied to a frame before the FFT
    window_offset: int  # first sample of the non-zero window part inside a frame
    filterbank: np.ndarray  # (n_mels, n_bins)
    filterbank_t: np.ndarray  # (n_bins, n_mels), contiguous for the matmul
    dct: np.ndarray  # (n_mels, n_mfcc), lifter folded in


@functools.lru_cache(maxsize=32)
def _matrices(c: FrontendConfig) -> _Matrices:
    if c.convention == LIBROSA:
        # Periodic Hann of win_length, centred in the n_fft frame. Only its non-zero part is
        # transformed (rfft zero-pads it to n_fft): a circular shift leaves the power spectrum
        # unchanged, so this equals librosa's centred window, with fewer multiplications.
        n = np.arange(c.win_length)
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / c.win_length)
        offset = (c.n_fft - c.win_length) // 2
        filterbank = _slaney_filterbank(c)
    else:
        window = np.ones(c.win_length)
        offset = 0
        filterbank = _htk_bin_filterbank(c)
    dct = dct_matrix(c.n_mels, c.n_mfcc)
    if c.lifter > 0:
        dct = dct * (1.0 + (c.lifter / 2.0) * np.sin(np.pi * np.arange(c.n_mfcc) / c.lifter))
    empty = np.flatnonzero(filterbank.max(axis=1) <= 0.0).tolist()
    if empty:
        raise ConfigError(
            f"FrontendConfig.n_mels={c.n_mels}: mel bands {empty} get no FFT bin with"
            f" n_fft={c.n_fft}; use fewer mel bands or a larger n_fft"
        )
    filterbank_t = np.ascontiguousarray(filterbank.T)
    for array in (window, filterbank, dct, filterbank_t):
        array.setflags(write=False)
    return _Matrices(window, offset, filterbank, filterbank_t, dct)


# --------------------------------------------------------------------------------------
# MFCC
# --------------------------------------------------------------------------------------

_AMIN_DB = 1e-10  # librosa.power_to_db's default amin
_EPS = np.finfo(np.float64).eps  # python_speech_features' floor before log


def _as_signal(signal: np.ndarray) -> np.ndarray:
    x = np.asarray(signal)
    if x.ndim != 1:
        raise ConfigError(f"signal must be 1-D (mono samples), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ConfigError(f"signal must be floating point in [-1, 1], got dtype {x.dtype}")
    return x.astype(np.float64, copy=False)


def _preemphasise(x: np.ndarray, a: float, previous: float | None) -> np.ndarray:
    """``y[n] = x[n] - a x[n-1]``; ``y[0] = x[0]`` at the very start of a signal."""
    y = np.empty_like(x)
    if x.size == 0:
        return y
    y[0] = x[0] if previous is None else x[0] - a * previous
    np.subtract(x[1:], a * x[:-1], out=y[1:])
    return y


def _rowwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` computed one row at a time, so a frame's result never depends on how many
    frames share the call (a plain BLAS matmul picks kernels by size and can differ in the
    last bit): streaming then equals batch exactly. As fast as the plain matmul here."""
    return np.matmul(a[:, None, :], b)[:, 0, :]


_CHUNK_FRAMES = 128
"""Frames computed per pass. Keeps every temporary under ~0.5 MB: larger ones are mmapped
fresh on each call by the allocator, and their page faults doubled the time of a 3 s clip."""


def _frames_in_chunks(x: np.ndarray, n_frames: int, c: FrontendConfig, width: int,
                      compute) -> np.ndarray:
    """``compute(x_chunk, k, c)`` over chunks of at most ``_CHUNK_FRAMES`` frames, float32
    ``(n_frames, width)``."""
    if n_frames <= _CHUNK_FRAMES:
        return compute(x, n_frames, c)
    out = np.empty((n_frames, width), dtype=np.float32)
    for first in range(0, n_frames, _CHUNK_FRAMES):
        k = min(_CHUNK_FRAMES, n_frames - first)
        start = first * c.hop_length
        out[first:first + k] = compute(x[start:start + c.samples_for(k)], k, c)
    return out


def _mfcc_of_frames(x: np.ndarray, n_frames: int, c: FrontendConfig) -> np.ndarray:
    """MFCC of the first ``n_frames`` frames of ``x`` (already pre-emphasised), float32."""
    return _frames_in_chunks(x, n_frames, c, c.n_mfcc, _mfcc_of_chunk)


def _mel_of_frames(x: np.ndarray, n_frames: int, c: FrontendConfig) -> np.ndarray:
    """Mel power of the first ``n_frames`` frames of ``x`` (already pre-emphasised), float32."""
    return _frames_in_chunks(x, n_frames, c, c.n_mels,
                             lambda xs, k, cc: _power_of_chunk(xs, k, cc)[1].astype(np.float32))


def _power_of_chunk(x: np.ndarray, n_frames: int, c: FrontendConfig
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum ``(n_frames, n_bins)`` and mel power ``(n_frames, n_mels)``, float64."""
    m = _matrices(c)
    if n_frames == 0:
        return np.zeros((0, c.n_bins)), np.zeros((0, c.n_mels))
    starts = np.lib.stride_tricks.as_strided(
        x[m.window_offset:],
        shape=(n_frames, c.win_length),
        strides=(x.strides[0] * c.hop_length, x.strides[0]),
        writeable=False,
    )
    spectrum = np.fft.rfft(starts * m.window, n=c.n_fft, axis=1)
    power = spectrum.real**2 + spectrum.imag**2  # (n_frames, n_bins)
    return power, _rowwise(power, m.filterbank_t)  # (n_frames, n_mels)


def _mfcc_of_chunk(x: np.ndarray, n_frames: int, c: FrontendConfig) -> np.ndarray:
    if n_frames == 0:
        return np.zeros((0, c.n_mfcc), dtype=np.float32)
    m = _matrices(c)
    power, mel = _power_of_chunk(x, n_frames, c)
    if c.convention == LIBROSA:
        log_mel = 10.0 * np.log10(np.maximum(mel, _AMIN_DB))
        out = _rowwise(log_mel, m.dct)
    else:
        power /= c.n_fft
        mel /= c.n_fft
        log_mel = np.log(np.where(mel == 0.0, _EPS, mel))
        out = _rowwise(log_mel, m.dct)
        energy = power.sum(axis=1)
        out[:, 0] = np.log(np.where(energy == 0.0, _EPS, energy))
    return out.astype(np.float32)


def mfcc(signal: np.ndarray, config: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """MFCCs of a whole signal.

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,)], floating point
        Mono audio at ``config.sample_rate``, nominally in [-1, 1].
    config : FrontendConfig

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mfcc)], float32
        ``n_frames = 1 + (n_samples - frame_length) // hop_length``, or 0 frames for a signal
        shorter than ``config.frame_length``.
    """
    x = _as_signal(signal)
    if config.preemphasis:
        x = _preemphasise(x, config.preemphasis, None)
    return _mfcc_of_frames(x, config.n_frames(x.size), config)


def mel_power(signal: np.ndarray, config: FrontendConfig = FrontendConfig()) -> np.ndarray:
    """Mel-band power of a whole signal: the power spectrum of each windowed frame through
    the mel filterbank, before any logarithm (librosa's ``melspectrogram(center=False)``).

    Returns
    -------
    np.ndarray [shape=(n_frames, n_mels)], float32, in squared sample units; the same frames
    as :func:`mfcc`.
    """
    x = _as_signal(signal)
    if config.preemphasis:
        x = _preemphasise(x, config.preemphasis, None)
    return _mel_of_frames(x, config.n_frames(x.size), config)


def cepstral_matrix(config: FrontendConfig) -> np.ndarray:
    """The DCT (lifter folded in) that turns log-mel frames into cepstra: ``c = log_mel @ D``,
    float64 ``(n_mels, n_mfcc)``, read-only and built once per config."""
    return _matrices(config).dct


def white_noise_mel_power(config: FrontendConfig) -> np.ndarray:
    """Expected mel power of unit-variance white noise, float64 ``(n_mels,)``: what
    :func:`mel_power` gives on average for noise of RMS 1 (scale by ``rms**2``)."""
    m = _matrices(config)
    return float(np.sum(m.window**2)) * m.filterbank.sum(axis=1)


class MfccStream:
    """Incremental MFCC: feed blocks of any size, get only the frames they complete.

    The concatenation of everything :meth:`push` returns equals :func:`mfcc` on the
    concatenated blocks. Memory is bounded: at most ``frame_length - 1`` samples (plus the
    last block) are kept between calls.
    """

    def __init__(self, config: FrontendConfig = FrontendConfig()) -> None:
        self.config = config
        self.reset()

    @staticmethod
    def _compute(x: np.ndarray, n_frames: int, c: FrontendConfig) -> np.ndarray:
        return _mfcc_of_frames(x, n_frames, c)

    def reset(self) -> None:
        """Forget all audio: the next block starts a new signal."""
        self._pending = np.zeros(0, dtype=np.float64)  # samples not yet consumed by a frame
        self._last_raw: float | None = None  # previous raw sample, for pre-emphasis
        self.frames_emitted = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add ``block`` (1-D float samples); return the new frames, ``(k, width)`` float32."""
        c = self.config
        x = _as_signal(block)
        if c.preemphasis and x.size:
            raw_last = float(x[-1])
            x = _preemphasise(x, c.preemphasis, self._last_raw)
            self._last_raw = raw_last
        buffer = np.concatenate((self._pending, x)) if self._pending.size else x
        n_frames = c.n_frames(buffer.size)
        frames = self._compute(buffer, n_frames, c)
        self._pending = buffer[n_frames * c.hop_length:].copy()
        self.frames_emitted += n_frames
        return frames


class MelStream(MfccStream):
    """Incremental :func:`mel_power`: ``push`` returns the new frames' mel power,
    ``(k, n_mels)`` float32, equal to :func:`mel_power` on the concatenated blocks."""

    @staticmethod
    def _compute(x: np.ndarray, n_frames: int, c: FrontendConfig) -> np.ndarray:
        return _mel_of_frames(x, n_frames, c)


# --------------------------------------------------------------------------------------
# Model input: a window of frames with deltas
# --------------------------------------------------------------------------------------


def deltas(frames: np.ndarray, *, width: int = 9) -> np.ndarray:
    """First-order regression deltas along time, edges repeated.

    ``d[t] = sum_{n=1}^{N} n (x[t+n] - x[t-n]) / (2 sum_{n=1}^{N} n^2)``, ``N = width // 2``.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, n_coeffs)]
    width : int, odd, >= 3

    Returns
    -------
    np.ndarray [shape=(n_frames, n_coeffs)], float32
    """
    if width < 3 or width % 2 == 0:
        raise ConfigError(f"delta width={width!r}: must be an odd integer >= 3")
    x = np.asarray(frames, dtype=np.float64)
    if x.shape[0] == 0:
        return np.zeros(x.shape, dtype=np.float32)
    half = width // 2
    padded = np.pad(x, ((half, half), (0, 0)), mode="edge")
    t = x.shape[0]
    out = np.zeros_like(x)
    for n in range(1, half + 1):
        out += n * (padded[half + n:half + n + t] - padded[half - n:half - n + t])
    out /= 2.0 * sum(n * n for n in range(1, half + 1))
    return out.astype(np.float32)


def stack_deltas(frames: np.ndarray, *, width: int = 9) -> np.ndarray:
    """Frames and their deltas as channels: ``(n_frames, n_coeffs, 2)`` float32."""
    frames = np.asarray(frames, dtype=np.float32)
    return np.stack((frames, deltas(frames, width=width)), axis=-1)
