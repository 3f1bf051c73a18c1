"""``ser-export --rehash OLD --out NEW``: add the checksum to a bundle made before bundles
carried one (format 1), after checking that the bundle is the one its export wrote.

Checks, in order (any failure: one line, nothing written):

1. OLD is a format-1 edge-ser bundle (a bundle that already has a checksum is verified and
   left alone);
2. its SHA-256 equals a reference: ``--expect-sha256``, or the ``sha256`` that the export
   recorded in ``OLD.export.json`` beside it (``--unchecked`` skips this; then damage to the
   weights cannot be ruled out);
3. its metadata is one this edge-ser honours, and its flatbuffer passes
   :func:`edge.flatbuffer.check_model`;
4. NEW (the same model, metadata format 2 with the checksum) gives bit-identical raw outputs
   to OLD on seeded random inputs, both run by the interpreter in a child process (so a model
   that crashes the runtime ends the child, not this command).

Needs numpy, flatbuffers and the TFLite schema module of ai-edge-litert, not TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge import integrity
from edge.bundle import (
    FORMAT,
    FORMAT_VERSION,
    LEGACY_FORMAT_VERSION,
    METADATA_NAME,
    BundleMetadata,
    metadata_document,
    parse_metadata,
    stamp_bundle,
)
from edge.errors import ConfigError, ModelError, damaged_model
from edge.flatbuffer import check_model
from export.files import write_atomic

INPUTS_COMPARED = 4
"""Seeded random inputs on which OLD and NEW must give identical raw outputs."""
CHILD_TIMEOUT_SECONDS = 120

_CHILD = r"""
import hashlib, json, sys
import numpy as np
from edge.interpreter import TfliteModel
out = {}
for path in sys.argv[2:]:
    model = TfliteModel(open(path, "rb").read(), source=path)
    rng = np.random.default_rng(0)
    h = hashlib.sha256()
    for _ in range(int(sys.argv[1])):
        if model.input_dtype == np.int8:
            x = rng.integers(-128, 128, model.input_shape).astype(np.int8)
        else:
            x = rng.standard_normal(model.input_shape).astype(np.float32)
        h.update(model.invoke(x).tobytes())
    out[path] = h.hexdigest()
