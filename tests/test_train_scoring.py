"""``ser-train`` scores held-out speakers as the device does (:mod:`train.scoring` through
:mod:`edge.batch`): for the fold bundle, its result per recording is ``predict_file``'s, bit for
bit, and its interim accuracy counts the recogniser's interims at the default hop."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module
from conftest_edge import fold_bundle

require_module("keras")  # train.scoring runs Keras models

from edge.audio import load  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.classifier import Classifier  # noqa: E402
from edge.features import DEFAULT_HOP_SECONDS  # noqa: E402
from edge.predict import predict_file  # noqa: E402
from edge.recognizer import Recognizer  # noqa: E402
from train.corpora import read_corpus  # noqa: E402
from train.dataset import load_recordings  # noqa: E402
from train.scoring import clip_predictions, interim_accuracy, predicted_labels  # noqa: E402

pytestmark = pytest.mark.data


class BundleModel:
    """The fold bundle through the device's classifier, called as ``train.fit.predict``
    calls a Keras model."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.output_shape = (None, len(classifier.labels))

    def predict(self, x: np.ndarray, batch_size: int = 64, verbose: int = 0) -> np.ndarray:
        return self.classifier.probabilities(x)


def test_held_out_scores_are_predicts_and_listens(ravdess_dir, tmp_path):
    clf = Classifier(load_bundle(fold_bundle()))
    spec, labels = clf.spec, list(clf.labels)
    held_out = {"ravdess-01", "ravdess-02", "ravdess-03", "ravdess-04"}
    utts = sorted((u for u in read_corpus(ravdess_dir).utterances if u.speaker in held_out),
                  key=lambda u: str(u.path))[::12]
    recs = load_recordings(utts, spec, cache_dir=tmp_path, progress=False).recordings
    model = BundleModel(clf)
    probs = clip_predictions(model, recs, spec)
    right, interims = 0, 0
    for i, u in enumerate(utts):
        file = predict_file(u.path, clf)
        if file.label is None:
            assert np.isnan(probs[i]).all(), u.path
        else:
            np.testing.assert_array_equal(probs[i], [file.probs[k] for k in labels],
                                          err_msg=str(u.path))
        rec = Recognizer(clf.bundle, classifier=clf, hop_seconds=DEFAULT_HOP_SECONDS)
        said = [r.label for r in rec.push(load(u.path, spec.frontend.sample_rate))
                + rec.finish() if r.event == "interim"]
        right += sum(s == u.label for s in said)
        interims += len(said)
    assert (predicted_labels(probs) >= 0).all()  # every clip of RAVDESS has an utterance
    y = np.array([labels.index(u.label) for u in utts])
    got = interim_accuracy(model, recs, y, spec)
    assert got["n"] == interims > len(utts)
    assert got["accuracy"] == pytest.approx(right / interims)
