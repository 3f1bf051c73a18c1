"""One ``ser-train`` run: corpora -> recordings -> speaker-independent folds -> final model.

Every figure is speaker-independent and scored the way the device scores: each held-out
recording goes through the endpointer, each utterance through its windows, and the result is
the speech-weighted average of its utterances (:mod:`train.windows`), exactly what
``edge-ser predict`` gives for the file. Beside that clean accuracy, each fold reports the
interim accuracy (the utterance so far at every hop, as ``listen`` shows it live), the same
held-out speakers under the room conditions of :data:`train.conditions.CONDITIONS`, and any
``--eval-data`` corpus (never trained on).

Layout of RUN_DIR::

    model.keras, core.keras, config.json     the shipped model (all given speakers)
    report.json, report.md, confusion.png    cross-validated scores
    folds/fold-<k>/model.keras, core.keras, config.json, predictions.json
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.errors import ConfigError
from edge.features import DEFAULT_HOP_SECONDS, FeatureSpec, Normalizer
from train.augment import WaveAugment
from train.conditions import CONDITIONS
from train.corpora import Utterance
from train.dataset import (
    Recording,
    Variant,
    choose_validation_speakers,
    load_recordings,
    sorted_speakers,
    speaker_folds,
)
from train.evaluate import (
    differences_text,
    markdown_report,
    plot_confusion,
    scores,
    summarize_folds,
    write_json,
)
from train.fit import FitResult, TrainConfig, fit_model, predict
from train.labels import LabelMap
from train.models import multiply_adds
from train.windows import (
    WindowAugment,
    augmented_inputs,
    device_inputs,
    interim_inputs,
    mean_by,
    recording_probabilities,
)


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs besides the utterances."""

    out: Path
    spec: FeatureSpec
    train: TrainConfig
    data: tuple[dict[str, str], ...]
    folds: int | None = 4
    repeats: int = 1
    """Cross-validation repeated over this many different speaker partitions."""
    test_speakers: tuple[str, ...] | None = None
    val_speakers: int = 0
    augment: WaveAugment | None = field(default_factory=WaveAugment)
    aug_copies: int = 4
    windows: WindowAugment = field(default_factory=WindowAugment)
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    """Room conditions the held-out speakers are also scored under."""
    extra_data: tuple[dict[str, str], ...] = ()
    """Corpora that only ever train (see :func:`run`)."""
    eval_data: tuple[dict[str, str], ...] = ()
    """Corpora scored but never trained on (leave-one-corpus-out)."""
    teachers: tuple[Path, ...] = ()
    """Run directories whose models (the same folds' and the shipped one) teach this run's
    (knowledge distillation from their average)."""
    cache_dir: Path | None = None
    use_cache: bool = True
    final: bool = True
    only_folds: tuple[int, ...] = ()
    """Run only these folds (1-based, of all repeats' folds) of the partition; empty: all. The
    report covers those folds and says so (compute for part of a cross-validation)."""
    cv_from: Path | None = None
    """A run of this recipe on the same data whose cross-validation (fold reports and fold
    models) this run takes over: only the shipped model is trained (see :func:`reused_cv`)."""
    command: str = ""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    out = {"edge_ser": __version__, "python": platform.python_version()}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "librosa", "scikit-learn"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def _training_dict(plan: RunPlan, train: list[str], val: list[str], test: list[str],
                   epochs: int, augmented: list[str]) -> dict[str, Any]:
    return {
        "data": list(plan.data), "extra_data": list(plan.extra_data),
        "train_speakers": train, "val_speakers": val,
        "test_speakers": test, "augmented_speakers": augmented, "seed": plan.train.seed,
        "epochs": epochs, "augment": asdict(plan.augment) if plan.augment else False,
        "aug_copies": plan.aug_copies if plan.augment else 0,
        "windows": asdict(plan.windows),
        "spec_augment": asdict(plan.train.spec_augment) if plan.train.spec_augment else False,
        "loss": plan.train.loss, "cmn": plan.train.cmn, "mixup": plan.train.mixup,
        "label_smoothing": plan.train.label_smoothing, "weight_decay": plan.train.weight_decay,
        "class_weights": plan.train.class_weights,
        "corpus_balance": plan.train.corpus_balance and plan.train.class_weights,
        "model_options": plan.train.model_options,
        "teachers": [str(t) for t in plan.teachers],
        "distill": plan.train.distill if plan.teachers else None,
        "batch_size": plan.train.batch_size, "learning_rate": plan.train.learning_rate,
    }


