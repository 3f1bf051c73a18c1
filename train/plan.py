"""What a ``ser-train`` run is asked to do (:class:`RunPlan`) and how its training settings
are recorded (the ``training`` dict of each model's ``config.json``)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge import __version__
from edge.features import FeatureSpec
from train.augment import WaveAugment
from train.conditions import CONDITIONS
from train.fit import TrainConfig
from train.windows import WindowAugment


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs besides the utterances."""

    out: Path
    spec: FeatureSpec
    train: TrainConfig
    data: tuple[dict[str, str], ...]
    folds: int | None = 4
    repeats: int = 1
    """Cross-validation repeated over this many different speaker partitions."""
    test_speakers: tuple[str, ...] | None = None
    val_speakers: int = 0
    augment: WaveAugment | None = field(default_factory=WaveAugment)
    aug_copies: int = 4
    windows: WindowAugment = field(default_factory=WindowAugment)
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    """Room conditions the held-out speakers are also scored under."""
    extra_data: tuple[dict[str, str], ...] = ()
    """Corpora that only ever train (see :func:`run`)."""
    eval_data: tuple[dict[str, str], ...] = ()
    """Corpora scored but never trained on (leave-one-corpus-out)."""
    teachers: tuple[Path, ...] = ()
    """Run directories whose models (the same folds' and the shipped one) teach this run's
    (knowledge distillation from their average)."""
    cache_dir: Path | None = None
    use_cache: bool = True
    final: bool = True
    only_folds: tuple[int, ...] = ()
    """Run only these folds (1-based, of all repeats' folds) of the partition; empty: all. The
    report covers those folds and says so (compute for part of a cross-validation)."""
    cv_from: Path | None = None
    """A run of this recipe on the same data whose cross-validation (fold reports and fold
    models) this run takes over: only the shipped model is trained (see :func:`reused_cv`)."""
    command: str = ""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    out = {"edge_ser": __version__, "python": platform.python_version()}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "librosa", "scikit-learn"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def training_dict(plan: RunPlan, train: list[str], val: list[str], test: list[str],
                   epochs: int, augmented: list[str]) -> dict[str, Any]:
    return {
        "data": list(plan.data), "extra_data": list(plan.extra_data),
        "train_speakers": train, "val_speakers": val,
        "test_speakers": test, "augmented_speakers": augmented, "seed": plan.train.seed,
        "epochs": epochs, "augment": asdict(plan.augment) if plan.augment else False,
        "aug_copies": plan.aug_copies if plan.augment else 0,
        "windows": asdict(plan.windows),
        "spec_augment": asdict(plan.train.spec_augment) if plan.train.spec_augment else False,
        "loss": plan.train.loss, "cmn": plan.train.cmn, "mixup": plan.train.mixup,
        "label_smoothing": plan.train.label_smoothing, "weight_decay": plan.train.weight_decay,
        "class_weights": plan.train.class_weights,
        "corpus_balance": plan.train.corpus_balance and plan.train.class_weights,
        "model_options": plan.train.model_options,
        "teachers": [str(t) for t in plan.teachers],
        "distill": plan.train.distill if plan.teachers else None,
        "batch_size": plan.train.batch_size, "learning_rate": plan.train.learning_rate,
    }
