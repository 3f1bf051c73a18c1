"""Speech gate: frame levels, silence and steady noise give no speech, real speech does."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_edge import CLIPS

from edge.audio import load
from edge.clip import frame_energy_db
from edge.errors import ConfigError
from edge.frontend import FrontendConfig
from edge.gate import FrameLevels, GateConfig, SpeechGate, decide

FE = FrontendConfig()
SR = FE.sample_rate
FPS = SR / FE.hop_length
WINDOW = 297


def levels_of(x: np.ndarray) -> np.ndarray:
    return FrameLevels(FE).push(x)


def verdicts(x: np.ndarray, config: GateConfig = GateConfig(), hop: int = 50) -> list[bool]:
    """The gate's verdict every ``hop`` frames once a window is full, as a stream would."""
    gate = SpeechGate(config, FE)
    levels = levels_of(x)
    out = []
    for end in range(WINDOW, levels.size + 1, hop):
        gate.reset()
        gate.add(levels[max(0, end - gate.history_frames):end])
        out.append(gate.decide(WINDOW).speech)
    return out


@pytest.fixture(scope="module")
def speech(ravdess_dir):
    return np.concatenate([load(ravdess_dir / f"{c}.flac", SR) for c in CLIPS])


def test_frame_levels_match_the_mfcc_frames_whatever_the_blocks():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(SR * 2)).astype(np.float32)
    whole = levels_of(x)
    assert whole.size == FE.n_frames(x.size)
    np.testing.assert_array_equal(
        whole, frame_energy_db(x[:FE.samples_for(whole.size)], frame_length=FE.frame_length,
                               hop_length=FE.hop_length))
    for block in (1, 97, 160, 512, 4000):
        stream = FrameLevels(FE)
        parts = [stream.push(x[i:i + block]) for i in range(0, x.size, block)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_digital_silence_and_steady_noise_are_not_speech():
    rng = np.random.default_rng(1)
    n = SR * 8
    t = np.arange(n) / SR
    cases = {
        "zeros": np.zeros(n),
        "quiet room": 10 ** (-65 / 20) * rng.standard_normal(n),
        "loud white noise": 10 ** (-20 / 20) * rng.standard_normal(n),
        "mains hum": 0.03 * np.sin(2 * np.pi * 50 * t) + 0.01 * np.sin(2 * np.pi * 150 * t),
        "slowly swelling noise": 10 ** (-35 / 20) * rng.standard_normal(n)
        * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t)),
    }
    for name, x in cases.items():
        assert not any(verdicts(x.astype(np.float32))), name


def test_speech_is_speech_in_a_quiet_room_and_in_moderate_noise(speech):
    rng = np.random.default_rng(2)
    for noise_db, at_least in ((-120, 0.9), (-60, 0.9), (-50, 0.6)):
        x = speech + 10 ** (noise_db / 20) * rng.standard_normal(speech.size)
        v = verdicts(x.astype(np.float32))
        assert np.mean(v) >= at_least, (noise_db, np.mean(v))


def test_noise_floor_adapts_when_noise_starts_mid_stream(speech):
    """Silence, then a fan switches on: after noise_seconds the fan alone is not speech;
    then a speaker over the fan is."""
    rng = np.random.default_rng(3)
    quiet = 10 ** (-70 / 20) * rng.standard_normal(SR * 4)
    fan = 10 ** (-50 / 20) * rng.standard_normal(SR * 10)
    talk = speech[: SR * 6] + 10 ** (-50 / 20) * rng.standard_normal(SR * 6)
    x = np.concatenate((quiet, fan, talk)).astype(np.float32)
    levels = levels_of(x)
    gate = SpeechGate(GateConfig(), FE)
    by_time = {}
    for end in range(WINDOW, levels.size + 1, 50):
        gate.add(levels[max(0, end - 50):end] if end > WINDOW else levels[:end])
        by_time[end / FPS] = gate.decide(WINDOW).speech
    fan_only = [v for t, v in by_time.items() if 4 + 3 + GateConfig().noise_seconds <= t <= 14]
    with_talk = [v for t, v in by_time.items() if t >= 15.5]
    assert fan_only and not any(fan_only)
    assert np.mean(with_talk) > 0.5


def test_decide_counts_speech_seconds():
    history = np.full(500, -70.0)
    history[-100:-70] = -30.0  # 30 frames = 0.3 s of speech in the last window
    verdict = decide(history, WINDOW, GateConfig(min_speech_seconds=0.3), FPS)
    assert verdict.speech and verdict.speech_seconds == pytest.approx(0.3)
    assert verdict.noise_floor_db == pytest.approx(-70.0)
    assert not decide(history, WINDOW, GateConfig(min_speech_seconds=0.31), FPS).speech
    assert not decide(np.zeros(0), WINDOW, GateConfig(), FPS).speech


def test_gate_config_checks():
    with pytest.raises(ConfigError, match="margin_db"):
        GateConfig(margin_db=-1)
    with pytest.raises(ConfigError, match="noise_percentile"):
        GateConfig(noise_percentile=101)
