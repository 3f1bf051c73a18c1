"""The streaming recogniser: identical results whatever the block size (openWakeWord-style),
with and without resampling; results placed by frame count; reset; file-level predict."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_edge import CLIPS, shipped

from edge.audio import load, resample
from edge.bundle import load_bundle
from edge.classifier import Classifier
from edge.clip import clip_window
from edge.errors import ConfigError
from edge.features import signal_input
from edge.predict import predict_signal
from edge.recognizer import Recognizer

SR = 16000


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(shipped())


@pytest.fixture(scope="module")
def classifier(bundle):
    return Classifier(bundle)


@pytest.fixture(scope="module")
def speech(ravdess_dir):
    """About 15 s of real speech from four actors, with their pauses."""
    return np.concatenate([load(ravdess_dir / f"{c}.flac", SR) for c in CLIPS])


def run(rec: Recognizer, x: np.ndarray, block: int) -> list[dict]:
    rec.reset()
    out = []
    for i in range(0, x.size, block):
        out.extend(rec.push(x[i:i + block]))
    out.extend(rec.finish())
    return [r.to_dict(digits=8) for r in out]


def test_same_audio_any_block_size_same_results(bundle, classifier, speech):
    rec = Recognizer(bundle, classifier=classifier)
    reference = run(rec, speech, speech.size)
    assert len(reference) >= 20
    assert any(r["speech"] for r in reference)
    for block in (160, 441, 512, 1024, 3200, 16000):
        assert run(rec, speech, block) == reference, block


def test_same_results_any_block_size_when_resampling_from_48k(bundle, classifier, speech):
    x48 = resample(speech[: SR * 8], SR, 48000)
    rec = Recognizer(bundle, input_rate=48000, classifier=classifier)
    reference = run(rec, x48, x48.size)
    assert len(reference) >= 10
    for block in (480, 1024, 4800, 7777):
        assert run(rec, x48, block) == reference, block
    # and close to the same audio at 16 kHz (band-limited resampling, round trip)
    direct = run(Recognizer(bundle, classifier=classifier), speech[: SR * 8], SR)
    assert [r["t"] for r in direct] == [r["t"] for r in reference]
    agree = np.mean([a["window"]["label"] == b["window"]["label"]
                     for a, b in zip(direct, reference)])
    assert agree >= 0.8


def test_results_are_placed_by_frames(bundle, classifier, speech):
    rec = Recognizer(bundle, hop_seconds=0.25, classifier=classifier)
    results = rec.push(speech[: SR * 6])
    spec = bundle.metadata.features
    fe = spec.frontend
    frames = fe.n_frames(SR * 6)
    assert rec.hop_frames == 25
    assert len(results) == 1 + (frames - spec.window_frames) // rec.hop_frames
    assert results[0].t == pytest.approx(fe.samples_for(spec.window_frames) / SR)
    assert np.diff([r.t for r in results]) == pytest.approx(0.25)
    for r in results:
        assert sum(r.window_probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert (r.label is None) == (not r.speech)
        assert len(r.scores) == len(bundle.metadata.labels)
    assert rec.stats.windows == len(results)


def test_a_window_through_the_recogniser_equals_the_training_path(bundle, classifier, speech):
    """The streaming frames of one window give the same scores as signal_input on it."""
    spec = bundle.metadata.features
    x = speech[: spec.window_samples]
    streamed = Recognizer(bundle, classifier=classifier).push(x)
    assert len(streamed) == 1
    direct = classifier.classify_features(signal_input(x, spec))
    assert streamed[0].scores == [int(v) for v in direct.scores]


def test_silence_gives_no_emotion(bundle, classifier):
    rng = np.random.default_rng(0)
    room = (10 ** (-60 / 20) * rng.standard_normal(SR * 6)).astype(np.float32)
    results = Recognizer(bundle, classifier=classifier).push(room)
    assert results and not any(r.speech for r in results)
    assert all(r.label is None and r.confidence is None for r in results)


def test_bad_hop_is_refused(bundle, classifier):
    with pytest.raises(ConfigError, match="hop"):
        Recognizer(bundle, hop_seconds=0.0, classifier=classifier)


def test_predict_clip_mode_is_the_training_window(ravdess_dir, classifier):
    spec = classifier.spec
    x = load(ravdess_dir / f"{CLIPS[0]}.flac", SR)
    prediction = predict_signal(x, classifier)
    assert prediction.mode == "clip" and prediction.speech
    expected = classifier.classify_features(signal_input(clip_window(x, spec), spec))
    assert prediction.scores == [int(v) for v in expected.scores]
    assert prediction.label == classifier.labels[int(np.argmax(expected.probs))]
    assert len(prediction.windows) == 1


def test_predict_long_recording_averages_speech_windows(classifier, speech):
    rng = np.random.default_rng(4)
    quiet = (10 ** (-65 / 20) * rng.standard_normal(SR * 6)).astype(np.float32)
    x = np.concatenate((quiet, speech))
    prediction = predict_signal(x, classifier)
    assert prediction.mode == "windows"
    speech_windows = [w for w in prediction.windows if w["speech"]]
    assert speech_windows and len(speech_windows) < len(prediction.windows)
    average = np.mean([list(w["probs"].values()) for w in speech_windows], axis=0)
    np.testing.assert_allclose(list(prediction.probs.values()), average, atol=1e-3)
    assert prediction.label == classifier.labels[int(np.argmax(average))]
    silent = predict_signal(quiet, classifier, mode="windows")
    assert not silent.speech and silent.label is None


def test_an_utterance_with_long_trailing_silence_is_still_one_clip(ravdess_dir, classifier):
    from edge.predict import speech_end

    x = load(ravdess_dir / f"{CLIPS[1]}.flac", SR)
    # 6 s of digital silence after the utterance (RAVDESS stores its pauses that way)
    padded = np.concatenate((x, np.zeros(SR * 6, dtype=np.float32)))
    assert speech_end(padded, SR) <= x.size
    with_tail = predict_signal(padded, classifier)
    assert with_tail.mode == "clip"
    # the tail only replaces the window's zero padding with zeros: the very same window
    assert with_tail.scores == predict_signal(x, classifier).scores


def test_stereo_blocks_are_averaged_and_glitches_do_not_poison_the_stream(bundle, classifier,
                                                                          speech):
    x = speech[: SR * 5]
    rec = Recognizer(bundle, classifier=classifier)
    mono = [r.to_dict() for r in rec.push(x)]
    rec.reset()
    stereo = [r.to_dict() for r in rec.push(np.stack((x, x), axis=1))]
    assert stereo == mono
    rec.reset()
    glitched = x.copy()
    glitched[SR: SR + 10] = np.nan
    results = rec.push(glitched)
    assert rec.stats.bad_samples == 10
    assert all(np.isfinite(r.window_probs[bundle.metadata.labels[0]]) for r in results)
    assert all(np.isfinite(r.noise_floor_db) for r in results)
