"""An utterance -> model inputs: level-normalised (gain does not matter), floored, cut into
evenly spread windows; the spec round-trips and refuses what it cannot honour."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_edge import CLIPS

from edge.audio import load
from edge.errors import ConfigError
from edge.features import INPUT_VERSION, FeatureSpec
from edge.frontend import FrontendConfig, cepstral_matrix, mel_power, mfcc
from edge.levels import frame_levels
from edge.utterance import (
    aggregate_utterances,
    floor_log_mel,
    interim_inputs,
    normalized_log_mel,
    recording_frames,
    recording_segments,
    utterance_inputs,
    window_starts,
)

SPEC = FeatureSpec()
SR = 16000


@pytest.fixture(scope="module")
def clip(ravdess_dir):
    return load(ravdess_dir / f"{CLIPS[2]}.flac", SR)


def inputs_of(x: np.ndarray) -> np.ndarray:
    mel, levels = recording_frames(x, SPEC)
    (seg,) = recording_segments(levels, SPEC)
    return utterance_inputs(mel[seg.start:seg.end], SPEC, levels=levels[seg.start:seg.end])


def test_inputs_do_not_depend_on_the_gain(ravdess_dir):
    """Where the endpointer puts the same boundaries (it does for this clip from -12 to +6 dB;
    see test_edge_endpoint), the inputs are the same to float rounding."""
    x = load(ravdess_dir / f"{CLIPS[1]}.flac", SR)
    reference = inputs_of(x)
    assert reference.shape[1:] == SPEC.input_shape
    for gain_db in (-12.0, 6.0):
        got = inputs_of(x * np.float32(10 ** (gain_db / 20)))
        np.testing.assert_allclose(got, reference, atol=2e-3)


def test_with_a_negligible_floor_at_0_db_the_cepstra_are_the_front_end_mfcc(clip):
    spec = FeatureSpec(floor_db=-150.0)
    x = clip[: spec.window_samples]
    mel = mel_power(x, spec.frontend)
    dct = normalized_log_mel(mel, spec, 0.0).astype(np.float64) @ cepstral_matrix(spec.frontend)
    audible = frame_levels(mel, spec.frontend) > -90  # digital silence: librosa clamps it
    assert audible.sum() > 100
    np.testing.assert_allclose(dct[audible], mfcc(x, spec.frontend)[audible], atol=0.02)


def test_short_utterances_are_padded_with_the_floor(clip):
    mel, levels = recording_frames(clip, SPEC)
    short = utterance_inputs(mel[100:150], SPEC, levels=levels[100:150])
    assert short.shape == (1, *SPEC.input_shape)
    pad = short[0, 60:, :, 0]
    np.testing.assert_allclose(pad, pad[0][None].repeat(len(pad), 0), atol=1e-4)
    np.testing.assert_allclose(short[0, 60:, :, 1], 0.0, atol=1e-4)  # no change: no delta
    floor_cepstrum = floor_log_mel(SPEC).astype(np.float64) @ cepstral_matrix(SPEC.frontend)
    np.testing.assert_allclose(pad[0], floor_cepstrum, atol=1e-3)


def test_window_positions():
    w, s = SPEC.window_frames, SPEC.stride_frames
    assert window_starts(10, SPEC).tolist() == [0]
    assert window_starts(w, SPEC).tolist() == [0]
    starts = window_starts(w + 1, SPEC)
    assert starts.tolist() == [0, 1]
    long = window_starts(1000, SPEC)
    assert long[0] == 0 and long[-1] == 1000 - w
    assert np.diff(long).max() <= s


def test_long_utterances_have_several_windows(clip):
    x = np.concatenate([clip, clip, clip])
    mel, levels = recording_frames(x, SPEC)
    got = utterance_inputs(mel, SPEC, levels=levels)
    assert got.shape[0] == len(window_starts(len(mel), SPEC)) > 2


def test_an_interim_is_the_newest_window_of_the_utterance_so_far(clip):
    """Bit for bit the last window of the utterance so far (the whole utterance's level), one
    window at any length; the mel frames of that window alone are enough."""
    x = np.concatenate([clip, clip])
    mel, levels = recording_frames(x, SPEC)
    w = SPEC.window_frames
    for n in (1, 37, w - 1, w, w + 1, w + 149, len(mel)):
        full = utterance_inputs(mel[:n], SPEC, levels=levels[:n])
        got = interim_inputs(mel[:n], SPEC, levels=levels[:n])
        assert got.shape == (1, *SPEC.input_shape)
        np.testing.assert_array_equal(got[0], full[-1])
        np.testing.assert_array_equal(interim_inputs(mel[:n][-w:], SPEC, levels=levels[:n]), got)
        np.testing.assert_array_equal(interim_inputs(mel[:n], SPEC), got)
    assert len(utterance_inputs(mel, SPEC, levels=levels)) > 1


def test_aggregate_weights_by_speech():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(aggregate_utterances(probs, np.array([3.0, 1.0])), [0.75, 0.25])


def test_spec_round_trip_and_refusals():
    spec = FeatureSpec(window_seconds=2.0, floor_db=-40.0)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in spec.to_dict().items() if k != "input_version"}
    with pytest.raises(ConfigError, match="older than this edge-ser"):
        FeatureSpec.from_dict(old)
    with pytest.raises(ConfigError, match="newer"):
        FeatureSpec.from_dict({**spec.to_dict(), "input_version": INPUT_VERSION + 1})
    with pytest.raises(ConfigError, match="floor_db"):
        FeatureSpec(floor_db=3.0)
    with pytest.raises(ConfigError, match="librosa"):
        FeatureSpec(frontend=FrontendConfig.python_speech_features())


def test_utterance_mean_removes_each_bands_mean_over_the_utterance(clip):
    spec = FeatureSpec(utterance_mean=True)
    mel, levels = recording_frames(clip, spec)
    (seg,) = recording_segments(levels, spec)
    short = seg.start + 150  # shorter than a window: padded
    got = utterance_inputs(mel[seg.start:short], spec, levels=levels[seg.start:short])[0]
    np.testing.assert_allclose(got[:150, :, 0].mean(axis=0), 0.0, atol=1e-3)
    plain = utterance_inputs(mel[seg.start:short], SPEC, levels=levels[seg.start:short])[0]
    # the padding moved by the same offset as the frames: the same shape, shifted
    shift = got[:150, :, 0].mean(0) - plain[:150, :, 0].mean(0)
    np.testing.assert_allclose(got[150:, :, 0] - plain[150:, :, 0],
                               np.broadcast_to(shift, got[150:, :, 0].shape), atol=1e-2)
    np.testing.assert_allclose(got[:, :, 1], plain[:, :, 1], atol=1e-3)  # deltas unchanged
    assert FeatureSpec.from_dict(spec.to_dict()).utterance_mean