def save_model(directory: Path, result: FitResult, plan: RunPlan, labels: list[str],
               normalizer: Normalizer, training: dict, accuracy: dict) -> None:
    """model.keras, core.keras and config.json (the contract the exporter reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    core = result.model.get_layer("core")
    result.model.save(directory / "model.keras")
    core.save(directory / "core.keras")
    write_json(directory / "config.json", {
        "features": plan.spec.to_dict(), "labels": labels,
        "normalization": normalizer.to_dict(),
        "model": {"kind": plan.train.kind, "parameters": int(core.count_params()),
                  "multiply_adds": multiply_adds(core)},
        "hop_seconds": DEFAULT_HOP_SECONDS, "training": training, "accuracy": accuracy,
        "versions": versions(),
    })


# --------------------------------------------------------------------------------------
# Scoring a model the way the device does
# --------------------------------------------------------------------------------------


def clip_predictions(model, recordings: list[Recording], spec: FeatureSpec) -> np.ndarray:
    """Per-recording probabilities ``(n, n_labels)`` (NaN rows: no speech found)."""
    d = device_inputs(recordings, spec)
    probs = predict(model, d.inputs)
    return recording_probabilities(probs, d)


def predicted_labels(probs: np.ndarray, *, merge: dict[int, int] | None = None) -> np.ndarray:
    """Top class per row; -1 where there was no speech (NaN row). ``merge`` maps predicted
    classes onto others first (``calm -> neutral`` for a corpus without calm)."""
    out = np.where(np.isnan(probs).any(axis=1), -1, np.nan_to_num(probs).argmax(axis=1))
    for a, b in (merge or {}).items():
        out[out == a] = b
    return out


def _scores(y: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """:func:`train.evaluate.scores` plus how many recordings got no result (counted wrong)."""
    s = scores(y, np.where(y_pred < 0, len(labels), y_pred), labels)
    s["accuracy"] = float(np.mean(y_pred == y)) if len(y) else 0.0
    s["no_speech"] = int(np.count_nonzero(y_pred < 0))
    return s


def interim_accuracy(model, recordings: list[Recording], y: np.ndarray, spec: FeatureSpec
                     ) -> dict[str, Any]:
    """Accuracy of the interim results (utterance so far, every hop) of held-out speakers."""
    hop = max(1, int(round(DEFAULT_HOP_SECONDS * spec.frames_per_second)))
    x, interim, owner = interim_inputs(recordings, spec, hop)
    if len(x) == 0:
        return {"accuracy": 0.0, "n": 0}
    probs = mean_by(predict(model, x), interim, len(owner))
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == y[owner])), "n": int(len(owner))}


def evaluate_model(model, spec: FeatureSpec, labels: list[str], y: np.ndarray,
                   clean: list[Recording], conditions: dict[str, list[Recording]]
                   ) -> tuple[dict[str, Any], np.ndarray]:
    """Clean, interim and per-condition scores of held-out recordings; also the clean
    predicted labels."""
    y_pred = predicted_labels(clip_predictions(model, clean, spec))
    out = {"test": _scores(y, y_pred, labels),
           "interim": interim_accuracy(model, clean, y, spec), "conditions": {}}
    for name, recs in conditions.items():
        pred = predicted_labels(clip_predictions(model, recs, spec))
        out["conditions"][name] = {"accuracy": float(np.mean(pred == y)),
                                   "no_speech": int(np.count_nonzero(pred < 0))}
    return out, y_pred


@dataclass
class EvalCorpus:
    """A corpus scored but never trained on."""

    name: str
    recordings: list[Recording]
    y: np.ndarray
    """Indices into the run's classes."""
    merge: dict[int, int]


