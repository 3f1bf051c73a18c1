"""Corpus readers, labels, feature cache, speaker splits and augmentation (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest_train import make_tree, write_wav

from edge.batch import combine
from edge.errors import AudioError, ConfigError
from edge.features import FeatureSpec
from train.augment import CONDITIONS, SpecAugment, WaveAugment, spec_augment
from train.corpora import Utterance, detect_corpus, read_corpus
from train.dataset import (
    CLEAN,
    FeatureCache,
    Variant,
    choose_validation_speakers,
    clip_inputs,
    load_recordings,
    speaker_folds,
    split_by_speaker,
)
from train.labels import parse_classes
from train.windows import WindowAugment, augmented_inputs, device_inputs, interim_windows

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


def test_nemo_release_and_16k_names(tmp_path):
    make_tree(tmp_path / "release", ["samples/EB0_anger_10.wav", "samples/KS0_fear_3.wav",
                                     "samples/WR0_surprised_101.wav", "samples/MK0_sadness_7.wav",
                                     "samples/XX0_boredom_1.wav", "samples/notes.wav"])
    assert detect_corpus(tmp_path / "release") == "nemo"
    c = read_corpus(tmp_path / "release")
    assert sorted((u.speaker, u.label, u.gender) for u in c.utterances) == [
        ("nemo-EB0", "angry", "female"), ("nemo-KS0", "fearful", "male"),
        ("nemo-MK0", "sad", "female"), ("nemo-WR0", "surprised", "male")]
    assert c.skipped == {"emotion 'boredom' has no shared label": 1, "not an nEMO name": 1}
    make_tree(tmp_path / "flac", ["IC0_happiness_2.flac", "TP0_neutral_40.flac"])
    assert sorted((u.speaker, u.label) for u in read_corpus(tmp_path / "flac", "nemo").utterances
                  ) == [("nemo-IC0", "happy"), ("nemo-TP0", "neutral")]


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

    make_tree(tmp_path, ["Actor_01/03-01-05-02-01-01-01.wav", "Actor_01/03-02-05-02-01-01-01.wav",
                         "Actor_01/03-02-07-02-01-01-01.wav"])  # song has no disgust
    (tmp_path / "Actor_02").mkdir()
    soundfile.write(tmp_path / "Actor_02" / "03-01-02-01-02-02-02.flac",
                    np.zeros(8000, np.float32), 16000)
    c = read_corpus(tmp_path)
    assert c.name == "ravdess"
    assert sorted((u.speaker, u.label, u.channel) for u in c.utterances) == [
        ("ravdess-01", "angry", "song"), ("ravdess-01", "angry", "speech"),
        ("ravdess-02", "calm", "speech")]
    assert c.skipped == {"unknown emotion code": 1}


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


def test_repeated_partitions_keep_every_speaker_gender_or_not():
    speakers = [f"ravdess-{i:02d}" for i in range(1, 9)] + ["crema-1001", "crema-1002"]
    genders = {s: ("male" if int(s[-2:]) % 2 else "female") for s in speakers[:8]}
    for repeat in (1, 2):
        folds = speaker_folds(speakers, 3, repeat=repeat, genders=genders)
        assert sorted(s for f in folds for s in f) == sorted(speakers)
    assert speaker_folds(speakers, 3, repeat=1, genders=genders) != \
        speaker_folds(speakers, 3, repeat=2, genders=genders)


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


def speechy(path: Path, bursts: list[tuple[float, float]], seconds: float = 3.0) -> Path:
    """A 16-bit WAV of speech-band noise bursts over silence (what the endpointer finds)."""
    from edge.audio import write_wav as write

    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    x = np.zeros(int(seconds * 16000))
    for a, b in bursts:
        x[int(a * 16000):int(b * 16000)] = 0.05 * rng.standard_normal(int((b - a) * 16000))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write(path, x, 16000)


def test_recordings_cache_segments_and_bad_files(tmp_path):
    paths = [speechy(tmp_path / "data" / "03-01-05-01-01-01-01.wav", [(0.5, 1.5)]),
             speechy(tmp_path / "data" / "03-01-04-01-01-01-02.wav", [(0.3, 1.0), (2.0, 2.6)])]
    bad = tmp_path / "data" / "03-01-03-01-01-01-03.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    items = [Utterance(p, "angry", "ravdess-01", "ravdess") for p in [paths[0], bad, paths[1]]]
    cache = tmp_path / "cache"
    first = load_recordings(items, SPEC, cache_dir=cache, progress=False)
    assert first.computed == 2 and [u.path for u in first.kept] == paths
    assert first.failed[0][0].path == bad
    assert [len(r.segments) for r in first.recordings] == [1, 2]
    (seg,) = first.recordings[0].segments
    assert seg.start / 100 == pytest.approx(0.4, abs=0.04)
    again = load_recordings(items, SPEC, cache_dir=cache, progress=False)
    assert again.computed == 0
    np.testing.assert_array_equal(again.recordings[1].mel, first.recordings[1].mel)
    with pytest.raises(AudioError):
        clip_inputs(items, SPEC, cache_dir=cache, progress=False)
    assert clip_inputs(items[::2], SPEC, cache_dir=cache, progress=False).shape == \
        (2, *SPEC.input_shape)
    # the cache is keyed by contents: a changed file is recomputed
    write_wav(paths[0], freq=500.0)
    assert load_recordings(items[:1], SPEC, cache_dir=cache, progress=False).computed == 1
    # and by the front end (not by the window: inputs are made from the cached frames)
    from edge.frontend import FrontendConfig

    assert FeatureCache(cache, FrontendConfig(n_mels=32, n_mfcc=32)).directory != \
        FeatureCache(cache, SPEC.frontend).directory


def test_augmented_copies_and_conditions_are_deterministic_and_differ(tmp_path):
    path = speechy(tmp_path / "03-01-05-01-01-01-01.wav", [(0.5, 2.0)])
    u = [Utterance(path, "angry", "ravdess-01", "ravdess")]
    kw = dict(cache_dir=tmp_path / "c", progress=False)
    aug = WaveAugment(noise_prob=1.0, reverb_prob=1.0, band_prob=1.0, speed_prob=0.0)
    a0 = load_recordings(u, SPEC, variant=Variant(aug, 0, 0), **kw).recordings[0].mel
    a1 = load_recordings(u, SPEC, variant=Variant(aug, 1, 0), **kw).recordings[0].mel
    clean = load_recordings(u, SPEC, variant=CLEAN, **kw).recordings[0].mel
    again = load_recordings(u, SPEC, variant=Variant(aug, 0, 0), use_cache=False,
                            progress=False).recordings[0].mel
    np.testing.assert_array_equal(a0, again)
    assert not np.allclose(a0, a1) and not np.allclose(a0, clean)
    quiet = load_recordings(u, SPEC, variant=Variant(CONDITIONS["quiet"]), **kw).recordings[0]
    loud = load_recordings(u, SPEC, **kw).recordings[0]
    # 24 dB quieter, the same utterance (levels are relative to it)
    assert np.median(loud.levels[loud.segments[0].start:loud.segments[0].end]) - np.median(
        quiet.levels[quiet.segments[0].start:quiet.segments[0].end]) == pytest.approx(24, abs=1)


def test_wave_augment_keeps_length_range_and_16_bit_grid():
    rng = np.random.default_rng(0)
    x = (0.2 * np.sin(np.arange(16000 * 2) / 5.0)).astype(np.float32)
    for _ in range(5):
        y = WaveAugment(noise_prob=1.0, reverb_prob=1.0, band_prob=1.0, speed_prob=0.0,
                        pitch_prob=0.0)(x, 16000, rng)
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
        np.testing.assert_array_equal(np.round(y * 32768), y * 32768)


def test_device_inputs_and_recording_probabilities(tmp_path):
    paths = [speechy(tmp_path / "03-01-05-01-01-01-01.wav", [(0.5, 1.5)]),
             speechy(tmp_path / "03-01-04-01-01-01-02.wav", [(0.3, 1.0), (2.0, 2.6)]),
             speechy(tmp_path / "03-01-04-01-01-01-03.wav", [], seconds=1.0)]  # silence
    items = [Utterance(p, "sad", "ravdess-01", "ravdess") for p in paths]
    recs = load_recordings(items, SPEC, cache_dir=tmp_path / "c", progress=False).recordings
    d = device_inputs(recs, SPEC)
    assert d.inputs.shape[1:] == SPEC.input_shape and d.window_recording.tolist()[:1] == [0]
    assert d.recording.tolist() == [0, 1, 1]  # the silent file has no utterance
    probs = np.tile([[0.9, 0.1]], (len(d.inputs), 1))
    probs[d.window_recording == 1] = [0.2, 0.8]
    out = combine(probs, d).recording_probs
    np.testing.assert_allclose(out[0], [0.9, 0.1])
    np.testing.assert_allclose(out[1], [0.2, 0.8])
    assert np.isnan(out[2]).all()
    assert device_inputs(recs, SPEC, fallback=True).recording.tolist() == [0, 1, 1, 2]
    x, y = augmented_inputs(recs, np.array([0, 1, 1]), SPEC, WindowAugment(interim_prob=1.0),
                            np.random.default_rng(0))
    assert x.shape == (4, *SPEC.input_shape) and y.tolist() == [0, 1, 1, 1]
    w = interim_windows(recs, SPEC, hop_frames=10)
    assert len(w.inputs) == w.segments >= 3 and set(w.recording.tolist()) <= {0, 1}


def test_spec_augment_fills_masks_and_spares_c0():
    batch = np.random.default_rng(1).normal(size=(8, 50, 40, 2)).astype(np.float32) + 5.0
    fill = np.full((40, 2), -3.0, np.float32)
    out = spec_augment(batch, SpecAugment(prob=1.0, freq_width=6), np.random.default_rng(2),
                       fill=fill)
    changed = out != batch
    assert changed.any()
    np.testing.assert_array_equal(out[changed], -3.0)
    assert not changed[:, :, 0].all(axis=1).any()  # c0 is never masked along all frames


def test_repeated_partitions_cover_each_speaker_once_and_stay_balanced():
    speakers = [f"ravdess-{i:02d}" for i in range(1, 17)]
    genders = {s: "male" if int(s[-2:]) % 2 else "female" for s in speakers}
    first = speaker_folds(speakers, 4, genders=genders)
    again = speaker_folds(speakers, 4, repeat=1, genders=genders)
    assert again != first and again == speaker_folds(speakers, 4, repeat=1, genders=genders)
    for folds in (first, again, speaker_folds(speakers, 4, repeat=2, genders=genders)):
        assert sorted(s for f in folds for s in f) == speakers
        assert all(sum(genders[s] == "male" for s in f) == 2 for f in folds)


def test_paired_comparison_of_two_runs(tmp_path):
    from train.compare import compare

    def report(accs, interim):
        return {"folds": [{"test_speakers": [f"s{k}"], "test": {"accuracy": a, "macro_f1": a},
                           "interim": {"accuracy": i}, "conditions": {"quiet": {"accuracy": a}}}
                          for k, (a, i) in enumerate(zip(accs, interim))]}

    got = compare(report([0.5, 0.6, 0.4], [0.3, 0.3, 0.3]),
                  report([0.55, 0.62, 0.38], [0.4, 0.35, 0.3]))
    acc = got["measures"]["accuracy"]
    assert got["folds"] == 3 and acc["b_better"] == 2
    assert acc["difference"] == pytest.approx(0.05 / 3) and acc["per_fold"] == [0.05, 0.02, -0.02]
    assert got["measures"]["interim"]["difference"] == pytest.approx(0.05)
    assert set(got["measures"]) == {"accuracy", "macro_f1", "interim", "quiet"}
    with pytest.raises(ValueError, match="no fold"):
        compare(report([0.5], [0.3]), {"folds": [{"test_speakers": ["x"],
                                                  "test": {"accuracy": 1, "macro_f1": 1}}]})
