"""Corpus readers: a directory of audio files -> a list of labelled utterances.

Each reader knows one corpus's naming scheme. Files whose names do not follow it are
skipped and counted (``Corpus.skipped``), never guessed at.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

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
    """Audio files under ``root`` (recursively), sorted by path."""
    root = Path(root)
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )


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
    if channel != "01":
        return "song (not speech)" if channel == "02" else "unknown vocal channel"
    if emotion not in _RAVDESS_EMOTION:
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
    )


def read_ravdess(root: str | os.PathLike) -> Corpus:
    """RAVDESS speech under ``root``: the original ``Audio_Speech_Actors_01-24/Actor_XX``
    tree, the 16 kHz FLAC copy, or a flat folder; any audio extension."""
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
