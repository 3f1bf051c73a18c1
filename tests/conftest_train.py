"""Helpers for the training tests: tiny synthetic WAV files named like real corpora."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_wav(path: Path, seconds: float = 0.5, *, freq: float = 220.0, sample_rate: int = 16000,
              level: float = 0.3, lead_silence: float = 0.1) -> Path:
    """A 16-bit mono WAV: ``lead_silence`` s of zeros, then a tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = level * np.sin(2 * np.pi * freq * t)
    x[: int(lead_silence * sample_rate)] = 0.0
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path


def make_tree(root: Path, names: list[str], **kwargs) -> list[Path]:
    """Write one tiny WAV per relative name under ``root`` (distinct tones)."""
    return [write_wav(root / name, freq=150.0 + 7.0 * i, **kwargs) for i, name in enumerate(names)]
