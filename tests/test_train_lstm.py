"""train.lstm.UnrolledLSTM: the same layer as keras.layers.LSTM (weights, maths, training),
whose int8 conversion is full-integer every time (keras.layers.LSTM's is not)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import require_module  # noqa: E402

keras = require_module("keras")

from keras import layers  # noqa: E402

from edge.errors import ConfigError  # noqa: E402
from train.lstm import UnrolledLSTM, with_unrolled_lstm  # noqa: E402

STEPS, FEATURES, UNITS = 11, 12, 8


def twins(seed: int = 0):
    """A keras.layers.LSTM model and an UnrolledLSTM model with the same weights."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((STEPS, FEATURES))
    ref = keras.Model(inputs, layers.Dense(3, activation="softmax")(
        layers.LSTM(UNITS, unroll=True, name="lstm")(inputs)))
    inputs = keras.Input((STEPS, FEATURES))
    ours = keras.Model(inputs, layers.Dense(3, activation="softmax")(
        UnrolledLSTM(UNITS, name="lstm")(inputs)))
    rng = np.random.default_rng(seed)
    # trained-looking weights: a non-trivial forget bias and recurrent kernel
    ref.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in ref.get_weights()])
    ours.set_weights(ref.get_weights())
    return ref, ours


def inputs(n: int = 32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, STEPS, FEATURES)).astype(np.float32)


def test_same_weights_same_outputs_as_keras_lstm():
    ref, ours = twins()
    lstm = ours.get_layer("lstm")
    assert isinstance(lstm, layers.LSTM) and lstm.unroll
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in ref.get_weights()]
    assert ours.count_params() == ref.count_params()
    x = inputs()
    np.testing.assert_allclose(ours.predict(x, verbose=0), ref.predict(x, verbose=0),
                               atol=1e-6)
    hidden = keras.Model(ours.inputs, lstm.output).predict(x, verbose=0)
    assert hidden.shape == (len(x), UNITS) and np.abs(hidden).max() > 0.1


def test_initialised_and_trained_like_keras_lstm():
    """Same initialisers (forget bias 1), and one gradient step moves both models alike."""
    ref, ours = twins()
    fresh = UnrolledLSTM(UNITS)
    fresh.build((None, STEPS, FEATURES))
    bias = keras.ops.convert_to_numpy(fresh.cell.bias)
    np.testing.assert_array_equal(bias[UNITS:2 * UNITS], 1.0)
    x, y = inputs(), np.arange(32) % 3
    for model in (ref, ours):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        model.train_on_batch(x, y)
    for a, b in zip(ref.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_saved_and_loaded_without_custom_objects(tmp_path):
    _, ours = twins()
    ours.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("lstm")) is UnrolledLSTM
    x = inputs(4)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), ours.predict(x, verbose=0))


@pytest.mark.parametrize("kwargs", [{"return_sequences": True}, {"go_backwards": True},
                                    {"dropout": 0.1}, {"recurrent_dropout": 0.1}])
def test_what_it_does_not_compute_is_refused(kwargs):
    with pytest.raises(ConfigError, match="not supported"):
        UnrolledLSTM(UNITS, **kwargs)


def test_models_with_keras_lstm_are_swapped_with_the_same_weights():
    ref, _ = twins()
    swapped = with_unrolled_lstm(ref)
    assert type(swapped.get_layer("lstm")) is UnrolledLSTM
    assert type(ref.get_layer("lstm")) is layers.LSTM  # the original is untouched
    x = inputs()
    np.testing.assert_allclose(swapped.predict(x, verbose=0), ref.predict(x, verbose=0),
                               atol=1e-6)
    cnn = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    assert with_unrolled_lstm(cnn) is cnn


def test_int8_conversion_is_full_integer_every_time():
    """Eight conversions in a row of the same model: all full int8, one flatbuffer, with the
    gates as builtin int8 ops and no SPLIT at all."""
    require_module("tensorflow")
    from export.convert import convert_full_int8
    from export.graph import summarize

    _, ours = twins()
    x = inputs(64)
    digests = set()
    for _ in range(8):
        model_bytes = convert_full_int8(ours, x, what="unrolled lstm")  # raises on float ops
        digests.add(hashlib.sha256(model_bytes).hexdigest())
    assert len(digests) == 1
    ops = summarize(model_bytes).op_counts
    assert "SPLIT" not in ops
    assert {"FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL", "ADD", "UNPACK"} <= set(ops)
