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

This module owns the computation: signal checks, framing in reusable buffers, power
spectrum, mel projection, log and DCT, and the streams. The parameters live in
:mod:`edge.frontend_config`, the fixed matrices in :mod:`edge.filters` and the deltas in
:mod:`edge.deltas`; their public names are importable from here as well.
"""

from __future__ import annotations

import inspect
import threading

import numpy as np

from edge.deltas import deltas, stack_deltas
from edge.errors import ConfigError
from edge.filters import (
    Matrices,
    cepstral_matrix,
    dct_matrix,
    hz_to_mel,
    matrices,
    mel_filterbank,
    mel_to_hz,
    white_noise_mel_power,
)
from edge.frontend_config import LIBROSA, PSF, FrontendConfig

__all__ = [
    "LIBROSA", "PSF", "FrontendConfig", "MelStream", "MfccStream", "cepstral_matrix",
    "dct_matrix", "deltas", "hz_to_mel", "mel_filterbank", "mel_power", "mel_to_hz", "mfcc",
    "stack_deltas", "white_noise_mel_power",
]

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
    m = matrices(c)
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


def _mel_of_chunk(frames: np.ndarray, c: FrontendConfig, work: _Work, m: Matrices
                  ) -> np.ndarray:
    return _power_of_chunk(frames, c, work, m)[1]


def _power_of_chunk(frames: np.ndarray, c: FrontendConfig, work: _Work, m: Matrices
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


def _mfcc_of_chunk(frames: np.ndarray, c: FrontendConfig, work: _Work, m: Matrices
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
