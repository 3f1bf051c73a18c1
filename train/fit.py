"""Fitting one model: determinism, class weights, focal loss, SpecAugment, early stopping.

The model trained is the whole ``features -> normalize -> core`` graph on un-normalised
inputs; the normaliser is fitted by the caller on the training clips only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from edge.errors import ConfigError  # noqa: E402
from edge.features import Normalizer  # noqa: E402
from train.augment import SpecAugment, spec_augment  # noqa: E402
from train.models import build_core, with_normalization  # noqa: E402

LOSSES = ("ce", "focal")


@dataclass(frozen=True)
class TrainConfig:
    """How one model is fitted."""

    kind: str = "cnn"
    epochs: int = 60
    """Maximum epochs (early stopping on validation speakers may stop sooner); with no
    validation speakers, exactly this many."""
    batch_size: int = 32
    learning_rate: float = 2e-3
    """Peak learning rate; it follows a cosine from this to 0 over ``epochs``."""
    patience: int = 12
    """Epochs without a better (smoothed) validation accuracy before stopping."""
    smooth_epochs: int = 5
    """Validation accuracy is averaged over this many epochs (centred) to pick the epoch."""
    min_epochs_fraction: float = 0.4
    """The kept epoch is never in the first part of the schedule (high learning rate)."""
    loss: str = "ce"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    class_weights: bool = True
    """Weight each class by ``n / (k * count)`` (RAVDESS neutral has half the clips)."""
    corpus_balance: bool = True
    """With class weights and several corpora: weigh each (corpus, class) pair, not each
    class, by ``n / (pairs * count)``, so that every corpus's classes are balanced within it
    and a large corpus with another class mix (nEMO: no calm, many neutral and sad clips)
    does not shift RAVDESS's own classes (pooled weights called RAVDESS neutral calm)."""
    spec_augment: SpecAugment | None = field(default_factory=SpecAugment)
    mixup: float = 0.0
    """Mixup ``Beta(a, a)`` parameter on training batches (0 disables)."""
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW) when > 0."""
    cmn: bool = False
    """Remove each coefficient's mean over the window inside the model (microphone and
    speaker offsets; the level is already normalised in the front end); see
    :func:`train.models.build_core`."""
    model_options: dict = field(default_factory=dict)
    """Extra keyword arguments of the model builder (:func:`train.models.build_core`)."""
    distill: float = 0.7
    """With a teacher: the share of the teacher's probabilities in each target (the rest is
    the one-hot label)."""
    seed: int = 0


def make_deterministic(seed: int, threads: int = 2) -> None:
    """Seed python, numpy and TensorFlow and make TF ops deterministic, so the same data and
    seed give the same model on this machine."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    with contextlib.suppress(RuntimeError):  # already initialised: keep what was set
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def focal_loss(alpha: float, gamma: float):
    """``alpha * (1 - pt)**gamma * CE`` with ``pt = exp(-CE)``, for integer labels."""

    def loss(y_true, y_pred):
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        pt = keras.ops.exp(-ce)
        return alpha * keras.ops.power(1.0 - pt, gamma) * ce

    return loss


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (k * count_c)`` per class (0 for absent classes), float32 shape ``(n_classes,)``."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = labels.size / (present.sum() * counts[present])
    return w.astype(np.float32)


@dataclass
class FitResult:
    model: keras.Model
    """The full model (uncompiled, ready to save): features -> normalize -> core."""
    best_epoch: int
    """1-based epoch whose weights were kept (the last one without validation)."""
    history: list[dict]
    seconds: float


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def select_epoch(val_accuracy: list[float], config: TrainConfig) -> int:
    """The 1-based epoch to keep: best validation accuracy averaged over a centred window of
    ``config.smooth_epochs`` epochs (single epochs on two speakers swing by 20 points), among
    epochs after the first ``config.min_epochs_fraction`` of the schedule; ties go to the
    later epoch."""
    acc = np.asarray(val_accuracy, dtype=np.float64)
    half = config.smooth_epochs // 2
    smooth = np.array([acc[max(0, i - half):i + half + 1].mean() for i in range(acc.size)])
    first = min(acc.size - 1, int(config.min_epochs_fraction * config.epochs))
    candidates = np.arange(first, acc.size)
    return int(candidates[np.flatnonzero(smooth[candidates] == smooth[candidates].max())[-1]]) + 1


EpochInputs = Callable[[int], "tuple[np.ndarray, np.ndarray]"]
"""``epoch -> (inputs, labels)``: the training inputs of one epoch (un-normalised)."""


