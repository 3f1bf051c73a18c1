"""What a TFLite flatbuffer contains: its operators and tensor types, and the checks an edge
bundle must pass (builtin ops only; for int8, no float tensor anywhere in the graph).

Parsed with the TFLite schema (``ai_edge_litert.schema_py_generated``), not an interpreter,
so no delegate hides operators behind a ``DELEGATE`` node.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ai_edge_litert import schema_py_generated as schema

from edge.bundle import TFLITE_IDENTIFIER
from edge.errors import ModelError
from export.errors import ExportError

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if k.isupper()}
FLOAT_TYPES = ("float32", "float16", "float64", "bfloat16")
INTEGER_TYPES = ("int8", "int32")
"""Tensor types a full-int8 graph may hold: int8 activations/weights, int32 biases/shapes."""


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "scale": self.scale, "zero_point": self.zero_point}


@dataclass(frozen=True)
class OpUse:
    """One operator node: its name (builtin name or custom code) and its tensors' types."""

    name: str
    custom: bool
    tensor_types: tuple[str, ...]


@dataclass(frozen=True)
class GraphSummary:
    """Operators and tensors of a TFLite model."""

    size_bytes: int
    ops: tuple[OpUse, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    tensor_types: dict[str, int]
    """How many tensors of each type (all subgraphs)."""
    subgraphs: int

    @property
    def op_counts(self) -> dict[str, int]:
        """Operator name -> number of nodes, sorted by name."""
        return dict(sorted(Counter(op.name for op in self.ops).items()))

    @property
    def custom_ops(self) -> list[str]:
        """Names of non-builtin operators (custom and Flex/SELECT_TF_OPS), sorted, unique."""
        return sorted({op.name for op in self.ops if op.custom})

    @property
    def float_ops(self) -> list[str]:
        """Operators that read or write a float tensor, sorted, unique."""
        return sorted({op.name for op in self.ops if set(op.tensor_types) & set(FLOAT_TYPES)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes,
            "ops": self.op_counts,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "tensor_types": dict(sorted(self.tensor_types.items())),
            "subgraphs": self.subgraphs,
        }


def _str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")


def summarize(model_bytes: bytes) -> GraphSummary:
    """Operators, tensor types, inputs and outputs of a ``.tflite`` flatbuffer."""
    if len(model_bytes) < 8 or model_bytes[4:8] != TFLITE_IDENTIFIER:
        raise ModelError("not a TFLite model (no TFL3 flatbuffer identifier)")
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    codes = model.operatorCodes or []
    ops: list[OpUse] = []
    types: Counter = Counter()
    for graph in model.subgraphs or []:
        tensors = graph.tensors or []
        tensor_type = [_TYPE_NAMES.get(t.type, f"type{t.type}") for t in tensors]
        types.update(tensor_type)
        for op in graph.operators or []:
            code = codes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            custom = builtin == schema.BuiltinOperator.CUSTOM
            name = _str(code.customCode) if custom else _OP_NAMES.get(builtin, f"OP{builtin}")
            used = [i for i in list(op.inputs if op.inputs is not None else [])
                    + list(op.outputs if op.outputs is not None else []) if i >= 0]
            ops.append(OpUse(name, custom, tuple(tensor_type[i] for i in used)))
    main = (model.subgraphs or [None])[0]

    def info(index: int) -> TensorInfo:
        t = main.tensors[index]
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
        zero = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(
            q.zeroPoint) else 0
        return TensorInfo(_str(t.name), _TYPE_NAMES.get(t.type, f"type{t.type}"),
                          tuple(int(d) for d in (t.shape if t.shape is not None else [])),
                          scale, zero)

    inputs = tuple(info(i) for i in (main.inputs if main is not None else []))
    outputs = tuple(info(i) for i in (main.outputs if main is not None else []))
    return GraphSummary(len(model_bytes), tuple(ops), inputs, outputs, dict(types),
                        len(model.subgraphs or []))


def require_builtin_ops(summary: GraphSummary, *, what: str = "model") -> None:
    """Raise :class:`ExportError` naming any custom or Flex (SELECT_TF_OPS) operator."""
    if summary.custom_ops:
        raise ExportError(f"{what}: the converter produced non-builtin ops"
                          f" ({', '.join(summary.custom_ops)}); the edge runs builtin ops only")


def require_full_int8(summary: GraphSummary, *, what: str = "model") -> None:
    """Raise :class:`ExportError` unless every tensor is int8/int32 and the model's input and
    output are int8; the message names the operators that touch anything else."""
    require_builtin_ops(summary, what=what)
    if summary.float_ops:
        raise ExportError(f"{what}: float fallback inside the int8 graph: ops"
                          f" {', '.join(summary.float_ops)} read or write float tensors")
    odd = sorted(set(summary.tensor_types) - set(INTEGER_TYPES))
    if odd:
        users = sorted({op.name for op in summary.ops if set(op.tensor_types) & set(odd)})
        raise ExportError(f"{what}: tensors of type {', '.join(odd)} in the int8 graph"
                          f" (ops: {', '.join(users) or 'none'})")
    for side, tensors in (("input", summary.inputs), ("output", summary.outputs)):
        bad = [f"{t.name} is {t.dtype}" for t in tensors if t.dtype != "int8" or not t.scale]
        if bad:
            raise ExportError(f"{what}: model {side} is not quantised int8 ({'; '.join(bad)})")
