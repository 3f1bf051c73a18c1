"""The model's input: a fixed window of MFCC frames with deltas, normalised.

Training (on the host) and the runtime (on the device) build model inputs only through
this module, so both sides compute exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.errors import ConfigError
from edge.frontend import FrontendConfig, mfcc, stack_deltas


@dataclass(frozen=True)
class FeatureSpec:
    """What one model input is: front end, window length, delta channel."""

    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    """MFCC parameters."""
    window_seconds: float = 3.0
    """Length of audio one prediction looks at, seconds."""
    delta_width: int | None = 9
    """Frames in the delta regression (odd); ``None`` for MFCCs alone (one channel)."""

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise ConfigError(f"window_seconds={self.window_seconds!r}: must be > 0")
        if self.window_frames < 1:
            raise ConfigError(
                f"window_seconds={self.window_seconds!r}: shorter than one frame"
                f" ({self.frontend.frame_length} samples at {self.frontend.sample_rate} Hz)"
            )
        if self.delta_width is not None and (self.delta_width < 3 or self.delta_width % 2 == 0):
            raise ConfigError(f"delta_width={self.delta_width!r}: must be odd and >= 3, or None")

    @property
    def window_samples(self) -> int:
        """Samples in one window at the front end's rate."""
        return int(round(self.window_seconds * self.frontend.sample_rate))

    @property
    def window_frames(self) -> int:
        """MFCC frames in one window."""
        return self.frontend.n_frames(self.window_samples)

    @property
    def channels(self) -> int:
        return 1 if self.delta_width is None else 2

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one model input: ``(window_frames, n_mfcc, channels)``."""
        return (self.window_frames, self.frontend.n_mfcc, self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frontend": self.frontend.to_dict(),
            "window_seconds": self.window_seconds,
            "delta_width": self.delta_width,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        try:
            return cls(
                frontend=FrontendConfig.from_dict(data["frontend"]),
                window_seconds=float(data["window_seconds"]),
                delta_width=data.get("delta_width"),
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"feature spec is incomplete or malformed ({e})") from None


def window_input(frames: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Model input from a window of MFCC frames.

    Parameters
    ----------
    frames : np.ndarray [shape=(window_frames, n_mfcc)]

    Returns
    -------
    np.ndarray [shape=(window_frames, n_mfcc, channels)], float32, not normalised
    """
    frames = np.asarray(frames, dtype=np.float32)
    if spec.delta_width is None:
        return frames[..., None]
    return stack_deltas(frames, width=spec.delta_width)


def signal_input(signal: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Model input from exactly one window of audio (``spec.window_samples`` samples).

    Returns
    -------
    np.ndarray [shape=spec.input_shape], float32, not normalised
    """
    if signal.shape != (spec.window_samples,):
        raise ConfigError(
            f"signal has shape {signal.shape}; one window is ({spec.window_samples},) samples"
        )
    return window_input(mfcc(signal, spec.frontend), spec)


@dataclass(frozen=True)
class Normalizer:
    """Per-coefficient, per-channel standardisation fitted on training data only.

    ``mean`` and ``std`` have shape ``(n_mfcc, channels)``.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if mean.shape != std.shape or mean.ndim != 2:
            raise ConfigError(f"normalizer mean {mean.shape} / std {std.shape}: need equal 2-D")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ConfigError("normalizer: mean/std must be finite and std > 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def fit(cls, inputs: np.ndarray, *, min_std: float = 1e-3) -> Normalizer:
        """Fit on model inputs ``(n, frames, n_mfcc, channels)``, over clips and frames."""
        x = np.asarray(inputs, dtype=np.float64)
        mean = x.mean(axis=(0, 1))
        std = np.maximum(x.std(axis=(0, 1)), min_std)
        return cls(mean, std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std``, float32; ``x`` ends in ``(n_mfcc, channels)``."""
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        try:
            return cls(np.asarray(data["mean"]), np.asarray(data["std"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"normalization is incomplete or malformed ({e})") from None
