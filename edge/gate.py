"""Speech gate: is there speech in a window, or only silence / steady background noise?

Each MFCC frame also gets its RMS level in dBFS (the same frames as the front end:
``frame_length`` samples every ``hop_length``). A frame is speech when it is louder than the
adaptive noise floor by ``margin_db`` and louder than ``min_level_db``; the floor is a low
percentile of the levels over the last ``noise_seconds``, so it settles on a quiet room, a
fan or hum within a few seconds, and a real microphone's silence (never digital zero) is
handled like any other steady noise. A window is speech when it holds at least
``min_speech_seconds`` of speech frames.

Every decision depends on frame levels alone, and the frames do not depend on how the audio
was cut into blocks: the gate gives the same answers whatever the block size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.clip import frame_energy_db
from edge.errors import ConfigError
from edge.frontend import FrontendConfig


@dataclass(frozen=True)
class GateConfig:
    """Parameters of the speech gate."""

    margin_db: float = 10.0
    """How far above the noise floor a speech frame is, dB."""
    min_level_db: float = -60.0
    """Frames quieter than this (dBFS RMS) are never speech."""
    noise_seconds: float = 5.0
    """History the noise floor is estimated over, seconds."""
    noise_percentile: float = 10.0
    """Percentile of the frame levels in that history taken as the noise floor."""
    min_speech_seconds: float = 0.3
    """Speech frames a window needs to count as speech, seconds."""

    def __post_init__(self) -> None:
        if self.margin_db < 0:
            raise ConfigError(f"GateConfig.margin_db={self.margin_db!r}: must be >= 0")
        if self.noise_seconds <= 0:
            raise ConfigError(f"GateConfig.noise_seconds={self.noise_seconds!r}: must be > 0")
        if not 0 <= self.noise_percentile <= 100:
            raise ConfigError(f"GateConfig.noise_percentile={self.noise_percentile!r}:"
                              " must be in [0, 100]")
        if self.min_speech_seconds < 0:
            raise ConfigError(f"GateConfig.min_speech_seconds={self.min_speech_seconds!r}:"
                              " must be >= 0")


class FrameLevels:
    """Incremental frame levels: feed blocks of any size, get the dBFS of each new frame.

    Frame ``t`` covers samples ``[t * hop_length, t * hop_length + frame_length)``, exactly
    the frames of :class:`edge.frontend.MfccStream` with the same config.
    """

    def __init__(self, config: FrontendConfig) -> None:
        self.frame_length = config.frame_length
        self.hop_length = config.hop_length
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float64)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Levels of the frames ``block`` completes, dBFS, float64, shape ``(k,)``."""
        x = np.asarray(block, dtype=np.float64).ravel()
        buffer = np.concatenate((self._pending, x)) if self._pending.size else x
        if buffer.size < self.frame_length:
            self._pending = buffer.copy()
            return np.zeros(0)
        n = 1 + (buffer.size - self.frame_length) // self.hop_length
        used = buffer[: self.frame_length + (n - 1) * self.hop_length]
        levels = frame_energy_db(used, frame_length=self.frame_length, hop_length=self.hop_length)
        self._pending = buffer[n * self.hop_length:].copy()
        return levels


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one window."""

    speech: bool
    speech_seconds: float
    """Speech frames in the window, as seconds of frame hops."""
    noise_floor_db: float
    """The noise floor the decision used, dBFS."""


class SpeechGate:
    """Decides speech / no speech for windows of frames, with an adaptive noise floor.

    Feed every frame level in order with :meth:`add`; ask :meth:`decide` about the last
    ``window_frames`` frames whenever a window is complete.
    """

    def __init__(self, config: GateConfig, frontend: FrontendConfig) -> None:
        self.config = config
        self.frames_per_second = frontend.sample_rate / frontend.hop_length
        self.history_frames = max(1, int(round(config.noise_seconds * self.frames_per_second)))
        self.reset()

    def reset(self) -> None:
        self._levels = np.zeros(0, dtype=np.float64)

    def add(self, levels: np.ndarray) -> None:
        """Append frame levels (dBFS); only the last ``noise_seconds`` are kept."""
        self._levels = np.concatenate((self._levels, levels))[-self.history_frames:]

    def decide(self, window_frames: int) -> GateDecision:
        """Verdict on the last ``window_frames`` frames added."""
        return decide(self._levels, window_frames, self.config, self.frames_per_second)


def decide(history: np.ndarray, window_frames: int, config: GateConfig,
           frames_per_second: float) -> GateDecision:
    """Verdict on the last ``window_frames`` levels of ``history`` (dBFS, oldest first); the
    noise floor comes from all of ``history``."""
    if history.size == 0:
        return GateDecision(False, 0.0, float("nan"))
    floor = float(np.percentile(history, config.noise_percentile))
    window = history[-window_frames:]
    threshold = max(floor + config.margin_db, config.min_level_db)
    seconds = float(np.count_nonzero(window > threshold)) / frames_per_second
    return GateDecision(seconds >= config.min_speech_seconds, seconds, floor)
