"""The endpointer and frame levels: utterance boundaries from levels alone, the same however
the stream is cut, whatever the gain, over silence, a quiet room or steady noise."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_edge import CLIPS
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.audio import load
from edge.endpoint import EndpointConfig, Endpointer, speech_segments
from edge.errors import ConfigError
from edge.frontend import FrontendConfig, mel_power
from edge.levels import SILENT_DB, frame_levels, utterance_level

FE = FrontendConfig()
FPS = FE.sample_rate / FE.hop_length
SR = FE.sample_rate


def levels_of(x: np.ndarray) -> np.ndarray:
    return frame_levels(mel_power(np.asarray(x, np.float32), FE), FE)


def burst_train(bursts: list[tuple[float, float]], total: float, *, level_db: float = -25.0,
                room_db: float | None = None, seed: int = 0) -> np.ndarray:
    """Speech-band noise bursts (start, end seconds) over silence or room noise."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(total * SR))
    for a, b in bursts:
        n = int((b - a) * SR)
        x[int(a * SR):int(a * SR) + n] = rng.standard_normal(n) * 10 ** (level_db / 20)
    if room_db is not None:
        x += rng.standard_normal(x.size) * 10 ** (room_db / 20)
    return x.astype(np.float32)


def test_white_noise_level_is_its_rms_in_db():
    rng = np.random.default_rng(1)
    for db in (-10.0, -40.0):
        x = rng.standard_normal(SR * 2) * 10 ** (db / 20)
        assert np.median(levels_of(x)) == pytest.approx(db, abs=0.5)
    assert levels_of(np.zeros(SR)).max() == SILENT_DB


def test_levels_ignore_hum_below_the_speech_band():
    t = np.arange(SR * 2) / SR
    hum = 0.3 * np.sin(2 * np.pi * 50 * t)
    assert levels_of(hum).max() < -60


def test_utterance_level_follows_gain_exactly():
    lv = levels_of(burst_train([(0.5, 1.5)], 2.0, room_db=-70))
    assert utterance_level(lv + 12.0) == pytest.approx(utterance_level(lv) + 12.0)


def test_bursts_become_utterances_with_pads():
    x = burst_train([(1.0, 2.0), (3.5, 4.0)], 5.5)
    segs = speech_segments(levels_of(x), EndpointConfig(), FPS)
    assert len(segs) == 2
    first, second = segs
    # pads of 0.1 s on both sides (frames are 32 ms long, so the first one that touches the
    # burst starts about 3 frames before it)
    assert first.start / FPS == pytest.approx(1.0 - 0.1, abs=0.04)
    assert first.end / FPS == pytest.approx(2.0 + 0.1, abs=0.04)
    assert second.start / FPS == pytest.approx(3.5 - 0.1, abs=0.04)
    assert first.confirmed / FPS == pytest.approx(1.0 + 0.25, abs=0.05)


def test_short_clicks_and_short_pauses():
    x = burst_train([(1.0, 1.1), (2.0, 2.8), (3.0, 3.6)], 5.0)  # a click, then two words
    segs = speech_segments(levels_of(x), EndpointConfig(), FPS)
    assert len(segs) == 1  # the click is dropped; a 0.2 s pause does not end an utterance
    assert segs[0].start / FPS == pytest.approx(1.9, abs=0.04)
    assert segs[0].end / FPS == pytest.approx(3.7, abs=0.04)


def test_end_is_decided_min_silence_after_the_last_speech_frame():
    x = burst_train([(1.0, 2.0)], 4.0)
    ep = Endpointer(EndpointConfig(), FPS)
    events = ep.push(levels_of(x))
    end = [e for e in events if e.kind == "end"][0]
    last_speech = end.segment.end - 10  # minus the pad
    assert (end.frame - last_speech) / FPS == pytest.approx(0.4, abs=0.02)


def test_steady_noise_and_a_quiet_room_are_not_speech():
    rng = np.random.default_rng(2)
    for db in (-60.0, -35.0):  # a quiet room, a loud fan
        room = (rng.standard_normal(SR * 12) * 10 ** (db / 20)).astype(np.float32)
        assert speech_segments(levels_of(room), EndpointConfig(), FPS) == []
    # speech 20 dB over the fan is found once the floor has settled
    x = burst_train([(6.0, 7.5)], 9.0, level_db=-15, room_db=-35)
    segs = speech_segments(levels_of(x), EndpointConfig(), FPS)
    assert len(segs) == 1 and segs[0].start / FPS == pytest.approx(5.9, abs=0.05)


