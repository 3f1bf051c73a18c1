"""Smoothing after micro_speech's recognize_commands: averaging, minimum count, threshold,
suppression, and history that expires in silence."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.smoothing import Smoother, SmoothingConfig


def p(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_averages_recent_speech_windows():
    s = Smoother(SmoothingConfig(average_seconds=1.5, suppression_seconds=0.0))
    a = s.update(0.5, p(0.8, 0.2, 0.0), speech=True)
    assert a.index == 0 and a.changed and a.count == 1
    b = s.update(1.0, p(0.0, 1.0, 0.0), speech=True)
    np.testing.assert_allclose(b.probs, [0.4, 0.6, 0.0])
    assert b.index == 1 and b.changed and b.confidence == pytest.approx(0.6)
    c = s.update(2.0, p(0.0, 0.0, 1.0), speech=True)  # the window at 0.5 s has expired
    np.testing.assert_allclose(c.probs, [0.0, 0.5, 0.5])
    assert c.count == 2


def test_threshold_and_min_count_make_it_uncertain():
    s = Smoother(SmoothingConfig(min_count=2, threshold=0.5))
    first = s.update(0.5, p(0.9, 0.1), speech=True)
    assert first.uncertain  # only one window so far
    second = s.update(1.0, p(0.9, 0.1), speech=True)
    assert not second.uncertain
    s2 = Smoother(SmoothingConfig(threshold=0.5))
    assert s2.update(0.5, p(0.45, 0.30, 0.25), speech=True).uncertain


def test_suppression_holds_the_announced_label():
    s = Smoother(SmoothingConfig(average_seconds=0.0, suppression_seconds=1.0))
    assert s.update(0.5, p(0.9, 0.1), speech=True).index == 0
    held = s.update(1.0, p(0.1, 0.9), speech=True)
    assert held.index == 0 and not held.changed and held.uncertain
    assert held.confidence == pytest.approx(0.1)  # the held label's own probability
    switched = s.update(1.5, p(0.1, 0.9), speech=True)
    assert switched.index == 1 and switched.changed


def test_silence_adds_nothing_and_history_expires():
    s = Smoother(SmoothingConfig(average_seconds=1.0, suppression_seconds=0.0))
    s.update(0.5, p(0.9, 0.1), speech=True)
    quiet = s.update(1.0, p(0.1, 0.9), speech=False)
    np.testing.assert_allclose(quiet.probs, [0.9, 0.1])  # silence did not enter the average
    gone = s.update(2.0, p(0.1, 0.9), speech=False)
    assert gone.index is None and gone.count == 0
    fresh = s.update(2.5, p(0.2, 0.8), speech=True)
    np.testing.assert_allclose(fresh.probs, [0.2, 0.8])


def test_config_checks():
    with pytest.raises(ConfigError, match="threshold"):
        SmoothingConfig(threshold=1.5)
    with pytest.raises(ConfigError, match="min_count"):
        SmoothingConfig(min_count=0)
