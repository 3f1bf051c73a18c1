"""Model bundles: a ``.tflite`` whose flatbuffer metadata table carries edge-ser's metadata.

The metadata is one UTF-8 JSON document stored in a TFLite buffer and named
``METADATA_NAME`` in the model's ``metadata`` table (the same place TFLite Support keeps its
metadata). It is read here with ``struct`` alone: no TensorFlow, no flatbuffers package.

A bundle is checked before the interpreter sees a byte of it (:func:`parse_metadata`): its
checksum (:mod:`edge.integrity`: SHA-256 over the whole file, digest in the metadata), then
the flatbuffer's structure (:func:`edge.flatbuffer.check_model`), then the metadata's
content. A mismatch is one line, ``FILE: damaged (checksum mismatch); ...``. Bundles of
format 1 (made before the checksum) are refused: ``ser-export --rehash`` checks one and adds
the checksum.

Metadata document (``format_version`` 2)::

    {
      "format": "edge-ser-bundle", "format_version": 2,
      "integrity": {"sha256": "64 hex digits: SHA-256 of the file, these 64 read as 0s"},
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge import integrity
from edge.errors import ConfigError, ModelError, damaged_model
from edge.features import DEFAULT_HOP_SECONDS, FeatureSpec, Normalizer
from edge.flatbuffer import (  # noqa: F401  (TFLITE_IDENTIFIER: re-exported for export/)
    METADATA_ENTRY_BUFFER,
    METADATA_ENTRY_NAME,
    TFLITE_IDENTIFIER,
    buffer_extent,
    check_model,
    model_root,
)

METADATA_NAME = "edge_ser"
FORMAT = "edge-ser-bundle"
FORMAT_VERSION = 2
"""2: the metadata carries the file's checksum (``integrity``). 1: no checksum (refused)."""
LEGACY_FORMAT_VERSION = 1

_MODEL_BUFFERS = 4
_MODEL_METADATA = 6


@dataclass(frozen=True)
class BundleMetadata:
    """What the runtime needs to know about a model, and what people want to read."""

    labels: tuple[str, ...]
    features: FeatureSpec
    normalizer: Normalizer
    hop_seconds: float = DEFAULT_HOP_SECONDS
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, Any] = field(default_factory=dict)
    edge_ser_version: str = ""
    sha256: str = ""
    """The file's checksum as read from it; empty until export stamps the packed file."""

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
            "integrity": {integrity.ALGORITHM: self.sha256 or integrity.PLACEHOLDER},
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
    def from_dict(cls, data: dict[str, Any], *, source: str = "model",
                  sha256: str = "") -> BundleMetadata:
        """Validate and build; anything the runtime cannot honour is a :class:`ModelError`.
        (The checksum is not checked here: :func:`parse_metadata` does that first.)"""
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
            hop_seconds=float(data.get("hop_seconds", DEFAULT_HOP_SECONDS)),
            model=dict(data.get("model", {})),
            training=dict(data.get("training", {})), accuracy=dict(data.get("accuracy", {})),
            edge_ser_version=str(data.get("edge_ser_version", "")), sha256=sha256,
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
# Reading and checking
# --------------------------------------------------------------------------------------


def metadata_extents(model_bytes: bytes, *, source: str = "model") -> dict[str, tuple[int, int]]:
    """Every entry of a TFLite model's metadata table: name -> (start, length) of its bytes
    in ``model_bytes``."""
    fb, root = model_root(model_bytes, source)
    buffers = fb.tables(root, _MODEL_BUFFERS)
    entries: dict[str, tuple[int, int]] = {}
    for entry in fb.tables(root, _MODEL_METADATA):
        name = fb.string(entry, METADATA_ENTRY_NAME)
        index = fb.scalar(entry, METADATA_ENTRY_BUFFER, "<I")
        if index >= len(buffers):
            raise damaged_model(source, f"metadata {name!r} points past the buffer list")
        entries[name] = buffer_extent(fb, buffers[index])
    return entries