def test_a_breath_far_below_the_words_is_not_an_utterance():
    x = burst_train([(1.0, 2.0)], 5.0, level_db=-20)
    x[int(2.8 * SR):int(3.3 * SR)] += burst_train([(0, 0.5)], 0.5, level_db=-70, seed=5)
    segs = speech_segments(levels_of(x), EndpointConfig(), FPS)
    assert len(segs) == 1


def test_long_speech_is_split_at_max_length():
    syllables = [(0.5 + 0.3 * i, 0.7 + 0.3 * i) for i in range(42)]  # 12.6 s without a pause
    x = burst_train(syllables, 14.0)
    segs = speech_segments(levels_of(x), EndpointConfig(max_speech_s=5.0), FPS)
    assert [round(s.frames / FPS) for s in segs[:2]] == [5, 5]
    assert all(a.end <= b.start for a, b in zip(segs, segs[1:]))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=30))
def test_events_do_not_depend_on_how_levels_are_cut(cuts):
    lv = levels_of(burst_train([(0.5, 1.5), (2.4, 2.6), (3.0, 4.5)], 5.5, room_db=-65))
    reference = Endpointer(EndpointConfig(), FPS)
    expected = reference.push(lv) + reference.finish()
    ep = Endpointer(EndpointConfig(), FPS)
    got, i = [], 0
    for n in cuts * 10:
        got += ep.push(lv[i:i + n])
        i += n
        if i >= lv.size:
            break
    got += ep.push(lv[i:]) + ep.finish()
    assert got == expected


def test_real_speech_segments_do_not_depend_on_the_gain(ravdess_dir):
    x = load(ravdess_dir / f"{CLIPS[1]}.flac", SR)
    (reference,) = speech_segments(levels_of(x), EndpointConfig(), FPS)
    for gain_db in (-12.0, 6.0):
        segs = speech_segments(levels_of(x * 10 ** (gain_db / 20)), EndpointConfig(), FPS)
        assert [(s.start, s.end) for s in segs] == [(reference.start, reference.end)]
    # 30 dB down the soft tail sinks under the absolute floor (min_level_db): a few frames
    (quiet,) = speech_segments(levels_of(x * 10 ** (-30 / 20)), EndpointConfig(), FPS)
    assert quiet.start == reference.start and abs(quiet.end - reference.end) <= 5


def test_config_is_checked_and_round_trips():
    with pytest.raises(ConfigError, match="speech_pad_ms"):
        EndpointConfig(speech_pad_ms=300, min_silence_ms=400)
    with pytest.raises(ConfigError, match="noise_percentile"):
        EndpointConfig(noise_percentile=120)
    c = EndpointConfig(min_silence_ms=500)
    assert EndpointConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="upgrade"):
        EndpointConfig.from_dict({**c.to_dict(), "new_field": 1})


def test_a_louder_second_phrase_does_not_cut_off_the_first():
    """A word, a 300 ms pause, a louder word: one utterance from the first word on (the
    onset moves later only past a lead-in far quieter than the words)."""
    x = burst_train([(1.0, 1.6)], 4.0, level_db=-30, seed=1)
    x += burst_train([(1.9, 2.8)], 4.0, level_db=-24, seed=2)
    (seg,) = speech_segments(levels_of(x), EndpointConfig(), FPS)
    assert seg.start / FPS == pytest.approx(0.9, abs=0.04)
    # but a lead-in 40 dB under the words is dropped
    y = burst_train([(0.5, 1.1)], 4.0, level_db=-70, seed=3)
    y += burst_train([(1.3, 2.5)], 4.0, level_db=-25, seed=4)
    (seg,) = speech_segments(levels_of(y), EndpointConfig(), FPS)
    assert seg.start / FPS == pytest.approx(1.2, abs=0.05)


def test_a_stream_that_opens_mid_speech_finds_most_of_it(ravdess_dir):
    x = load(ravdess_dir / f"{CLIPS[1]}.flac", SR)
    (whole,) = speech_segments(levels_of(x), EndpointConfig(), FPS)
    cut = x[(whole.start + 20) * FE.hop_length:]  # the stream starts inside the words
    segs = speech_segments(levels_of(cut), EndpointConfig(), FPS)
    # one utterance over the rest of the words (the dips between words count as pauses
    # until the room has been heard, so fewer of its frames are speech frames)
    assert len(segs) == 1 and segs[0].start == 0
    assert abs(segs[0].end - (whole.end - whole.start - 20)) <= 10