def fit_model(
    n_classes: int,
    normalizer: Normalizer,
    epoch_inputs: EpochInputs,
    class_labels: np.ndarray,
    config: TrainConfig,
    *,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    teacher: Callable[[np.ndarray], np.ndarray] | None = None,
    verbose: bool = True,
    name: str = "",
    label_groups: int = 1,
) -> FitResult:
    """Train a fresh model.

    Parameters
    ----------
    epoch_inputs : callable
        ``epoch -> (x, y)``: that epoch's inputs ``(n, frames, n_mfcc, channels)`` and integer
        labels (the clean windows plus augmented ones, drawn afresh).
    class_labels : np.ndarray [shape=(n,)], int
        One label per training recording, for the class weights.
    x_val, y_val : validation inputs and labels (validation speakers only), or None.
    label_groups : int
        Training labels (``class_labels`` and the epochs' ``y``) encode ``group * n_classes +
        class`` for this many groups (corpora): the class weights are per (group, class) pair;
        the model learns ``class``. 1: plain labels.
    teacher : callable or None
        ``inputs -> probabilities`` of a teacher (an ensemble trained on the same speakers):
        each target becomes ``distill * teacher + (1 - distill) * one_hot`` on the very inputs
        the student sees (after SpecAugment), i.e. knowledge distillation.
    """
    start = time.perf_counter()
    make_deterministic(config.seed)
    x0, y0 = epoch_inputs(0)
    input_shape = tuple(x0.shape[1:])
    core = build_core(config.kind, input_shape, n_classes, cmn=config.cmn,
                      **config.model_options)
    model = with_normalization(core, normalizer)
    soft = config.mixup > 0 or config.label_smoothing > 0 or teacher is not None
    if soft:
        if config.loss != "ce":
            raise ConfigError("mixup and label smoothing need the cross-entropy loss")
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    else:
        loss = ("sparse_categorical_crossentropy" if config.loss == "ce"
                else focal_loss(config.focal_alpha, config.focal_gamma))
    optimizer = (keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay)
                 if config.weight_decay > 0 else keras.optimizers.Adam(config.learning_rate))
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=["categorical_accuracy" if soft else "accuracy"])
    acc_key = "categorical_accuracy" if soft else "accuracy"
    eye = np.eye(n_classes, dtype=np.float32)
    weights = (class_weights(class_labels, n_classes * label_groups) if config.class_weights
               else np.ones(n_classes * label_groups, np.float32))
    fill = normalizer.mean
    snapshots: list[list[np.ndarray]] = []
    best_epoch = 0
    history: list[dict] = []
    has_val = x_val is not None and len(x_val) > 0
    for epoch in range(config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        x, y = (x0, y0) if epoch == 0 else epoch_inputs(epoch)
        y = np.asarray(y)
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
        if config.spec_augment is not None:
            x = spec_augment(x, config.spec_augment, rng, fill=fill)
        sample_weight = weights[y]
        y = y % n_classes  # the class of a (group, class) label
        target = eye[y] if soft else y
        if teacher is not None:
            target = config.distill * teacher(x) + (1.0 - config.distill) * target
        if config.mixup > 0:
            lam = rng.beta(config.mixup, config.mixup, size=len(x)).astype(np.float32)
            partner = rng.permutation(len(x))
            x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[partner]
            target = lam[:, None] * target + (1 - lam[:, None]) * target[partner]
            sample_weight = lam * sample_weight + (1 - lam) * sample_weight[partner]
        lr = 0.5 * config.learning_rate * (1.0 + np.cos(np.pi * epoch / config.epochs))
        model.optimizer.learning_rate.assign(lr)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            h = model.fit(x, target, sample_weight=sample_weight, batch_size=config.batch_size,
                          epochs=1, shuffle=False, verbose=0)
        del x
        row = {"epoch": epoch + 1, "loss": float(h.history["loss"][-1]),
               "accuracy": float(h.history[acc_key][-1])}
        if has_val:
            val_loss, val_acc = model.evaluate(x_val, eye[y_val] if soft else y_val,
                                               batch_size=64, verbose=0)
            row.update(val_loss=float(val_loss), val_accuracy=float(val_acc))
        row["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(row)
        if verbose:
            extra = (f" val_loss {row['val_loss']:.3f} val_acc {row['val_accuracy']:.3f}"
                     if has_val else "")
            _log(f"{name}epoch {epoch + 1}/{config.epochs} loss {row['loss']:.3f}"
                 f" acc {row['accuracy']:.3f}{extra} ({row['seconds']:.1f} s)")
        if has_val:
            snapshots.append(model.get_weights())
            best_epoch = select_epoch([h["val_accuracy"] for h in history], config)
            if epoch + 1 - best_epoch >= config.patience:
                break
    if has_val:
        model.set_weights(snapshots[best_epoch - 1])
    else:
        best_epoch = len(history)
    final = keras.Model(model.inputs, model.outputs, name="edge_ser")  # uncompiled
    return FitResult(final, best_epoch, history, time.perf_counter() - start)


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` for un-normalised inputs."""
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