def corpus_scores(model, corpus: EvalCorpus, spec: FeatureSpec, labels: list[str]
                  ) -> dict[str, Any]:
    pred = predicted_labels(clip_predictions(model, corpus.recordings, spec),
                            merge=corpus.merge)
    present = sorted(set(corpus.y.tolist()))
    return {"accuracy": float(np.mean(pred == corpus.y)), "n": int(len(corpus.y)),
            "classes": [labels[i] for i in present],
            "no_speech": int(np.count_nonzero(pred < 0)),
            "macro_recall": float(np.mean([np.mean(pred[corpus.y == c] == c)
                                           for c in present]))}


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


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
    recipe = json.loads(json.dumps(_training_dict(plan, [], [], [], plan.train.epochs, [])))
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


def _load(plan: RunPlan, utts: list[Utterance], variant: Variant, desc: str
          ) -> list[Recording]:
    loaded = load_recordings(utts, plan.spec, variant=variant, cache_dir=plan.cache_dir,
                             use_cache=plan.use_cache, desc=desc)
    if len(loaded.kept) != len(utts):
        raise ConfigError(f"an audio file became unreadable during the run:"
                          f" {loaded.failed[0][1]}")
    _log(f"{desc}: {len(utts)} clips ({loaded.computed} computed)")
    return loaded.recordings


def _eval_corpora(plan: RunPlan, corpora: list[tuple[str, list[Utterance]]],
                  label_map: LabelMap) -> list[EvalCorpus]:
    out = []
    for name, utts in corpora:
        keep = [u for u in utts if label_map(u.label) is not None]
        loaded = load_recordings(keep, plan.spec, cache_dir=plan.cache_dir,
                                 use_cache=plan.use_cache, desc=f"{name} (eval)")
        for _u, message in loaded.failed:
            _log(f"skipped: {message}")
        y = np.array([label_map.index(u.label) for u in loaded.kept], np.int64)
        classes = label_map.classes
        merge = {}
        if "calm" in classes and "neutral" in classes and \
                classes.index("calm") not in set(y.tolist()):
            merge[classes.index("calm")] = classes.index("neutral")  # calm counted as neutral
        out.append(EvalCorpus(name, loaded.recordings, y, merge))
    return out


