"""The front end's parameters: one frozen :class:`FrontendConfig`, serialised into every model
bundle, for both conventions (librosa's and python_speech_features'; see :mod:`edge.frontend`).
"""

from __future__ import annotations

import dataclasses
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
