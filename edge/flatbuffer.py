"""A bounds-checked reader of TFLite flatbuffers and a structural check of the model, with
``struct`` and numpy only (no flatbuffers package, no TensorFlow).

Every read is checked against the end of the file, every vector's length against the bytes
left, so a damaged file raises :class:`edge.errors.ModelError` (never ``struct.error``,
``IndexError`` or a loop over a garbage length). :func:`check_model` walks the whole model
(operator codes, subgraphs, tensors, operators, buffers, metadata, signatures) and refuses
what would make the interpreter read out of bounds or abort: indices past their tables,
constant data whose size does not match its tensor, quantisation scales that are not finite
and positive, an operator that reads a tensor nothing has written yet. It does not interpret
operator options.

Field indices follow the TFLite schema (``tensorflow/compiler/mlir/lite/schema/schema.fbs``).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from edge.errors import ModelError, damaged_model

TFLITE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# Model
_MODEL_VERSION, _MODEL_OPCODES, _MODEL_SUBGRAPHS = 0, 1, 2
_MODEL_BUFFERS, _MODEL_METADATA, _MODEL_SIGNATURES = 4, 6, 7
# OperatorCode
_OPCODE_DEPRECATED, _OPCODE_CUSTOM, _OPCODE_BUILTIN = 0, 1, 3
# SubGraph
_SG_TENSORS, _SG_INPUTS, _SG_OUTPUTS, _SG_OPERATORS = 0, 1, 2, 3
# Tensor
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_QUANT, _T_VARIABLE, _T_SPARSITY = 0, 1, 2, 4, 5, 6
# QuantizationParameters
_Q_SCALE, _Q_ZERO_POINT, _Q_DIMENSION = 2, 3, 6
# Operator
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS, _OP_INTERMEDIATES = 0, 1, 2, 4, 8
# Buffer
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
# Metadata
METADATA_ENTRY_NAME, METADATA_ENTRY_BUFFER = 0, 1
# SignatureDef and TensorMap
_SIG_INPUTS, _SIG_OUTPUTS, _SIG_SUBGRAPH = 0, 1, 4
_MAP_TENSOR = 1

TENSOR_TYPE_SIZES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16,
                     12: 8, 15: 4, 16: 2, 18: 2}
"""Bytes per element of the fixed-size TFLite tensor types (FLOAT32, FLOAT16, INT32, UINT8,
INT64, BOOL, INT16, COMPLEX64, INT8, FLOAT64, COMPLEX128, UINT64, UINT32, UINT16, BFLOAT16)."""
OTHER_TENSOR_TYPES = frozenset({5, 13, 14, 17})
"""STRING, RESOURCE, VARIANT, INT4: known types whose data size is not elements * size."""
MAX_BUILTIN_OPERATOR = 255
"""Builtin operator codes above this are not TFLite operators (the schema ends near 210)."""
MAX_ELEMENTS = 1 << 31
"""A tensor larger than this is refused (an edge-ser model's largest has about 10^5)."""


@dataclass(frozen=True)
class Table:
    """A flatbuffer table: its position and its vtable's field offsets."""

    pos: int
    fields: tuple[int, ...]
    """Offset of each field from ``pos`` (0 = absent), from the vtable."""


class Flatbuffer:
    """Bounds-checked reads from one flatbuffer; every failure is a "damaged" ModelError."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.size = len(data)

    def fail(self, what: str) -> Exception:
        return damaged_model(self.source, f"corrupt TFLite flatbuffer: {what}")

    def _unpack(self, fmt: str, pos: int, size: int):
        if pos < 0 or pos + size > self.size:
            raise self.fail(f"read of {size} bytes at {pos} past the end ({self.size} bytes)")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u16(self, pos: int) -> int:
        return self._unpack("<H", pos, 2)

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos, 4)

    def i32(self, pos: int) -> int:
        return self._unpack("<i", pos, 4)

    def table(self, pos: int) -> Table:
        """The table at ``pos`` (its vtable checked to lie inside the file)."""
        vtable = pos - self.i32(pos)
        vsize = self.u16(vtable)
        inline = self.u16(vtable + 2)
        if vsize < 4 or vsize % 2 or pos + inline > self.size:
            raise self.fail(f"bad vtable at {vtable} for the table at {pos}")
        if vtable + vsize > self.size:
            raise self.fail(f"vtable at {vtable} runs past the end")
        fields = struct.unpack_from(f"<{(vsize - 4) // 2}H", self.data, vtable + 4)
        if any(f and (f < 4 or f >= max(inline, 4)) for f in fields):
            raise self.fail(f"a field of the table at {pos} lies outside it")
        return Table(pos, fields)

    def root(self) -> Table:
        return self.table(self.u32(0))

    def field(self, t: Table, index: int) -> int | None:
        """Absolute position of field ``index`` of ``t``, or None when absent."""
        if index >= len(t.fields) or not t.fields[index]:
            return None
        return t.pos + t.fields[index]

    def scalar(self, t: Table, index: int, fmt: str, default: int | float = 0):
        pos = self.field(t, index)
        return default if pos is None else self._unpack(fmt, pos, struct.calcsize(fmt))

    def ref(self, t: Table, index: int) -> int | None:
        """Target of the offset field ``index`` (a table, vector or string), or None."""
        pos = self.field(t, index)
        return None if pos is None else pos + self.u32(pos)

    def subtable(self, t: Table, index: int) -> Table | None:
        target = self.ref(t, index)
        return None if target is None else self.table(target)

    def vector(self, t: Table, index: int, element_size: int) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) when absent."""
        vec = self.ref(t, index)
        if vec is None:
            return 0, 0
        n = self.u32(vec)
        if vec + 4 + n * element_size > self.size:
            raise self.fail(f"vector of {n} elements at {vec} runs past the end")
        return vec + 4, n

    def tables(self, t: Table, index: int) -> list[Table]:
        start, n = self.vector(t, index, 4)
        return [self.table(start + 4 * i + self.u32(start + 4 * i)) for i in range(n)]

    def numbers(self, t: Table, index: int, dtype: str) -> np.ndarray:
        """A vector of numbers (numpy ``dtype`` such as ``"<i4"``), copied."""
        size = np.dtype(dtype).itemsize
        start, n = self.vector(t, index, size)
        return np.frombuffer(self.data, dtype=dtype, count=n, offset=start).copy() if n \
            else np.zeros(0, dtype=dtype)

    def bytes_range(self, t: Table, index: int) -> tuple[int, int]:
        """(start, length) of a ``[ubyte]`` vector or string field; (0, 0) when absent."""
        return self.vector(t, index, 1)

    def string(self, t: Table, index: int) -> str:
        start, n = self.bytes_range(t, index)
        return self.data[start:start + n].decode("utf-8", errors="replace")


def model_root(data: bytes, source: str) -> tuple[Flatbuffer, Table]:
    """The reader and the ``Model`` table of a TFLite file; a ModelError for anything that is
    not one (no ``TFL3`` identifier) or whose root is unreadable."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{source}: not a TFLite model (no TFL3 flatbuffer identifier)")
    fb = Flatbuffer(data, source)
    return fb, fb.root()


def buffer_extent(fb: Flatbuffer, buffer: Table) -> tuple[int, int]:
    """(start, length) of a Buffer's bytes: its ``data`` vector, or the ``offset``/``size``
    range after the flatbuffer (models over 2 GB); (0, 0) when empty."""
    start, n = fb.bytes_range(buffer, BUFFER_DATA)
    if n:
        return start, n
    offset = fb.scalar(buffer, BUFFER_OFFSET, "<Q")
    if offset > 1:
        size = fb.scalar(buffer, BUFFER_SIZE, "<Q")
        if offset + size > fb.size:
            raise fb.fail(f"buffer at {offset} of {size} bytes runs past the end")
        return offset, size
    return 0, 0


def check_model(data: bytes, source: str) -> None:
    """Refuse, with a "damaged" ModelError, a TFLite model the interpreter should not see.

    Checks: schema version 3; every table, vector and string inside the file; operator
    codes in range; each subgraph's input, output, operator and intermediate tensor indices
    inside its tensor list; each tensor's type known, shape non-negative, buffer index inside
    the buffer list, constant data exactly ``elements * element size`` bytes, quantisation
    scales finite and positive with one zero point each and a valid quantised dimension;
    operators in an order where each reads only tensors that are inputs, constants, variables
    or outputs of earlier operators; metadata and signature indices in range.
    """
    fb, model = model_root(data, source)
    version = fb.scalar(model, _MODEL_VERSION, "<I")
    if version != SCHEMA_VERSION:
        raise fb.fail(f"schema version {version}, not {SCHEMA_VERSION}")
    buffers = [buffer_extent(fb, b) for b in fb.tables(model, _MODEL_BUFFERS)]
    codes = fb.tables(model, _MODEL_OPCODES)
    for k, code in enumerate(codes):
        builtin = max(fb.scalar(code, _OPCODE_DEPRECATED, "<b"),
                      fb.scalar(code, _OPCODE_BUILTIN, "<i"))
        if not 0 <= builtin <= MAX_BUILTIN_OPERATOR:
            raise fb.fail(f"operator code {k} is {builtin}, not a TFLite operator")
        fb.string(code, _OPCODE_CUSTOM)
    subgraphs = fb.tables(model, _MODEL_SUBGRAPHS)
    if not subgraphs:
        raise fb.fail("no subgraphs")
    sizes = [_check_subgraph(fb, g, k, buffers, len(codes)) for k, g in enumerate(subgraphs)]
    for entry in fb.tables(model, _MODEL_METADATA):
        fb.string(entry, METADATA_ENTRY_NAME)
        if fb.scalar(entry, METADATA_ENTRY_BUFFER, "<I") >= len(buffers):
            raise fb.fail("a metadata entry points past the buffer list")
    for sig in fb.tables(model, _MODEL_SIGNATURES):
        k = fb.scalar(sig, _SIG_SUBGRAPH, "<I")
        if k >= len(subgraphs):
            raise fb.fail(f"a signature names subgraph {k} of {len(subgraphs)}")
        for side in (_SIG_INPUTS, _SIG_OUTPUTS):
            for tmap in fb.tables(sig, side):
                fb.string(tmap, 0)
                if fb.scalar(tmap, _MAP_TENSOR, "<I") >= sizes[k]:
                    raise fb.fail("a signature names a tensor past the tensor list")


def _check_subgraph(fb: Flatbuffer, graph: Table, k: int, buffers: list[tuple[int, int]],
                    n_codes: int) -> int:
    """Check one subgraph; returns its number of tensors."""
    tensors = fb.tables(graph, _SG_TENSORS)
    n = len(tensors)
    ready = set()
    for i, tensor in enumerate(tensors):
        if _check_tensor(fb, tensor, f"subgraph {k} tensor {i}", buffers):
            ready.add(i)
    inputs = fb.numbers(graph, _SG_INPUTS, "<i4")
    outputs = fb.numbers(graph, _SG_OUTPUTS, "<i4")
    for name, idx in (("input", inputs), ("output", outputs)):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise fb.fail(f"subgraph {k} {name} tensor index out of range")
    ready.update(int(i) for i in inputs)
    for j, op in enumerate(fb.tables(graph, _SG_OPERATORS)):
        where = f"subgraph {k} operator {j}"
        if fb.scalar(op, _OP_OPCODE, "<I") >= n_codes:
            raise fb.fail(f"{where} has an operator code past the list")
        fb.subtable(op, _OP_OPTIONS)
        op_in = fb.numbers(op, _OP_INPUTS, "<i4")
        op_out = fb.numbers(op, _OP_OUTPUTS, "<i4")
        inter = fb.numbers(op, _OP_INTERMEDIATES, "<i4")
        if (op_in.size and (op_in.min() < -1 or op_in.max() >= n)) or (
                op_out.size and (op_out.min() < 0 or op_out.max() >= n)) or (
                inter.size and (inter.min() < 0 or inter.max() >= n)):
            raise fb.fail(f"{where} names a tensor past the tensor list")
        unwritten = [int(i) for i in op_in if i >= 0 and int(i) not in ready]
        if unwritten:
            raise fb.fail(f"{where} reads tensor {unwritten[0]}, which has no data and is"
                          " written by no earlier operator")
        ready.update(int(i) for i in op_out)
        ready.update(int(i) for i in inter)
    missing = [int(i) for i in outputs if int(i) not in ready]
    if missing:
        raise fb.fail(f"subgraph {k} output tensor {missing[0]} is never written")
    return n


def _check_tensor(fb: Flatbuffer, tensor: Table, where: str,
                  buffers: list[tuple[int, int]]) -> bool:
    """Check one tensor; True when it holds data (a constant) or is a variable."""
    shape = fb.numbers(tensor, _T_SHAPE, "<i4")
    if shape.size and shape.min() < 0:
        raise fb.fail(f"{where} has a negative dimension")
    elements = math.prod(int(d) for d in shape)
    if elements > MAX_ELEMENTS:
        raise fb.fail(f"{where} has {elements} elements")
    ttype = fb.scalar(tensor, _T_TYPE, "<b")
    if ttype not in TENSOR_TYPE_SIZES and ttype not in OTHER_TENSOR_TYPES:
        raise fb.fail(f"{where} has unknown type {ttype}")
    index = fb.scalar(tensor, _T_BUFFER, "<I")
    if index >= len(buffers):
        raise fb.fail(f"{where} points past the buffer list")
    length = buffers[index][1]
    if length and ttype in TENSOR_TYPE_SIZES and fb.field(tensor, _T_SPARSITY) is None \
            and length != elements * TENSOR_TYPE_SIZES[ttype]:
        raise fb.fail(f"{where} holds {length} bytes for {elements} elements")
    quant = fb.subtable(tensor, _T_QUANT)
    if quant is not None:
        scale = fb.numbers(quant, _Q_SCALE, "<f4")
        zero = fb.numbers(quant, _Q_ZERO_POINT, "<i8")
        if scale.size:
            if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
                raise fb.fail(f"{where} has a quantisation scale that is not finite and"
                              " positive")
            if zero.size != scale.size:
                raise fb.fail(f"{where} has {scale.size} scales and {zero.size} zero points")
            if scale.size > 1:
                dim = fb.scalar(quant, _Q_DIMENSION, "<i")
                if not 0 <= dim < shape.size or int(shape[dim]) != scale.size:
                    raise fb.fail(f"{where} has {scale.size} scales along dimension {dim}")
    return bool(length) or bool(fb.scalar(tensor, _T_VARIABLE, "<B"))
