"""The numpy MFCC front end against librosa and python_speech_features, and its stream."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import python_speech_features as psf
import scipy.fftpack
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.audio import load
from edge.errors import ConfigError
from edge.frontend import (
    FrontendConfig,
    MfccStream,
    dct_matrix,
    deltas,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    mfcc,
)

SR = 16000


def librosa_reference(y: np.ndarray, c: FrontendConfig, dtype=np.float64) -> np.ndarray:
    """librosa's melspectrogram(center=False) -> power_to_db(top_db=None) -> ortho DCT-II,
    every parameter taken from the config's fields."""
    mel = librosa.feature.melspectrogram(
        y=y.astype(dtype), sr=c.sample_rate, n_fft=c.n_fft, win_length=c.win_length,
        hop_length=c.hop_length, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax, center=False,
        power=2.0, window="hann", dtype=dtype,
    )
    db = librosa.power_to_db(mel, top_db=None)
    return scipy.fftpack.dct(db, axis=-2, type=2, norm="ortho")[: c.n_mfcc].T


def psf_reference(y: np.ndarray, c: FrontendConfig) -> np.ndarray:
    return psf.mfcc(
        y, samplerate=c.sample_rate, winlen=c.win_length / c.sample_rate,
        winstep=c.hop_length / c.sample_rate, numcep=c.n_mfcc, nfilt=c.n_mels, nfft=c.n_fft,
        lowfreq=c.fmin, highfreq=c.fmax, preemph=c.preemphasis, ceplifter=c.lifter,
        appendEnergy=True,
    )


def edge_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(SR * 2) / SR
    return {
        "silence": np.zeros(SR, dtype=np.float32),
        "clipping": np.clip(3.0 * np.sin(2 * np.pi * 220 * t), -1, 1).astype(np.float32),
        "tone_1khz": (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32),
        "white_noise": (0.3 * rng.standard_normal(SR)).astype(np.float32),
        "one_frame": (0.1 * rng.standard_normal(512)).astype(np.float32),
    }


@pytest.fixture(scope="module")
def speech(ravdess_dir) -> dict[str, np.ndarray]:
    """Real speech: a few clips of different actors, emotions and sexes."""
    names = ["Actor_03/03-01-05-02-01-01-03.flac", "Actor_10/03-01-04-01-02-02-10.flac",
             "Actor_16/03-01-08-02-01-01-16.flac"]
    return {n: load(ravdess_dir / n, SR) for n in names}


# ----------------------------------------------------------------------------- librosa


@pytest.mark.parametrize("name", list(edge_cases()))
def test_matches_librosa_on_edge_cases(name):
    c = FrontendConfig()
    y = edge_cases()[name]
    ours = mfcc(y, c)
    ref = librosa_reference(y, c)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=2e-4)


def test_matches_librosa_on_real_speech(speech):
    c = FrontendConfig()
    for y in speech.values():
        ours = mfcc(y, c)
        np.testing.assert_allclose(ours, librosa_reference(y, c), rtol=1e-5, atol=2e-4)
        # and librosa's own float32 path, to float32 precision of values up to ~600
        np.testing.assert_allclose(ours, librosa_reference(y, c, np.float32), atol=2e-3)


@pytest.mark.parametrize(
    "changes",
    [
        dict(sample_rate=8000, fmax=4000.0, n_fft=256, win_length=200, hop_length=80,
             n_mels=32, n_mfcc=20),
        dict(sample_rate=22050, fmax=11025.0, n_fft=1024, win_length=1024, hop_length=256,
             n_mels=64, n_mfcc=13, fmin=0.0),
        dict(n_fft=400, win_length=400, hop_length=100, n_mels=26, n_mfcc=26, fmin=50.0,
             fmax=7600.0),
        dict(n_fft=2048, win_length=1103, hop_length=441, n_mels=80, n_mfcc=40),
    ],
    ids=["8k", "22k", "fft400", "odd-window"],
)
def test_matches_librosa_across_configs(speech, changes):
    c = dataclasses.replace(FrontendConfig(), **changes)
    y = next(iter(speech.values()))
    if c.sample_rate != SR:
        y = librosa.resample(y, orig_sr=SR, target_sr=c.sample_rate)
    np.testing.assert_allclose(mfcc(y, c), librosa_reference(y, c), rtol=1e-5, atol=2e-4)


def test_filterbank_and_mel_scale_match_librosa():
    c = FrontendConfig()
    ref = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin,
                              fmax=c.fmax, dtype=np.float64)
    np.testing.assert_allclose(mel_filterbank(c), ref, rtol=1e-10, atol=1e-12)
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
    np.testing.assert_allclose(hz_to_mel(hz, htk=True), librosa.hz_to_mel(hz, htk=True))
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, atol=1e-9)
    d = dct_matrix(40, 40)
    np.testing.assert_allclose(d.T @ d, np.eye(40), atol=1e-12)  # orthonormal


