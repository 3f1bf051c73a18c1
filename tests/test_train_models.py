"""The two models (budgets, names, int8-friendly layers) and the loss helpers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module  # noqa: E402

keras = require_module("keras")

from edge.errors import ConfigError  # noqa: E402
from edge.features import Normalizer  # noqa: E402
from train.fit import class_weights, focal_loss  # noqa: E402
from train.models import (  # noqa: E402
    build_core,
    check_options,
    multiply_adds,
    normalizer_of,
    with_normalization,
)

SHAPE = (297, 40, 2)


@pytest.mark.parametrize("kind,max_params,max_macs", [("cnn", 100_000, 30e6),
                                                      ("cnn-lstm", 150_000, 30e6)])
def test_models_are_compact(kind, max_params, max_macs):
    core = build_core(kind, SHAPE, 8)
    assert core.name == "core" and core.output_shape == (None, 8)
    assert core.count_params() <= max_params
    assert multiply_adds(core) <= max_macs


def test_lstm_is_unrolled_over_a_short_sequence():
    core = build_core("cnn-lstm", SHAPE, 8)
    lstm = core.get_layer("lstm")
    assert lstm.unroll and lstm.input.shape[1] <= 12


def test_window_mean_removal_ignores_constant_offsets():
    core = build_core("cnn", SHAPE, 8, cmn=True)
    x = np.random.default_rng(0).normal(size=(2,) + SHAPE).astype(np.float32)
    shifted = x + np.random.default_rng(1).normal(size=(1, 1, 40, 2)).astype(np.float32) * 3
    np.testing.assert_allclose(core.predict(x, verbose=0), core.predict(shifted, verbose=0),
                               atol=1e-5)


def test_normalization_layer_round_trip(tmp_path):
    mean = np.arange(80, dtype=np.float32).reshape(40, 2)
    std = np.linspace(0.5, 3.0, 80, dtype=np.float32).reshape(40, 2)
    model = with_normalization(build_core("cnn", SHAPE, 8), Normalizer(mean, std))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    got = normalizer_of(loaded)
    np.testing.assert_allclose(got.mean, mean)
    np.testing.assert_allclose(got.std, std, rtol=1e-6)
    x = np.random.default_rng(2).normal(size=(1,) + SHAPE).astype(np.float32) * 5 + 10
    core = loaded.get_layer("core")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               core.predict((x - mean) / std, verbose=0), atol=1e-5)


def test_focal_loss_formula():
    y = np.array([0, 1, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.05, 0.05, 0.9]], np.float32)
    got = np.asarray(focal_loss(0.25, 2.0)(y, p))
    ce = -np.log(p[np.arange(3), y])
    np.testing.assert_allclose(got, 0.25 * (1 - np.exp(-ce)) ** 2 * ce, rtol=1e-5)


def test_class_weights_balance_the_classes():
    labels = np.array([0] * 10 + [1] * 20 + [2] * 20)
    w = class_weights(labels, 4)
    np.testing.assert_allclose(w[:3] * np.bincount(labels), [50 / 3] * 3, rtol=1e-6)
    assert w[3] == 0.0


def test_epoch_selection_smooths_noise_and_skips_the_start():
    from train.fit import TrainConfig, select_epoch

    cfg = TrainConfig(epochs=20, smooth_epochs=5, min_epochs_fraction=0.4)
    # a lucky spike at epoch 3 (before 40 % of the schedule) and a lone spike at epoch 12
    acc = [0.1, 0.2, 0.9, 0.3, 0.3, 0.35, 0.4, 0.4, 0.42, 0.3, 0.3, 0.8, 0.3, 0.3,
           0.5, 0.52, 0.55, 0.55, 0.56, 0.55]
    assert select_epoch(acc, cfg) == 20  # not 3 or 12: the late plateau
    assert select_epoch(acc[:2], cfg) == 2  # too early to judge: the latest epoch


def test_unknown_model_options_are_refused_before_training():
    check_options("cnn", {"dropout": 0.4, "pooling": "attention"})
    check_options("cnn-lstm", {"lstm_units": 32})
    with pytest.raises(ConfigError, match="pooling: not an option of cnn-lstm"):
        check_options("cnn-lstm", {"pooling": "attention"})
    with pytest.raises(ConfigError, match="dropuot"):
        check_options("cnn", {"dropuot": 0.4})
