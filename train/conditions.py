"""The named room conditions held-out speakers are scored under, and the one ``--conditions``
option type that ``ser-train`` and ``ser-bench`` both use.

Importable without SciPy or librosa (``ser-bench`` runs without the train extra): only
rendering a condition's audio (:meth:`Condition.__call__`) and its cache key import
:mod:`train.room`.
"""

from __future__ import annotations

from dataclasses import dataclass

import click
import numpy as np


@dataclass(frozen=True)
class Condition:
    """A deterministic room condition: the recording as a microphone would meet it."""

    name: str
    gain_db: float = 0.0
    rt60: float | None = None
    """Reverberation time of the synthetic room, seconds; None: no room."""
    drr_db: float = 0.0
    noise: str | None = None
    """One of :data:`train.room.NOISE_KINDS`; None: no noise."""
    snr_db: float = 20.0
    device_rate: int | None = None
    """Captured at this rate (stereo) and resampled back, Hz; None: not."""

    def key(self) -> str:
        """Short hash of the parameters (part of the feature cache key)."""
        from train.room import transform_key

        return transform_key(self)

    def __call__(self, x: np.ndarray, sample_rate: int, rng: np.random.Generator
                 ) -> np.ndarray:
        """The recording ``x`` (float, at ``sample_rate``) under this condition, float32."""
        from train import room

        y = np.asarray(x, dtype=np.float64)
        if self.rt60 is not None:
            y = room.reverberate(y, room.room_response(sample_rate, self.rt60, self.drr_db,
                                                       rng))
        if self.noise is not None:
            y = room.add_noise(y, room.noise(self.noise, y.size, rng, sample_rate),
                               self.snr_db)
        y = y * 10.0 ** (self.gain_db / 20.0)
        if self.device_rate is not None:
            y = room.capture_at(y, sample_rate, self.device_rate)
        return room.to_16_bit(y).astype(np.float32)


CONDITIONS = {
    "quiet": Condition("quiet", gain_db=-24.0),
    "reverb": Condition("reverb", rt60=0.5, drr_db=0.0),
    "noise": Condition("noise", noise="pink", snr_db=10.0),
    "combined": Condition("combined", rt60=0.5, drr_db=0.0, noise="pink", snr_db=15.0,
                          gain_db=-12.0, device_rate=44100),
}
"""The conditions ``ser-train`` and ``ser-bench`` report beside the clean figure, in report
order (see :data:`DESCRIPTIONS`)."""

NAMES = tuple(CONDITIONS)

DESCRIPTIONS = {
    "quiet": "24 dB quieter (a speaker a few metres away)",
    "reverb": "a reverberant room (RT60 0.5 s, DRR 0 dB)",
    "noise": "pink noise at 10 dB SNR",
    "combined": "reverb + pink noise at 15 dB SNR + 12 dB quieter, captured at 44.1 kHz"
                " stereo and resampled",
}
"""What each condition is, for reports' legends."""


def parse(text: str) -> tuple[str, ...]:
    """``quiet,noise`` -> those names in :data:`NAMES` order; ``all`` -> every one; ``none``
    or empty -> none. Raises ValueError naming the unknown ones and the choices."""
    names = [v.strip().lower() for v in text.split(",") if v.strip()]
    if names in ([], ["none"]):
        return ()
    if names == ["all"]:
        return NAMES
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: choose from {', '.join(NAMES)}, all or none")
    return tuple(n for n in NAMES if n in names)


class ConditionsType(click.ParamType):
    """``--conditions NAME,...``: :func:`parse` as a click type (bad names: exit 2)."""

    name = "NAME,..."

    def convert(self, value, param, ctx) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


CONDITIONS_HELP = (f"Room conditions the held-out speakers are also scored under: any of"
                   f" {', '.join(NAMES)} (comma-separated), 'all' or 'none'.")
