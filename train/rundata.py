"""The clips a ``ser-train`` run trains and scores on, loaded once for all its steps: the
clean recordings (:func:`load_clips`), and their other versions (:func:`load_variants`):
augmented copies for training, room conditions for scoring, and the evaluation corpora."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import ConfigError
from train.conditions import CONDITIONS
from train.corpora import Utterance
from train.dataset import Recording, Variant, load_recordings, sorted_speakers
from train.labels import LabelMap
from train.plan import RunPlan, log
from train.scoring import EvalCorpus


@dataclass
class Clips:
    """The run's clips whose label maps to a class (``--data``'s, then ``--extra-data``'s),
    their clean recordings and what every step reads of them, one entry per clip."""

    utts: list[Utterance]
    clean: list[Recording]
    y: np.ndarray
    """Class index of each clip."""
    speaker: np.ndarray
    main: np.ndarray
    """True for ``--data`` clips (trained and tested), False for ``--extra-data`` ones
    (only ever trained)."""
    corpus: np.ndarray
    failed: list[tuple[Utterance, str]]
    """Unreadable files, left out."""

    @property
    def speakers(self) -> list[str]:
        """The ``--data`` speakers: those the folds split."""
        return sorted_speakers(self.speaker[self.main])


def pick(recs: list, mask: np.ndarray) -> list:
    """The entries of ``recs`` (one per clip) where ``mask`` is true."""
    return [r for r, keep in zip(recs, mask) if keep]


@dataclass
class Variants:
    """The clips' other versions: augmented copies (training folds), room conditions (test
    folds) and the evaluation corpora."""

    copies: list[list[Recording | None]]
    conditions: dict[str, list[Recording | None]]
    others: list[EvalCorpus]


def load_clips(plan: RunPlan, utterances: list[Utterance], extra: list[Utterance],
               label_map: LabelMap) -> Clips:
    """The clips whose label maps to a class, with their clean recordings (unreadable files
    are logged and left out)."""
    n_main = len(utterances)
    tagged = [(u, i < n_main) for i, u in enumerate([*utterances, *extra])
              if label_map(u.label) is not None]
    if not any(m for _, m in tagged):
        raise ConfigError("no utterances left after --classes")
    is_main = {id(u): m for u, m in tagged}
    loaded = load_recordings([u for u, _ in tagged], plan.spec, cache_dir=plan.cache_dir,
                             use_cache=plan.use_cache, desc="features")
    for _utt, message in loaded.failed:
        log(f"skipped: {message}")
    utts = loaded.kept
    clips = Clips(utts, loaded.recordings,
                  np.array([label_map.index(u.label) for u in utts], dtype=np.int64),
                  np.array([u.speaker for u in utts]), np.array([is_main[id(u)] for u in utts]),
                  np.array([u.corpus for u in utts]), loaded.failed)
    no_segment = sum(1 for r in clips.clean if not r.segments)
    log(f"{len(utts)} clips, {len(clips.speakers)} speakers, classes:"
        f" {', '.join(label_map.classes)} ({loaded.computed} computed,"
        f" {len(utts) - loaded.computed} cached; {no_segment} without an utterance found)")
    return clips


def load_variants(plan: RunPlan, clips: Clips, *, held_out: set[str], tested: set[str],
                  eval_corpora: list[tuple[str, list[Utterance]]],
                  label_map: LabelMap) -> Variants:
    """Augmented copies of every clip that is in some training set (never one of a
    ``held_out`` speaker), the room conditions of every ``--data`` clip of a ``tested``
    speaker, and the evaluation corpora."""
    trainable = np.array([s not in held_out for s in clips.speaker])
    train_utts = pick(clips.utts, trainable)
    copies: list[list[Recording | None]] = []
    if plan.augment is not None:
        for c in range(plan.aug_copies):
            recs = iter(_load(plan, train_utts, Variant(plan.augment, c, plan.train.seed),
                              f"augmented copy {c + 1}/{plan.aug_copies}"))
            copies.append([next(recs) if keep else None for keep in trainable])
    testable = clips.main & np.isin(clips.speaker, sorted(tested))
    test_utts = pick(clips.utts, testable)
    conditions: dict[str, list[Recording | None]] = {}
    for name in plan.conditions:
        recs = iter(_load(plan, test_utts, Variant(CONDITIONS[name]), f"condition {name}"))
        conditions[name] = [next(recs) if keep else None for keep in testable]
    return Variants(copies, conditions, _eval_corpora(plan, eval_corpora, label_map))


def _load(plan: RunPlan, utts: list[Utterance], variant: Variant, desc: str
          ) -> list[Recording]:
    loaded = load_recordings(utts, plan.spec, variant=variant, cache_dir=plan.cache_dir,
                             use_cache=plan.use_cache, desc=desc)
    if len(loaded.kept) != len(utts):
        raise ConfigError(f"an audio file became unreadable during the run:"
                          f" {loaded.failed[0][1]}")
    log(f"{desc}: {len(utts)} clips ({loaded.computed} computed)")
    return loaded.recordings


def _eval_corpora(plan: RunPlan, corpora: list[tuple[str, list[Utterance]]],
                  label_map: LabelMap) -> list[EvalCorpus]:
    out = []
    for name, utts in corpora:
        keep = [u for u in utts if label_map(u.label) is not None]
        loaded = load_recordings(keep, plan.spec, cache_dir=plan.cache_dir,
                                 use_cache=plan.use_cache, desc=f"{name} (eval)")
        for _u, message in loaded.failed:
            log(f"skipped: {message}")
        y = np.array([label_map.index(u.label) for u in loaded.kept], np.int64)
        classes = label_map.classes
        merge = {}
        if "calm" in classes and "neutral" in classes and \
                classes.index("calm") not in set(y.tolist()):
            merge[classes.index("calm")] = classes.index("neutral")  # calm counted as neutral
        out.append(EvalCorpus(name, loaded.recordings, y, merge))
    return out


def speakers_per_corpus(utterances: list[Utterance]) -> dict[str, int]:
    """Corpus name -> how many distinct speakers ``utterances`` hold of it."""
    speakers: dict[str, set[str]] = {}
    for u in utterances:
        speakers.setdefault(u.corpus, set()).add(u.speaker)
    return {name: len(s) for name, s in sorted(speakers.items())}
