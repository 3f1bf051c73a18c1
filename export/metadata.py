"""What an exported bundle says about itself (:class:`edge.bundle.BundleMetadata`).

Kept compact — it is inside the model file, and the CNN bundle's budget is 100 KB: the
training record is reduced to what a person or the runtime needs (corpora, speakers, seed,
epochs, calibration), and the normalisation is written with the shortest decimals that give
back the same float32 values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge import __version__
from edge.bundle import BundleMetadata
from edge.features import Normalizer
from export.run import RunConfig


def _shortest(values: np.ndarray) -> list:
    """Nested lists of floats whose decimal form is the shortest that round-trips float32."""
    return [[float(str(np.float32(v))) for v in row] for row in np.asarray(values, np.float32)]


class CompactNormalizer(Normalizer):
    """A :class:`Normalizer` whose JSON uses the shortest float32 decimals (lossless: reading
    it back gives bit-identical mean and std)."""

    def to_dict(self) -> dict[str, Any]:
        return {"mean": _shortest(self.mean), "std": _shortest(self.std)}


def rounded(value: Any, digits: int = 4) -> Any:
    """``value`` with every float rounded to ``digits`` decimals (nested dicts and lists)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def training_record(run: RunConfig, calibration: dict[str, Any] | None) -> dict[str, Any]:
    """Corpora, speakers and recipe of the training run (and the int8 calibration set);
    empty speaker lists are left out."""
    record: dict[str, Any] = {
        "corpora": [str(s.get("corpus", "?")) for s in run.training.get("data") or []],
        **{f"{side}_speakers": run.speakers(side) for side in ("train", "val", "test")
           if run.speakers(side)},
        **{k: run.training[k] for k in ("seed", "epochs", "aug_copies", "loss")
           if k in run.training},
    }
    if calibration is not None:
        record["int8_calibration"] = {
            k: calibration[k] for k in ("clips", "augmented_copies", "inputs", "input_clip_sd")}
        record["int8_calibration"]["bias_correction"] = bool(calibration.get("bias_correction"))
    return record


def bundle_metadata(run: RunConfig, quantization: str, *, calibration: dict[str, Any] | None,
                    held_out: dict[str, Any] | None = None) -> BundleMetadata:
    """The metadata a bundle of ``run`` carries.

    Parameters
    ----------
    quantization : "int8" or "float32"
    calibration : the int8 calibration set's description (None for float32)
    held_out : this export's own held-out verification summary, or None
    """
    accuracy: dict[str, Any] = {"training": rounded(run.accuracy)}
    if held_out is not None:
        accuracy["export"] = held_out
    model = {k: run.model[k] for k in ("kind", "parameters", "multiply_adds") if k in run.model}
    model["quantization"] = quantization
    normalizer = CompactNormalizer(run.normalizer.mean, run.normalizer.std)
    return BundleMetadata(labels=run.labels, features=run.spec, normalizer=normalizer,
                          hop_seconds=run.hop_seconds, model=model,
                          training=training_record(run, calibration), accuracy=accuracy,
                          edge_ser_version=__version__)
