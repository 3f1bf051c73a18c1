"""Corpus utterances -> cached front-end frames and their utterance segments; speaker-
independent splits.

The public entry points other packages use:

* :func:`load_recordings` — every file as a :class:`Recording`: its mel power frames (the
  device's front end, :func:`edge.utterance.recording_frames`), frame levels and the
  endpointer's segments (:func:`edge.utterance.recording_segments`), for the clean audio, an
  augmented copy or a named room condition. Bad files are reported and skipped.
* :func:`clip_inputs` — one model input per file (its first utterance's first window), for
  calibration sets and tests.
* :func:`speaker_folds`, :func:`split_by_speaker`, :func:`choose_validation_speakers` —
  splits in which no speaker is on two sides.

The mel frames are cached; the key of a file is the front-end config, the variant (clean,
augmentation parameters + copy + seed, or condition) and a SHA-1 of the file's bytes, so
renamed or moved files still hit the cache and edited files never do. Segments and model
inputs are cheap and computed from the frames every time, so changing the endpointer, the
window or the level normalisation needs no new features.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from edge.audio import load
from edge.endpoint import Segment
from edge.errors import AudioError, ConfigError
from edge.features import FeatureSpec
from edge.frontend import FrontendConfig
from edge.levels import frame_levels
from edge.utterance import recording_frames, recording_segments, utterance_inputs
from train.corpora import Utterance

CACHE_VERSION = "mel-2"
"""Bump when the cached frames' recipe changes, so old cache entries are not used (mel-2: the
mel projection in float32, frames equal to float32 rounding of mel-1's)."""


