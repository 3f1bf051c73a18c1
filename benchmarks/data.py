"""The benchmark's data: each ``--data`` corpus, its recordings per feature spec, clean or
under a room condition, and which of them each contender may be scored on.

The first ``--data`` is the primary corpus (the headline, the room conditions, the audio
the latency figures and the listening process use); every other one is scored clean,
separately (``--data ravdess-speech-16k --data savee-16k``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.accuracy import CLEAN, EvalSet, read_clips, spec_key
from benchmarks.contenders import Contender
from benchmarks.progress import say
from benchmarks.recordings import load_recordings
from edge.errors import ConfigError
from edge.features import FeatureSpec
from train.conditions import CONDITIONS
from train.corpora import Utterance

SHOWN_FAILURES = 5
"""Unreadable clips named on stderr per corpus; the rest are counted (all are in the JSON)."""


@dataclass(frozen=True)
class Corpus:
    """One ``--data`` directory as read."""

    name: str
    """Unique name in the report: the directory's name (``savee-16k``)."""
    directory: str
    utterances: list[Utterance]
    info: dict[str, Any] = field(default_factory=dict)
    """What the reader found: ``corpus`` (reader name) and ``skipped`` (reason -> count)."""


def read_corpora(directories: list[str], clips: int | None) -> list[Corpus]:
    """Every ``--data`` directory's labelled clips (at most ``clips`` each); ConfigError for
    one that is missing or holds none."""
    out: list[Corpus] = []
    names: set[str] = set()
    for d in directories:
        if not Path(d).exists():
            raise ConfigError(f"--data {d}: no such directory")
        utterances, info = read_clips(d, clips)
        if not utterances:
            raise ConfigError(f"--data {d}: no labelled clips found")
        name = Path(d).resolve().name or "data"
        while name in names:
            name += "+"
        names.add(name)
        out.append(Corpus(name, str(d), utterances, info))
    return out


@dataclass(frozen=True)
class SpecGroup:
    """Contenders that share one feature spec (so one set of recordings and inputs)."""

    spec: FeatureSpec
    hop: int
    """Frames per hop of the interim results."""
    contenders: tuple[Contender, ...]


def spec_groups(contenders: list[Contender], hop_seconds: float | None) -> list[SpecGroup]:
    """The contenders grouped by feature spec; the hop is ``hop_seconds`` or the first
    contender's own."""
    groups: dict[str, list[Contender]] = {}
    for c in contenders:
        groups.setdefault(spec_key(c.spec), []).append(c)
    return [SpecGroup(cs[0].spec, cs[0].spec.hop_frames(hop_seconds or cs[0].hop_seconds),
                      tuple(cs)) for cs in groups.values()]


def load_evalset(corpus: Corpus, group: SpecGroup, *, condition: str = CLEAN,
                 keep: np.ndarray | None = None, progress: bool = True) -> EvalSet:
    """The recordings of ``corpus`` (the ``keep`` utterances) for one spec group, clean or
    under ``condition`` (a :data:`train.conditions.CONDITIONS` name)."""
    utts = [u for u, k in zip(corpus.utterances, keep if keep is not None else
                              np.ones(len(corpus.utterances), bool)) if k]
    transform = None
    if condition != CLEAN:
        transform = CONDITIONS[condition]
    loaded = load_recordings(utts, group.spec, group.hop, condition=transform,
                             progress=progress, desc=f"{corpus.name} {condition}")
    return EvalSet(corpus.name, corpus.directory, condition, group.spec, group.hop,
                   loaded.kept, loaded.recordings, loaded.failed)


def report_failures(evalset: EvalSet, errors: list[str]) -> None:
    """Unreadable clips into ``errors``; a few named on stderr."""
    for i, (path, reason) in enumerate(evalset.failed):
        message = reason if reason.startswith(path) else f"{path}: {reason}"
        errors.append(message)
        if i < SHOWN_FAILURES:
            say(f"skipped clip: {message}")
    if len(evalset.failed) > SHOWN_FAILURES:
        say(f"... and {len(evalset.failed) - SHOWN_FAILURES} more clips of {evalset.name}"
            " skipped (all listed in benchmark.json)")


def held_out_rows(contender: Contender, speakers: np.ndarray) -> np.ndarray:
    """Which of these speakers' recordings ``contender`` scores and never heard (all it
    scores when its metadata does not say whom it heard), bool."""
    rows = np.ones(len(speakers), bool)
    if contender.score_speakers is not None:
        rows &= np.isin(speakers, list(contender.score_speakers))
    if contender.documents_speakers:
        rows &= ~np.isin(speakers, contender.seen_speakers)
    return rows


def condition_rows(contenders: list[Contender], corpus: Corpus) -> np.ndarray:
    """The utterances of ``corpus`` that are held out for at least one scored contender:
    the only ones the room conditions are computed for."""
    speakers = np.array([u.speaker for u in corpus.utterances])
    rows = np.zeros(len(speakers), bool)
    for c in contenders:
        if not c.latency_only:
            rows |= held_out_rows(c, speakers)
    return rows


@dataclass(frozen=True)
class LiveClips:
    """The clips one model's live measurement plays, and what they are."""

    evalset: EvalSet
    rows: np.ndarray
    """Indices into ``evalset.utterances``, in playing order."""
    labels: list[str]
    """Each clip's class among the model's labels."""
    speakers_label: str
    merge: dict[str, str]
    """Predicted label -> counted label (``calm -> neutral`` for a corpus without calm)."""


def live_clips(contender: Contender, evalsets: list[EvalSet], limit: int, seed: int = 0
               ) -> LiveClips | None:
    """Up to ``limit`` clips for ``contender``'s live measurement: from the first corpus
    that has speakers it never heard, else from the primary corpus (training speakers,
    said so); spread evenly over speakers and labels, played in a shuffled order."""
    from benchmarks.accuracy import HELD_OUT, TRAINING, UNKNOWN

    for evalset in evalsets:
        held = held_out_rows(contender, evalset.speakers)
        classes = [contender.class_of(lab) for lab in evalset.labels]
        held &= np.array([c is not None for c in classes], bool)
        if held.any() or evalset is evalsets[-1]:
            break
    if not held.any():
        evalset = evalsets[0]
        classes = [contender.class_of(lab) for lab in evalset.labels]
        held = np.array([c is not None for c in classes], bool)
        label = TRAINING if contender.documents_speakers else UNKNOWN
    else:
        label = HELD_OUT if contender.documents_speakers else UNKNOWN
    rows = np.flatnonzero(held)
    if not rows.size:
        return None
    if limit < rows.size:
        rows = rows[np.unique(np.linspace(0, rows.size - 1, limit).round().astype(int))]
    rows = rows[np.random.default_rng(seed).permutation(rows.size)]
    labels = [contender.labels[classes[i]] for i in rows]
    merge = ({"calm": "neutral"} if "calm" in contender.labels and "neutral" in
             contender.labels and "calm" not in {contender.labels[c] for c in classes
                                                 if c is not None} else {})
    return LiveClips(evalset, rows, labels, label, merge)
