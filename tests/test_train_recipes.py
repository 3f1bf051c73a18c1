"""The training options that change the targets (distillation, mixup, label smoothing) each
change what is learned: one short fit per option on the same inputs and seed, against a plain
fit that is repeated to show the fits are deterministic (so a difference is the option's)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.features import Normalizer
from train.fit import TrainConfig, fit_model

pytestmark = pytest.mark.slow

SHAPE = (297, 40, 2)
N_CLASSES = 4


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(N_CLASSES), 6)
    x = rng.normal(size=(len(y),) + SHAPE).astype(np.float32)
    x[:, :, :4, 0] += y[:, None, None]  # a learnable cue per class
    return x, y


def _fit(data, *, teacher=None, group: np.ndarray | None = None, **options):
    """One short fit; ``group`` (a corpus per row) makes the class weights per pair."""
    x, y = data
    if group is not None:
        y = group * N_CLASSES + y
    cfg = TrainConfig(kind="cnn", epochs=1, batch_size=8, spec_augment=None, seed=3,
                      **options)
    norm = Normalizer(np.zeros(SHAPE[1:], np.float32), np.ones(SHAPE[1:], np.float32))
    result = fit_model(N_CLASSES, norm, lambda epoch: (x, y), y, cfg, teacher=teacher,
                       verbose=False, label_groups=1 if group is None else 2)
    return result.model


def _same(a, b) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


@pytest.fixture(scope="module")
def plain(data):
    return _fit(data)


def test_a_plain_fit_is_repeatable(data, plain):
    assert _same(plain, _fit(data))


@pytest.mark.parametrize("option", [{"mixup": 0.4}, {"label_smoothing": 0.2}])
def test_mixup_and_label_smoothing_change_the_fit(data, plain, option):
    assert not _same(plain, _fit(data, **option))


def test_distillation_follows_the_teacher(data, plain):
    """A teacher that always says class 0 pulls the student towards class 0."""
    x, _ = data

    def teacher(inputs: np.ndarray) -> np.ndarray:
        out = np.zeros((len(inputs), N_CLASSES), np.float32)
        out[:, 0] = 1.0
        return out

    taught = _fit(data, teacher=teacher, distill=0.9)
    assert not _same(plain, taught)
    class0 = [float(m.predict(x, verbose=0)[:, 0].mean()) for m in (plain, taught)]
    assert class0[1] > class0[0] + 0.05, class0



def test_corpus_balance_weighs_each_corpus_class_pair(data, plain):
    """Two corpora with the same class mix: the (corpus, class) weights are the pooled ones,
    the same fit; a corpus with another mix (one class over-represented) changes them."""
    _, y = data
    same_mix = np.zeros(len(y), np.int64)
    for c in range(N_CLASSES):
        same_mix[np.flatnonzero(y == c)[::2]] = 1
    assert _same(plain, _fit(data, group=same_mix))
    other_mix = (y == 0).astype(np.int64)
    other_mix[np.flatnonzero(y == 1)[:2]] = 1
    assert not _same(plain, _fit(data, group=other_mix))