def default_cache_dir() -> Path:
    """``$EDGE_SER_CACHE`` or ``$XDG_CACHE_HOME/edge-ser/features`` (``~/.cache/...``)."""
    if os.environ.get("EDGE_SER_CACHE"):
        return Path(os.environ["EDGE_SER_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge-ser" / "features"


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes (memoised per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = hashlib.sha1(p.read_bytes()).hexdigest()
    return _DIGESTS[key]


def frontend_key(frontend: FrontendConfig) -> str:
    """Cache directory name for a front end (16 hex digits)."""
    text = json.dumps({"frontend": frontend.to_dict(), "cache": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FeatureCache:
    """One ``.npy`` of mel power frames per (file, variant) under ``root/<frontend_key>/``."""

    root: Path
    frontend: FrontendConfig

    @property
    def directory(self) -> Path:
        return self.root / frontend_key(self.frontend)

    def path(self, digest: str, variant: str) -> Path:
        return self.directory / digest[:2] / f"{digest}-{variant}.npy"

    def get(self, digest: str, variant: str) -> np.ndarray | None:
        p = self.path(digest, variant)
        if not p.exists():
            return None
        try:
            x = np.load(p)
        except (OSError, ValueError):
            return None  # a torn write: recompute
        ok = x.ndim == 2 and x.shape[1] == self.frontend.n_mels and x.dtype == np.float32
        return x if ok else None

    def put(self, digest: str, variant: str, x: np.ndarray) -> None:
        p = self.path(digest, variant)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, x)
        os.replace(tmp, p)


class WaveTransform(Protocol):
    """A change to a whole recording: an augmentation or a room condition."""

    def key(self) -> str: ...

    def __call__(self, x: np.ndarray, sample_rate: int, rng: np.random.Generator
                 ) -> np.ndarray: ...


@dataclass(frozen=True)
class Variant:
    """Which version of a recording: clean (``transform`` None), an augmented copy
    (``copy``, ``seed``) or a condition. Random draws depend on the seed, the file's
    contents and the copy only, never on the order of files."""

    transform: WaveTransform | None = None
    copy: int = 0
    seed: int = 0

    @property
    def name(self) -> str:
        if self.transform is None:
            return "clean"
        return f"{type(self.transform).__name__.lower()}{self.transform.key()}" \
               f"-s{self.seed}-c{self.copy}"

    def rng(self, digest: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(digest[:12], 16), self.copy])


CLEAN = Variant()


@dataclass(frozen=True)
class Recording:
    """One file as the front end and the endpointer see it."""

    mel: np.ndarray
    """Mel power frames ``(n_frames, n_mels)``, float32."""
    levels: np.ndarray
    """Frame levels ``(n_frames,)``, dB (:mod:`edge.levels`)."""
    segments: tuple[Segment, ...]
    """The endpointer's utterances; empty when it found none."""

    @property
    def utterances(self) -> tuple[Segment, ...]:
        """The segments, or the whole recording as one when the endpointer found none
        (training still learns from a file whose speech it missed)."""
        if self.segments:
            return self.segments
        return (Segment(0, len(self.mel), 0, 0),)


def make_recording(mel: np.ndarray, spec: FeatureSpec) -> Recording:
    levels = frame_levels(mel, spec.frontend)
    return Recording(mel, levels, tuple(recording_segments(levels, spec)))


def load_signal(utterance: Utterance, spec: FeatureSpec) -> np.ndarray:
    """The whole recording, mono float32 at the front end's sample rate."""
    return load(utterance.path, spec.frontend.sample_rate, min_samples=1)


@dataclass
class Loaded:
    """What :func:`load_recordings` returns: recordings of the ``kept`` utterances, in order."""

    recordings: list[Recording]
    kept: list[Utterance]
    failed: list[tuple[Utterance, str]]
    computed: int
    """How many were computed (the rest came from the cache)."""


def load_recordings(
    utterances: Sequence[Utterance],
    spec: FeatureSpec,
    *,
    variant: Variant = CLEAN,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
    desc: str = "features",
) -> Loaded:
    """Front-end frames and segments of ``utterances``; unreadable files are skipped and
    listed.

    Parameters
    ----------
    variant : Variant
        The clean recordings, an augmented copy, or a condition.
    cache_dir : path or None
        Cache root (default :func:`default_cache_dir`); ``use_cache=False`` disables it.
    progress : bool
        A tqdm bar on stderr.
    """
    cache = FeatureCache(Path(cache_dir) if cache_dir else default_cache_dir(), spec.frontend)
    recordings: list[Recording] = []
    kept: list[Utterance] = []
    failed: list[tuple[Utterance, str]] = []
    computed = 0
    bar = tqdm(utterances, desc=desc, unit="clip", file=sys.stderr,
               disable=None if progress else True,  # None: a bar on a terminal only
               leave=False, dynamic_ncols=True)
    for utt in bar:
        try:
            digest = file_digest(utt.path)
        except OSError as e:
            failed.append((utt, f"{utt.path}: cannot read ({e.strerror})"))
            continue
        mel = cache.get(digest, variant.name) if use_cache else None
        if mel is None:
            try:
                signal = load_signal(utt, spec)
                if variant.transform is not None:
                    signal = variant.transform(signal, spec.frontend.sample_rate,
                                               variant.rng(digest))
                mel, _ = recording_frames(signal, spec)
                if len(mel) == 0:
                    raise AudioError(f"{utt.path}: too short (less than one"
                                     f" {spec.frontend.frame_length}-sample frame)")
            except AudioError as e:
                failed.append((utt, str(e)))
                continue
            computed += 1
            if use_cache:
                cache.put(digest, variant.name, mel)
        recordings.append(make_recording(mel, spec))
        kept.append(utt)
    bar.close()
    return Loaded(recordings, kept, failed, computed)


def first_input(recording: Recording, spec: FeatureSpec) -> np.ndarray:
    """The model input of a recording's first utterance's first window, ``spec.input_shape``."""
    seg = recording.utterances[0]
    return utterance_inputs(recording.mel[seg.start:seg.end], spec,
                            levels=recording.levels[seg.start:seg.end])[0]


def clip_inputs(
    utterances: Sequence[Utterance],
    spec: FeatureSpec,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
    desc: str = "features",
) -> np.ndarray:
    """One un-normalised model input per utterance (:func:`first_input`), in order,
    ``(n, frames, n_mfcc, channels)`` float32. Raises AudioError on the first bad file."""
    result = load_recordings(utterances, spec, cache_dir=cache_dir, use_cache=use_cache,
                             progress=progress, desc=desc)
    if result.failed:
        raise AudioError(result.failed[0][1])
    return np.stack([first_input(r, spec) for r in result.recordings]) if result.recordings \
        else np.zeros((0, *spec.input_shape), np.float32)


# --------------------------------------------------------------------------------------
# Speaker-independent splits
# --------------------------------------------------------------------------------------


def _speaker_sort_key(speaker: str) -> tuple:
    m = re.match(r"^(.*?)(\d+)$", speaker)
    return (m.group(1), int(m.group(2)), speaker) if m else (speaker, -1, speaker)


def sorted_speakers(speakers) -> list[str]:
    """Speakers in natural order (``ravdess-2`` before ``ravdess-10``)."""
    return sorted(set(speakers), key=_speaker_sort_key)


def speaker_folds(speakers: Sequence[str], k: int, *, repeat: int = 0,
                  genders: dict[str, str | None] | None = None) -> list[list[str]]:
    """``k`` test folds of speakers, sizes differing by at most one, so each speaker is in
    exactly one fold. Repeat 0: contiguous blocks in natural order (contiguous RAVDESS actors
    alternate male/female, so each fold is gender-balanced). Repeat ``r > 0``: another
    partition, drawn with seed ``r``: each gender shuffled, then interleaved, then cut into
    blocks (balanced again)."""
    ordered = sorted_speakers(speakers)
    if repeat:
        rng = np.random.default_rng(repeat)
        genders = genders or {}
        groups = [[s for s in ordered if (genders.get(s) or "") == g]
                  for g in sorted({genders.get(s) or "" for s in ordered})]
        groups = [[g[i] for i in rng.permutation(len(g))] for g in groups if g]
        ordered = [s for row in itertools.zip_longest(*groups) for s in row if s is not None]
    if not 2 <= k <= len(ordered):
        raise ConfigError(f"--folds {k}: need 2 <= folds <= number of speakers ({len(ordered)})")
    bounds = np.linspace(0, len(ordered), k + 1).round().astype(int)
    return [ordered[bounds[i]:bounds[i + 1]] for i in range(k)]


def choose_validation_speakers(utterances: Sequence[Utterance], n: int, seed: int) -> list[str]:
    """``n`` of the utterances' speakers for early stopping, drawn with ``seed``, alternating
    genders where the corpus records them (so two RAVDESS actors are one man, one woman)."""
    if n <= 0:
        return []
    genders = {u.speaker: u.gender or "" for u in utterances}
    ordered = sorted_speakers(genders)
    if n >= len(ordered):
        raise ConfigError(f"{n} validation speakers leave no training speakers")
    rng = np.random.default_rng(seed)
    shuffled = [ordered[i] for i in rng.permutation(len(ordered))]
    groups = [[s for s in shuffled if genders[s] == g] for g in sorted(set(genders.values()))]
    picked: list[str] = []
    while len(picked) < n:
        for group in groups:
            if group and len(picked) < n:
                picked.append(group.pop(0))
    return sorted_speakers(picked)


@dataclass(frozen=True)
class Split:
    """Utterances on each side of a speaker-independent split."""

    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]

    def speakers(self, side: str) -> list[str]:
        return sorted_speakers(u.speaker for u in getattr(self, side))


def split_by_speaker(utterances: Sequence[Utterance], test_speakers: Sequence[str],
                     val_speakers: Sequence[str] = ()) -> Split:
    """Put each utterance on the side of its speaker; everyone else trains."""
    test, val = set(test_speakers), set(val_speakers)
    if test & val:
        raise ConfigError(f"speakers in both test and validation: {sorted(test & val)}")
    return Split(
        train=[u for u in utterances if u.speaker not in test and u.speaker not in val],
        val=[u for u in utterances if u.speaker in val],
        test=[u for u in utterances if u.speaker in test],
    )
