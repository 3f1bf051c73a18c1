"""Utterances -> model inputs, through a feature cache; speaker-independent splits.

The public entry points other packages use:

* :func:`clip_inputs` — ``(n, frames, n_mfcc, channels)`` float32 un-normalised model inputs
  for a list of utterances (cached, with a progress bar on stderr).
* :func:`extract_inputs` — the same, but bad files are reported and skipped instead of
  raising.
* :func:`speaker_folds`, :func:`split_by_speaker`, :func:`choose_validation_speakers` —
  splits in which no speaker is on two sides.

Each window is made by :func:`edge.clip.clip_window` and :func:`edge.features.signal_input`,
the code the device runs. The cache key of a clip is the feature spec, the clip/augmentation
version and a SHA-1 of the file's bytes, so renamed or moved files still hit the cache and
edited files never do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge.audio import load
from edge.clip import clip_window
from edge.errors import AudioError, ConfigError
from edge.features import FeatureSpec, signal_input
from train.augment import WaveAugment, augment_window
from train.corpora import Utterance

CLIP_VERSION = "clip-1"
"""Bump when clip_window or the feature recipe changes, so old cache entries are not used."""


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


def spec_key(spec: FeatureSpec) -> str:
    """Cache directory name for a feature spec (16 hex digits)."""
    text = json.dumps({"spec": spec.to_dict(), "clip": CLIP_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FeatureCache:
    """One ``.npy`` per (clip, variant) under ``root/<spec_key>/``."""

    root: Path
    spec: FeatureSpec

    @property
    def directory(self) -> Path:
        return self.root / spec_key(self.spec)

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
        return x if x.shape == self.spec.input_shape else None

    def put(self, digest: str, variant: str, x: np.ndarray) -> None:
        p = self.path(digest, variant)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, x)
        os.replace(tmp, p)


def load_signal(utterance: Utterance, spec: FeatureSpec) -> np.ndarray:
    """The whole recording, mono float32 at the front end's sample rate."""
    return load(utterance.path, spec.frontend.sample_rate, min_samples=1)


def clip_input(signal: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Model input of a whole recording, as the device computes it: ``spec.input_shape``."""
    return signal_input(clip_window(signal, spec), spec)


def _variant(augment: WaveAugment | None, copy: int, seed: int) -> str:
    if augment is None:
        return "clean"
    return f"aug{augment.key()}-s{seed}-c{copy}"


def _augment_rng(seed: int, digest: str, copy: int) -> np.random.Generator:
    """Random numbers for one augmented copy: depend on the seed, file and copy, not order."""
    return np.random.default_rng([seed, int(digest[:12], 16), copy])


@dataclass
class Extracted:
    """What :func:`extract_inputs` returns: inputs for the ``kept`` utterances, in order."""

    inputs: np.ndarray
    kept: list[Utterance]
    failed: list[tuple[Utterance, str]]
    computed: int
    """How many inputs were computed (the rest came from the cache)."""


def extract_inputs(
    utterances: Sequence[Utterance],
    spec: FeatureSpec,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    augment: WaveAugment | None = None,
    copy: int = 0,
    seed: int = 0,
    progress: bool = True,
    desc: str = "features",
) -> Extracted:
    """Un-normalised model inputs of ``utterances``; unreadable files are skipped and listed.

    Parameters
    ----------
    utterances : sequence of Utterance
    spec : FeatureSpec
    cache_dir : path or None
        Cache root (default :func:`default_cache_dir`); ``use_cache=False`` disables it.
    augment : WaveAugment or None
        Make augmented copy number ``copy`` instead of the clean input. The random draws
        depend only on ``seed``, the file's contents and ``copy``.
    progress : bool
        A tqdm bar on stderr.

    Returns
    -------
    Extracted, ``inputs`` of shape ``(len(kept),) + spec.input_shape``, float32
    """
    cache = FeatureCache(Path(cache_dir) if cache_dir else default_cache_dir(), spec)
    variant = _variant(augment, copy, seed)
    out = np.zeros((len(utterances),) + spec.input_shape, dtype=np.float32)
    kept_rows: list[int] = []
    failed: list[tuple[Utterance, str]] = []
    computed = 0
    bar = tqdm(utterances, desc=desc, unit="clip", file=sys.stderr, disable=not progress,
               leave=False, dynamic_ncols=True)
    for i, utt in enumerate(bar):
        try:
            digest = file_digest(utt.path)
        except OSError as e:
            failed.append((utt, f"{utt.path}: cannot read ({e.strerror})"))
            continue
        x = cache.get(digest, variant) if use_cache else None
        if x is None:
            try:
                signal = load_signal(utt, spec)
                if augment is None:
                    x = clip_input(signal, spec)
                else:
                    rng = _augment_rng(seed, digest, copy)
                    x = signal_input(augment_window(signal, spec, augment, rng), spec)
            except AudioError as e:
                failed.append((utt, str(e)))
                continue
            computed += 1
            if use_cache:
                cache.put(digest, variant, x)
        out[i] = x
        kept_rows.append(i)
    bar.close()
    return Extracted(out[kept_rows], [utterances[i] for i in kept_rows], failed, computed)


def clip_inputs(
    utterances: Sequence[Utterance],
    spec: FeatureSpec,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
    desc: str = "features",
) -> np.ndarray:
    """Un-normalised model inputs ``(n, frames, n_mfcc, channels)`` float32, one per utterance
    in order, as the device computes them (cached). Raises AudioError on the first bad file."""
    result = extract_inputs(utterances, spec, cache_dir=cache_dir, use_cache=use_cache,
                            progress=progress, desc=desc)
    if result.failed:
        raise AudioError(result.failed[0][1])
    return result.inputs


# --------------------------------------------------------------------------------------
# Speaker-independent splits
# --------------------------------------------------------------------------------------


def _speaker_sort_key(speaker: str) -> tuple:
    m = re.match(r"^(.*?)(\d+)$", speaker)
    return (m.group(1), int(m.group(2)), speaker) if m else (speaker, -1, speaker)


def sorted_speakers(speakers) -> list[str]:
    """Speakers in natural order (``ravdess-2`` before ``ravdess-10``)."""
    return sorted(set(speakers), key=_speaker_sort_key)


def speaker_folds(speakers: Sequence[str], k: int) -> list[list[str]]:
    """``k`` test folds of speakers: contiguous blocks in natural order, sizes differing by at
    most one, so each speaker is in exactly one fold. Contiguous RAVDESS actors alternate
    male/female, so each fold is gender-balanced."""
    ordered = sorted_speakers(speakers)
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
