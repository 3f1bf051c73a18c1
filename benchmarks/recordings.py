"""The benchmark's recordings as the device sees them (:class:`edge.batch.Recording`: frames,
utterances, interim hops), loaded once per file for every model to score.

numpy and the edge package only (a Raspberry Pi runs this). On the host, the mel frames come
from ``train.dataset``'s feature cache when it is importable (the same front end, computed
once per file), which is also the only way to get the room conditions (``train.augment``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.batch import Recording, from_mel, load_recording
from edge.errors import AudioError
from edge.features import FeatureSpec
from train.corpora import Utterance


def cache_available() -> bool:
    """Whether ``train.dataset`` (the host's feature cache: needs the ``train`` extra's
    tqdm) can be imported."""
    return importlib.util.find_spec("tqdm") is not None


def conditions_available() -> bool:
    """Whether the room conditions (``train.augment``: librosa, SciPy) can be computed."""
    return cache_available() and all(importlib.util.find_spec(m) is not None
                                     for m in ("librosa", "scipy"))


@dataclass
class Loaded:
    """Recordings of the ``kept`` utterances, in order, and the files that failed."""

    kept: list[Utterance]
    recordings: list[Recording]
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)``."""
    source: str = ""
    """Where the frames came from: ``"feature cache"`` or ``"computed"``."""


def load_recordings(utterances: Sequence[Utterance], spec: FeatureSpec, hop: int, *,
                    condition: Any = None, progress: bool = True, desc: str = "features"
                    ) -> Loaded:
    """Every file as a :class:`edge.batch.Recording`; unreadable ones go to ``failed``.

    ``condition``: a :class:`train.augment.Condition` applied to the audio first (needs the
    host's ``train`` extra; :func:`conditions_available`). Through the feature cache when it
    is importable, the conditioned audio is the one ``ser-train`` scores (same random draws:
    seeded by the file's contents).
    """
    if cache_available():
        from train.dataset import CLEAN, Variant
        from train.dataset import load_recordings as cached

        variant = CLEAN if condition is None else Variant(condition)
        got = cached(list(utterances), spec, variant=variant, progress=progress, desc=desc)
        return Loaded(list(got.kept), [from_mel(r.mel, spec, hop) for r in got.recordings],
                      [(str(u.path), reason) for u, reason in got.failed], "feature cache")
    if condition is not None:
        raise AudioError("room conditions need the host's train extra (librosa, SciPy)")
    from benchmarks.progress import bar

    out = Loaded([], [], [], "computed")
    for u in bar(utterances, desc, total=len(utterances), unit="clip", enabled=progress):
        try:
            recording = load_recording(u.path, spec, hop)
        except AudioError as e:
            out.failed.append((str(u.path), str(e)))
            continue
        out.kept.append(u)
        out.recordings.append(recording)
    return out
