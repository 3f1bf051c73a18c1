"""The two compact models, built for full-int8 TFLite export with builtin ops only.

Every model is ``features -> normalize -> core``: the input named ``features`` takes
un-normalised inputs ``FeatureSpec.input_shape``; ``normalize`` is a built-in
``keras.layers.Normalization`` holding the training fold's per-coefficient mean and variance;
``core`` is a nested functional model on normalised inputs that outputs softmax
probabilities. The exporter quantises ``core`` alone and keeps the normalisation in the
bundle metadata (see FINDINGS.md: int8 input must be normalised).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from edge.errors import ConfigError
from edge.features import Normalizer
from train.blocks import as_sequence, conv_block, window_mean_removed
from train.lstm import UnrolledLSTM

MODEL_KINDS = ("cnn", "cnn-lstm")
"""The shipped kinds, built here; the host-only Keras kinds are in :mod:`train.seed_models`
(every kind: :data:`train.kinds.KINDS`)."""


def _attention_pooled(x, name: str = "attention"):
    """Attention pooling over time of ``(batch, time, freq, channels)``: frequency averaged,
    one learned score per time step (a dot product with a vector), a softmax over time, the
    steps' weighted mean (times 1/time: a constant the next layer absorbs). Builtin layers
    only (MEAN, FULLY_CONNECTED, SOFTMAX, MUL), so it converts to int8 ops."""
    steps, freq, channels = x.shape[1], x.shape[2], x.shape[3]
    x = layers.AveragePooling2D((1, freq), name=f"{name}_freq")(x)
    seq = layers.Reshape((steps, channels), name=f"{name}_seq")(x)
    score = layers.Dense(1, name=f"{name}_score")(seq)
    score = layers.Reshape((steps,), name=f"{name}_flat")(score)
    weight = layers.Softmax(name=f"{name}_softmax")(score)
    weight = layers.Reshape((steps, 1), name=f"{name}_weight")(weight)
    weighted = layers.Multiply(name=f"{name}_apply")([seq, weight])
    return layers.GlobalAveragePooling1D(name=f"{name}_sum")(weighted)


def build_cnn(input_shape: tuple[int, int, int], n_classes: int, *,
              dropout: float = 0.3, cmn: bool = True, pooling: str = "average"
              ) -> keras.Model:
    """Optional per-window mean removal (``cmn``), four conv blocks (16/32/64/96 filters,
    batch norm, max pooling), global average pooling (or ``pooling="attention"`` over time),
    a 64-unit dense layer, softmax. About 86k parameters and 28 M multiply-adds for a
    (297, 40, 2) input."""
    inputs = keras.Input(shape=input_shape, name="normalized")
    x = window_mean_removed(inputs) if cmn else inputs
    x = conv_block(x, 16, (3, 2), "b1")  # 99 x 20
    x = conv_block(x, 32, (2, 2), "b2")  # 49 x 10
    x = conv_block(x, 64, (2, 2), "b3")  # 24 x 5
    x = conv_block(x, 96, None, "b4")
    if pooling == "attention":
        x = _attention_pooled(x)
    elif pooling == "average":
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        raise ConfigError(f"pooling={pooling!r}: use 'average' or 'attention'")
    x = layers.Dropout(dropout, name="drop1")(x)
    x = layers.Dense(64, activation="relu", name="fc")(x)
    x = layers.Dropout(dropout, name="drop2")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="core")


def build_cnn_lstm(input_shape: tuple[int, int, int], n_classes: int, *,
                   dropout: float = 0.3, lstm_units: int = 64, cmn: bool = True) -> keras.Model:
    """Optional per-window mean removal (``cmn``), three conv blocks pooling time by 3 each
    (297 -> 11 steps) and frequency by 2, a per-step dense projection, an LSTM unrolled over
    the 11 steps (so the int8 converter sees static shapes and builtin ops), a dense softmax
    head. About 78k parameters, 19 M multiply-adds."""
    inputs = keras.Input(shape=input_shape, name="normalized")
    x = window_mean_removed(inputs) if cmn else inputs
    x = conv_block(x, 16, (3, 2), "b1")  # 99 x 20
    x = conv_block(x, 32, (3, 2), "b2")  # 33 x 10
    x = conv_block(x, 64, (3, 2), "b3")  # 11 x 5
    x = as_sequence(x)
    x = layers.Dropout(dropout / 2, name="drop0")(x)
    x = layers.Dense(64, activation="relu", name="project")(x)
    x = UnrolledLSTM(lstm_units, name="lstm")(x)
    x = layers.Dropout(dropout, name="drop1")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="core")


BUILDERS = {"cnn": build_cnn, "cnn-lstm": build_cnn_lstm}
"""Model kind -> the builder of its ``core`` (the shipped kinds; :func:`builder_of` also
knows :data:`train.seed_models.BUILDERS`)."""


def builder_of(kind: str):
    """The ``core`` builder of a Keras kind, or None (a classical kind, or unknown)."""
    from train.seed_models import BUILDERS as SEED_BUILDERS

    return {**BUILDERS, **SEED_BUILDERS}.get(kind)


def build_core(kind: str, input_shape: tuple[int, int, int], n_classes: int, *,
               cmn: bool = False, **options) -> keras.Model:
    """The ``core`` model of the Keras kind ``kind`` (:func:`train.kinds.kinds_of`
    ``("keras")``); ``options`` go to its builder."""
    from train.kinds import kinds_of

    builder = builder_of(kind)
    if builder is None:
        raise ConfigError(f"model kind {kind!r}: choose one of {', '.join(kinds_of('keras'))}")
    return builder(input_shape, n_classes, cmn=cmn, **options)


def check_options(kind: str, options: dict) -> None:
    """Refuse ``--model-option`` keys the builder of ``kind`` does not take (before any
    feature is computed)."""
    import inspect

    builder = builder_of(kind)
    if builder is None:
        return
    taken = [name for name, p in inspect.signature(builder).parameters.items()
             if p.kind == p.KEYWORD_ONLY and name != "cmn"]
    unknown = sorted(set(options) - set(taken))
    if unknown:
        raise ConfigError(f"--model-option {', '.join(unknown)}: not an option of {kind}"
                          f" (options: {', '.join(taken)})")


def with_normalization(core: keras.Model, normalizer: Normalizer) -> keras.Model:
    """``features -> normalize -> core``; ``normalize`` holds the normaliser's mean/variance."""
    shape = tuple(core.input_shape[1:])
    inputs = keras.Input(shape=shape, name="features")
    norm = layers.Normalization(
        axis=(-2, -1), mean=normalizer.mean, variance=np.square(normalizer.std),
        name="normalize",
    )
    outputs = core(norm(inputs))
    return keras.Model(inputs, outputs, name="edge_ser")


def normalizer_of(model: keras.Model) -> Normalizer:
    """The normaliser inside a saved model (its ``normalize`` layer)."""
    layer = model.get_layer("normalize")
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean)).reshape(layer.mean.shape[-2:])
    var = np.asarray(keras.ops.convert_to_numpy(layer.variance)).reshape(mean.shape)
    return Normalizer(mean, np.sqrt(var))


def _lstm_multiply_adds(layer: layers.LSTM, input_shape) -> int:
    steps, units = int(input_shape[1]), layer.units
    return steps * 4 * units * (int(input_shape[-1]) + units)


def multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one forward pass through conv (1-D and 2-D), dense, LSTM and
    bidirectional LSTM layers (batch 1)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv1D, layers.Conv2D)):
            out = layer.output.shape
            total += int(np.prod(out[1:]) * np.prod(layer.kernel.shape[:-1]))
        elif isinstance(layer, layers.Dense):
            rows = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
            total += rows * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, layers.LSTM):
            total += _lstm_multiply_adds(layer, layer.input.shape)
        elif isinstance(layer, layers.Bidirectional):
            total += sum(_lstm_multiply_adds(d, layer.input.shape)
                         for d in (layer.forward_layer, layer.backward_layer))
    return total
