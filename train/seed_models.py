"""The write-ups' larger Keras models, host-side: ``lstm``, ``conv1d`` and ``cnn-bilstm``.

Same contract as :mod:`train.models` (a ``core`` on normalised inputs
``(frames, n_mfcc, channels)`` that outputs softmax probabilities), so ``ser-train`` trains,
scores and saves them exactly like the CNN. They use Keras's own LSTM (a while loop over
time, not unrolled) and are not exported to the device (:data:`train.kinds.KINDS`); they
compare the shipped models with the write-ups' and can teach them (``--teacher``).

The MFCCs and their deltas of one frame are one time step of ``n_mfcc * channels`` values.
"""

from __future__ import annotations

import keras
from keras import layers

from train.blocks import as_sequence, conv_block, window_mean_removed


def _frames(inputs, time_pool: int, cmn: bool):
    """``(batch, frames, n_mfcc, channels)`` -> ``(batch, frames // time_pool, n_mfcc *
    channels)``: optional per-window mean removal, then each ``time_pool`` frames averaged
    (1: every 10 ms frame is a step)."""
    x = window_mean_removed(inputs) if cmn else inputs
    if time_pool > 1:
        x = layers.AveragePooling2D((time_pool, 1), name="time_pool")(x)
    return as_sequence(x)


def build_lstm(input_shape: tuple[int, int, int], n_classes: int, *, dropout: float = 0.3,
               units: int = 128, second_units: int = 64, time_pool: int = 3,
               cmn: bool = False) -> keras.Model:
    """Two stacked LSTMs over the frames (``units`` returning every step, then
    ``second_units`` returning the last), a 64-unit dense layer, softmax. ``time_pool``
    averages that many 10 ms frames into one step (3: 297 frames -> 99 steps, 30 ms each),
    which keeps the recurrence affordable on a CPU. About 161k parameters, 15 M multiply-adds
    for a (297, 40, 2) input."""
    inputs = keras.Input(shape=input_shape, name="normalized")
    x = _frames(inputs, time_pool, cmn)
    x = layers.LSTM(units, return_sequences=True, name="lstm1")(x)
    x = layers.Dropout(dropout, name="drop1")(x)
    x = layers.LSTM(second_units, name="lstm2")(x)
    x = layers.Dropout(dropout, name="drop2")(x)
    x = layers.Dense(64, activation="relu", name="fc")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="core")


def build_conv1d(input_shape: tuple[int, int, int], n_classes: int, *, dropout: float = 0.3,
                 filters: tuple[int, ...] = (128, 256, 512), kernel_size: int = 5,
                 pool: int = 3, cmn: bool = False) -> keras.Model:
    """The refined Conv1D stack over the frames: per block a Conv1D (``filters``, kernel
    ``kernel_size``, same padding), batch norm, ReLU, max pooling over ``pool`` frames and
    dropout; then global average pooling over time and a softmax. About 0.87M parameters and
    53 M multiply-adds for a (297, 40, 2) input (297 -> 99 -> 33 -> 11 steps)."""
    inputs = keras.Input(shape=input_shape, name="normalized")
    x = _frames(inputs, 1, cmn)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv1D(int(f), kernel_size, padding="same", use_bias=False,
                          name=f"c{i}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"c{i}_bn")(x)
        x = layers.ReLU(name=f"c{i}_relu")(x)
        x = layers.MaxPooling1D(pool, name=f"c{i}_pool")(x)
        x = layers.Dropout(dropout, name=f"c{i}_drop")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="core")


def build_cnn_bilstm(input_shape: tuple[int, int, int], n_classes: int, *,
                     dropout: float = 0.3, lstm_units: int = 64, cmn: bool = False
                     ) -> keras.Model:
    """A CNN front (three conv blocks 32/64/64, time pooled 3, 2, 2 and frequency by 2 each:
    297 -> 24 steps), a per-step dense projection to 128, two bidirectional LSTMs of
    ``lstm_units`` per direction (the first returning every step), softmax. About 0.3M
    parameters, 67 M multiply-adds for a (297, 40, 2) input."""
    inputs = keras.Input(shape=input_shape, name="normalized")
    x = window_mean_removed(inputs) if cmn else inputs
    x = conv_block(x, 32, (3, 2), "b1")  # 99 x 20
    x = conv_block(x, 64, (2, 2), "b2")  # 49 x 10
    x = conv_block(x, 64, (2, 2), "b3")  # 24 x 5
    x = as_sequence(x)
    x = layers.Dropout(dropout / 2, name="drop0")(x)
    x = layers.Dense(128, activation="relu", name="project")(x)
    x = layers.Bidirectional(layers.LSTM(lstm_units, return_sequences=True),
                             name="bilstm1")(x)
    x = layers.Dropout(dropout, name="drop1")(x)
    x = layers.Bidirectional(layers.LSTM(lstm_units), name="bilstm2")(x)
    x = layers.Dropout(dropout, name="drop2")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="core")


BUILDERS = {"lstm": build_lstm, "conv1d": build_conv1d, "cnn-bilstm": build_cnn_bilstm}
"""Model kind -> the builder of its ``core`` (joined into :data:`train.models.BUILDERS`)."""
