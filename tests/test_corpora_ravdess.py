"""The RAVDESS reader: file-name codes to labels, on the shared data and a synthetic tree."""

from __future__ import annotations

from collections import Counter

from train.corpora import EMOTIONS, parse_ravdess_name, read_ravdess


def test_shared_ravdess_label_counts_per_actor(ravdess_dir):
    corpus = read_ravdess(ravdess_dir)
    assert corpus.skipped == {}
    actors = corpus.speakers
    assert len(actors) >= 2 and len(corpus.utterances) == 60 * len(actors)
    for actor in actors:
        mine = [u for u in corpus.utterances if u.speaker == actor]
        counts = Counter(u.label for u in mine)
        # 2 statements x 2 repetitions, x 2 intensities except neutral
        assert counts == {e: (4 if e == "neutral" else 8) for e in EMOTIONS}, actor
        number = int(actor.split("-")[1])
        assert {u.gender for u in mine} == {"male" if number % 2 else "female"}
        assert all(u.path.name.endswith(f"-{number:02d}.flac") for u in mine)


def test_original_release_tree_with_any_extension(tmp_path):
    root = tmp_path / "Audio_Speech_Actors_01-24"
    files = {
        "Actor_01/03-01-01-01-01-01-01.wav": ("neutral", "normal"),
        "Actor_01/03-01-05-02-02-01-01.WAV": ("angry", "strong"),
        "Actor_24/03-01-08-01-01-02-24.wav": ("surprised", "normal"),
        "Actor_24/03-01-02-02-01-01-24.flac": ("calm", "strong"),
        "Actor_01/03-02-03-01-01-01-01.wav": ("happy", "normal"),  # song, same actor
    }
    skipped = [
        "Actor_01/03-02-07-01-01-01-01.wav",  # song has no disgust
        "Actor_01/01-01-03-01-01-01-01.wav",  # audio-video
        "Actor_01/03-01-09-01-01-01-01.wav",  # no emotion 09
        "Actor_01/03-01-03-03-01-01-01.wav",  # no intensity 03
        "Actor_01/take_2.wav",                 # not a RAVDESS name
    ]
    for name in [*files, *skipped, "Actor_01/notes.txt"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    corpus = read_ravdess(tmp_path)
    found = {str(u.path.relative_to(root)): (u.label, u.intensity) for u in corpus.utterances}
    assert found == files
    assert sum(corpus.skipped.values()) == len(skipped)  # notes.txt is not audio at all
    assert corpus.skipped["unknown emotion code"] == 2
    assert {u.channel for u in corpus.utterances} == {"speech", "song"}
    assert corpus.speakers == ["ravdess-01", "ravdess-24"]


def test_parse_gives_statement_gender_and_reason():
    u = parse_ravdess_name("03-01-06-01-02-01-12")
    assert (u.label, u.speaker, u.gender, u.statement) == (
        "fearful", "ravdess-12", "female", "Dogs are sitting by the door")
    assert parse_ravdess_name("03-01-06-01-02-01") == "not a RAVDESS name"


def test_the_shared_song_and_savee_trees_read_as_they_are(ravdess_dir, song_dir, savee_dir):
    """RAVDESS song (6 emotions, the same actors) and SAVEE (4 speakers, 7 emotions) as
    ../shared/data holds them; an actor's song and speech share the speaker id."""
    from train.corpora import read_corpus

    song = read_corpus(song_dir)
    assert song.name == "ravdess" and len(song.utterances) == 44 * len(song.speakers) >= 704
    assert {u.channel for u in song.utterances} == {"song"}
    assert {u.label for u in song.utterances} == {"neutral", "calm", "happy", "sad", "angry",
                                                  "fearful"}
    assert set(song.speakers) <= set(read_ravdess(ravdess_dir).speakers)
    savee = read_corpus(savee_dir)
    assert savee.name == "savee" and len(savee.utterances) == 480
    assert savee.speakers == ["savee-DC", "savee-JE", "savee-JK", "savee-KL"]
    assert savee.label_counts()["neutral"] == 120 and "calm" not in savee.label_counts()


def test_the_shared_nemo_tree_reads_as_it_is_and_as_its_label_list(nemo_dir):
    """nEMO as ../shared/data holds it: 9 Polish speakers, six emotions, the names of the
    release; the reader detected from the names and the CSV reader of its labels.csv agree."""
    from train.corpora import read_corpus

    nemo = read_corpus(nemo_dir)
    assert nemo.name == "nemo" and len(nemo.utterances) >= 2686 and not nemo.skipped
    assert len(nemo.speakers) == 9 and all(s.startswith("nemo-") for s in nemo.speakers)
    counts = nemo.label_counts()
    assert set(counts) == {"neutral", "happy", "sad", "angry", "fearful", "surprised"}
    assert {u.gender for u in nemo.utterances} == {"male", "female"}
    listed = read_corpus(nemo_dir / "labels.csv")
    assert sorted((u.path.name, u.label, u.speaker.split("-", 1)[1]) for u in listed.utterances) \
        == sorted((u.path.name, u.label, u.speaker.split("-", 1)[1]) for u in nemo.utterances)
