"""The interpreter wrapper and the classifier: backends, int8 edges, the folded input map."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import require_module
from conftest_edge import fold_bundle, shipped

from edge.bundle import load_bundle
from edge.classifier import Classifier, input_map, to_probabilities
from edge.errors import ModelError, RuntimeMissingError
from edge.features import FeatureSpec
from edge.interpreter import BACKENDS, TfliteModel, find_backend
from edge.predict import predict_file

SPEC = FeatureSpec()


@pytest.fixture(scope="module")
def int8_bundle():
    return load_bundle(shipped())


@pytest.fixture(scope="module")
def float_bundle(int8_bundle):
    """The float32 twin of the default int8 bundle (same training run)."""
    return load_bundle(shipped(f"{int8_bundle.metadata.kind}-float32"))


@pytest.fixture(scope="module")
def windows():
    """Unnormalised model inputs of real-looking signals: a tone and chirps with pauses, cut
    into utterances by the device's own path."""
    from edge.utterance import recording_frames, recording_segments, utterance_inputs

    sr = SPEC.frontend.sample_rate
    t = np.arange(2 * sr) / sr
    rng = np.random.default_rng(0)
    out = []
    for f0 in (140.0, 220.0, 310.0):
        x = np.zeros(4 * sr)
        x[sr:3 * sr] = 0.1 * np.sin(2 * np.pi * f0 * t * (1 + 0.2 * np.sin(2 * np.pi * 3 * t)))
        x = (x + 0.003 * rng.standard_normal(x.size)).astype(np.float32)
        mel, levels = recording_frames(x, SPEC)
        (seg,) = recording_segments(levels, SPEC)
        out.extend(utterance_inputs(mel[seg.start:seg.end], SPEC,
                                    levels=levels[seg.start:seg.end]))
    return out


def test_first_installed_backend_is_litert():
    require_module("ai_edge_litert", "pip install ai-edge-litert")  # not in one lean venv
    package, interpreter = find_backend()
    assert package == "ai-edge-litert"
    assert interpreter.__module__.startswith("ai_edge_litert")


def test_missing_backend_names_the_pip_install():
    # a backend not installed here: tflite-runtime, or LiteRT in the tflite-runtime lean venv
    absent = "ai-edge-litert" if importlib.util.find_spec("tflite_runtime") else "tflite-runtime"
    with pytest.raises(RuntimeMissingError, match=rf"pip install {absent}"):
        find_backend(absent)
    with pytest.raises(RuntimeMissingError, match="unknown interpreter backend"):
        find_backend("onnx")
    assert [b[0] for b in BACKENDS] == ["ai-edge-litert", "tflite-runtime", "tensorflow"]


def test_int8_model_edges(int8_bundle):
    model = TfliteModel(int8_bundle.model_bytes)
    assert model.input_shape == (1, *int8_bundle.metadata.features.input_shape)
    assert model.input_dtype == np.int8 and model.output_dtype == np.int8
    assert model.input_quantization.quantized and model.output_quantization.quantized
    raw = model.invoke(np.zeros(model.input_shape, dtype=np.int8))
    assert raw.dtype == np.int8 and raw.shape == model.output_shape
    q = model.output_quantization
    np.testing.assert_allclose(model.dequantize(raw),
                               (raw.astype(np.float64) - q.zero_point) * q.scale, rtol=1e-6)


def test_refuses_what_is_not_a_model():
    with pytest.raises(ModelError, match="refused"):
        TfliteModel(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64, source="junk.tflite")
    with pytest.raises(ModelError, match="threads"):
        TfliteModel(b"", threads=0)


def test_input_map_is_normalise_then_quantise():
    rng = np.random.default_rng(1)
    mean = rng.normal(0, 20, (40, 2))
    std = rng.uniform(0.3, 30, (40, 2))
    x = (mean + std * rng.normal(0, 1.5, (297, 40, 2))).astype(np.float32)
    scale, zero_point = 0.08, 23
    q = input_map(mean, std, scale, zero_point)(x)
    reference = np.clip(np.round((x - mean) / std / scale + zero_point), -128, 127)
    assert q.dtype == np.int8
    # float32 folding can move a value sitting on a rounding boundary by one step, no more
    assert np.abs(q.astype(int) - reference).max() <= 1
    assert np.mean(q.astype(int) == reference) > 0.999
    f = input_map(mean, std, 0.0, 0)(x)
    assert f.dtype == np.float32
    np.testing.assert_allclose(f, (x - mean) / std, rtol=1e-4, atol=1e-4)


def test_to_probabilities():
    p = to_probabilities(np.array([0.5, 0.25, 0.2578125]))  # an int8 softmax, off by 1/128
    assert p.sum() == pytest.approx(1.0, abs=1e-6) and p.argmax() == 0
    logits = to_probabilities(np.array([2.0, -1.0, 0.0]))
    assert logits.sum() == pytest.approx(1.0, abs=1e-6) and logits.argmax() == 0
    assert np.allclose(to_probabilities(np.zeros(4)), 0.25)


def test_classifier_int8_and_float_agree(int8_bundle, float_bundle, windows):
    """The int8 bundle stays close to its float32 twin on the same windows."""
    c8, c32 = Classifier(int8_bundle), Classifier(float_bundle)
    assert c32.model.input_dtype == np.float32 and not c32.quantized_output
    for w in windows:
        a, b = c8.classify_features(w), c32.classify_features(w)
        assert a.scores is not None and len(a.scores) == len(c8.labels)
        assert b.scores is None
        assert np.abs(a.probs - b.probs).max() < 0.15


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tensorflow_backend_gives_the_same_int8_outputs(int8_bundle, windows):
    """The same bundle through LiteRT and through tensorflow.lite: identical raw outputs."""
    require_module("tensorflow")
    litert = Classifier(int8_bundle)
    tf_lite = Classifier(int8_bundle, backend="tensorflow")
    assert tf_lite.model.backend == "tensorflow"
    for w in windows:
        a, b = litert.classify_features(w).scores, tf_lite.classify_features(w).scores
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_int8_labels_agree_with_float_on_held_out_clips(ravdess_dir):
    """The fold bundles (tests/models, trained without RAVDESS actors 01-04) on every clip of
    those actors, as `predict` reads them: the int8 bundle says what its float32 twin says on
    at least 90 % of the clips (its export measured 0.95), with probabilities close."""
    b8, b32 = load_bundle(fold_bundle("int8")), load_bundle(fold_bundle("float32"))
    held_out = b8.metadata.training["test_speakers"]
    assert held_out == b32.metadata.training["test_speakers"] == \
        [f"ravdess-{a:02d}" for a in range(1, 5)]
    assert not set(held_out) & set(b8.metadata.training["train_speakers"])
    clips = sorted(p for s in held_out for p in (ravdess_dir / f"Actor_{s[-2:]}").glob("*.*"))
    assert len(clips) == 240
    c8, c32 = Classifier(b8), Classifier(b32)
    labels = b8.metadata.labels
    same, diffs = [], []
    for clip in clips:
        a, b = predict_file(clip, c8), predict_file(clip, c32)
        same.append(a.label == b.label)
        diffs.append(max(abs(a.probs[k] - b.probs[k]) for k in labels))
    assert np.mean(same) >= 0.9, f"int8 and float agree on {np.mean(same):.3f} of the clips"
    assert np.mean(diffs) < 0.06, f"mean largest probability difference {np.mean(diffs):.3f}"
