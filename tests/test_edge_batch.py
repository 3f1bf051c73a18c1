"""The batch API (:mod:`edge.batch`) is the device's scoring path: recording by recording its
results are ``predict_file``'s, bit for bit (one utterance, several, none; 16 kHz files and a
48 kHz stereo waveform), and hop by hop its interims are the recogniser's, whatever the block
size; windows, averages and weights combine as the recogniser combines them."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from conftest_edge import CLIPS, fold_bundle

from edge.audio import load, resample, write_wav
from edge.batch import (
    Windows,
    combine,
    final_windows,
    interim_windows,
    load_recording,
    predicted_labels,
    recording_of,
    score,
    windows_of,
)
from edge.bundle import load_bundle
from edge.classifier import Classifier
from edge.errors import AudioError
from edge.predict import predict_file
from edge.recognizer import Recognizer

SR = 16000


@pytest.fixture(scope="module")
def classifier():
    return Classifier(load_bundle(fold_bundle()))


@pytest.fixture(scope="module")
def files(ravdess_dir, savee_dir, tmp_path_factory) -> list[Path]:
    """Six RAVDESS clips, four SAVEE ones, two clips with a pause between them (two
    utterances) and a quiet room (none)."""
    out = sorted(ravdess_dir.rglob("03-01-*.*"))[::97][:6]
    out += sorted(savee_dir.glob("*.*"))[::61][:4]
    tmp = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(0)
    room = (rng.standard_normal(3 * SR) * 1e-3).astype(np.float32)
    two = np.concatenate([room, load(ravdess_dir / f"{CLIPS[0]}.flac", SR), room,
                          load(ravdess_dir / f"{CLIPS[1]}.flac", SR), room])
    out.append(write_wav(tmp / "two.wav", two, SR))
    out.append(write_wav(tmp / "room.wav", room, SR))
    return out


def test_results_are_predict_files_and_interims_the_recognisers(files, classifier):
    spec, labels = classifier.spec, classifier.labels
    hop = spec.hop_frames(classifier.bundle.metadata.hop_seconds)
    recs = [load_recording(p, spec, hop) for p in files]
    finals = score(classifier.probabilities, final_windows(recs, spec), len(labels))
    interims = score(classifier.probabilities, interim_windows(recs, spec), len(labels))
    w = interim_windows(recs, spec)
    seen = set()
    for i, path in enumerate(files):
        file = predict_file(path, classifier)
        mine = finals.recording_probs[i]
        seen.add(len(file.utterances))
        assert finals.segments[i] == len(file.utterances)
        if file.label is None:
            assert np.isnan(mine).all(), path
        else:
            np.testing.assert_array_equal(mine, [file.probs[k] for k in labels],
                                          err_msg=str(path))
            assert labels[predicted_labels(finals.recording_probs)[i]] == file.label
        rec = Recognizer(classifier.bundle, classifier=classifier)
        theirs = [[r.probs[k] for k in labels] for r in rec.push(load(path, SR)) + rec.finish()
                  if r.event == "interim"]  # any block size gives these (test_edge_recognizer)
        np.testing.assert_array_equal(interims.segment_probs[w.recording == i],
                                      np.array(theirs, np.float32).reshape(-1, len(labels)),
                                      err_msg=str(path))
    assert {0, 1} <= seen and max(seen) >= 2  # none, one and several were all compared


def test_a_waveform_at_another_rate_is_the_file_at_that_rate(ravdess_dir, classifier, tmp_path):
    """48 kHz stereo samples given with their rate: the answer of predict on that file."""
    spec, labels = classifier.spec, classifier.labels
    x = resample(load(ravdess_dir / f"{CLIPS[3]}.flac", SR), SR, 48000)
    ints = np.round(x * 32768).clip(-32768, 32767).astype("<i2")
    path = tmp_path / "stereo48.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(48000)
        f.writeframes(np.stack((ints, ints), axis=1).tobytes())
    stereo = np.stack((ints, ints), axis=1).astype(np.float32) / 32768
    rec = recording_of(stereo, spec, spec.hop_frames(0.5), sample_rate=48000)
    got = score(classifier.probabilities, final_windows([rec], spec), len(labels))
    file = predict_file(path, classifier)
    np.testing.assert_array_equal(got.recording_probs[0], [file.probs[k] for k in labels])


def test_an_unusable_file_is_an_audio_error(tmp_path, classifier):
    spec = classifier.spec
    short = write_wav(tmp_path / "short.wav", np.zeros(100, np.float32), SR)
    with pytest.raises(AudioError, match="short"):
        load_recording(short, spec, 50)
    with pytest.raises(AudioError):
        load_recording(tmp_path / "missing.wav", spec, 50)


def test_windows_combine_as_the_recogniser_combines_them():
    """Windows averaged per utterance (float32), utterances weighted by speech seconds (at
    least 1 ms), a NaN row without an utterance; a subset keeps its recordings' rows only."""
    x = np.arange(8, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)
    # recording 0: one utterance of two windows; recording 1: none; recording 2: an utterance
    # of one window (3 s of speech) and one of two (1 s); recording 3: one without speech
    # frames and one of 2 ms (weights 1 ms and 2 ms)
    w = Windows(x, np.array([0, 0, 1, 2, 2, 3, 4, 5]), np.array([0, 2, 2, 3, 3, 3]),
                np.array([2.0, 3.0, 1.0, 0.0, 0.002, 0.002]), 4)

    def model(batch: np.ndarray) -> np.ndarray:
        v = batch[:, 0, 0, 0] / 10
        return np.stack([v, 1 - v], axis=1)

    s = score(model, w, 2)
    np.testing.assert_allclose(s.segment_probs[:, 0], [0.05, 0.2, 0.35, 0.5, 0.6, 0.7],
                               rtol=1e-6)
    assert s.segment_probs.dtype == np.float32
    assert np.isnan(s.recording_probs[1]).all()
    assert s.recording_probs[2, 0] == pytest.approx((0.2 * 3 + 0.35 * 1) / 4)
    assert s.recording_probs[3, 0] == pytest.approx((0.5 * 1 + 0.6 * 2 + 0.7 * 2) / 5)
    assert s.segments.tolist() == [1, 0, 2, 3]
    assert predicted_labels(s.recording_probs).tolist() == [1, -1, 1, 0]
    assert predicted_labels(s.recording_probs, {1: 0}).tolist() == [0, -1, 0, 0]
    part = w.subset(np.array([False, False, True, False]))
    assert part.inputs[:, 0, 0, 0].tolist() == [2, 3, 4] and part.n_recordings == 4
    sub = combine(model(part.inputs), part)
    np.testing.assert_allclose(sub.recording_probs[2], s.recording_probs[2])
    assert np.isnan(sub.recording_probs[[0, 1, 3]]).all()
    assert w.window_recording.tolist() == [0, 0, 2, 2, 2, 3, 3, 3]


def test_windows_of_needs_one_list_of_segments_per_recording(classifier):
    spec = classifier.spec
    rec = recording_of(np.zeros(SR, np.float32), spec, 50)
    with pytest.raises(ValueError, match="1 recordings but 2"):
        windows_of([rec], [(), ()], spec)
    empty = final_windows([rec], spec)
    assert empty.inputs.shape == (0, *spec.input_shape) and empty.n_recordings == 1