def read_tflite_metadata(model_bytes: bytes, *, source: str = "model") -> dict[str, bytes]:
    """All entries of a TFLite model's metadata table: name -> buffer contents (unchecked)."""
    return {name: model_bytes[start:start + n]
            for name, (start, n) in metadata_extents(model_bytes, source=source).items()}


def metadata_document(model_bytes: bytes, source: str) -> tuple[int, bytes, dict[str, Any]]:
    """(start in ``model_bytes``, bytes, parsed JSON) of the edge-ser metadata entry, not yet
    verified; a foreign model or unreadable JSON is a :class:`ModelError`."""
    extents = metadata_extents(model_bytes, source=source)
    if METADATA_NAME not in extents:
        raise ModelError(
            f"{source}: a TFLite model without edge-ser metadata; export it with"
            " `ser-export RUN_DIR --int8`, or use a shipped model"
        )
    start, n = extents[METADATA_NAME]
    payload = model_bytes[start:start + n]
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise damaged_model(source, "its edge-ser metadata is not valid JSON") from None
    if not isinstance(data, dict):
        raise damaged_model(source, "its edge-ser metadata is not a JSON object")
    return start, payload, data


def _verified_digest(model_bytes: bytes, start: int, payload: bytes, data: dict[str, Any],
                     source: str) -> str:
    """The bundle's checksum, verified; "" for a bundle of a newer format, whose scheme this
    edge-ser may not know (its metadata is then refused as newer)."""
    version = data.get("format_version")
    newer = isinstance(version, int) and version > FORMAT_VERSION
    record = data.get("integrity")
    if isinstance(record, dict) and integrity.ALGORITHM in record:
        digest = record[integrity.ALGORITHM]
        position = integrity.digest_position(payload, digest) if integrity.is_digest(
            digest) else None
        if position is None or not integrity.matches(model_bytes, start + position, digest):
            raise damaged_model(source, "checksum mismatch")
        return digest
    if newer:
        return ""
    if record is None and version == LEGACY_FORMAT_VERSION and data.get("format") == FORMAT:
        features = data.get("features")
        try:  # every format-1 bundle of edge-ser 0.1 also predates this model input
            FeatureSpec.check_input_version(
                features.get("input_version") if isinstance(features, dict) else None)
        except ConfigError as e:
            raise ModelError(f"{source}: a bundle of format 1: {e}") from None
        raise ModelError(
            f"{source}: a bundle of format 1, made before bundles carried a checksum, so"
            " damage to it cannot be ruled out; refused. Check it and add the checksum on the"
            f" host: ser-export --rehash {source} --out NEW.tflite (or export it again)")
    raise damaged_model(source, "no readable checksum in its metadata")


def parse_metadata(model_bytes: bytes, *, source: str = "model") -> BundleMetadata:
    """The edge-ser metadata of a bundle, after checking that the bundle is intact.

    In this order: the metadata entry is found (struct reads, bounds-checked), the file's
    checksum is verified, the whole flatbuffer's structure is checked, and the metadata is
    validated. Each failure is a :class:`ModelError` of one line ("damaged (...)" for damage).
    """
    start, payload, data = metadata_document(model_bytes, source)
    digest = _verified_digest(model_bytes, start, payload, data, source)
    check_model(model_bytes, source)
    return BundleMetadata.from_dict(data, source=source, sha256=digest)


def stamp_bundle(model_bytes: bytes, *, source: str = "model") -> bytes:
    """``model_bytes`` (edge-ser metadata written with the checksum placeholder) with its
    checksum filled in (what export does last)."""
    start, payload, _ = metadata_document(model_bytes, source)
    position = integrity.digest_position(payload, integrity.PLACEHOLDER)
    if position is None:
        raise ModelError(f"{source}: its metadata has no checksum placeholder to fill")
    return integrity.stamp(model_bytes, start + position)


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read a bundle file and check it (:func:`parse_metadata`) before anything runs it."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    return Bundle(path=p, model_bytes=data, metadata=parse_metadata(data, source=str(path)))
