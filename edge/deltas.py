"""Regression deltas along time, and frames stacked with their deltas as channels (the
model input's second channel)."""

from __future__ import annotations

import numpy as np

from edge.errors import ConfigError


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