def run(plan: RunPlan, utterances: list[Utterance], label_map: LabelMap,
        eval_corpora: list[tuple[str, list[Utterance]]] = (),
        extra: list[Utterance] = ()) -> dict[str, Any]:
    """Train and evaluate; write RUN_DIR; return the report.

    ``utterances`` are split into speaker folds and tested; ``extra`` utterances (another
    corpus, or RAVDESS song of the same actors) only ever train: in each fold, those of a
    test or validation speaker are left out, the rest join the training set. So recipes with
    and without extra data are scored on exactly the same clips.
    """
    started = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    spec = plan.spec
    labels = list(label_map.classes)
    n_main = len(utterances)
    tagged = [(u, i < n_main) for i, u in enumerate([*utterances, *extra])
              if label_map(u.label) is not None]
    utts = [u for u, _ in tagged]
    if not any(m for _, m in tagged):
        raise ConfigError("no utterances left after --classes")
    is_main = {id(u): m for u, m in tagged}
    loaded = load_recordings(utts, spec, cache_dir=plan.cache_dir, use_cache=plan.use_cache,
                             desc="features")
    for _utt, message in loaded.failed:
        _log(f"skipped: {message}")
    utts, clean = loaded.kept, loaded.recordings
    y = np.array([label_map.index(u.label) for u in utts], dtype=np.int64)
    speaker = np.array([u.speaker for u in utts])
    main = np.array([is_main[id(u)] for u in utts])
    corpus = np.array([u.corpus for u in utts])
    speakers = sorted_speakers(speaker[main])
    no_segment = sum(1 for r in clean if not r.segments)
    _log(f"{len(utts)} clips, {len(speakers)} speakers, classes: {', '.join(labels)}"
         f" ({loaded.computed} computed, {len(utts) - loaded.computed} cached;"
         f" {no_segment} without an utterance found)")

    # --cv-from a run still under way: the shipped model trains meanwhile (its epochs do not
    # depend on the folds without validation speakers) and the folds are read at the end.
    pending = plan.cv_from is not None and not (Path(plan.cv_from) / "report.json").is_file()
    if pending and plan.val_speakers:
        raise ConfigError(f"--cv-from {plan.cv_from}: its cross-validation has not finished;"
                          " with --val-speakers the shipped model's epochs come from it: start"
                          " this run when it has finished")
    cv = reused_cv(plan, labels, speakers) if plan.cv_from is not None and not pending \
        else None
    if pending:
        _log(f"the cross-validation in {plan.cv_from} is still running: training the shipped"
             " model now; its folds are taken over when it has finished")
        test_folds: list = []
    elif cv is not None:
        _log(f"cross-validation taken from {cv['run']} (differences of the recipe:"
             f" {differences_text(cv['differences'])});"
             " training only the shipped model")
        test_folds = []
    elif plan.test_speakers is not None:
        unknown = sorted(set(plan.test_speakers) - set(speakers))
        if unknown:
            raise ConfigError(f"--test-actors: no clips for {', '.join(unknown)}"
                              f" (speakers in the data: {', '.join(speakers)})")
        test_folds = [sorted_speakers(plan.test_speakers)]
    else:
        genders = {u.speaker: u.gender for u in utts}
        test_folds = [fold for r in range(plan.repeats)
                      for fold in speaker_folds(speakers, plan.folds or 4, repeat=r,
                                                genders=genders)]
    held_out = set(test_folds[0]) if plan.test_speakers is not None else set()
    if plan.only_folds and test_folds:
        beyond = [k for k in plan.only_folds if not 1 <= k <= len(test_folds)]
        if beyond:
            raise ConfigError(f"--only-folds {beyond[0]}: there are {len(test_folds)} folds")
    run_folds = {k for k in range(len(test_folds))
                 if not plan.only_folds or k + 1 in plan.only_folds}

    # Augmented copies of every clip that is in some training set (never a held-out one).
    trainable = np.array([s not in held_out for s in speaker])
    train_utts = [u for u, keep in zip(utts, trainable) if keep]
    copies: list[list[Recording | None]] = []
    if plan.augment is not None:
        for c in range(plan.aug_copies):
            recs = iter(_load(plan, train_utts, Variant(plan.augment, c, plan.train.seed),
                              f"augmented copy {c + 1}/{plan.aug_copies}"))
            copies.append([next(recs) if keep else None for keep in trainable])
    # The room conditions of every clip that is tested in some fold.
    testable = main & np.isin(speaker, [s for fold in test_folds for s in fold])
    test_utts = [u for u, keep in zip(utts, testable) if keep]
    conditions: dict[str, list[Recording | None]] = {}
    for name in plan.conditions:
        recs = iter(_load(plan, test_utts, Variant(CONDITIONS[name]), f"condition {name}"))
        conditions[name] = [next(recs) if keep else None for keep in testable]
    others = _eval_corpora(plan, list(eval_corpora), label_map)

    def pick(recs: list, mask: np.ndarray) -> list:
        return [r for r, keep in zip(recs, mask) if keep]

    fold_reports: list[dict[str, Any]] = []
    y_true_all: list[np.ndarray] = []
    y_pred_all: list[np.ndarray] = []
    for k, test_spk in enumerate(test_folds):
        if k not in run_folds:
            continue
        rest = [u for u, m in zip(utts, main) if m and u.speaker not in set(test_spk)]
        n_rest = len({u.speaker for u in rest})
        val_spk = choose_validation_speakers(rest, min(plan.val_speakers, n_rest - 1),
                                             plan.train.seed + k)
        train_spk = sorted_speakers(s for s in speaker
                                    if s not in set(val_spk) | set(test_spk))
        tr = np.isin(speaker, train_spk)
        va, te = main & np.isin(speaker, val_spk), main & np.isin(speaker, test_spk)
        _log(f"fold {k + 1}/{len(test_folds)}: test {', '.join(test_spk)}; val"
             f" {', '.join(val_spk) or '-'}; train {tr.sum()} clips, val {va.sum()},"
             f" test {te.sum()}")
        fold_dir = (plan.out / "folds" / f"fold-{k + 1}") if plan.test_speakers is None \
            else plan.out
        key = _fold_key(plan, k, labels, train_spk, val_spk, list(test_spk), int(te.sum()))
        finished = _finished_fold(fold_dir, key)
        if finished is not None:
            _log(f"fold {k + 1}: taken over from the interrupted run in {fold_dir}"
                 f" (accuracy {finished['report']['test']['accuracy']:.3f})")
            fold_reports.append(finished["report"])
            y_true_all.append(np.asarray(finished["y_true"], np.int64))
            y_pred_all.append(np.asarray(finished["y_pred"], np.int64))
            continue
        cfg = replace(plan.train, seed=plan.train.seed + k)
        result, normalizer = _fit(plan, cfg, len(labels), pick(clean, tr), y[tr],
                                  [pick(c, tr) for c in copies], pick(clean, va), y[va],
                                  name=f"fold {k + 1} ",
                                  teacher=_teacher(plan, k, train_spk + val_spk),
                                  corpus=corpus[tr])
        evaluation, y_pred = evaluate_model(
            result.model, spec, labels, y[te], pick(clean, te),
            {n: pick(c, te) for n, c in conditions.items()})
        evaluation["corpora"] = {c.name: corpus_scores(result.model, c, spec, labels)
                                 for c in others}
        t = evaluation["test"]
        figures = [f"accuracy {t['accuracy']:.3f}", f"macro-F1 {t['macro_f1']:.3f}",
                   f"interim {evaluation['interim']['accuracy']:.3f}"]
        figures += [f"{n} {v['accuracy']:.3f}" for n, v in
                    {**evaluation["conditions"], **evaluation["corpora"]}.items()]
        _log(f"fold {k + 1}: {', '.join(figures)}; best epoch {result.best_epoch}"
             f" ({result.seconds:.0f} s)")
        y_true_all.append(y[te])
        y_pred_all.append(y_pred)
        training = _training_dict(plan, train_spk, val_spk, list(test_spk), result.best_epoch,
                                  train_spk if copies else [])
        save_model(fold_dir, result, plan, labels, normalizer, training,
                   {"accuracy": t["accuracy"], "macro_f1": t["macro_f1"],
                    "n_clips": t["n"], "test_speakers": list(test_spk),
                    "interim_accuracy": evaluation["interim"]["accuracy"],
                    "conditions": {n: v["accuracy"]
                                   for n, v in evaluation["conditions"].items()}})
        test_idx = np.flatnonzero(te)
        write_json(fold_dir / "predictions.json", {
            "labels": labels,
            "clips": [{"path": str(utts[i].path), "speaker": utts[i].speaker,
                       "label": labels[y[i]],
                       "predicted": labels[int(p)] if p >= 0 else None}
                      for i, p in zip(test_idx, y_pred)],
        })
        fold_report = {
            "fold": k + 1, "repeat": k // (plan.folds or 4) if plan.test_speakers is None
            else 0, "test_speakers": list(test_spk), "val_speakers": val_spk,
            "train_speakers": train_spk,
            "sizes": {"train": int(tr.sum()), "val": int(va.sum()), "test": int(te.sum())},
            "best_epoch": result.best_epoch, "seconds": round(result.seconds, 1),
            **evaluation, "history": result.history,
        }
        fold_reports.append(fold_report)
        if plan.test_speakers is None:  # a run stopped later resumes after this fold
            write_json(fold_dir / FOLD_RESULT, {"key": key, "report": fold_report,
                                                "y_true": y[te].tolist(),
                                                "y_pred": y_pred.tolist()})

    everyone = sorted_speakers(speaker)

    def fit_final(epochs: int) -> tuple[FitResult, Normalizer]:
        return _fit(plan, replace(plan.train, epochs=epochs), len(labels), clean, y, copies,
                    [], y[:0], name="final ", teacher=_teacher(plan, None, everyone),
                    corpus=corpus)

    early = None
    if pending:
        _log(f"final model: all {len(everyone)} speakers, {plan.train.epochs} epochs")
        early = fit_final(plan.train.epochs)
        cv = _wait_for_cv(plan, labels, speakers)
    if cv is not None:
        fold_reports = cv["report"]["folds"]
        summary, pooled = cv["report"]["summary"], cv["report"]["pooled"]
        shutil.copytree(Path(cv["run"]) / "folds", plan.out / "folds", dirs_exist_ok=True)
    else:
        summary = summarize_folds(fold_reports)
        if len(run_folds) < len(test_folds):
            summary["only_folds"] = sorted(k + 1 for k in run_folds)
            summary["of_folds"] = len(test_folds)
        pooled = scores(np.concatenate(y_true_all),
                        np.where(np.concatenate(y_pred_all) < 0, len(labels),
                                 np.concatenate(y_pred_all)), labels)
    cv_info = None if cv is None else {k: v for k, v in cv.items() if k != "report"}
    final_info = None
    if plan.test_speakers is None and plan.final:
        best_epochs = [f["best_epoch"] for f in fold_reports]
        epochs = max(1, int(round(float(np.median(best_epochs)))))
        if early is not None and epochs == plan.train.epochs:
            result, normalizer = early
        else:
            _log(f"final model: all {len(everyone)} speakers, {epochs} epochs"
                 f" (median of the folds' best epochs {best_epochs})")
            result, normalizer = fit_final(epochs)
        training = _training_dict(plan, everyone, [], [], epochs, everyone if copies else [])
        training["fold_best_epochs"] = best_epochs
        corpora = {c.name: corpus_scores(result.model, c, spec, labels) for c in others}
        save_model(plan.out, result, plan, labels, normalizer, training,
                   {**summary, "method": cv_method(summary)
                    + (" (an earlier run's folds: cv_from)" if cv_info else ""),
                    **({"cv_from": cv_info} if cv_info else {}),
                    "corpora": {n: v["accuracy"] for n, v in corpora.items()}})
        final_info = {"train_speakers": everyone,
                      "speakers_per_corpus": speakers_per_corpus(utts), "epochs": epochs,
                      "fold_best_epochs": best_epochs, "seconds": round(result.seconds, 1),
                      "corpora": corpora}

    report = {
        "command": plan.command, "model": {"kind": plan.train.kind}, "labels": labels,
        "data": list(plan.data), "extra_data": list(plan.extra_data),
        "eval_data": list(plan.eval_data), "n_clips": int(main.sum()),
        "n_extra_clips": int((~main).sum()),
        "speakers": speakers,
        "skipped_files": [{"path": str(u.path), "reason": m} for u, m in loaded.failed],
        "summary": summary, "pooled": pooled,
        "folds": fold_reports, "final": final_info, "cv_from": cv_info,
        "seconds": round(time.perf_counter() - started, 1), "versions": versions(),
    }
    write_json(plan.out / "report.json", report)
    (plan.out / "report.md").write_text(markdown_report(report))
    plot_confusion(pooled["confusion"], labels, plan.out / "confusion.png",
                   f"{plan.train.kind}: {summary['folds']} fold(s), accuracy"
                   f" {summary['accuracy_mean']:.3f} ± {summary['accuracy_std']:.3f}")
    return report