print(json.dumps(out))
"""


def _reference(old: Path, expect_sha256: str | None, unchecked: bool) -> tuple[str | None, str]:
    """(expected SHA-256 of OLD or None, where it comes from)."""
    if expect_sha256 is not None:
        if not integrity.is_digest(expect_sha256.lower()):
            raise ConfigError(f"--expect-sha256 {expect_sha256!r}: give 64 hex digits")
        return expect_sha256.lower(), "--expect-sha256"
    report = export_report(old)
    if report.is_file():
        try:
            recorded = json.loads(report.read_text()).get("sha256")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if integrity.is_digest(recorded):
            return recorded, str(report)
    if unchecked:
        return None, "none (--unchecked)"
    raise ConfigError(f"{old}: no reference to check it against ({report} with its export's"
                      " sha256 is missing); pass --expect-sha256 HEX, or --unchecked to add the"
                      " checksum without knowing the file is undamaged")


def export_report(bundle: Path) -> Path:
    """``model.tflite`` -> ``model.export.json``."""
    return bundle.with_name(f"{bundle.stem}.export.json")


def _same_outputs(old: bytes, new: bytes, source: str) -> None:
    """Run both models in a child interpreter; refuse unless their raw outputs are equal."""
    with tempfile.TemporaryDirectory(prefix="edge-ser-rehash-") as tmp:
        paths = [os.path.join(tmp, "old.tflite"), os.path.join(tmp, "new.tflite")]
        for path, data in zip(paths, (old, new)):
            Path(path).write_bytes(data)
        try:
            done = subprocess.run([sys.executable, "-c", _CHILD, str(INPUTS_COMPARED), *paths],
                                  capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise damaged_model(source, "the interpreter did not finish running it") from None
    if done.returncode < 0:
        raise damaged_model(source, f"it crashes the TFLite interpreter (signal"
                                    f" {-done.returncode})")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelError(f"{source}: the TFLite interpreter cannot run it ({last[:300]})")
    try:
        digests = json.loads(done.stdout.strip().splitlines()[-1])
        same = digests[paths[0]] == digests[paths[1]]
    except (IndexError, ValueError, KeyError, TypeError):
        raise ModelError(f"{source}: the interpreter check printed no result") from None
    if not same:
        raise ModelError(f"{source}: the re-packed model computes something else; not"
                         " written (a bug: please report it)")


def rehash(old: str | os.PathLike, out: str | os.PathLike, *,
           expect_sha256: str | None = None, unchecked: bool = False) -> dict[str, Any]:
    """Check the format-1 bundle ``old`` and write it with a checksum to ``out``.

    Returns a summary: paths, SHA-256 of both files, the checksum, sizes and the reference
    used. ``out`` may be ``old`` (replaced atomically). ``OLD.export.json``, when present, is
    copied beside ``out`` with the new size and SHA-256 and a ``rehash`` record.
    """
    old, out = Path(old), Path(out)
    if out.suffix != ".tflite":
        raise ConfigError(f"--out {out}: the bundle's name must end in .tflite")
    if not old.is_file():
        raise ModelError(f"{old}: no such model file")
    data = old.read_bytes()
    source = str(old)
    _, _, document = metadata_document(data, source)
    if document.get("integrity") is not None or document.get("format_version") != \
            LEGACY_FORMAT_VERSION:
        meta = parse_metadata(data, source=source)  # raises if damaged or unreadable
        raise ConfigError(f"{old}: already carries a checksum (format {FORMAT_VERSION},"
                          f" sha256 {meta.sha256[:16]}..., verified); nothing to do")
    if document.get("format") != FORMAT:
        raise ModelError(f"{old}: metadata is not an edge-ser bundle's")
    expected, where = _reference(old, expect_sha256, unchecked)
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and actual != expected:
        raise damaged_model(source, f"its SHA-256 {actual[:16]}... is not the {expected[:16]}..."
                                    f" recorded in {where}")
    BundleMetadata.from_dict(document, source=source)
    check_model(data, source)

    from export.embed import embed_metadata  # flatbuffers + the TFLite schema (host side)

    stamped = {**document, "format_version": FORMAT_VERSION,
               "integrity": {integrity.ALGORITHM: integrity.PLACEHOLDER}}
    payload = json.dumps(stamped, sort_keys=True).encode("utf-8")
    new = stamp_bundle(embed_metadata(data, METADATA_NAME, payload), source=str(out))
    meta = parse_metadata(new, source=str(out))
    _same_outputs(data, new, source)

    write_atomic(out, new)
    summary = {"old": str(old), "out": str(out), "old_sha256": actual,
               "sha256": hashlib.sha256(new).hexdigest(), "checksum": meta.sha256,
               "old_size_bytes": len(data), "size_bytes": len(new), "reference": where,
               "inputs_compared": INPUTS_COMPARED}
    report = export_report(old)
    try:
        record = json.loads(report.read_text()) if report.is_file() else None
    except (OSError, ValueError):
        record = None  # the reference check read it already; an unreadable copy is not copied
    if isinstance(record, dict):
        record.update(bundle=out.name, size_bytes=len(new), sha256=summary["sha256"])
        if isinstance(record.get("sizes_bytes"), dict) and record.get("quantization"):
            record["sizes_bytes"][record["quantization"]] = len(new)
        record["rehash"] = {k: summary[k] for k in ("old_sha256", "old_size_bytes",
                                                    "checksum", "reference")}
        write_atomic(export_report(out), (json.dumps(record, indent=2) + "\n").encode())
        summary["report"] = str(export_report(out))
    return summary


