"""What an exported bundle says about itself (:class:`edge.bundle.BundleMetadata`).

Kept compact — it is inside the model file, and the CNN bundle's budget is 100 KB: the
training record is reduced to what a person or the runtime needs (corpora, speakers, seed,
epochs, calibration), and the normalisation is written with the shortest decimals that give
back the same float32 values (:meth:`edge.features.Normalizer.to_dict`).
"""

from __future__ import annotations

from typing import Any

from edge import __version__
from edge.bundle import BundleMetadata
from export.run import RunConfig


def rounded(value: Any, digits: int = 4) -> Any:
    """``value`` with every float rounded to ``digits`` decimals (nested dicts and lists)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def _compact_accuracy(accuracy: dict[str, Any]) -> dict[str, Any]:
    """The run's accuracy record as a bundle carries it: a cross-validation taken from
    another run (``ser-train --cv-from``) keeps only its differences of the recipe (the run
    directory has its path, command and versions); empty groups are left out."""
    out = {k: v for k, v in accuracy.items() if v != {}}
    cv = out.get("cv_from")
    if isinstance(cv, dict):
        out["cv_from"] = {"differences": cv.get("differences", {})}
    return out


def training_record(run: RunConfig, calibration: dict[str, Any] | None) -> dict[str, Any]:
    """Corpora, speakers and recipe of the training run (and the int8 calibration set);
    empty speaker lists are left out."""
    record: dict[str, Any] = {
        "corpora": [str(s.get("corpus", "?")) for s in run.training.get("data") or []],
        **({"extra_corpora": [str(s.get("corpus", "?")) for s in run.training["extra_data"]]}
           if run.training.get("extra_data") else {}),
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
    accuracy: dict[str, Any] = {"training": rounded(_compact_accuracy(run.accuracy))}
    if held_out is not None:
        accuracy["export"] = held_out
    model = {k: run.model[k] for k in ("kind", "parameters", "multiply_adds") if k in run.model}
    model["quantization"] = quantization
    return BundleMetadata(labels=run.labels, features=run.spec, normalizer=run.normalizer,
                          hop_seconds=run.hop_seconds, model=model,
                          training=training_record(run, calibration), accuracy=accuracy,
                          edge_ser_version=__version__)