# ------------------------------------------------------------------ python_speech_features


def test_matches_python_speech_features(speech):
    c = FrontendConfig.python_speech_features()
    cases = {**speech, **{k: v for k, v in edge_cases().items() if k != "silence"}}
    for name, y in cases.items():
        ours = mfcc(y, c)
        ref = psf_reference(y, c)
        # psf zero-pads a last partial frame; every full frame must agree
        assert ref.shape[0] - ours.shape[0] in (0, 1), name
        np.testing.assert_allclose(ours, ref[: len(ours)], rtol=1e-5, atol=1e-4, err_msg=name)


def test_python_speech_features_on_silence_is_finite():
    c = FrontendConfig.python_speech_features()
    out = mfcc(np.zeros(SR, dtype=np.float32), c)
    ref = psf_reference(np.zeros(SR), c)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref[: len(out)], rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------- framing, stream


@pytest.mark.parametrize("n", [0, 1, 511, 512, 513, 671, 672, 16000])
def test_frame_count(n):
    c = FrontendConfig()
    expected = 0 if n < c.n_fft else 1 + (n - c.n_fft) // c.hop_length
    assert mfcc(np.zeros(n, dtype=np.float32), c).shape == (expected, c.n_mfcc)
    assert c.n_frames(n) == expected


def test_frame_depends_only_on_its_own_samples():
    c = FrontendConfig()
    rng = np.random.default_rng(0)
    y = rng.standard_normal(SR).astype(np.float32) * 0.1
    z = y.copy()
    z[5000:] = 0.9  # change everything from sample 5000 on
    last_untouched = (5000 - c.n_fft) // c.hop_length  # frames ending before sample 5000
    np.testing.assert_array_equal(mfcc(y, c)[: last_untouched + 1],
                                  mfcc(z, c)[: last_untouched + 1])


@settings(max_examples=40, deadline=None)
@given(
    blocks=st.lists(st.integers(min_value=0, max_value=4000), min_size=1, max_size=30),
    psf_convention=st.booleans(),
)
def test_stream_equals_batch_for_any_block_sizes(blocks, psf_convention):
    c = FrontendConfig.python_speech_features() if psf_convention else FrontendConfig()
    y = np.random.default_rng(len(blocks)).standard_normal(sum(blocks)).astype(np.float32)
    stream = MfccStream(c)
    pieces, start = [], 0
    for size in blocks:
        out = stream.push(y[start:start + size])
        assert out.shape[1] == c.n_mfcc and out.dtype == np.float32
        pieces.append(out)
        start += size
    streamed = np.concatenate(pieces)
    np.testing.assert_array_equal(streamed, mfcc(y, c))  # bit for bit
    assert stream.frames_emitted == len(streamed)


def test_stream_reset_starts_a_new_signal():
    c = FrontendConfig.python_speech_features()
    y = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    stream = MfccStream(c)
    stream.push(np.ones(1234, dtype=np.float32))
    stream.reset()
    np.testing.assert_array_equal(stream.push(y), mfcc(y, c))


# ------------------------------------------------------------------- config and deltas


def test_config_round_trip_and_hash():
    c = FrontendConfig()
    assert FrontendConfig.from_dict(c.to_dict()) == c
    assert c.config_hash() == FrontendConfig().config_hash()
    assert c.config_hash() != dataclasses.replace(c, n_mels=64).config_hash()
    with pytest.raises(ConfigError, match="newer edge-ser"):
        FrontendConfig.from_dict({**c.to_dict(), "mystery": 1})


@pytest.mark.parametrize(
    "changes, field",
    [(dict(win_length=1024), "win_length"), (dict(n_mfcc=80), "n_mfcc"),
     (dict(fmax=9000.0), "fmax"), (dict(hop_length=0), "hop_length"),
     (dict(convention="htk"), "convention"), (dict(n_mels=200, n_mfcc=40), "n_mels")],
)
def test_impossible_configs_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        c = FrontendConfig(**changes)
        mfcc(np.zeros(SR, dtype=np.float32), c)  # n_mels=128: empty bands found when built


def test_deltas_of_a_ramp_are_its_slope():
    x = np.outer(np.arange(50, dtype=np.float32) * 0.5, np.ones(3, dtype=np.float32))
    d = deltas(x, width=9)
    np.testing.assert_allclose(d[4:-4], 0.5, rtol=1e-6)
    assert d.dtype == np.float32 and d.shape == x.shape
    np.testing.assert_array_equal(deltas(np.ones((20, 4))), 0.0)


def test_rejects_non_float_and_multichannel_signals():
    with pytest.raises(ConfigError, match="dtype"):
        mfcc(np.zeros(SR, dtype=np.int16))
    with pytest.raises(ConfigError, match="1-D"):
        mfcc(np.zeros((SR, 2), dtype=np.float32))
