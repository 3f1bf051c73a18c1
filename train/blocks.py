"""Layer blocks shared by the model builders (:mod:`train.models`, :mod:`train.seed_models`),
built from builtin Keras layers only."""

from __future__ import annotations

from keras import layers


def conv_block(x, filters: int, pool: tuple[int, int] | None, name: str):
    """A 3x3 Conv2D of ``filters`` (no bias), batch norm, ReLU, then max pooling by ``pool``
    (time, frequency) unless None."""
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if pool is not None:
        x = layers.MaxPooling2D(pool, name=f"{name}_pool")(x)
    return x


def window_mean_removed(inputs, name: str = "cmn"):
    """Subtract each coefficient's mean over the window's frames (per-window cepstral mean
    normalisation): removes the speaker's, microphone's and gain's constant offsets. Built
    from built-in layers (average pooling over time, broadcast subtraction), so it loads
    without custom objects and converts to int8 builtin ops."""
    frames = inputs.shape[1]
    mean = layers.AveragePooling2D(pool_size=(frames, 1), name=f"{name}_mean")(inputs)
    return layers.Subtract(name=name)([inputs, mean])


def as_sequence(x, name: str = "to_sequence"):
    """``(batch, steps, freq, channels)`` -> ``(batch, steps, freq * channels)``: a conv
    front's output as a sequence over time for a recurrent layer."""
    steps, freq, channels = x.shape[1], x.shape[2], x.shape[3]
    return layers.Reshape((steps, freq * channels), name=name)(x)
