"""The clips a run was trained and tested on, and their model inputs (through train's cache).

Speakers come from the run's ``config.json``; audio comes from the corpora it names (or
``--data`` when the corpus lives elsewhere on this machine). Features are computed by
``train.dataset`` — the device's own front end — and cached.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.batch import Windows, combine
from edge.errors import ConfigError
from export.run import RunConfig
from train.augment import WaveAugment
from train.corpora import Utterance, read_corpus
from train.dataset import CLEAN, Variant, load_recordings
from train.windows import device_inputs


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunClips:
    """The utterances of a run's corpora whose labels map to its classes."""

    all: list[Utterance]
    """Every one: the ``--data`` corpora's, then the ``--extra-data`` ones'."""
    scored: list[Utterance]
    """The ``--data`` corpora's only: held-out scores stay on those, as ser-train's do."""


def run_utterances(run: RunConfig, data: Sequence[Path] = ()) -> RunClips:
    """The utterances of the run's corpora whose label maps to one of its classes.

    ``data`` replaces the corpus paths recorded by training, in order (one per corpus: the
    ``--data`` ones, then the ``--extra-data`` ones).
    """
    main = list(run.training.get("data") or [])
    sources = main + list(run.training.get("extra_data") or [])
    if not sources and not data:
        raise ConfigError(f"{run.directory}: config.json names no training data; pass --data")
    if data and len(data) != max(len(sources), 1):
        names = ", ".join(str(s.get("corpus", "?")) for s in sources)
        raise ConfigError(f"--data given {len(data)} times; the run was trained on"
                          f" {len(sources)} corpora ({names}): give one --data per corpus")
    utterances: list[Utterance] = []
    n_scored = 0
    for i in range(max(len(sources), len(data))):
        source = sources[i] if i < len(sources) else {}
        root = Path(data[i]) if data else Path(str(source.get("path", "")))
        if not root.exists():
            raise ConfigError(f"training data {root} is not on this machine; pass --data DIR"
                              " (the same corpus the run was trained on)")
        corpus = read_corpus(root, source.get("corpus"))
        if not corpus.utterances:
            raise ConfigError(f"{root}: no {corpus.name} clips there; pass the --data the run"
                              " was trained on")
        utterances.extend(u for u in corpus.utterances if u.label in run.label_map)
        if i < max(len(main), 1):
            n_scored = len(utterances)
    return RunClips(utterances, utterances[:n_scored])


def of_speakers(utterances: Sequence[Utterance], speakers: Sequence[str]) -> list[Utterance]:
    """The utterances of ``speakers``; ConfigError naming any speaker with no clip."""
    wanted = set(speakers)
    found = [u for u in utterances if u.speaker in wanted]
    missing = sorted(wanted - {u.speaker for u in found})
    if missing:
        raise ConfigError(f"no clips of speaker(s) {', '.join(missing)} in the data; pass the"
                          " --data the run was trained on")
    return found


@dataclass(frozen=True)
class Clips:
    """The device's model inputs (every window of every endpointed utterance, un-normalised)
    of a list of recordings, and their class indices."""

    inputs: np.ndarray
    """``(n_windows, frames, n_mfcc, channels)`` float32."""
    labels: np.ndarray
    """``(n_recordings,)`` int64 class indices into the run's labels."""
    utterances: list[Utterance]
    device: Windows
    """Which recording and utterance each row belongs to."""

    def recording_probs(self, window_probs: np.ndarray) -> np.ndarray:
        """Per-recording probabilities from the rows' (as ``edge-ser predict`` combines
        them); NaN rows for recordings without speech."""
        return combine(window_probs, self.device).recording_probs


def clips(run: RunConfig, utterances: Sequence[Utterance], *, cache_dir: Path | None = None,
          augment: WaveAugment | None = None, copy: int = 0, seed: int = 0,
          progress: bool = True, desc: str = "features", fallback: bool = False) -> Clips:
    """Model inputs of ``utterances`` (unreadable files are reported on stderr and left out).
    ``fallback``: a recording without an utterance found counts as one (calibration)."""
    variant = CLEAN if augment is None else Variant(augment, copy, seed)
    loaded = load_recordings(list(utterances), run.spec, variant=variant,
                             cache_dir=cache_dir, progress=progress, desc=desc)
    for _utt, message in loaded.failed:
        _log(f"skipped: {message}")
    labels = np.array([run.labels.index(run.label_map[u.label]) for u in loaded.kept],
                      dtype=np.int64)
    device = device_inputs(loaded.recordings, run.spec, fallback=fallback)
    return Clips(device.inputs, labels, list(loaded.kept), device)


