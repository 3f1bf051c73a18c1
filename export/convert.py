"""Keras ``core`` model -> float32 or full-int8 TFLite flatbuffer bytes.

The path that works with TF 2.21 / Keras 3 (FINDINGS.md): ``core.export(format=
"tf_saved_model")`` with a batch-1 input signature, then ``TFLiteConverter.from_saved_model``.
The int8 model takes *normalised* features (the device normalises in numpy first) and has int8
input and output; only ``TFLITE_BUILTINS_INT8`` ops are allowed, so the converter fails rather
than leaving a float op in the graph.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from edge.native_stderr import filtered_stderr  # noqa: E402
from export.errors import ExportError  # noqa: E402
from export.graph import require_full_int8, summarize  # noqa: E402
from train.lstm import with_unrolled_lstm  # noqa: E402

QUANTIZATIONS = ("int8", "float32")


def _saved_model(core, directory: str) -> str:
    """Export ``core`` as a SavedModel with a batch-1 float32 signature; returns the path."""
    path = os.path.join(directory, "saved_model")
    shape = (1, *(int(d) for d in core.input_shape[1:]))
    core.export(path, format="tf_saved_model", verbose=False,
                input_signature=[tf.TensorSpec(shape, tf.float32, name="features")])
    return path


def representative_dataset(inputs: np.ndarray):
    """A converter representative dataset: each normalised input ``(frames, n_mfcc, channels)``
    as a batch of one, float32."""
    data = np.asarray(inputs, dtype=np.float32)

    def generate() -> Iterator[list[np.ndarray]]:
        for x in data:
            yield [x[None]]

    return generate


def _first_error(message: str, log: list[str]) -> str:
    """The most telling line of a converter failure (ops it could not convert, if named)."""
    lines = [ln.strip() for ln in message.splitlines() + log if ln.strip()]
    for pattern in (r"ops? (are|is) not supported|not supported by|Flex|Select TF",
                    r"error:", r"."):
        for line in lines:
            if re.search(pattern, line):
                return line[:300]
    return "no message"


def convert(core, quantization: str, calibration: np.ndarray | None = None) -> bytes:
    """TFLite flatbuffer of ``core``.

    Parameters
    ----------
    core : keras.Model
        Takes normalised features ``(batch, frames, n_mfcc, channels)``, outputs probabilities.
        A ``keras.layers.LSTM`` in it (a model trained before :mod:`train.lstm`) is converted
        as the :class:`train.lstm.UnrolledLSTM` with the same weights.
    quantization : "int8" or "float32"
    calibration : np.ndarray [shape=(n, frames, n_mfcc, channels)] or None
        Normalised training-fold inputs that set the int8 ranges (required for int8).

    Returns
    -------
    bytes, the ``.tflite`` flatbuffer (no edge-ser metadata yet).
    """
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"quantization {quantization!r}: choose {' or '.join(QUANTIZATIONS)}")
    if quantization == "int8" and (calibration is None or len(calibration) == 0):
        raise ExportError("int8 conversion needs a non-empty calibration set")
    with tempfile.TemporaryDirectory(prefix="edge-ser-export-") as tmp:
        saved = _saved_model(with_unrolled_lstm(core), tmp)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.exclude_conversion_metadata = True  # 96 bytes the device never reads
        if quantization == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative_dataset(calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        log: list[str] = []
        try:
            with filtered_stderr(log):
                return bytes(converter.convert())
        except Exception as e:  # the converter raises ConverterError, RuntimeError, ...
            raise ExportError(f"TFLite {quantization} conversion failed:"
                              f" {_first_error(str(e), log)}") from None


def convert_full_int8(core, calibration: np.ndarray, *, what: str = "model") -> bytes:
    """:func:`convert` to int8, checked to be full-integer with builtin ops only.

    One conversion, no retries: the converter is deterministic on these models (the CNN+LSTM's
    LSTM is :class:`train.lstm.UnrolledLSTM`, whose graph has no SPLIT with an unused result,
    the cause of the float SPLIT that ``keras.layers.LSTM`` left in about half the
    conversions). Raises :class:`ExportError` naming the float or custom ops, if any.
    """
    model_bytes = convert(core, "int8", calibration)
    require_full_int8(summarize(model_bytes), what=what)
    return model_bytes
