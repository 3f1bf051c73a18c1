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
import inspect
import json
import threading
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
    filterbank_t32: np.ndarray  # the same in float32


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
    filterbank_t32 = filterbank_t.astype(np.float32)
    for array in (window, filterbank, dct, filterbank_t, filterbank_t32):
        array.setflags(write=False)
    return _Matrices(window, offset, filterbank, filterbank_t, dct, filterbank_t32)


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


_STREAM_FRAMES = 64
"""Frames a stream computes per pass (a 0.5 s hop is 50; a larger block takes several
passes): its buffers take 0.85 MB."""
_BATCH_FRAMES = 128
"""Frames a whole-signal call computes per pass: 1.7 MB of buffers per thread, within a
core's cache; smaller passes cost more instructions per frame (32: +10 %)."""

_RFFT_OUT = "out" in inspect.signature(np.fft.rfft).parameters  # numpy >= 2.0


class _Work:
    """Buffers for passes over up to ``capacity`` frames, reused from pass to pass: nothing
    large is allocated per hop or per chunk (fresh large arrays cost page faults, and their
    zero padding would be written again every time). One per stream or per thread: never
    shared between threads."""

    def __init__(self, c: FrontendConfig, capacity: int) -> None:
        self.capacity = capacity
        # windowed frames, zero after the window: rfft's zero padding to n_fft, written once
        self.windowed = np.zeros((capacity, c.n_fft))
        self.spectrum = np.empty((capacity, c.n_bins), dtype=np.complex128)
        self.power = np.empty((capacity, c.n_bins))
        self.imag2 = np.empty((capacity, c.n_bins))
        self.power32 = np.empty((capacity, c.n_bins), dtype=np.float32)


_per_thread = threading.local()


def _thread_work(c: FrontendConfig) -> _Work:
    """This thread's buffers for ``c`` (the whole-signal functions' workspace)."""
    works = getattr(_per_thread, "works", None)
    if works is None:
        works = _per_thread.works = {}
    work = works.get(c)
    if work is None:
        if len(works) >= 4:
            works.clear()
        work = works[c] = _Work(c, _BATCH_FRAMES)
    return work


def _frames_in_chunks(x: np.ndarray, n_frames: int, c: FrontendConfig, width: int,
                      compute, work: _Work | None = None) -> np.ndarray:
    """``compute(frames, c, work)`` over chunks of at most ``work.capacity`` frames (views of
    ``x``, ``(k, win_length)``), float32 ``(n_frames, width)``."""
    if n_frames == 0:
        return np.zeros((0, width), dtype=np.float32)
    work = work or _thread_work(c)
    m = _matrices(c)
    frames = np.lib.stride_tricks.as_strided(
        x[m.window_offset:],
        shape=(n_frames, c.win_length),
        strides=(x.strides[0] * c.hop_length, x.strides[0]),
        writeable=False,
    )
    step = work.capacity
    if n_frames <= step:
        return compute(frames, c, work, m)
    out = np.empty((n_frames, width), dtype=np.float32)
    for first in range(0, n_frames, step):
        out[first:first + step] = compute(frames[first:first + step], c, work, m)
    return out


def _mfcc_of_frames(x: np.ndarray, n_frames: int, c: FrontendConfig,
                    work: _Work | None = None) -> np.ndarray:
    """MFCC of the first ``n_frames`` frames of ``x`` (already pre-emphasised), float32."""
    return _frames_in_chunks(x, n_frames, c, c.n_mfcc, _mfcc_of_chunk, work)


def _mel_of_frames(x: np.ndarray, n_frames: int, c: FrontendConfig,
                   work: _Work | None = None) -> np.ndarray:
    """Mel power of the first ``n_frames`` frames of ``x`` (already pre-emphasised), float32."""
    return _frames_in_chunks(x, n_frames, c, c.n_mels, _mel_of_chunk, work)


def _mel_of_chunk(frames: np.ndarray, c: FrontendConfig, work: _Work, m: _Matrices
                  ) -> np.ndarray:
    return _power_of_chunk(frames, c, work, m)[1]


def _power_of_chunk(frames: np.ndarray, c: FrontendConfig, work: _Work, m: _Matrices
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum ``(k, n_bins)`` float64 (in ``work``: valid until its next use) and mel
    power ``(k, n_mels)`` float32 of ``k`` frames ``(k, win_length)``.

    The power spectrum in float64 (numpy's float64 FFT is the fast one), rounded to float32
    for the mel projection (half the memory traffic, twice the SIMD width). Each frame is
    computed alone (the FFT per row, the projection one row at a time), so a frame's result
    does not depend on how many frames share the call: streaming equals batch bit for bit.
    """
    k = len(frames)
    windowed = work.windowed[:k]
    np.multiply(frames, m.window, out=windowed[:, :c.win_length])
    if _RFFT_OUT:
        spectrum = np.fft.rfft(windowed, axis=1, out=work.spectrum[:k])
    else:
        spectrum = np.fft.rfft(windowed, axis=1)
    power = np.square(spectrum.real, out=work.power[:k])
    power += np.square(spectrum.imag, out=work.imag2[:k])  # (k, n_bins)
    power32 = work.power32[:k]
    np.copyto(power32, power, casting="same_kind")
    return power, _rowwise(power32, m.filterbank_t32)


def _mfcc_of_chunk(frames: np.ndarray, c: FrontendConfig, work: _Work, m: _Matrices
                   ) -> np.ndarray:
    power, mel = _power_of_chunk(frames, c, work, m)
    if c.convention == LIBROSA:
        log_mel = np.maximum(mel, _AMIN_DB, dtype=np.float64)
        np.log10(log_mel, out=log_mel)
        log_mel *= 10.0
        out = _rowwise(log_mel, m.dct)
    else:
        mel = mel / np.float64(c.n_fft)
        log_mel = np.log(np.where(mel == 0.0, _EPS, mel))
        out = _rowwise(log_mel, m.dct)
        energy = (power / c.n_fft).sum(axis=1)
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
        self._work = _Work(config, _STREAM_FRAMES)
        self.reset()

    def _compute(self, x: np.ndarray, n_frames: int, c: FrontendConfig) -> np.ndarray:
        return _mfcc_of_frames(x, n_frames, c, self._work)

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

    def _compute(self, x: np.ndarray, n_frames: int, c: FrontendConfig) -> np.ndarray:
        return _mel_of_frames(x, n_frames, c, self._work)


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
    t = x.shape[0]
    padded = np.empty((t + 2 * half, *x.shape[1:]))  # edges repeated (np.pad mode="edge")
    padded[half:half + t] = x
    padded[:half] = x[0]
    padded[half + t:] = x[-1]
    out = np.zeros_like(x)
    term = np.empty_like(x)
    for n in range(1, half + 1):
        np.subtract(padded[half + n:half + n + t], padded[half - n:half - n + t], out=term)
        term *= n
        out += term
    out /= 2.0 * sum(n * n for n in range(1, half + 1))
    return out.astype(np.float32)


def stack_deltas(frames: np.ndarray, *, width: int = 9) -> np.ndarray:
    """Frames and their deltas as channels: ``(n_frames, n_coeffs, 2)`` float32."""
    frames = np.asarray(frames, dtype=np.float32)
    out = np.empty((*frames.shape, 2), dtype=np.float32)
    out[..., 0] = frames
    out[..., 1] = deltas(frames, width=width)
    return out
