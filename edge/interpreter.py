"""One TFLite interpreter behind one predict function, whichever runtime is installed.

Backends, in order of preference: ``ai-edge-litert`` (LiteRT, numpy 2, aarch64 wheels),
``tflite-runtime`` (the last release, for 32-bit Raspberry Pi OS and numpy < 2), and the
interpreter inside a full TensorFlow install (``tensorflow.lite``). The module is imported by
name only when the ones before it are missing, so an edge install with LiteRT never touches
TensorFlow. The loop that uses a :class:`TfliteModel` never knows which runtime it runs on.

int8 at the edges: the input's scale and zero point are read from the interpreter and exposed
as :class:`Quantization`; the output is dequantised as ``(q - zero_point) * scale`` in float.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edge.errors import ModelError, RuntimeMissingError
from edge.native_stderr import filtered_stderr

# (pip package, module, attribute path of the Interpreter class), in order of preference.
BACKENDS: tuple[tuple[str, str, str], ...] = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "Interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow", "tensorflow", "lite.Interpreter"),
)

INSTALL_HINT = (
    "no TFLite interpreter is installed; run `pip install ai-edge-litert`"
    " (32-bit Raspberry Pi OS: `pip install tflite-runtime 'numpy<2'`)"
)


def find_backend(preferred: str | None = None) -> tuple[str, Callable[..., Any]]:
    """The first importable backend: ``(pip package name, Interpreter class)``.

    ``preferred`` (a pip package name from :data:`BACKENDS`) restricts the search to that one.
    Raises :class:`RuntimeMissingError` naming the ``pip install`` when none is importable.
    """
    candidates = BACKENDS
    if preferred is not None:
        candidates = tuple(b for b in BACKENDS if b[0] == preferred)
        if not candidates:
            names = ", ".join(b[0] for b in BACKENDS)
            raise RuntimeMissingError(f"unknown interpreter backend {preferred!r}; use {names}")
    for package, module_name, attribute in candidates:
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in attribute.split("."):
            found = getattr(found, name, None)
        if found is not None:
            return package, found
    if preferred is not None:
        raise RuntimeMissingError(f"interpreter backend {preferred!r} is not installed;"
                                  f" run `pip install {preferred}`")
    raise RuntimeMissingError(INSTALL_HINT)


@dataclass(frozen=True)
class Quantization:
    """Affine int8 quantisation of a tensor: ``real = (q - zero_point) * scale``.

    ``scale == 0`` means the tensor is not quantised (float).
    """

    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


class TfliteModel:
    """A TFLite model with one input and one output tensor, ready to invoke.

    Parameters
    ----------
    model_bytes : bytes
        The ``.tflite`` flatbuffer.
    threads : int
        Interpreter threads (XNNPACK is applied by default by every backend).
    source : str
        Name used in error messages (the file path).
    backend : str or None
        Force one backend (``"ai-edge-litert"``, ``"tflite-runtime"``, ``"tensorflow"``).
    """

    def __init__(self, model_bytes: bytes, *, threads: int = 1, source: str = "model",
                 backend: str | None = None) -> None:
        if threads < 1:
            raise ModelError(f"threads={threads}: must be >= 1")
        self.backend, interpreter_class = find_backend(backend)
        self.source = source
        try:
            with filtered_stderr():
                self._interpreter = interpreter_class(model_content=model_bytes,
                                                      num_threads=threads)
                self._interpreter.allocate_tensors()
            inputs = self._interpreter.get_input_details()
            outputs = self._interpreter.get_output_details()
        except Exception as e:  # ValueError, RuntimeError, ... from the native runtime
            raise ModelError(f"{source}: the TFLite interpreter refused the model"
                             f" ({_reason(e)})") from None
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{source}: model has {len(inputs)} inputs and {len(outputs)}"
                             " outputs; an edge-ser model has one of each")
        self._input, self._output = inputs[0], outputs[0]
        for name, detail in (("input", self._input), ("output", self._output)):
            if detail["dtype"] not in (np.int8, np.float32):
                raise ModelError(f"{source}: model {name} is {np.dtype(detail['dtype']).name};"
                                 " edge-ser runs int8 or float32 models")
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in self._input["shape"])
        self.output_shape: tuple[int, ...] = tuple(int(d) for d in self._output["shape"])
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
        self.input_quantization = _quantization(self._input, source)
        self.output_quantization = _quantization(self._output, source)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Run the model on one input (``input_shape``, ``input_dtype``); the raw output.

        Returns
        -------
        np.ndarray [shape=output_shape], ``output_dtype`` (int8 scores or float32), a copy.
        A failure inside the interpreter is a :class:`ModelError` (one line), not a crash of
        the caller's loop with the runtime's own exception.
        """
        try:
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output["index"]).copy()
        except Exception as e:  # RuntimeError, ValueError from the native runtime
            raise ModelError(f"{self.source}: the TFLite interpreter failed to run the model"
                             f" ({_reason(e)})") from None

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """The real values of a raw output, float32."""
        q = self.output_quantization
        if not q.quantized:
            return np.asarray(raw, dtype=np.float32)
        return ((raw.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale))


def _reason(error: Exception) -> str:
    """The first line of a runtime error's message (its type when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _quantization(detail: dict[str, Any], source: str) -> Quantization:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if detail["dtype"] == np.float32:
        return Quantization(0.0, 0)
    if not scale or not np.isfinite(scale) or scale < 0:
        raise ModelError(f"{source}: int8 tensor without usable quantisation parameters"
                         f" (scale {scale}); re-export the model")
    return Quantization(float(scale), int(zero_point))