def training_augment(run: RunConfig) -> WaveAugment:
    """The waveform augmentation the run trained with (defaults when it recorded none), so
    augmented calibration copies come from the same distribution (and the feature cache)."""
    recorded = run.training.get("augment")
    if not isinstance(recorded, dict):
        return WaveAugment()
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()
              if k in WaveAugment.__dataclass_fields__}
    if isinstance(fields.get("gain_db"), (int, float)):  # recorded as +-dB before 0.2
        fields["gain_db"] = (-float(fields["gain_db"]), float(fields["gain_db"]))
    return WaveAugment(**fields)


@dataclass(frozen=True)
class Calibration:
    """How the int8 ranges are calibrated: which training-fold clips, how many copies."""

    clips: int | None = None
    """Clean training clips to use, drawn evenly over speakers and labels; None: all."""
    augmented_copies: int = 0
    """Augmented copies (the run's own waveform augmentation) of those clips, added."""
    input_clip: float | None = 5.0
    """Clip the normalised calibration inputs to +-this many standard deviations, so the int8
    input covers +-5 (step 10/255, about 0.04 sd) rather than the rarest extremes (+-10 or
    more: twice the step); the 0.1 % of values beyond saturate on the device. None: no clip."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips is not None and self.clips < 1:
            raise ConfigError(f"--calibration-clips {self.clips}: must be >= 1")
        if self.augmented_copies < 0:
            raise ConfigError(f"--calibration-augmented {self.augmented_copies}: must be >= 0")
        if self.input_clip is not None and self.input_clip <= 0:
            raise ConfigError(f"--input-clip {self.input_clip}: must be > 0 (or none)")


def pick_calibration(utterances: Sequence[Utterance], n: int | None,
                     seed: int) -> list[Utterance]:
    """``n`` utterances spread evenly over (speaker, label) groups, drawn with ``seed``;
    all of them when ``n`` is None or not smaller."""
    if n is None or n >= len(utterances):
        return list(utterances)
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[Utterance]] = {}
    for u in utterances:
        groups.setdefault((u.speaker, u.label), []).append(u)
    queues = [[g[i] for i in rng.permutation(len(g))] for _, g in sorted(groups.items())]
    picked: list[Utterance] = []
    while len(picked) < n:  # round robin over the groups
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop())
    return sorted(picked, key=lambda u: str(u.path))


def calibration_inputs(run: RunConfig, train_utterances: Sequence[Utterance],
                       calibration: Calibration, *, cache_dir: Path | None = None,
                       progress: bool = True) -> tuple[np.ndarray, dict]:
    """Normalised (with ``run.normalizer``) calibration inputs from training-fold clips only,
    and a description of them for the report."""
    chosen = pick_calibration(train_utterances, calibration.clips, calibration.seed)
    parts = [clips(run, chosen, cache_dir=cache_dir, progress=progress,
                   desc="calibration", fallback=True).inputs]
    augment = training_augment(run)
    seed = int(run.training.get("seed", 0))
    for c in range(calibration.augmented_copies):
        parts.append(clips(run, chosen, cache_dir=cache_dir, augment=augment, copy=c, seed=seed,
                           progress=progress, desc=f"calibration copy {c + 1}",
                           fallback=True).inputs)
    x = run.normalizer(np.concatenate(parts))
    clipped = 0.0
    if calibration.input_clip is not None:
        clipped = float(np.mean(np.abs(x) > calibration.input_clip))
        x = np.clip(x, -calibration.input_clip, calibration.input_clip)
    info = {
        "source": "training-fold clips (speakers the model was trained on)",
        "speakers": sorted({u.speaker for u in chosen}),
        "clips": len(chosen), "augmented_copies": calibration.augmented_copies,
        "inputs": int(len(x)), "seed": calibration.seed,
        "input_clip_sd": calibration.input_clip, "input_values_clipped": round(clipped, 6),
    }
    return x, info
