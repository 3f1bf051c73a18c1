"""Smoothing of window probabilities over time, after micro_speech's RecognizeCommands.

Probabilities of the speech windows in the last ``average_seconds`` are averaged; the top
label of the average becomes the reported label, unless a different label was announced less
than ``suppression_seconds`` ago (then the announced one is held, so the label does not
flicker). The result is ``uncertain`` when fewer than ``min_count`` windows were averaged,
when the reported label's averaged probability is below ``threshold``, or when a held label
is no longer the most probable. Windows without speech add nothing, so after a pause longer
than ``average_seconds`` the average starts afresh.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.errors import ConfigError


@dataclass(frozen=True)
class SmoothingConfig:
    """Parameters of :class:`Smoother`."""

    average_seconds: float = 1.0
    """Window results younger than this (by their end time) are averaged, seconds."""
    min_count: int = 1
    """Fewer averaged windows than this make the result uncertain."""
    threshold: float = 0.5
    """An averaged top probability below this makes the result uncertain."""
    suppression_seconds: float = 1.0
    """After announcing a label, a different one is not announced for this long, seconds."""

    def __post_init__(self) -> None:
        if self.average_seconds < 0:
            raise ConfigError(f"average_seconds={self.average_seconds!r}: must be >= 0")
        if self.min_count < 1:
            raise ConfigError(f"min_count={self.min_count!r}: must be >= 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold={self.threshold!r}: must be in [0, 1]")
        if self.suppression_seconds < 0:
            raise ConfigError(f"suppression_seconds={self.suppression_seconds!r}: must be >= 0")


@dataclass(frozen=True)
class Smoothed:
    """The smoothed state after one window."""

    index: int | None
    """Index of the reported label, None when nothing was averaged (no recent speech)."""
    probs: np.ndarray
    """Averaged probabilities, float32 ``(n_labels,)`` (the window's own when none averaged)."""
    confidence: float | None
    """Averaged probability of the reported label."""
    uncertain: bool
    changed: bool
    """True when this window announces a label different from the previous announcement."""
    count: int
    """Windows averaged."""


class Smoother:
    """Time-stamped smoothing of window probabilities; feed windows in time order."""

    def __init__(self, config: SmoothingConfig = SmoothingConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self._announced: int | None = None
        self._announced_at = float("-inf")

    def update(self, t: float, probs: np.ndarray, *, speech: bool) -> Smoothed:
        """Add the window ending at ``t`` seconds; return the smoothed state."""
        c = self.config
        probs = np.asarray(probs, dtype=np.float32)
        if speech:
            self._recent.append((t, probs))
        # keep windows with end time in (t - average_seconds, t]; always keep the newest
        while len(self._recent) > 1 and self._recent[0][0] <= t - c.average_seconds:
            self._recent.popleft()
        if self._recent and self._recent[-1][0] <= t - c.average_seconds and not speech:
            self._recent.clear()
        if not self._recent:
            return Smoothed(None, probs, None, False, False, 0)
        average = np.mean(np.stack([p for _, p in self._recent]), axis=0).astype(np.float32)
        best = top = int(np.argmax(average))
        changed = False
        if top != self._announced:
            held = (self._announced is not None
                    and t - self._announced_at < c.suppression_seconds)
            if held:
                top = self._announced
            else:
                changed = True
                self._announced, self._announced_at = top, t
        confidence = float(average[top])
        uncertain = (len(self._recent) < c.min_count or confidence < c.threshold
                     or top != best)  # a held label that is no longer the most probable
        return Smoothed(top, average, confidence, uncertain, changed, len(self._recent))
