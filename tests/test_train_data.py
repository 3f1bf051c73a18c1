"""Corpus readers, labels, feature cache, speaker splits and augmentation (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest_train import make_tree, write_wav

from edge.errors import AudioError, ConfigError
from edge.features import FeatureSpec
from train.augment import SpecAugment, WaveAugment, augment_window, spec_augment
from train.corpora import Utterance, detect_corpus, read_corpus
from train.dataset import (
    FeatureCache,
    choose_validation_speakers,
    clip_inputs,
    extract_inputs,
    speaker_folds,
    split_by_speaker,
)
from train.labels import parse_classes

SPEC = FeatureSpec(window_seconds=0.5)

# ----------------------------------------------------------------------------- corpora


def test_crema_d_names(tmp_path):
    make_tree(tmp_path, ["1001_DFA_ANG_XX.wav", "1001_IEO_HAP_HI.wav", "1002_TIE_SAD_LO.wav",
                         "1002_TIE_XYZ_LO.wav", "readme.wav"])
    assert detect_corpus(tmp_path) == "crema-d"
    c = read_corpus(tmp_path)
    got = sorted((u.speaker, u.label, u.intensity) for u in c.utterances)
    assert got == [("crema-d-1001", "angry", None), ("crema-d-1001", "happy", "high"),
                   ("crema-d-1002", "sad", "low")]
    assert sum(c.skipped.values()) == 2


def test_tess_names(tmp_path):
    make_tree(tmp_path, ["OAF_angry/OAF_back_angry.wav", "YAF_fear/YAF_bite_fear.wav",
                         "OAF_Pleasant_surprise/OAF_bath_ps.wav",
                         "YAF_neutral/YAF_dog_neutral.wav"])
    assert detect_corpus(tmp_path) == "tess"
    got = sorted((u.speaker, u.label, u.gender) for u in read_corpus(tmp_path).utterances)
    assert got == [("tess-OAF", "angry", "female"), ("tess-OAF", "surprised", "female"),
                   ("tess-YAF", "fearful", "female"), ("tess-YAF", "neutral", "female")]


def test_savee_flat_and_original_layout(tmp_path):
    make_tree(tmp_path / "flat", ["DC_a01.wav", "JE_sa03.wav", "JK_su15.wav", "KL_n30.wav"])
    make_tree(tmp_path / "orig", ["AudioData/DC/h02.wav", "AudioData/KL/f11.wav"])
    flat = read_corpus(tmp_path / "flat", "savee")
    assert sorted((u.speaker, u.label) for u in flat.utterances) == [
        ("savee-DC", "angry"), ("savee-JE", "sad"), ("savee-JK", "surprised"),
        ("savee-KL", "neutral")]
    assert detect_corpus(tmp_path / "orig") == "savee"
    orig = read_corpus(tmp_path / "orig")
    assert sorted((u.speaker, u.label) for u in orig.utterances) == [
        ("savee-DC", "happy"), ("savee-KL", "fearful")]


def test_emodb_names_and_unmapped_boredom(tmp_path):
    make_tree(tmp_path, ["03a01Fa.wav", "08b02Wc.wav", "16a05Lb.wav", "10a07Ta.wav"])
    assert detect_corpus(tmp_path) == "emodb"
    c = read_corpus(tmp_path)
    assert sorted((u.speaker, u.label, u.gender) for u in c.utterances) == [
        ("emodb-03", "happy", "male"), ("emodb-08", "angry", "female"),
        ("emodb-10", "sad", "male")]
    assert c.skipped == {"boredom (no shared label)": 1}


def test_ravdess_names_any_extension(tmp_path):
    import soundfile

    make_tree(tmp_path, ["Actor_01/03-01-05-02-01-01-01.wav", "Actor_01/03-02-05-02-01-01-01.wav"])
    (tmp_path / "Actor_02").mkdir()
    soundfile.write(tmp_path / "Actor_02" / "03-01-02-01-02-02-02.flac",
                    np.zeros(8000, np.float32), 16000)
    c = read_corpus(tmp_path)
    assert c.name == "ravdess"
    assert sorted((u.speaker, u.label) for u in c.utterances) == [
        ("ravdess-01", "angry"), ("ravdess-02", "calm")]
    assert c.skipped == {"song (not speech)": 1}


def test_label_csv(tmp_path):
    make_tree(tmp_path, ["spk1/a.wav", "spk1/b.wav", "spk2/c.wav", "d.wav"])
    (tmp_path / "all_labels.csv").write_text(
        "path,label,speaker\nspk1/a.wav,Anger,\nspk1/b.wav,happiness,s9\nspk2/c.wav,boredom,\n"
        "d.wav,whatever,x\nmissing.wav,sad,x\n")
    c = read_corpus(tmp_path / "all_labels.csv")
    assert sorted((u.speaker, u.label) for u in c.utterances) == [
        ("csv-s9", "happy"), ("csv-spk1", "angry")]
    assert sum(c.skipped.values()) == 3


def test_unknown_tree_is_a_clear_error(tmp_path):
    make_tree(tmp_path, ["hello.wav", "world.wav"])
    with pytest.raises(ConfigError, match="no file names follow a known corpus"):
        read_corpus(tmp_path)
    with pytest.raises(ConfigError, match="no audio files"):
        read_corpus(tmp_path / "nothing-here")


# ----------------------------------------------------------------------------- labels


def test_classes_merge_and_drop():
    m = parse_classes("neutral+calm,happy,sad", {"neutral", "calm", "happy", "sad", "angry"})
    assert m.classes == ("neutral", "happy", "sad")
    assert m("calm") == "neutral" and m.index("calm") == 0 and m("angry") is None
    default = parse_classes(None, {"sad", "angry", "neutral"})
    assert default.classes == ("neutral", "sad", "angry")  # the shared vocabulary's order
    with pytest.raises(ConfigError, match="not in the data"):
        parse_classes("neutral,bored", {"neutral", "sad"})


# ----------------------------------------------------------------------------- splits


def utts(speakers, per=2):
    return [Utterance(path=Path(f"{s}-{i}.wav"), label="sad", speaker=s,
                      corpus="ravdess", gender="male" if int(s[-2:]) % 2 else "female")
            for s in speakers for i in range(per)]


def test_speaker_folds_cover_each_speaker_once():
    speakers = [f"ravdess-{i:02d}" for i in range(1, 17)]
    folds = speaker_folds(speakers[::-1], 4)
    assert [len(f) for f in folds] == [4, 4, 4, 4]
    assert sorted(s for f in folds for s in f) == sorted(speakers)
    assert folds[0] == ["ravdess-01", "ravdess-02", "ravdess-03", "ravdess-04"]
    assert sorted(len(f) for f in speaker_folds(speakers[:10], 3)) == [3, 3, 4]
    with pytest.raises(ConfigError):
        speaker_folds(speakers[:3], 4)


def test_validation_speakers_come_from_training_and_mix_genders():
    rest = utts([f"ravdess-{i:02d}" for i in range(5, 17)])
    val = choose_validation_speakers(rest, 2, seed=3)
    assert len(val) == 2 and {int(v[-2:]) % 2 for v in val} == {0, 1}
    split = split_by_speaker(utts([f"ravdess-{i:02d}" for i in range(1, 17)]),
                             ["ravdess-01", "ravdess-02"], val)
    assert not ({u.speaker for u in split.train} & {u.speaker for u in split.test})
    assert not ({u.speaker for u in split.val} & {u.speaker for u in split.test})
    assert not ({u.speaker for u in split.train} & {u.speaker for u in split.val})
    assert len(split.train) + len(split.val) + len(split.test) == 32


# ----------------------------------------------------------------------------- features


def test_clip_inputs_cache_and_bad_files(tmp_path):
    paths = make_tree(tmp_path / "data", ["03-01-05-01-01-01-01.wav", "03-01-04-01-01-01-02.wav"])
    bad = tmp_path / "data" / "03-01-03-01-01-01-03.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    items = [Utterance(p, "angry", "ravdess-01", "ravdess") for p in [paths[0], bad, paths[1]]]
    cache = tmp_path / "cache"
    first = extract_inputs(items, SPEC, cache_dir=cache, progress=False)
    assert first.inputs.shape == (2,) + SPEC.input_shape and first.computed == 2
    assert [u.path for u in first.kept] == paths and first.failed[0][0].path == bad
    again = extract_inputs(items, SPEC, cache_dir=cache, progress=False)
    assert again.computed == 0
    np.testing.assert_array_equal(again.inputs, first.inputs)
    with pytest.raises(AudioError):
        clip_inputs(items, SPEC, cache_dir=cache, progress=False)
    # the cache is keyed by contents: a changed file is recomputed
    write_wav(paths[0], freq=500.0)
    changed = extract_inputs(items[:1], SPEC, cache_dir=cache, progress=False)
    assert changed.computed == 1 and not np.allclose(changed.inputs[0], first.inputs[0])
    # and by the feature spec
    other = FeatureCache(cache, FeatureSpec(window_seconds=0.6))
    assert other.directory != FeatureCache(cache, SPEC).directory


def test_augmented_copies_are_deterministic_and_differ(tmp_path):
    (path,) = make_tree(tmp_path, ["03-01-05-01-01-01-01.wav"], seconds=1.0)
    u = [Utterance(path, "angry", "ravdess-01", "ravdess")]
    kw = dict(cache_dir=tmp_path / "c", progress=False, augment=WaveAugment())
    a0 = extract_inputs(u, SPEC, copy=0, **kw).inputs
    a1 = extract_inputs(u, SPEC, copy=1, **kw).inputs
    clean = extract_inputs(u, SPEC, cache_dir=tmp_path / "c", progress=False).inputs
    again = extract_inputs(u, SPEC, copy=0, use_cache=False, **{k: v for k, v in kw.items()
                                                                 if k != "cache_dir"})
    np.testing.assert_array_equal(a0, again.inputs)
    assert not np.allclose(a0, a1) and not np.allclose(a0, clean)


def test_augment_window_shape_and_noise():
    rng = np.random.default_rng(0)
    x = (0.2 * np.sin(np.arange(16000) / 5.0)).astype(np.float32)
    w = augment_window(x, SPEC, WaveAugment(noise_prob=1.0, snr_db=(10.0, 10.0)), rng)
    assert w.shape == (SPEC.window_samples,) and w.dtype == np.float32
    assert np.isfinite(w).all() and np.abs(w).max() <= 1.0


def test_spec_augment_fills_masks_and_spares_c0():
    batch = np.random.default_rng(1).normal(size=(8, 50, 40, 2)).astype(np.float32) + 5.0
    fill = np.full((40, 2), -3.0, np.float32)
    out = spec_augment(batch, SpecAugment(prob=1.0, freq_width=6), np.random.default_rng(2),
                       fill=fill)
    changed = out != batch
    assert changed.any()
    np.testing.assert_array_equal(out[changed], -3.0)
    assert not changed[:, :, 0].all(axis=1).any()  # c0 is never masked along all frames
