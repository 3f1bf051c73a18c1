"""What one model input is, and the normaliser fitted on training inputs.

:class:`FeatureSpec` is the whole definition of a model's input, stored in every bundle:
the front end, the endpointer that cuts the stream into utterances, and how an utterance
becomes windows of level-normalised MFCCs (:mod:`edge.utterance` does the work). Training on
the host and the runtime on the device build model inputs only from it, so both sides compute
exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.endpoint import EndpointConfig
from edge.errors import ConfigError
from edge.frontend import LIBROSA, FrontendConfig

INPUT_VERSION = 3
"""Version of the utterance -> input recipe; bundles with another version are refused."""

DEFAULT_HOP_SECONDS = 0.5
"""Time between interim results while someone speaks, seconds, where a bundle or run does not
say otherwise (training writes it into every bundle; the one place this default is written)."""


@dataclass(frozen=True)
class FeatureSpec:
    """What one model input is: front end, utterances, window, level normalisation."""

    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    """MFCC parameters."""
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    """Where utterances start and end."""
    window_seconds: float = 3.0
    """Audio one model input covers, seconds; a shorter utterance is padded with the floor."""
    stride_seconds: float = 1.5
    """Largest step between the windows of an utterance longer than one window, seconds."""
    delta_width: int | None = 9
    """Frames in the delta regression (odd); ``None`` for MFCCs alone (one channel)."""
    level_percentile: float = 90.0
    """The utterance's level is this percentile of its frame levels (dB)."""
    utterance_mean: bool = False
    """Also subtract each mel band's mean over the utterance's frames (its padding excluded)
    from its log-mel frames: the speaker's and the microphone's average spectrum removed,
    per utterance."""
    floor_db: float = -50.0
    """Noise floor added to every utterance (pink noise in the mel power domain), dB relative
    to the utterance's level: digital silence, padding and a quiet room all look alike, at
    whatever gain the speaker was recorded."""

    def __post_init__(self) -> None:
        if self.frontend.convention != LIBROSA:
            raise ConfigError("model inputs need the librosa front-end convention"
                              f" (got {self.frontend.convention!r})")
        if not self.window_seconds > 0:
            raise ConfigError(f"window_seconds={self.window_seconds!r}: must be > 0")
        if self.window_frames < 1:
            raise ConfigError(
                f"window_seconds={self.window_seconds!r}: shorter than one frame"
                f" ({self.frontend.frame_length} samples at {self.frontend.sample_rate} Hz)"
            )
        if not self.stride_seconds > 0:
            raise ConfigError(f"stride_seconds={self.stride_seconds!r}: must be > 0")
        if self.delta_width is not None and (self.delta_width < 3 or self.delta_width % 2 == 0):
            raise ConfigError(f"delta_width={self.delta_width!r}: must be odd and >= 3, or None")
        if not 0 <= self.level_percentile <= 100:
            raise ConfigError(f"level_percentile={self.level_percentile!r}: must be in [0, 100]")
        if not self.floor_db < 0:
            raise ConfigError(f"floor_db={self.floor_db!r}: must be < 0 (below the speech)")

    @property
    def frames_per_second(self) -> float:
        return self.frontend.sample_rate / self.frontend.hop_length

    @property
    def window_samples(self) -> int:
        """Samples in one window at the front end's rate."""
        return int(round(self.window_seconds * self.frontend.sample_rate))

    @property
    def window_frames(self) -> int:
        """MFCC frames in one window."""
        return self.frontend.n_frames(self.window_samples)

    @property
    def stride_frames(self) -> int:
        return max(1, int(round(self.stride_seconds * self.frames_per_second)))

    @property
    def channels(self) -> int:
        return 1 if self.delta_width is None else 2

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one model input: ``(window_frames, n_mfcc, channels)``."""
        return (self.window_frames, self.frontend.n_mfcc, self.channels)

    def seconds(self, frames: int) -> float:
        """Frame index -> seconds (the frame's start)."""
        return frames / self.frames_per_second

    def hop_frames(self, hop_seconds: float) -> int:
        """Frames between the recogniser's interim results for a hop of ``hop_seconds``
        (rounded, at least one)."""
        return max(1, int(round(hop_seconds * self.frames_per_second)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_version": INPUT_VERSION,
            "frontend": self.frontend.to_dict(),
            "endpoint": self.endpoint.to_dict(),
            "window_seconds": self.window_seconds,
            "stride_seconds": self.stride_seconds,
            "delta_width": self.delta_width,
            "level_percentile": self.level_percentile,
            "floor_db": self.floor_db,
            "utterance_mean": self.utterance_mean,
        }

    @staticmethod
    def check_input_version(version: Any) -> None:
        """ConfigError unless ``version`` (a bundle's ``features.input_version``) is the one
        this edge-ser computes."""
        if not isinstance(version, int) or version < INPUT_VERSION:
            raise ConfigError(
                f"model input version {version!r} is older than this edge-ser's"
                f" ({INPUT_VERSION}: utterances, level-normalised): the bundle was made by an"
                " older edge-ser; train and export it again with this one (ser-train,"
                " ser-export)")
        if version > INPUT_VERSION:
            raise ConfigError(f"model input version {version} is newer than this edge-ser"
                              f" reads ({INPUT_VERSION}); upgrade edge-ser")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        cls.check_input_version(data.get("input_version"))
        try:
            return cls(
                frontend=FrontendConfig.from_dict(data["frontend"]),
                endpoint=EndpointConfig.from_dict(data["endpoint"]),
                window_seconds=float(data["window_seconds"]),
                stride_seconds=float(data["stride_seconds"]),
                delta_width=data.get("delta_width"),
                level_percentile=float(data["level_percentile"]),
                floor_db=float(data["floor_db"]),
                utterance_mean=bool(data.get("utterance_mean", False)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"feature spec is incomplete or malformed ({e})") from None


def _shortest(a: np.ndarray) -> list:
    """Nested lists of Python floats, each the shortest decimal of its float32 value."""
    flat = [float(np.format_float_positional(v, unique=True, trim="0"))
            for v in np.asarray(a, np.float32).ravel()]
    return np.array(flat).reshape(np.shape(a)).tolist()


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
        """float32 values written with the fewest digits that read back to the same float32
        (half the bytes of float64 reprs in a bundle's metadata)."""
        return {"mean": _shortest(self.mean), "std": _shortest(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        try:
            return cls(np.asarray(data["mean"]), np.asarray(data["std"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"normalization is incomplete or malformed ({e})") from None
