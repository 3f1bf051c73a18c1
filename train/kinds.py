"""Every ``ser-train --model`` kind, in one place: what trains it and whether it exports.

Nothing heavy is imported here (the CLI reads this for its choices and help before any
TensorFlow import). A new kind is one :class:`Kind` row in :data:`KINDS` plus its builder:
a Keras builder in :data:`train.models.BUILDERS` (``family="keras"``: trained and scored by
:func:`train.run.run`, the device's scoring), or a classifier in
:data:`train.baseline.CLASSIFIERS` (``family="classical"``: utterance features, scored per
clip by :func:`train.baseline.run_baseline`), or ``family="pretrained"``
(:mod:`train.pretrained`, with ``--pretrained`` weights).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    """One model kind of ``ser-train --model``."""

    name: str
    family: str
    """``keras`` (MFCC windows -> a Keras model, device scoring), ``classical`` (utterance
    features -> a scikit-learn classifier) or ``pretrained`` (a pretrained network's
    embeddings -> a classifier, :mod:`train.pretrained`)."""
    summary: str
    """A few words for ``--help``: the model and its size."""
    exportable: bool = False
    """``ser-export`` can turn it into a builtin-op int8 TFLite bundle for the device."""
    host_only: str = ""
    """Why it is not exported (for the message of :func:`require_exportable`)."""
    shipped: bool = False
    """One of the shipped bundles' kinds (``edge/models/``)."""


_LSTM_LOOP = ("Keras's LSTM loop, not the unrolled per-gate LSTM (train/lstm.py) whose int8"
              " conversion is verified")
_CLASSICAL = "a scikit-learn model of clip features, no TFLite form"
_PRETRAINED = "a large pretrained network run on the host (train.pretrained)"

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("cnn", "keras", "compact CNN, ~86k params", exportable=True, shipped=True),
    Kind("cnn-lstm", "keras", "CNN + unrolled LSTM, ~78k, int8-exportable", exportable=True,
         shipped=True),
    Kind("lstm", "keras", "two stacked LSTMs over the MFCC frames, ~160k, host only",
         host_only=_LSTM_LOOP),
    Kind("conv1d", "keras", "Conv1D stack 128/256/512 over the frames, ~0.9M, host only",
         host_only="0.9M parameters, about nine times the device's int8 size target"),
    Kind("cnn-bilstm", "keras", "CNN front + two bidirectional LSTMs, ~0.3M, host only",
         host_only=_LSTM_LOOP),
    Kind("rf", "classical", "random forest on utterance statistics", host_only=_CLASSICAL),
    Kind("svm", "classical", "scaled RBF SVM on utterance statistics, C/gamma chosen on"
         " training speakers", host_only=_CLASSICAL),
    Kind("knn", "classical", "scaled k-nearest neighbours on utterance statistics, k chosen on"
         " training speakers", host_only=_CLASSICAL),
    Kind("egemaps-svm", "classical", "eGeMAPSv02 functionals (opensmile) + linear SVM",
         host_only=_CLASSICAL),
    Kind("wav2vec2-rf", "pretrained", "wav2vec2 layers mean-pooled + random forest, needs"
         " --pretrained DIR", host_only=_PRETRAINED),
    Kind("vgg16-lstm", "pretrained", "VGG16 features of log-mel images + BiLSTM, needs"
         " --pretrained FILE", host_only=_PRETRAINED),
)}
"""Model kind -> :class:`Kind`, in the order ``--help`` lists them."""


def kind_of(name: str) -> Kind:
    """The :class:`Kind` called ``name``; ConfigError naming the choices otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"model kind {name!r}: choose one of {', '.join(KINDS)}") from None


def kinds_of(family: str) -> tuple[str, ...]:
    """Names of the kinds of one family, in :data:`KINDS` order."""
    return tuple(k.name for k in KINDS.values() if k.family == family)


def require_exportable(name: str) -> None:
    """ConfigError when ``ser-export`` cannot make an int8 device bundle of kind ``name``."""
    kind = KINDS.get(name)
    if kind is not None and not kind.exportable:
        exportable = ", ".join(k.name for k in KINDS.values() if k.exportable)
        raise ConfigError(f"model kind {name!r} is host-only ({kind.host_only}): ser-export"
                          f" makes device bundles of {exportable}; use it on the host, e.g."
                          " as a --teacher")
