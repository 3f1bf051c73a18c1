"""Results a run takes over instead of computing them again: an earlier run's
cross-validation (``--cv-from``, also one still under way) and the folds a stopped start of
the same run finished (``folds/fold-<k>/fold-result.json``)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from edge import __version__
from edge.errors import ConfigError
from train.plan import RunPlan, log, training_dict


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_PER_FOLD = {"train_speakers", "val_speakers", "test_speakers", "augmented_speakers", "seed",
             "epochs"}
"""Training settings that differ between folds by design (``epochs`` is the fold's kept
epoch; the shipped model trains for the median of the folds')."""


def reused_cv(plan: RunPlan, labels: list[str], speakers: list[str]) -> dict[str, Any]:
    """The cross-validation of ``plan.cv_from`` for this run, checked: the same model kind,
    labels, corpora and speakers; every other difference of the recipe (front end, training
    options; compared on its fold 1) is returned under ``differences``, never hidden."""
    src = Path(plan.cv_from)
    try:
        report = json.loads((src / "report.json").read_text())
        fold_config = json.loads((src / "folds" / "fold-1" / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--cv-from {src}: not a ser-train run with folds ({e})") from None
    if plan.out.resolve() == src.resolve():
        raise ConfigError(f"--cv-from {src}: the same directory as --out (it would be"
                          " overwritten); write the new run elsewhere")
    if not isinstance(report, dict) or report.get("summary") is None or not report.get("folds"):
        raise ConfigError(f"--cv-from {src}: the run has no cross-validation")
    paths = [d["path"] for d in plan.data]
    try:
        theirs = [d["path"] for d in report["data"]]
        kind, their_speakers = report["model"]["kind"], report["speakers"]
        their_labels = report["labels"]
        other = {**_flat(fold_config["features"], "features."),
                 **{f"training.{k}": v for k, v in _flat(fold_config["training"]).items()
                    if k.split(".")[0] not in _PER_FOLD}}
    except (KeyError, TypeError) as e:
        raise ConfigError(f"--cv-from {src}: its report or fold config lacks {e} (a run of an"
                          " older ser-train?)") from None
    for what, mine, other_value in (("model", plan.train.kind, kind),
                                    ("labels", labels, their_labels),
                                    ("--data", paths, theirs),
                                    ("speakers", speakers, their_speakers)):
        if mine != other_value:
            raise ConfigError(f"--cv-from {src}: its {what} differ ({other_value} there,"
                              f" {mine} here); its folds do not measure this model")
    recipe = json.loads(json.dumps(training_dict(plan, [], [], [], plan.train.epochs, [])))
    mine = {**_flat(json.loads(json.dumps(plan.spec.to_dict())), "features."),
            **{f"training.{k}": v for k, v in _flat(recipe).items()
               if k.split(".")[0] not in _PER_FOLD}}
    # The code that made it: settings cannot show a change of behaviour.
    mine["edge_ser"] = __version__
    other["edge_ser"] = (report.get("versions") or {}).get("edge_ser")
    # A setting one side does not record (older code) matches the other's "off" value.
    # Training-only corpora may differ (the folds left a corpus out to score it, the shipped
    # model trains on it): the folds still test the same speakers; listed as a difference.
    differences = {k: {"cv_run": other.get(k), "this_run": mine.get(k)}
                   for k in sorted(set(mine) | set(other)) if mine.get(k) != other.get(k)
                   and not (None in (mine.get(k), other.get(k))
                            and not (mine.get(k) or other.get(k)))}
    return {"run": str(src.resolve()), "command": report.get("command"),
            "versions": report.get("versions"), "differences": differences,
            "report": report}


def wait_for_cv(plan: RunPlan, labels: list[str], speakers: list[str],
                 poll_seconds: float = 5.0) -> dict[str, Any]:
    """:func:`reused_cv` once ``plan.cv_from`` has written its report (polled)."""
    report = Path(plan.cv_from) / "report.json"
    waited = 0.0
    while not report.is_file():
        if waited % 600 < poll_seconds:
            log(f"waiting for the cross-validation in {plan.cv_from} to finish"
                 " (Ctrl-C stops this run)")
        time.sleep(poll_seconds)
        waited += poll_seconds
    time.sleep(1.0)  # the report is written in one go; let the writer finish its other files
    return reused_cv(plan, labels, speakers)


FOLD_RESULT = "fold-result.json"
"""Written in each fold's directory once the fold is scored: a run started again with the
same recipe takes finished folds over instead of training them again."""


def fold_key(plan: RunPlan, k: int, labels: list[str], train_spk: list[str],
              val_spk: list[str], test_spk: list[str], n_test: int) -> str:
    """A hash of everything that makes fold ``k``'s result: recipe, front end, corpora,
    speakers, labels, scoring (conditions, evaluation corpora) and the code version."""
    recipe = {"fold": k, "spec": plan.spec.to_dict(), "labels": labels, "n_test": n_test,
              "training": training_dict(plan, train_spk, val_spk, test_spk,
                                         plan.train.epochs, []),
              "kind": plan.train.kind, "conditions": list(plan.conditions),
              "eval_data": list(plan.eval_data), "repeats": plan.repeats,
              "folds": plan.folds, "edge_ser": __version__}
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finished_fold(fold_dir: Path, key: str) -> dict[str, Any] | None:
    """The saved result of a fold finished by an earlier start of the same run, or None."""
    try:
        saved = json.loads((fold_dir / FOLD_RESULT).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key or \
            not (fold_dir / "model.keras").is_file():
        return None
    return saved
