"""Bias correction: cancel the systematic output shift that int8 weight rounding causes.

Rounding a layer's weights to int8 (per output channel, symmetric, ``scale = max|w| / 127``:
what the TFLite converter does) changes each output channel by ``e . x`` with ``e = w_q - w``.
Its random part is small, but its *mean* over real inputs, ``E[e . x]``, is a constant offset
per channel — and post-ReLU inputs are far from zero-mean, so the offsets add up through the
network. On one CNN fold (240 held-out clips, float simulation), rounding the weights alone
changed 4.6 % of the top-1 decisions, and 0.4 % with the offsets cancelled; over the four
folds of the full int8 export, agreement with float rose from 0.951 to 0.960 (0.974 with
the input range of data.Calibration.input_clip).

:func:`bias_corrected` returns a copy of the float model whose biases absorb ``-E[e . x]``
(measured on calibration inputs through the float model): a Dense or LSTM layer's own bias,
or, for a bias-free convolution, the moving mean of the BatchNormalization that follows it.
Only the int8 conversion uses the copy; the float model and float32 bundle stay as trained.
(Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias Correction",
ICCV 2019, section 4.2, empirical variant.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import layers

INT8_MAX = 127


def quantize_per_channel(kernel: np.ndarray) -> np.ndarray:
    """``kernel`` rounded as TFLite's int8 per-channel weights and converted back to float:
    one symmetric scale ``max|w| / 127`` per output channel (the last axis)."""
    w = np.asarray(kernel, dtype=np.float64)
    axes = tuple(range(w.ndim - 1))
    scale = np.abs(w).max(axis=axes, keepdims=True) / INT8_MAX
    scale[scale == 0] = 1.0
    return (np.round(w / scale) * scale).astype(np.float32)


@dataclass
class Correction:
    """What :func:`bias_corrected` changed."""

    layers: dict[str, float] = field(default_factory=dict)
    """Layer name -> the largest per-channel shift it absorbed (absolute, layer units)."""
    skipped: list[str] = field(default_factory=list)
    """Layers with int8 weights but nowhere to put a shift (no bias, no BatchNorm after)."""

    def to_dict(self) -> dict[str, Any]:
        return {"layers": {k: round(v, 6) for k, v in self.layers.items()},
                "skipped": self.skipped}


def _consumers(model: keras.Model, layer) -> list:
    return [other for other in model.layers if other is not layer
            and any(t is layer.output for t in keras.tree.flatten(other.input))]


def _mean_conv_error(layer: layers.Conv2D, x: np.ndarray, error: np.ndarray) -> np.ndarray:
    y = keras.ops.conv(x, error, strides=layer.strides, padding=layer.padding,
                       dilation_rate=layer.dilation_rate, data_format=layer.data_format)
    axes = (0, 1, 2) if layer.data_format == "channels_last" else (0, 2, 3)
    return np.asarray(keras.ops.convert_to_numpy(y), np.float64).mean(axis=axes)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_mean_error(layer: layers.LSTM, x: np.ndarray, ex: np.ndarray,
                     eh: np.ndarray) -> np.ndarray:
    """``E[x_t . ex + h_{t-1} . eh]`` over clips and steps, with ``h`` from the float LSTM."""
    kernel, recurrent, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    units = layer.units
    n, steps, _ = x.shape
    h = np.zeros((n, units))
    c = np.zeros((n, units))
    total = np.zeros(4 * units)
    for t in range(steps):
        total += (x[:, t] @ ex + h @ eh).mean(axis=0)
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    return total / steps


def bias_corrected(core: keras.Model, inputs: np.ndarray, *,
                   batch_size: int = 64) -> tuple[keras.Model, Correction]:
    """A copy of ``core`` whose biases cancel the mean effect of int8 weight rounding.

    Parameters
    ----------
    core : keras.Model
        The float model to be converted (normalised features in, probabilities out).
    inputs : np.ndarray [shape=(n, *core.input_shape[1:])]
        Calibration inputs (training-fold clips), as the int8 model will see them.

    Returns
    -------
    (keras.Model, Correction): the corrected copy (same weights, shifted biases) and a record.
    """
    corrected = keras.models.clone_model(core)
    corrected.set_weights(core.get_weights())
    record = Correction()
    targets = [layer for layer in core.layers
               if isinstance(layer, (layers.Conv2D, layers.Dense, layers.LSTM))]
    if not targets:
        return corrected, record
    # Every target's input from one pass of the float model (one graph trace, not one each).
    seen = keras.Model(core.inputs, [layer.input for layer in targets]).predict(
        inputs, batch_size=batch_size, verbose=0)
    seen = seen if isinstance(seen, (list, tuple)) else [seen]
    for layer, x in zip(targets, seen):
        x = np.asarray(x, np.float64)
        weights = layer.get_weights()
        if isinstance(layer, layers.LSTM):
            ex = quantize_per_channel(weights[0]) - weights[0]
            eh = quantize_per_channel(weights[1]) - weights[1]
            shift = _lstm_mean_error(layer, x, ex, eh)
        else:
            error = (quantize_per_channel(weights[0]) - weights[0]).astype(np.float64)
            if isinstance(layer, layers.Conv2D):
                shift = _mean_conv_error(layer, x.astype(np.float32), error.astype(np.float32))
            else:
                shift = (x.reshape(-1, x.shape[-1]) @ error).mean(axis=0)
        target = corrected.get_layer(layer.name)
        new = target.get_weights()
        has_bias = isinstance(layer, layers.LSTM) or getattr(layer, "use_bias", False)
        if has_bias:
            bias_index = 2 if isinstance(layer, layers.LSTM) else 1
            new[bias_index] = (new[bias_index] - shift).astype(new[bias_index].dtype)
            target.set_weights(new)
        else:
            after = _consumers(core, layer)
            if len(after) != 1 or not isinstance(after[0], layers.BatchNormalization):
                record.skipped.append(layer.name)
                continue
            bn = corrected.get_layer(after[0].name)
            bn_weights = bn.get_weights()
            # BN computes (y - moving_mean) * k + beta: a larger mean cancels +shift in y.
            mean_index = len(bn_weights) - 2
            bn_weights[mean_index] = (bn_weights[mean_index] + shift).astype(np.float32)
            bn.set_weights(bn_weights)
        record.layers[layer.name] = float(np.abs(shift).max())
    return corrected, record

