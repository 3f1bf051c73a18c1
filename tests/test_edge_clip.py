"""edge.clip: the window a recording becomes, on the host and on the device."""

from __future__ import annotations

import numpy as np
import pytest

from edge.clip import FLOOR_DB, clip_window, frame_energy_db, noise_floor, speech_onset
from edge.errors import AudioError
from edge.features import FeatureSpec

SR = 16000
SPEC = FeatureSpec()


def tone(seconds: float, level: float = 0.3, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_onset_found_after_leading_silence():
    x = np.concatenate([np.zeros(SR), tone(2.0)])
    onset = speech_onset(x, SR)
    # 50 ms margin before the first loud 25 ms frame (which starts up to 25 ms early)
    assert 0.92 * SR <= onset <= 0.95 * SR


def test_onset_ignores_quiet_noise_below_threshold():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1e-4, SR // 2), tone(1.0)]).astype(np.float32)
    assert speech_onset(x, SR) >= 0.42 * SR


def test_window_is_cropped_from_the_onset():
    x = np.concatenate([np.zeros(SR), tone(5.0)])
    w = clip_window(x, SPEC, floor_db=None)
    assert w.shape == (SPEC.window_samples,) and w.dtype == np.float32
    # at most 50 ms margin + one 25 ms energy frame of silence, then the tone to the end
    assert np.abs(w[: int(0.04 * SR)]).max() == 0.0
    rms = np.sqrt(np.mean(w[int(0.08 * SR):].astype(np.float64) ** 2))
    assert abs(rms - 0.3 / np.sqrt(2)) < 0.01


def test_short_recording_is_padded_with_the_noise_floor_not_zeros():
    w = clip_window(tone(1.0), SPEC)
    tail = w[int(1.2 * SR):]
    assert np.count_nonzero(tail == 0.0) == 0
    level = 10 * np.log10(np.mean(tail.astype(np.float64) ** 2))
    assert abs(level - FLOOR_DB) < 1.0


def test_digital_zero_frames_are_lifted_to_the_floor():
    x = np.concatenate([tone(1.0), np.zeros(3 * SR, np.float32)])
    db = frame_energy_db(clip_window(x, SPEC), frame_length=400, hop_length=160)
    assert db.min() > FLOOR_DB - 3.0  # never the -100 dB clamp of digital silence


def test_window_is_deterministic_and_offset_shifts_it():
    x = np.concatenate([np.zeros(SR // 2), tone(4.0, freq=330.0) * np.linspace(0, 1, 4 * SR)])
    a, b = clip_window(x, SPEC), clip_window(x, SPEC)
    np.testing.assert_array_equal(a, b)
    shifted = clip_window(x, SPEC, offset=1600)
    np.testing.assert_allclose(shifted[:-1600] - noise_floor(SPEC.window_samples)[:-1600],
                               a[1600:] - noise_floor(SPEC.window_samples)[1600:], atol=1e-6)


def test_silence_and_tiny_inputs_give_a_window():
    assert clip_window(np.zeros(100, np.float32), SPEC).shape == (SPEC.window_samples,)
    assert clip_window(np.ones(1, np.float32) * 0.1, SPEC).shape == (SPEC.window_samples,)


@pytest.mark.parametrize("bad", [np.zeros(0), np.array([0.1, np.nan, 0.2])])
def test_bad_audio_is_refused(bad):
    with pytest.raises(AudioError):
        clip_window(bad, SPEC)
