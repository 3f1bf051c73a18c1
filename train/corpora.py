"""Corpus readers: a directory of audio files -> a list of labelled utterances.

Each reader knows one corpus's naming scheme. Files whose names do not follow it are
skipped and counted (``Corpus.skipped``), never guessed at.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ConfigError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

# One label vocabulary shared by every corpus (RAVDESS's eight emotions, in its code order).
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


@dataclass(frozen=True)
class Utterance:
    """One labelled recording."""

    path: Path
    label: str
    speaker: str
    """Speaker id, unique across corpora (prefixed with the corpus name)."""
    corpus: str
    gender: str | None = None
    """"male", "female" or None when the corpus does not say."""
    intensity: str | None = None
    statement: str | None = None
    channel: str | None = None
    """"speech" or "song" where the corpus has both (RAVDESS)."""


@dataclass(frozen=True)
class Corpus:
    """What a reader found: the utterances and what it skipped (name -> count)."""

    name: str
    utterances: tuple[Utterance, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    def label_counts(self) -> Counter:
        return Counter(u.label for u in self.utterances)


def audio_files(root: str | os.PathLike) -> list[Path]:
    """Audio files under ``root`` (recursively, following symlinked folders), sorted."""
    found = []
    for folder, _, names in os.walk(root, followlinks=True):
        found += [Path(folder) / n for n in names if Path(n).suffix.lower() in AUDIO_EXTENSIONS]
    return sorted(p for p in found if p.is_file())


# --------------------------------------------------------------------------------------
# RAVDESS: modality-channel-emotion-intensity-statement-repetition-actor, e.g.
# 03-01-06-01-02-01-12.wav. Modality 03 is audio-only; channel 01 speech, 02 song.
# --------------------------------------------------------------------------------------

_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_EMOTION = {f"{i + 1:02d}": e for i, e in enumerate(EMOTIONS)}
_RAVDESS_STATEMENT = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def parse_ravdess_name(stem: str) -> Utterance | str:
    """The utterance a RAVDESS file stem encodes, or the reason it is skipped."""
    m = _RAVDESS_NAME.match(stem)
    if not m:
        return "not a RAVDESS name"
    modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
    if modality not in ("01", "02", "03"):
        return "unknown modality"
    if modality != "03":
        return "video (not audio-only)"
    if channel not in ("01", "02"):
        return "unknown vocal channel"
    if emotion not in _RAVDESS_EMOTION or (channel == "02" and emotion > "06"):
        return "unknown emotion code"
    if intensity not in ("01", "02") or statement not in _RAVDESS_STATEMENT:
        return "unknown intensity or statement code"
    if repetition not in ("01", "02") or not 1 <= int(actor) <= 99:
        return "unknown repetition or actor code"
    return Utterance(
        path=Path(), label=_RAVDESS_EMOTION[emotion], speaker=f"ravdess-{actor}",
        corpus="ravdess", gender="male" if int(actor) % 2 else "female",
        intensity="normal" if intensity == "01" else "strong",
        statement=_RAVDESS_STATEMENT[statement],
        channel="speech" if channel == "01" else "song",
    )


def read_ravdess(root: str | os.PathLike) -> Corpus:
    """RAVDESS under ``root``: speech and song (the original ``Audio_Speech_Actors_01-24`` /
    ``Audio_Song_Actors_01-24`` trees, the 16 kHz FLAC copies, or a flat folder; any audio
    extension). An actor's song and speech share the speaker id, so they are always on the
    same side of a split."""
    utterances = []
    skipped: Counter = Counter()
    for path in audio_files(root):
        parsed = parse_ravdess_name(path.stem)
        if isinstance(parsed, str):
            skipped[parsed] += 1
            continue
        utterances.append(Utterance(**{**parsed.__dict__, "path": path}))
    return Corpus("ravdess", tuple(utterances), dict(skipped))


def actor_number(speaker: str) -> int:
    """The number in a speaker id such as ``ravdess-07`` (7)."""
    digits = re.findall(r"\d+", speaker)
    if not digits:
        raise ValueError(f"speaker id {speaker!r} has no number")
    return int(digits[-1])


# --------------------------------------------------------------------------------------
# Other corpora. Each maps its own emotion codes onto EMOTIONS explicitly; a code with no
# counterpart (EmoDB's boredom) maps to None and its files are skipped and counted.
# --------------------------------------------------------------------------------------

LABEL_SYNONYMS: dict[str, str | None] = {
    **{e: e for e in EMOTIONS},
    "neu": "neutral", "anger": "angry", "ang": "angry", "happiness": "happy", "hap": "happy",
    "joy": "happy", "sadness": "sad", "fear": "fearful", "fea": "fearful", "afraid": "fearful",
    "disgusted": "disgust", "dis": "disgust", "surprise": "surprised", "sur": "surprised",
    "ps": "surprised", "pleasant_surprise": "surprised", "pleasant_surprised": "surprised",
    "boredom": None, "bored": None, "contempt": None, "other": None, "unknown": None,
}
"""Label spellings found in corpora and label lists -> the shared vocabulary (None: no
counterpart, the file is skipped)."""


def canonical_label(label: str) -> str | None | bool:
    """The shared label for a spelling; None when it has no counterpart; False if unknown."""
    key = label.strip().lower().replace(" ", "_").replace("-", "_")
    return LABEL_SYNONYMS.get(key, False)


def _collect(name: str, root, parse) -> Corpus:
    """Run ``parse(path) -> Utterance | reason`` over the audio files under ``root``."""
    utterances = []
    skipped: Counter = Counter()
    for path in audio_files(root):
        parsed = parse(path)
        if isinstance(parsed, str):
            skipped[parsed] += 1
        else:
            utterances.append(parsed)
    return Corpus(name, tuple(utterances), dict(skipped))


_CREMA_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_CREMA_EMOTION = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy",
                  "NEU": "neutral", "SAD": "sad"}
_CREMA_LEVEL = {"LO": "low", "MD": "medium", "HI": "high", "XX": None}


def read_crema_d(root: str | os.PathLike) -> Corpus:
    """CREMA-D: ``1001_DFA_ANG_XX.wav`` (actor, sentence, emotion, level). No calm or
    surprised; gender is not in the file name (None)."""

    def parse(path: Path) -> Utterance | str:
        m = _CREMA_NAME.match(path.stem)
        if not m:
            return "not a CREMA-D name"
        actor, sentence, emotion, level = m.groups()
        if emotion not in _CREMA_EMOTION or level not in _CREMA_LEVEL:
            return "unknown emotion or level code"
        return Utterance(path, _CREMA_EMOTION[emotion], f"crema-d-{actor}", "crema-d",
                         intensity=_CREMA_LEVEL[level], statement=sentence)

    return _collect("crema-d", root, parse)


_TESS_NAME = re.compile(r"^(OAF|YAF)_([A-Za-z]+)_([A-Za-z_]+)$", re.IGNORECASE)


def read_tess(root: str | os.PathLike) -> Corpus:
    """TESS: ``OAF_back_angry.wav`` (speaker OAF or YAF, word, emotion); two women.
    ``ps`` (pleasant surprise) is surprised; fear is fearful; no calm."""

    def parse(path: Path) -> Utterance | str:
        m = _TESS_NAME.match(path.stem)
        if not m:
            return "not a TESS name"
        speaker, word, emotion = m.groups()
        label = canonical_label(emotion)
        if not label:
            return f"emotion {emotion!r} has no shared label"
        return Utterance(path, label, f"tess-{speaker.upper()}", "tess", gender="female",
                         statement=word.lower())

    return _collect("tess", root, parse)


_SAVEE_CODE = re.compile(r"^(sa|su|a|d|f|h|n)(\d\d)$")
_SAVEE_EMOTION = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral",
                  "sa": "sad", "su": "surprised"}
_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")


def read_savee(root: str | os.PathLike) -> Corpus:
    """SAVEE: ``DC_a01.wav`` (speaker DC/JE/JK/KL, emotion code, number), or the original
    ``AudioData/DC/a01.wav`` layout; four men. No calm."""

    def parse(path: Path) -> Utterance | str:
        stem = path.stem
        if "_" in stem:
            speaker, _, code = stem.partition("_")
        else:
            speaker, code = path.parent.name, stem
        m = _SAVEE_CODE.match(code)
        if speaker.upper() not in _SAVEE_SPEAKERS or not m:
            return "not a SAVEE name"
        return Utterance(path, _SAVEE_EMOTION[m.group(1)], f"savee-{speaker.upper()}",
                         "savee", gender="male", statement=code)

    return _collect("savee", root, parse)


_EMODB_NAME = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])$")
_EMODB_EMOTION: dict[str, str | None] = {
    "W": "angry", "L": None, "E": "disgust", "A": "fearful", "F": "happy", "T": "sad",
    "N": "neutral",
}
_EMODB_MALE = {"03", "10", "11", "12", "15"}


def read_emodb(root: str | os.PathLike) -> Corpus:
    """EmoDB (Berlin): ``03a01Fa.wav`` (speaker, text, German emotion letter, version).
    Boredom (L) has no shared label and is skipped; no calm or surprised."""

    def parse(path: Path) -> Utterance | str:
        m = _EMODB_NAME.match(path.stem)
        if not m:
            return "not an EmoDB name"
        speaker, text, emotion, _ = m.groups()
        label = _EMODB_EMOTION[emotion]
        if label is None:
            return "boredom (no shared label)"
        return Utterance(path, label, f"emodb-{speaker}", "emodb",
                         gender="male" if speaker in _EMODB_MALE else "female", statement=text)

    return _collect("emodb", root, parse)


_NEMO_NAME = re.compile(r"^([A-Z]{2}\d)_([a-z]+)_(\d+)$")
_NEMO_FEMALE = {"EB0", "IC0", "KD0", "MK0"}
_NEMO_MALE = {"KS0", "MP0", "SM0", "TP0", "WR0"}


def read_nemo(root: str | os.PathLike) -> Corpus:
    """nEMO (Polish acted speech): ``EB0_anger_10.wav`` (speaker, emotion, clip number), as in
    the release's ``samples/`` folder (24 kHz WAV) or the 16 kHz FLAC copies. Six emotions
    (anger, fear, happiness, neutral, sadness, surprised); no calm, no disgust. Gender from
    the release's speaker list (None for a speaker not in it)."""

    def parse(path: Path) -> Utterance | str:
        m = _NEMO_NAME.match(path.stem)
        if not m:
            return "not an nEMO name"
        speaker, emotion, _ = m.groups()
        label = canonical_label(emotion)
        if not label:
            return f"emotion {emotion!r} has no shared label"
        gender = "female" if speaker in _NEMO_FEMALE else \
            "male" if speaker in _NEMO_MALE else None
        return Utterance(path, label, f"nemo-{speaker}", "nemo", gender=gender)

    return _collect("nemo", root, parse)