def cv_method(summary: dict[str, Any]) -> str:
    """How the figures of ``summary`` were measured, in words."""
    if summary.get("only_folds"):
        return (f"folds {', '.join(map(str, summary['only_folds']))} of"
                f" {summary['of_folds']} by speaker")
    return f"{summary['folds']}-fold by speaker"


def speakers_per_corpus(utterances: list[Utterance]) -> dict[str, int]:
    """Corpus name -> how many distinct speakers ``utterances`` hold of it."""
    speakers: dict[str, set[str]] = {}
    for u in utterances:
        speakers.setdefault(u.corpus, set()).add(u.speaker)
    return {name: len(s) for name, s in sorted(speakers.items())}


def _wait_for_cv(plan: RunPlan, labels: list[str], speakers: list[str],
                 poll_seconds: float = 5.0) -> dict[str, Any]:
    """:func:`reused_cv` once ``plan.cv_from`` has written its report (polled)."""
    report = Path(plan.cv_from) / "report.json"
    waited = 0.0
    while not report.is_file():
        if waited % 600 < poll_seconds:
            _log(f"waiting for the cross-validation in {plan.cv_from} to finish"
                 " (Ctrl-C stops this run)")
        time.sleep(poll_seconds)
        waited += poll_seconds
    time.sleep(1.0)  # the report is written in one go; let the writer finish its other files
    return reused_cv(plan, labels, speakers)


