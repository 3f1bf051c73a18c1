"""An LSTM written out step by step, gate by gate, so that full-int8 TFLite conversion is
deterministic.

Why (measured with TF 2.21): ``keras.layers.LSTM(unroll=True)`` computes each step as one
matmul into the four gates followed by ``split(z, 4)``. At the first step the carry is the
zero initial state, so ``f_0 * c_0`` is constant-folded away and the forget-gate result of
step 0's SPLIT has no consumer. The converter's int8 quantiser handles a SPLIT with an
unused result in an order that changes from one conversion to the next: in some runs it
quantises the SPLIT, in others it leaves it in float between a DEQUANTIZE and QUANTIZEs
(the "float SPLIT" of the int8 CNN+LSTM, about half the conversions of one model in one
process). A dense layer split four ways with one result unused shows the same (4 of 20
conversions float), with all four results used none of 20.

:class:`UnrolledLSTM` is the same layer (a ``keras.layers.LSTM`` subclass: the same weights
``kernel (features, 4 units)``, ``recurrent_kernel (units, 4 units)``, ``bias (4 units,)``,
the same initialisers, the same maths, gates in Keras's order i, f, c, o) whose forward pass
has no multi-output op with an unused result: each gate has its own slice of the weights
(constant slices, folded by the converter into one FULLY_CONNECTED weight per gate), the
input projections of all steps are computed at once per gate and unstacked (every step
used; the forget gate's starts at step 1), and step 0, where ``h = c = 0``, skips the
recurrent products and the forget gate instead of leaving them to constant folding.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from edge.errors import ConfigError

GATES = ("input", "forget", "cell", "output")
"""Keras's gate order along the last axis of ``kernel``, ``recurrent_kernel`` and ``bias``."""


@keras.saving.register_keras_serializable(package="edge_ser")
class UnrolledLSTM(layers.LSTM):
    """``keras.layers.LSTM(units, unroll=True)`` over a fixed number of steps, returning the
    last output ``(batch, units)``, computed with per-gate builtin ops (see the module doc).

    Supports what the edge models use: zero initial state, no mask, no dropout inside the
    layer, ``return_sequences=False``, forward direction. Anything else is a
    :class:`ConfigError`.
    """

    def __init__(self, units: int, **kwargs) -> None:
        kwargs["unroll"] = True
        super().__init__(units, **kwargs)
        unsupported = [name for name in ("return_sequences", "return_state", "go_backwards",
                                         "stateful") if getattr(self, name)]
        if self.cell.dropout or self.cell.recurrent_dropout:
            unsupported.append("dropout")
        if unsupported:
            raise ConfigError(f"UnrolledLSTM: {', '.join(unsupported)} not supported; use"
                              " keras.layers.LSTM for that")

    def call(self, sequences, initial_state=None, mask=None, training=False):
        """``sequences (batch, steps, features)`` -> last output ``(batch, units)``."""
        if initial_state is not None or mask is not None:
            raise ConfigError("UnrolledLSTM: initial states and masks are not supported")
        steps = sequences.shape[1]
        if steps is None or steps < 1:
            raise ConfigError(f"UnrolledLSTM: needs a fixed number of steps, got {steps}")
        cell = self.cell
        kernel, recurrent = cell.kernel, cell.recurrent_kernel
        units = self.units
        act, gate_act = cell.activation, cell.recurrent_activation

        def cols(g: int) -> slice:
            return slice(g * units, (g + 1) * units)

        def projected(g: int, x):
            """Input projection of gate ``g`` for every step of ``x``, one per step."""
            z = ops.matmul(x, kernel[:, cols(g)])
            if cell.use_bias:
                z = z + cell.bias[cols(g)]
            return ops.unstack(z, axis=1)

        x_i, x_c, x_o = (projected(g, sequences) for g in (0, 2, 3))
        x_f = projected(1, sequences[:, 1:]) if steps > 1 else []
        # step 0: h = c = 0, so no recurrent term and no forget gate
        c = gate_act(x_i[0]) * act(x_c[0])
        h = gate_act(x_o[0]) * act(c)
        for t in range(1, steps):
            i = gate_act(x_i[t] + ops.matmul(h, recurrent[:, cols(0)]))
            f = gate_act(x_f[t - 1] + ops.matmul(h, recurrent[:, cols(1)]))
            g = act(x_c[t] + ops.matmul(h, recurrent[:, cols(2)]))
            o = gate_act(x_o[t] + ops.matmul(h, recurrent[:, cols(3)]))
            c = f * c + i * g
            h = o * act(c)
        return h


def unrollable(layer) -> bool:
    """Is ``layer`` a plain ``keras.layers.LSTM`` that :class:`UnrolledLSTM` computes exactly
    (fixed steps, last output only, no state, mask or dropout)?"""
    return (type(layer) is layers.LSTM and not layer.return_sequences
            and not layer.return_state and not layer.go_backwards and not layer.stateful
            and not layer.cell.dropout and not layer.cell.recurrent_dropout
            and layer.input.shape[1] is not None)


def with_unrolled_lstm(model: keras.Model) -> keras.Model:
    """``model`` itself when it has no :func:`unrollable` LSTM; else a copy (same weights)
    with each such LSTM replaced by an :class:`UnrolledLSTM`, so that models trained before
    the layer existed (their ``model.keras`` holds ``keras.layers.LSTM``) convert as
    deterministically as new ones."""
    if not any(unrollable(layer) for layer in model.layers):
        return model

    def clone(layer):
        if unrollable(layer):
            return UnrolledLSTM.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
