"""Write entries into a TFLite flatbuffer's metadata table (the bundle's metadata).

The model is unpacked with the TFLite schema's object API (``ai_edge_litert``'s
``schema_py_generated``), a buffer holding the bytes and a ``Metadata(name, buffer)`` entry are
appended (replacing an entry of the same name), and the model is packed again with the ``TFL3``
file identifier. Buffers are re-packed 16-byte aligned, as the converter writes them, so
kernels that read int32 biases or float weights in place see aligned data.
:func:`edge.bundle.read_tflite_metadata` reads the result back without any of this.
"""

from __future__ import annotations

import re

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edge.bundle import (
    METADATA_NAME,
    TFLITE_IDENTIFIER,
    BundleMetadata,
    parse_metadata,
    read_tflite_metadata,
    stamp_bundle,
)
from edge.errors import ModelError
from edge.integrity import PLACEHOLDER
from export.errors import ExportError

BUFFER_ALIGNMENT = 16
"""Byte alignment of every buffer's data in the packed model (what the TFLite converter uses)."""


class _AlignedBuffer(schema.BufferT):
    """A ``BufferT`` whose data vector is written at :data:`BUFFER_ALIGNMENT`."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (flatbuffers' name)
        data = None
        if self.data is not None and len(self.data):
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def _aligned(buffer: schema.BufferT) -> _AlignedBuffer:
    out = _AlignedBuffer()
    out.data, out.offset, out.size = buffer.data, buffer.offset, buffer.size
    return out


def shorten_tensor_names(model: schema.ModelT) -> None:
    """Each tensor's name cut to its first fused op, without the Keras model's prefix
    (``core_1/b4_relu_1/Relu;core_1/b4_bn_1/...`` -> ``b4_relu_1/Relu``), kept unique: the
    same graph, still readable in a model viewer, and about 1 KB less of the CNN bundle's
    100 KiB (13 KB of the CNN+LSTM's). Nothing reads tensors by name (inputs and outputs are
    found by index)."""
    for graph in model.subgraphs or []:
        seen: set[bytes] = set()
        for i, tensor in enumerate(graph.tensors or []):
            if tensor.name is None:
                continue
            raw = tensor.name.decode("utf-8", "replace") if isinstance(
                tensor.name, bytes) else str(tensor.name)
            short = re.sub(r"^core(_\d+)?/", "", raw.split(";")[0]).encode()
            if short in seen:
                short += f"#{i}".encode()
            seen.add(short)
            tensor.name = short


def embed_metadata(model_bytes: bytes, name: str, payload: bytes, *,
                   short_names: bool = False) -> bytes:
    """A copy of ``model_bytes`` whose metadata table maps ``name`` to ``payload``.

    Parameters
    ----------
    model_bytes : bytes
        A TFLite flatbuffer (``TFL3``).
    name : str
        Metadata entry name; an existing entry of that name is replaced.
    payload : bytes
        Stored verbatim in a new buffer.
    short_names : bool
        Also shorten the tensor names (:func:`shorten_tensor_names`).

    Returns
    -------
    bytes, the re-packed TFLite flatbuffer.
    """
    if len(model_bytes) < 8 or model_bytes[4:8] != TFLITE_IDENTIFIER:
        raise ModelError("not a TFLite model (no TFL3 flatbuffer identifier)")
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    buffers = [_aligned(b) for b in (model.buffers or [])]
    metadata = list(model.metadata or [])
    data = np.frombuffer(payload, dtype=np.uint8).copy()
    existing = [m for m in metadata if _name(m) == name]
    if existing:  # overwrite its buffer in place: no orphaned copy of the old payload
        buffers[existing[0].buffer].data = data
        metadata = [m for m in metadata if m is existing[0] or _name(m) != name]
    else:
        buffers.append(_aligned(schema.BufferT()))
        buffers[-1].data = data
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(buffers) - 1
        metadata.append(entry)
    model.buffers, model.metadata = buffers, metadata
    if short_names:
        shorten_tensor_names(model)
    builder = flatbuffers.Builder(len(model_bytes) + len(payload) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _name(entry: schema.MetadataT) -> str:
    name = entry.name
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def write_bundle_metadata(model_bytes: bytes, metadata: BundleMetadata) -> bytes:
    """``model_bytes`` with ``metadata`` (as JSON) under :data:`edge.bundle.METADATA_NAME`,
    stamped with the file's checksum (:mod:`edge.integrity`).

    The metadata is embedded with the checksum placeholder, then the packed file's digest is
    written over the placeholder (same length: nothing moves). The result is read back with
    the edge's own checks before it is returned, so a bundle that the device would refuse is
    never written.
    """
    payload = metadata.to_json()
    if PLACEHOLDER.encode() not in payload:
        raise ExportError("edge-ser metadata without a checksum placeholder")
    bundle = stamp_bundle(embed_metadata(model_bytes, METADATA_NAME, payload,
                                         short_names=True))
    stored = read_tflite_metadata(bundle).get(METADATA_NAME)
    back = parse_metadata(bundle)  # checksum, structure, content: as the device reads it
    if stored != payload.replace(PLACEHOLDER.encode(), back.sha256.encode()):
        raise ExportError("edge-ser metadata did not read back from the packed model")
    return bundle