FOLD_RESULT = "fold-result.json"
"""Written in each fold's directory once the fold is scored: a run started again with the
same recipe takes finished folds over instead of training them again."""


def _fold_key(plan: RunPlan, k: int, labels: list[str], train_spk: list[str],
              val_spk: list[str], test_spk: list[str], n_test: int) -> str:
    """A hash of everything that makes fold ``k``'s result: recipe, front end, corpora,
    speakers, labels, scoring (conditions, evaluation corpora) and the code version."""
    recipe = {"fold": k, "spec": plan.spec.to_dict(), "labels": labels, "n_test": n_test,
              "training": _training_dict(plan, train_spk, val_spk, test_spk,
                                         plan.train.epochs, []),
              "kind": plan.train.kind, "conditions": list(plan.conditions),
              "eval_data": list(plan.eval_data), "repeats": plan.repeats,
              "folds": plan.folds, "edge_ser": __version__}
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finished_fold(fold_dir: Path, key: str) -> dict[str, Any] | None:
    """The saved result of a fold finished by an earlier start of the same run, or None."""
    try:
        saved = json.loads((fold_dir / FOLD_RESULT).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key or \
            not (fold_dir / "model.keras").is_file():
        return None
    return saved


def _teacher(plan: RunPlan, fold: int | None, speakers: list[str]):
    """The average of the teacher runs' models for ``fold`` (None: their shipped models) as
    ``inputs -> probabilities``, or None without teachers. Each teacher must have been trained
    on exactly ``speakers``: a teacher that heard a test speaker would leak it."""
    if not plan.teachers:
        return None
    import keras

    import train.lstm  # noqa: F401  (registers the LSTM layer for loading)

    models = []
    for run_dir in plan.teachers:
        d = run_dir if fold is None else run_dir / "folds" / f"fold-{fold + 1}"
        cfg_path = d / "config.json"
        if not cfg_path.is_file():
            raise ConfigError(f"--teacher {run_dir}: no {cfg_path.relative_to(run_dir)}"
                              " (train the teacher with the same --folds/--repeats"
                              + (", and --final" if fold is None else "") + ")")
        t = json.loads(cfg_path.read_text())["training"]
        heard = sorted_speakers([*t.get("train_speakers", []), *t.get("val_speakers", [])])
        mine = sorted_speakers(speakers)
        unseen = sorted(set(heard) - set(mine))
        if unseen:
            raise ConfigError(f"--teacher {d}: trained on {', '.join(unseen)}, which this"
                              " model must not hear (the folds differ)")
        models.append(keras.models.load_model(d / "model.keras", compile=False))

    def probabilities(x: np.ndarray) -> np.ndarray:
        return np.mean([predict(m, x, batch_size=256) for m in models], axis=0)

    return probabilities


def _fit(plan: RunPlan, cfg: TrainConfig, n_classes: int, train: list[Recording],
         y_train: np.ndarray, copies: list[list[Recording]], val: list[Recording],
         y_val: np.ndarray, *, name: str, teacher=None, corpus: np.ndarray | None = None
         ) -> tuple[FitResult, Normalizer]:
    """Fit one model: the clean device inputs of ``train`` every epoch, plus augmented
    inputs of one waveform copy (in rotation, drawn afresh each epoch). ``corpus`` (one name
    per training recording) makes the class weights per (corpus, class) pair when
    ``cfg.corpus_balance``."""
    spec = plan.spec
    groups = 1
    if corpus is not None and cfg.corpus_balance and cfg.class_weights:
        names, group = np.unique(corpus, return_inverse=True)
        groups = len(names)
        y_train = group.astype(np.int64) * n_classes + y_train
    base = device_inputs(train, spec, fallback=True)
    y_base = y_train[base.recording]
    normalizer = Normalizer.fit(base.inputs)

    def epoch_inputs(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if not copies:
            return base.inputs, y_base
        rng = np.random.default_rng([cfg.seed, 7919, epoch])
        x_aug, y_aug = augmented_inputs(copies[epoch % len(copies)], y_train, spec,
                                        plan.windows, rng)
        return np.concatenate((base.inputs, x_aug)), np.concatenate((y_base, y_aug))

    x_val = y_val_rows = None
    if val:
        dv = device_inputs(val, spec)
        x_val, y_val_rows = dv.inputs, y_val[dv.recording]
    result = fit_model(n_classes, normalizer, epoch_inputs, y_train, cfg, x_val=x_val,
                       y_val=y_val_rows, teacher=teacher, name=name, label_groups=groups)
    return result, normalizer
