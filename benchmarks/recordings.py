"""What the device makes of a recording: its frames, its utterances and its interim hops.

``edge-ser predict`` streams a file through :class:`edge.recognizer.Recognizer`; so does
``edge-ser listen``. For a benchmark that scores many models on the same files, the front end
and the endpointer run once per file here, with the runtime's own objects and in the
recogniser's order, and every model then scores the same utterances:

* the **finals**: the endpointer's utterances (:class:`edge.endpoint.Segment`), each
  classified from its whole mel frames, exactly as the recogniser's final result;
* the **interims**: at every hop boundary (``hop_frames`` frames from the start of the
  stream) while an utterance is under way, the utterance so far (:attr:`Endpointer.active`
  after the hop's frames): the segment the recogniser's interim result is computed from.

The endpointer decides frame by frame, so pushing a hop of levels at a time leaves it in the
state the recogniser's block-by-block walk does. ``tests/test_bench.py`` checks both against
the recogniser itself.

numpy and the edge package only (a Raspberry Pi runs this). On the host, the mel frames come
from ``train.dataset``'s feature cache when it is importable (the same front end, computed
once per file), which is also the only way to get the room conditions (``train.augment``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.audio import load
from edge.endpoint import Segment
from edge.endpoint import replay as replay_endpoints
from edge.errors import AudioError
from edge.features import FeatureSpec
from edge.levels import frame_levels
from edge.utterance import recording_frames
from train.corpora import Utterance


@dataclass(frozen=True)
class DeviceRecording:
    """One recording as the recogniser sees it."""

    mel: np.ndarray
    """Mel power frames ``(n_frames, n_mels)``, float32."""
    levels: np.ndarray
    """Their speech-band levels ``(n_frames,)``, dB (:func:`edge.levels.frame_levels`)."""
    finals: tuple[Segment, ...]
    """The utterances (one final result each), in order; empty: no speech found."""
    interims: tuple[Segment, ...]
    """The utterance so far at each hop during speech (one interim result each)."""

    @property
    def frames(self) -> int:
        return len(self.mel)


def hop_frames(spec: FeatureSpec, hop_seconds: float) -> int:
    """Frames per hop, rounded as :class:`edge.recognizer.Recognizer` rounds them."""
    return max(1, int(round(hop_seconds * spec.frames_per_second)))


def replay(levels: np.ndarray, spec: FeatureSpec, hop: int
           ) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    """The recogniser's endpointer decisions over a whole recording's frame levels: its
    finals and the utterance under way at each hop (:func:`edge.endpoint.replay`)."""
    finals, interims = replay_endpoints(levels, spec.endpoint, spec.frames_per_second, hop)
    return tuple(finals), tuple(interims)


def from_mel(mel: np.ndarray, spec: FeatureSpec, hop: int) -> DeviceRecording:
    """A recording from its mel power frames ``(n_frames, n_mels)``."""
    mel = np.asarray(mel, dtype=np.float32)
    levels = frame_levels(mel, spec.frontend)
    finals, interims = replay(levels, spec, hop)
    return DeviceRecording(mel, levels, finals, interims)


def from_signal(signal: np.ndarray, spec: FeatureSpec, hop: int) -> DeviceRecording:
    """A recording from mono samples at the front end's rate."""
    mel, _ = recording_frames(signal, spec)
    return from_mel(mel, spec, hop)


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
    recordings: list[DeviceRecording]
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)``."""
    source: str = ""
    """Where the frames came from: ``"feature cache"`` or ``"computed"``."""


def load_recordings(utterances: Sequence[Utterance], spec: FeatureSpec, hop: int, *,
                    condition: Any = None, progress: bool = True, desc: str = "features"
                    ) -> Loaded:
    """Every file as a :class:`DeviceRecording`; unreadable ones go to ``failed``.

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
            x = load(u.path, spec.frontend.sample_rate, min_samples=spec.frontend.frame_length)
        except AudioError as e:
            out.failed.append((str(u.path), str(e)))
            continue
        out.kept.append(u)
        out.recordings.append(from_signal(x, spec, hop))
    return out
