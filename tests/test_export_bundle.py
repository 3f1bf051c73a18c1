"""Export building blocks on small real models: the metadata writer, the op/dtype checks,
refusal of foreign or unusable bundles, calibration choice. No RAVDESS needed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import METADATA_NAME, Bundle, parse_metadata, read_tflite_metadata
from edge.errors import ModelError
from edge.features import FeatureSpec, Normalizer
from edge.frontend import FrontendConfig

SHAPE = (24, 8, 2)
N_CLASSES = 3


@pytest.fixture(scope="module")
def converted():
    """A small conv net (the same layer types as the CNN) as int8 and float32 TFLite."""
    import keras
    from keras import layers

    from export.convert import convert

    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(N_CLASSES, activation="softmax")(x)
    core = keras.Model(inputs, outputs, name="core")
    calibration = np.random.default_rng(0).standard_normal((32, *SHAPE)).astype(np.float32)
    return {"int8": convert(core, "int8", calibration), "float32": convert(core, "float32"),
            "calibration": calibration, "core": core}


def metadata(labels=("a", "b", "c")):
    from edge.bundle import BundleMetadata

    spec = FeatureSpec(FrontendConfig(n_mels=8, n_mfcc=8), window_seconds=0.265)
    assert spec.input_shape == SHAPE
    rng = np.random.default_rng(1)
    norm = Normalizer(rng.standard_normal((8, 2)), rng.uniform(0.5, 2.0, (8, 2)))
    return BundleMetadata(labels=tuple(labels), features=spec, normalizer=norm,
                          model={"kind": "cnn", "quantization": "int8"})


def outputs(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    from edge.interpreter import TfliteModel

    model = TfliteModel(model_bytes)
    if model.input_quantization.quantized:
        q = model.input_quantization
        x = np.clip(np.rint(x / q.scale + q.zero_point), -128, 127).astype(np.int8)
    return np.stack([model.invoke(row[None]) for row in x])


# ------------------------------------------------------------------------------------------
# Metadata writer


def test_metadata_is_embedded_and_read_back_by_the_edge_parser(converted):
    from export.embed import write_bundle_metadata

    meta = metadata()
    bundle = write_bundle_metadata(converted["int8"], meta)
    entries = read_tflite_metadata(bundle)
    back = parse_metadata(bundle)  # the checksum verified, then the content
    assert entries[METADATA_NAME] == meta.to_json().replace(b"0" * 64, back.sha256.encode())
    assert "min_runtime_version" in entries  # the converter's own entries survive
    assert back.labels == meta.labels and back.features == meta.features
    np.testing.assert_array_equal(back.normalizer.std, meta.normalizer.std)


def test_embedding_changes_nothing_the_interpreter_computes(converted):
    from export.embed import write_bundle_metadata

    x = converted["calibration"][:8]
    for q in ("int8", "float32"):
        bundle = write_bundle_metadata(converted[q], metadata())
        np.testing.assert_array_equal(outputs(bundle, x), outputs(converted[q], x))


def test_tensor_names_are_shortened_readable_and_unique(converted):
    from ai_edge_litert.interpreter import Interpreter

    from export.embed import write_bundle_metadata

    for q in ("int8", "float32"):
        before = [d["name"] for d in Interpreter(model_content=converted[q])
                  .get_tensor_details()]
        after = [d["name"] for d in Interpreter(model_content=write_bundle_metadata(
            converted[q], metadata())).get_tensor_details()]
        assert len(after) == len(before) and len(set(after)) == len(after)
        assert any(";" in n or n.startswith("core") for n in before)
        assert not any(";" in n or n.startswith("core") for n in after)
        assert all(n.split("#")[0] in b for n, b in zip(after, before))
        assert sum(map(len, after)) < sum(map(len, before))


def test_rewriting_metadata_replaces_it_without_growing(converted):
    from export.embed import embed_metadata

    once = embed_metadata(converted["int8"], METADATA_NAME, b"x" * 5000)
    twice = embed_metadata(once, METADATA_NAME, b"y" * 100)
    assert read_tflite_metadata(twice)[METADATA_NAME] == b"y" * 100
    assert list(read_tflite_metadata(twice)).count(METADATA_NAME) == 1
    assert len(twice) < len(once) - 4800  # the old payload is gone, not orphaned


def test_buffers_stay_16_byte_aligned(converted):
    from ai_edge_litert import schema_py_generated as schema

    from export.embed import BUFFER_ALIGNMENT, write_bundle_metadata

    bundle = write_bundle_metadata(converted["int8"], metadata())
    model = schema.Model.GetRootAs(bundle, 0)
    base = np.frombuffer(bundle, np.uint8).ctypes.data
    offsets = [model.Buffers(i).DataAsNumpy().ctypes.data - base
               for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    assert offsets and all(o % BUFFER_ALIGNMENT == 0 for o in offsets)


def test_normalizer_json_is_compact_and_lossless():
    rng = np.random.default_rng(3)
    mean = (rng.standard_normal((40, 2)) * [300, 0.01]).astype(np.float32)
    std = rng.uniform(1e-3, 80, (40, 2)).astype(np.float32)
    text = json.dumps(Normalizer(mean, std).to_dict())
    back = Normalizer.from_dict(json.loads(text))
    np.testing.assert_array_equal(back.mean, mean)
    np.testing.assert_array_equal(back.std, std)
    float64_reprs = json.dumps({"mean": mean.astype(float).tolist(),
                                "std": std.astype(float).tolist()})
    assert len(text) < 0.75 * len(float64_reprs)


# ------------------------------------------------------------------------------------------
# Refusals: foreign models and front ends the runtime cannot honour


def test_a_tflite_without_edge_ser_metadata_is_refused(converted, tmp_path):
    from edge.bundle import load_bundle

    path = tmp_path / "foreign.tflite"
    path.write_bytes(converted["int8"])
    with pytest.raises(ModelError, match="without edge-ser metadata"):
        load_bundle(path)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["features"]["frontend"].update(n_mfcc=99), "front end cannot be honoured"),
    (lambda d: d["features"]["frontend"].update(dither=0.1), "does not know"),
    (lambda d: d.update(frontend_hash="0123456789abcdef"), "hash"),
    (lambda d: d.update(format_version=99), "newer"),
    (lambda d: d.update(format="other"), "not an edge-ser bundle"),
])
def test_unusable_metadata_is_refused_with_a_clear_message(converted, edit, message):
    """Metadata written (and checksummed) as it is, but not usable by this runtime."""
    from edge.bundle import stamp_bundle
    from export.embed import embed_metadata

    data = metadata().to_dict()
    edit(data)
    bundle = embed_metadata(converted["int8"], METADATA_NAME, json.dumps(data).encode())
    with pytest.raises(ModelError, match="checksum mismatch"):  # not stamped: refused as such
        parse_metadata(bundle, source="bad.tflite")
    with pytest.raises(ModelError, match=message):
        parse_metadata(stamp_bundle(bundle), source="bad.tflite")


def test_not_a_tflite_is_refused():
    from export.embed import embed_metadata

    with pytest.raises(ModelError, match="not a TFLite model"):
        embed_metadata(b"PK\x03\x04 a zip file", METADATA_NAME, b"{}")


# ------------------------------------------------------------------------------------------
# Graph checks


def test_int8_graph_passes_and_float_graph_is_named_as_float(converted):
    from export.errors import ExportError
    from export.graph import require_builtin_ops, require_full_int8, summarize

    int8 = summarize(converted["int8"])
    require_full_int8(int8)
    assert int8.inputs[0].dtype == "int8" and int8.outputs[0].dtype == "int8"
    assert set(int8.tensor_types) <= {"int8", "int32"}
    flt = summarize(converted["float32"])
    require_builtin_ops(flt)
    with pytest.raises(ExportError, match="float fallback") as err:
        require_full_int8(flt)
    assert "CONV_2D" in str(err.value) and "FULLY_CONNECTED" in str(err.value)


def test_a_flex_op_is_refused_by_name(converted):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from export.errors import ExportError
    from export.graph import require_builtin_ops, require_full_int8, summarize

    model = schema.ModelT.InitFromPackedBuf(bytearray(converted["int8"]), 0)
    conv = next(c for c in model.operatorCodes
                if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.CONV_2D)
    conv.builtinCode = conv.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    conv.customCode = "FlexConv2D"
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    summary = summarize(bytes(builder.Output()))
    assert summary.custom_ops == ["FlexConv2D"]
    for check in (require_builtin_ops, require_full_int8):
        with pytest.raises(ExportError, match="FlexConv2D"):
            check(summary, what="m")


def sorting_core(shape=SHAPE):
    """A model with an op the int8 kernels lack: the converter leaves it in float between
    DEQUANTIZE and QUANTIZE even with TFLITE_BUILTINS_INT8 only."""
    import keras
    from keras import layers

    inputs = keras.Input(shape)
    x = keras.ops.sort(layers.Flatten()(inputs), axis=-1)
    return keras.Model(inputs, layers.Dense(N_CLASSES, activation="softmax")(x), name="core")


def test_float_fallback_left_by_the_converter_is_refused_by_name(converted):
    from export.convert import convert
    from export.errors import ExportError
    from export.graph import require_full_int8, summarize

    summary = summarize(convert(sorting_core(), "int8", converted["calibration"]))
    assert "float32" in summary.tensor_types
    with pytest.raises(ExportError, match="float fallback") as err:
        require_full_int8(summary, what="sorting int8")
    assert "NEG" in str(err.value) and "DEQUANTIZE" in str(err.value)


def test_a_quantised_model_with_float_input_is_refused():
    import keras
    import tensorflow as tf

    from export.errors import ExportError
    from export.graph import require_full_int8, summarize

    inputs = keras.Input((4,))
    core = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(core)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.ones((1, 4), np.float32) * i]
                                                for i in range(8))
    summary = summarize(converter.convert())  # int8 inside, float32 at the edges
    with pytest.raises(ExportError, match="QUANTIZE|DEQUANTIZE|float"):
        require_full_int8(summary)


# ------------------------------------------------------------------------------------------
# Calibration choice and comparison arithmetic


def test_calibration_clips_are_spread_over_speakers_and_labels():
    from export.data import pick_calibration
    from train.corpora import Utterance

    utts = [Utterance(Path(f"{s}-{lab}-{i}.wav"), lab, s, "c")
            for s in ("s1", "s2", "s3") for lab in ("x", "y") for i in range(10)]
    picked = pick_calibration(utts, 12, seed=0)
    assert len(picked) == 12 and len(set(picked)) == 12
    counts = {(s, lab): 0 for s in ("s1", "s2", "s3") for lab in ("x", "y")}
    for u in picked:
        counts[(u.speaker, u.label)] += 1
    assert set(counts.values()) == {2}
    assert pick_calibration(utts, 12, seed=0) == picked
    assert pick_calibration(utts, None, seed=0) == utts


def test_compare_counts_agreement_and_differences():
    from export.verify import compare

    labels = np.array([0, 1, 1, 0])
    keras_p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]], np.float32)
    int8_p = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]], np.float32)
    out = compare(labels, {"keras_float": keras_p, "tflite_float32": keras_p,
                           "tflite_int8": int8_p}, ["a", "b"])
    assert out["accuracy"] == {"keras_float": 0.75, "tflite_float32": 0.75, "tflite_int8": 1.0}
    assert out["agreement"]["int8_vs_float32"] == 0.75
    assert out["max_prob_diff"]["int8_vs_float32"] == pytest.approx(0.2)
    assert out["accuracy_gap_int8_minus_float32"] == 0.25


def test_bundle_probs_run_the_device_classifier(converted):
    from export.embed import write_bundle_metadata
    from export.verify import bundle_probs

    meta = metadata()
    model_bytes = write_bundle_metadata(converted["float32"], meta)
    bundle = Bundle(Path("m.tflite"), model_bytes, parse_metadata(model_bytes))
    x = np.random.default_rng(2).standard_normal((5, *SHAPE)).astype(np.float32)
    probs = bundle_probs(bundle, x)
    assert probs.shape == (5, N_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    expected = outputs(converted["float32"], meta.normalizer(x))[:, 0]
    np.testing.assert_allclose(probs, expected / expected.sum(axis=1, keepdims=True), atol=1e-5)


# ------------------------------------------------------------------------------------------
# Bias correction


def test_simulated_weight_rounding_is_what_the_converter_stores(converted):
    """quantize_per_channel reproduces the int8 weights in the converted FULLY_CONNECTED op."""
    from ai_edge_litert import schema_py_generated as schema

    from export.correct import quantize_per_channel

    model = schema.ModelT.InitFromPackedBuf(bytearray(converted["int8"]), 0)
    graph = model.subgraphs[0]
    fc = next(op for op in graph.operators if max(
        model.operatorCodes[op.opcodeIndex].builtinCode,
        model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
        == schema.BuiltinOperator.FULLY_CONNECTED)
    tensor = graph.tensors[fc.inputs[1]]
    stored = np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.int8).reshape(
        tensor.shape).astype(np.float64) * np.asarray(tensor.quantization.scale)[:, None]
    kernel = converted["core"].layers[-1].get_weights()[0]  # (in, out); TFLite: (out, in)
    np.testing.assert_allclose(stored, quantize_per_channel(kernel).T, rtol=0, atol=1e-7)


def _apply(model, names, x):
    """Run the named layers of ``model`` in order on ``x`` (inference mode)."""
    for name in names:
        x = model.get_layer(name)(x, training=False)
    return np.asarray(x, np.float64)


def _with_rounded_kernels(model):
    import keras

    from export.correct import quantize_per_channel

    out = keras.models.clone_model(model)
    out.set_weights(model.get_weights())
    for layer in out.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.LSTM):
            layer.set_weights([quantize_per_channel(weights[0]),
                               quantize_per_channel(weights[1]), weights[2]])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            layer.set_weights([quantize_per_channel(weights[0])] + weights[1:])
    return out


def test_bias_correction_cancels_the_mean_shift_of_rounded_weights():
    """conv (no bias) + BatchNorm, Dense and LSTM: with rounded kernels, each layer's mean
    output moves off the float model's; the corrected biases put it back."""
    import keras
    from keras import layers

    from export.correct import bias_corrected

    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 6, 2))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((12, 48))(x)
    x = layers.Dense(5, name="dense")(x)
    x = layers.LSTM(4, unroll=True, name="lstm")(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(x))
    rng = np.random.default_rng(0)
    # Not a trained network: spread the BN statistics and weights as training would.
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(0, 0.5, 8), rng.normal(0, 0.1, 8),
                    rng.uniform(0.5, 2, 8)])
    x_cal = rng.uniform(0, 1, (200, 12, 6, 2)).astype(np.float32)  # non-zero mean inputs

    corrected, record = bias_corrected(model, x_cal)
    assert set(record.layers) == {"conv", "dense", "lstm", model.layers[-1].name}
    assert record.skipped == []
    plain, fixed = _with_rounded_kernels(model), _with_rounded_kernels(corrected)
    # Each layer on its own float input: the shift its rounded kernel causes, then cancelled.
    # (The LSTM's correction is on its gates' inputs; its output is a non-linear function of
    # them, so its mean error shrinks less than a linear layer's.)
    for names, factor in ((["conv", "bn"], 0.2), (["dense"], 0.2), (["lstm"], 0.5)):
        x = keras.Model(model.inputs, model.get_layer(names[0]).input).predict(x_cal,
                                                                               verbose=0)
        ref = _apply(model, names, x)
        axes = tuple(range(ref.ndim - 1))
        before = np.abs((_apply(plain, names, x) - ref).mean(axis=axes)).max()
        after = np.abs((_apply(fixed, names, x) - ref).mean(axis=axes)).max()
        assert before > 0 and after < factor * before, (names, before, after)
    # The float model the float32 bundle is made from is untouched.
    for a, b in zip(model.get_weights(), corrected.get_weights()):
        assert a.shape == b.shape
    np.testing.assert_array_equal(model.get_layer("conv").get_weights()[0],
                                  corrected.get_layer("conv").get_weights()[0])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cnn", "cnn-lstm"])
def test_both_model_families_convert_to_full_int8_with_builtin_ops(kind):
    """The training code's own CNN and CNN+LSTM (untrained weights: the graph is what is
    tested) become int8-in, int8-out graphs of builtin int8 ops, nothing float."""
    from export.convert import convert_full_int8
    from export.graph import summarize
    from train.models import build_core

    shape = FeatureSpec().input_shape
    core = build_core(kind, shape, 8)
    x = np.clip(np.random.default_rng(0).standard_normal((16, *shape)), -5, 5)
    model_bytes = convert_full_int8(core, x.astype(np.float32), what=kind)
    summary = summarize(model_bytes)
    assert summary.float_ops == [] and summary.custom_ops == []
    assert set(summary.tensor_types) <= {"int8", "int32"}
    assert summary.inputs[0].dtype == summary.outputs[0].dtype == "int8"
    if kind == "cnn-lstm":  # the unrolled LSTM's gates, as builtin int8 ops, and no SPLIT
        assert {"LOGISTIC", "TANH", "MUL", "FULLY_CONNECTED"} <= set(summary.op_counts)
        assert "SPLIT" not in summary.op_counts
