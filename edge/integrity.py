"""A bundle's checksum: SHA-256 over every byte of the file, the digest's own 64 characters
read as ``0``.

The digest lives in the bundle's metadata JSON, ``"integrity": {"sha256": "<64 hex>"}``.
Export writes the metadata with :data:`PLACEHOLDER` there (64 zeros, the same length as a
digest, so the packed layout never moves), hashes the packed file as it is, and writes the
digest over the placeholder (:func:`stamp`). The device finds the digest in the metadata,
hashes the file with those 64 bytes read as zeros and compares (:func:`file_digest`). Every
byte counts: the flatbuffer tables, the weights, the metadata JSON (its whitespace too) and
anything appended after the flatbuffer; a change anywhere, the digest included, is a mismatch.
"""

from __future__ import annotations

import hashlib
import hmac
import re

ALGORITHM = "sha256"
DIGEST_LENGTH = 64
PLACEHOLDER = "0" * DIGEST_LENGTH
"""What export writes where the digest goes, before it is known."""
_HEX = re.compile(r"[0-9a-f]{64}")


def is_digest(value: object) -> bool:
    """Is ``value`` 64 lowercase hexadecimal characters?"""
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


def digest_position(payload: bytes, digest: str) -> int | None:
    """Offset in ``payload`` (the metadata JSON) of the one quoted occurrence of ``digest``,
    or None when it occurs there not exactly once."""
    needle = b'"' + digest.encode("ascii") + b'"'
    if payload.count(needle) != 1:
        return None
    return payload.index(needle) + 1


def file_digest(model_bytes: bytes, position: int) -> str:
    """SHA-256 (hex) of ``model_bytes`` with the 64 bytes at ``position`` read as ``0``s."""
    view = memoryview(model_bytes)
    h = hashlib.sha256()
    h.update(view[:position])
    h.update(PLACEHOLDER.encode("ascii"))
    h.update(view[position + DIGEST_LENGTH:])
    return h.hexdigest()


def matches(model_bytes: bytes, position: int, digest: str) -> bool:
    """Does the file's digest (with ``position`` zeroed) equal ``digest``?"""
    return hmac.compare_digest(file_digest(model_bytes, position), digest)


def stamp(model_bytes: bytes, position: int) -> bytes:
    """``model_bytes`` with the placeholder at ``position`` replaced by the file's digest."""
    if model_bytes[position:position + DIGEST_LENGTH] != PLACEHOLDER.encode("ascii"):
        raise ValueError(f"no checksum placeholder at byte {position}")
    digest = file_digest(model_bytes, position).encode("ascii")
    return model_bytes[:position] + digest + model_bytes[position + DIGEST_LENGTH:]
