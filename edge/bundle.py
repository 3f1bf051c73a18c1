"""Model bundles: a ``.tflite`` whose flatbuffer metadata table carries edge-ser's metadata.

The metadata is one UTF-8 JSON document stored in a TFLite buffer and named
``METADATA_NAME`` in the model's ``metadata`` table (the same place TFLite Support keeps its
metadata). It is read here with ``struct`` alone: no TensorFlow, no flatbuffers package.

Metadata document (``format_version`` 1)::

    {
      "format": "edge-ser-bundle", "format_version": 1,
      "labels": ["neutral", ...],
      "features": {"frontend": {...FrontendConfig...}, "window_seconds": 3.0,
                   "delta_width": 9},
      "frontend_hash": "16 hex digits of FrontendConfig.config_hash()",
      "normalization": {"mean": [[...]], "std": [[...]]},   # (n_mfcc, channels)
      "hop_seconds": 0.5,                                      # suggested streaming hop
      "model": {"kind": "cnn", "parameters": 81234, "quantization": "int8"},
      "training": {...},  "accuracy": {...},  "edge_ser_version": "0.1.0"
    }
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, ModelError
from edge.features import FeatureSpec, Normalizer

METADATA_NAME = "edge_ser"
FORMAT = "edge-ser-bundle"
FORMAT_VERSION = 1
TFLITE_IDENTIFIER = b"TFL3"

# Field indices in the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs).
_MODEL_BUFFERS = 4
_MODEL_METADATA = 6
_BUFFER_DATA = 0
_BUFFER_OFFSET = 1
_BUFFER_SIZE = 2
_METADATA_NAME = 0
_METADATA_BUFFER = 1


@dataclass(frozen=True)
class BundleMetadata:
    """What the runtime needs to know about a model, and what people want to read."""

    labels: tuple[str, ...]
    features: FeatureSpec
    normalizer: Normalizer
    hop_seconds: float = 0.5
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] = field(default_factory=dict)
    edge_ser_version: str = ""

    @property
    def kind(self) -> str:
        return str(self.model.get("kind", "unknown"))

    @property
    def quantization(self) -> str:
        return str(self.model.get("quantization", "unknown"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "labels": list(self.labels),
            "features": self.features.to_dict(),
            "frontend_hash": self.features.frontend.config_hash(),
            "normalization": self.normalizer.to_dict(),
            "hop_seconds": self.hop_seconds,
            "model": self.model,
            "training": self.training,
            "accuracy": self.accuracy,
            "edge_ser_version": self.edge_ser_version,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True).encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "model") -> BundleMetadata:
        """Validate and build; anything the runtime cannot honour is a :class:`ModelError`."""
        if data.get("format") != FORMAT:
            raise ModelError(f"{source}: metadata is not an edge-ser bundle's")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelError(
                f"{source}: bundle format version {version!r} is newer than this edge-ser"
                f" reads ({FORMAT_VERSION}); upgrade edge-ser"
            )
        try:
            features = FeatureSpec.from_dict(data["features"])
            normalizer = Normalizer.from_dict(data["normalization"])
            labels = tuple(str(x) for x in data["labels"])
        except KeyError as e:
            raise ModelError(f"{source}: bundle metadata lacks {e}") from None
        except ConfigError as e:
            raise ModelError(f"{source}: front end cannot be honoured: {e}") from None
        if data.get("frontend_hash") != features.frontend.config_hash():
            raise ModelError(
                f"{source}: front-end config hash {data.get('frontend_hash')!r} does not match"
                f" its config ({features.frontend.config_hash()}); the metadata is corrupt"
            )
        expected = (features.frontend.n_mfcc, features.channels)
        if normalizer.mean.shape != expected:
            raise ModelError(f"{source}: normalization has shape {normalizer.mean.shape},"
                             f" the features need {expected}")
        if len(labels) < 2:
            raise ModelError(f"{source}: bundle has {len(labels)} labels; need at least 2")
        return cls(
            labels=labels, features=features, normalizer=normalizer,
            hop_seconds=float(data.get("hop_seconds", 0.5)), model=dict(data.get("model", {})),
            training=dict(data.get("training", {})), accuracy=dict(data.get("accuracy", {})),
            edge_ser_version=str(data.get("edge_ser_version", "")),
        )


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: the flatbuffer bytes and their metadata."""

    path: Path
    model_bytes: bytes
    metadata: BundleMetadata

    @property
    def size_bytes(self) -> int:
        return len(self.model_bytes)


