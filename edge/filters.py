"""The front end's fixed matrices, built once per :class:`~edge.frontend_config.FrontendConfig`:
the mel scales, the mel filterbank (Slaney's or HTK's on FFT bins), the analysis window and the
orthonormal DCT with the lifter folded in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edge.errors import ConfigError
from edge.frontend_config import LIBROSA, FrontendConfig

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
    return matrices(config).filterbank.copy()


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
class Matrices:
    """What the front end multiplies by, for one config; read-only arrays."""

    window: np.ndarray  # (frame_length,) applied to a frame before the FFT
    window_offset: int  # first sample of the non-zero window part inside a frame
    filterbank: np.ndarray  # (n_mels, n_bins)
    filterbank_t: np.ndarray  # (n_bins, n_mels), contiguous for the matmul
    dct: np.ndarray  # (n_mels, n_mfcc), lifter folded in
    filterbank_t32: np.ndarray  # the same in float32


@functools.lru_cache(maxsize=32)
def matrices(c: FrontendConfig) -> Matrices:
    """The window, the filterbank and the DCT of ``c``, built once (cached). Raises
    :class:`~edge.errors.ConfigError` when a mel band gets no FFT bin."""
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
    return Matrices(window, offset, filterbank, filterbank_t, dct, filterbank_t32)


def cepstral_matrix(config: FrontendConfig) -> np.ndarray:
    """The DCT (lifter folded in) that turns log-mel frames into cepstra: ``c = log_mel @ D``,
    float64 ``(n_mels, n_mfcc)``, read-only and built once per config."""
    return matrices(config).dct


def white_noise_mel_power(config: FrontendConfig) -> np.ndarray:
    """Expected mel power of unit-variance white noise, float64 ``(n_mels,)``: what
    :func:`edge.frontend.mel_power` gives on average for noise of RMS 1 (scale by ``rms**2``)."""
    m = matrices(config)
    return float(np.sum(m.window**2)) * m.filterbank.sum(axis=1)