def read_label_csv(csv_path: str | os.PathLike) -> Corpus:
    """A CSV of ``path,label[,speaker]`` (header optional; paths relative to the CSV's
    folder). Labels go through :data:`LABEL_SYNONYMS`; rows with unknown labels or missing
    files are skipped and counted. Without a speaker column the file's parent folder is the
    speaker, so put each speaker's files in their own folder or give the column."""
    csv_path = Path(csv_path)
    try:
        rows = list(csv.reader(csv_path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--data {csv_path}: cannot read the label list ({e})") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    name = "csv"
    utterances = []
    skipped: Counter = Counter()
    for row in rows:
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2:
            skipped["row without a label"] += 1
            continue
        path = Path(row[0].strip())
        path = path if path.is_absolute() else csv_path.parent / path
        label = canonical_label(row[1])
        if label is None:
            skipped[f"label {row[1].strip()!r} has no shared label"] += 1
            continue
        if label is False:
            skipped[f"unknown label {row[1].strip()!r}"] += 1
            continue
        if not path.is_file():
            skipped["file missing"] += 1
            continue
        speaker = row[2].strip() if len(row) > 2 and row[2].strip() else path.parent.name
        utterances.append(Utterance(path, label, f"{name}-{speaker}", name))
    return Corpus(name, tuple(utterances), dict(skipped))


# --------------------------------------------------------------------------------------
# Choosing a reader
# --------------------------------------------------------------------------------------

READERS = {"ravdess": read_ravdess, "crema-d": read_crema_d, "tess": read_tess,
           "savee": read_savee, "emodb": read_emodb, "nemo": read_nemo,
           "csv": read_label_csv}


def detect_corpus(root: str | os.PathLike) -> str:
    """The reader whose naming scheme matches most files under ``root`` (a ``.csv`` file
    is a label list)."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return "csv"
    files = audio_files(root)
    if not files:
        raise ConfigError(f"--data {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    best, best_count = "", 0
    for name, reader in READERS.items():
        if name == "csv":
            continue
        count = len(reader(root).utterances)
        if count > best_count:
            best, best_count = name, count
    if not best_count:
        raise ConfigError(
            f"--data {root}: no file names follow a known corpus scheme"
            f" ({', '.join(n for n in READERS if n != 'csv')}); pass --corpus, or list the"
            " files in a CSV of path,label[,speaker]"
        )
    return best


def read_corpus(root: str | os.PathLike, corpus: str | None = None) -> Corpus:
    """Read ``root`` with the named reader, or the detected one."""
    name = corpus or detect_corpus(root)
    if name not in READERS:
        raise ConfigError(f"--corpus {name!r}: choose one of {', '.join(READERS)}")
    if not Path(root).exists():
        raise ConfigError(f"--data {root}: no such file or directory")
    return READERS[name](root)