# --------------------------------------------------------------------------------------
# A minimal flatbuffer reader for the two tables we need
# --------------------------------------------------------------------------------------


class _Flatbuffer:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source

    def _u32(self, pos: int) -> int:
        if pos < 0 or pos + 4 > len(self.data):
            raise ModelError(f"{self.source}: corrupt TFLite flatbuffer (offset {pos})")
        return struct.unpack_from("<I", self.data, pos)[0]

    def _u16(self, pos: int) -> int:
        if pos < 0 or pos + 2 > len(self.data):
            raise ModelError(f"{self.source}: corrupt TFLite flatbuffer (offset {pos})")
        return struct.unpack_from("<H", self.data, pos)[0]

    def field_pos(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, or None."""
        vtable = table - struct.unpack_from("<i", self.data, table)[0]
        vtable_size = self._u16(vtable)
        entry = 4 + 2 * index
        if entry >= vtable_size:
            return None
        offset = self._u16(vtable + entry)
        return table + offset if offset else None

    def deref(self, pos: int) -> int:
        return pos + self._u32(pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) if absent."""
        pos = self.field_pos(table, index)
        if pos is None:
            return 0, 0
        vec = self.deref(pos)
        return vec + 4, self._u32(vec)

    def table_at(self, element_pos: int) -> int:
        return self.deref(element_pos)

    def uint(self, table: int, index: int, fmt: str = "<I", default: int = 0) -> int:
        pos = self.field_pos(table, index)
        if pos is None:
            return default
        return struct.unpack_from(fmt, self.data, pos)[0]

    def string(self, table: int, index: int) -> str:
        start, length = self.vector(table, index)
        return self.data[start:start + length].decode("utf-8", errors="replace")

    def bytes_of(self, table: int, index: int) -> bytes:
        start, length = self.vector(table, index)
        if start + length > len(self.data):
            raise ModelError(f"{self.source}: corrupt TFLite flatbuffer (buffer past the end)")
        return self.data[start:start + length]


def read_tflite_metadata(model_bytes: bytes, *, source: str = "model") -> dict[str, bytes]:
    """All entries of a TFLite model's metadata table: name -> buffer contents."""
    if len(model_bytes) < 8 or model_bytes[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{source}: not a TFLite model (no TFL3 flatbuffer identifier)")
    fb = _Flatbuffer(model_bytes, source)
    try:
        root = fb.deref(0)
        buffers_start, n_buffers = fb.vector(root, _MODEL_BUFFERS)
        meta_start, n_meta = fb.vector(root, _MODEL_METADATA)
        entries: dict[str, bytes] = {}
        for i in range(n_meta):
            entry = fb.table_at(meta_start + 4 * i)
            name = fb.string(entry, _METADATA_NAME)
            index = fb.uint(entry, _METADATA_BUFFER)
            if index >= n_buffers:
                raise ModelError(f"{source}: metadata {name!r} points past the buffer list")
            buf = fb.table_at(buffers_start + 4 * index)
            data = fb.bytes_of(buf, _BUFFER_DATA)
            offset = fb.uint(buf, _BUFFER_OFFSET, "<Q")
            if not data and offset > 1:  # buffers stored after the flatbuffer (> 2 GB models)
                size = fb.uint(buf, _BUFFER_SIZE, "<Q")
                data = model_bytes[offset:offset + size]
            entries[name] = data
        return entries
    except struct.error:
        raise ModelError(f"{source}: corrupt TFLite flatbuffer") from None


def parse_metadata(model_bytes: bytes, *, source: str = "model") -> BundleMetadata:
    """The edge-ser metadata of a TFLite model; a :class:`ModelError` if it has none."""
    entries = read_tflite_metadata(model_bytes, source=source)
    if METADATA_NAME not in entries:
        raise ModelError(
            f"{source}: a TFLite model without edge-ser metadata; export it with"
            " `ser-export RUN_DIR --int8`, or use a shipped model"
        )
    try:
        data = json.loads(entries[METADATA_NAME].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{source}: edge-ser metadata is not valid JSON (corrupt)") from None
    if not isinstance(data, dict):
        raise ModelError(f"{source}: edge-ser metadata is not a JSON object (corrupt bundle)")
    return BundleMetadata.from_dict(data, source=source)


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate a bundle file."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    return Bundle(path=p, model_bytes=data, metadata=parse_metadata(data, source=str(path)))
