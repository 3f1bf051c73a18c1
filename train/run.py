"""One ``ser-train`` run: corpora -> recordings -> speaker-independent folds -> final model.

Every figure is speaker-independent and scored the way the device scores: each held-out
recording goes through the endpointer, each utterance through its windows, and the result is
the speech-weighted average of its utterances (:mod:`edge.batch`, through
:mod:`train.scoring`), exactly what ``edge-ser predict`` gives for the file. Beside that
clean accuracy, each fold reports the interim accuracy (the utterance so far at every hop,
as ``listen`` shows it live), the same held-out speakers under the room conditions of
:data:`train.conditions.CONDITIONS`, and any ``--eval-data`` corpus (never trained on).

Layout of RUN_DIR::

    model.keras, core.keras, config.json     the shipped model (all given speakers)
    report.json, report.md, confusion.png    cross-validated scores
    folds/fold-<k>/model.keras, core.keras, config.json, predictions.json
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError
from edge.features import DEFAULT_HOP_SECONDS, Normalizer
from train.corpora import Utterance
from train.dataset import (
    Recording,
    choose_validation_speakers,
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
from train.plan import RunPlan, log, training_dict, versions
from train.reuse import FOLD_RESULT, finished_fold, fold_key, reused_cv, wait_for_cv
from train.rundata import (
    Clips,
    Variants,
    load_clips,
    load_variants,
    pick,
    speakers_per_corpus,
)
from train.scoring import corpus_scores, evaluate_model
from train.windows import augmented_inputs, device_inputs


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
# The run, step by step
# --------------------------------------------------------------------------------------


@dataclass
class Folds:
    """Which speaker folds the run scores, and whether another run's are taken over."""

    test: list[list[str]]
    """Test speakers of every fold of the partition (empty: the folds come from ``cv``)."""
    run: list[int]
    """The folds (0-based) this run trains and scores."""
    held_out: set[str]
    """Speakers no model of this run may train on (``--test-actors``)."""
    cv: dict[str, Any] | None
    """The cross-validation of ``--cv-from`` when it has finished (:func:`reused_cv`)."""
    pending: bool
    """``--cv-from`` names a run still under way: its folds are read at the end."""


@dataclass
class FoldResult:
    """One fold's report entry and its test clips' true and predicted classes."""

    report: dict[str, Any]
    y_true: np.ndarray
    y_pred: np.ndarray
    """Predicted class per test clip; -1: no utterance found."""


def run(plan: RunPlan, utterances: list[Utterance], label_map: LabelMap,
        eval_corpora: list[tuple[str, list[Utterance]]] = (),
        extra: list[Utterance] = ()) -> dict[str, Any]:
    """Train and evaluate; write RUN_DIR; return the report.

    ``utterances`` are split into speaker folds and tested; ``extra`` utterances (another
    corpus, or RAVDESS song of the same actors) only ever train: in each fold, those of a
    test or validation speaker are left out, the rest join the training set. So recipes with
    and without extra data are scored on exactly the same clips.

    The steps: the clips (:func:`train.rundata.load_clips`), the folds (:func:`plan_folds`),
    the clips' other versions (:func:`train.rundata.load_variants`), each fold
    (:func:`run_fold`), the cross-validated figures (:func:`cross_validated`), the shipped
    model (:func:`final_model`) and the report (:func:`write_report`). What depends on the
    model kind is in :func:`_fit` and :func:`save_model`.
    """
    started = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    labels = list(label_map.classes)
    clips = load_clips(plan, utterances, extra, label_map)
    folds = plan_folds(plan, clips, labels)
    variants = load_variants(plan, clips, held_out=folds.held_out,
                             tested={s for fold in folds.test for s in fold},
                             eval_corpora=list(eval_corpora), label_map=label_map)
    results = [run_fold(plan, clips, variants, labels, folds, k) for k in folds.run]
    early = None
    if folds.pending:  # the shipped model trains while the other run's folds finish
        log(f"final model: all {len(sorted_speakers(clips.speaker))} speakers,"
            f" {plan.train.epochs} epochs")
        early = fit_final(plan, clips, variants, len(labels), plan.train.epochs)
        folds.cv = wait_for_cv(plan, labels, clips.speakers)
    fold_reports, summary, pooled = cross_validated(plan, labels, folds, results)
    final_info = None
    if plan.test_speakers is None and plan.final:
        final_info = final_model(plan, clips, variants, labels, fold_reports, summary,
                                 folds.cv, early)
    return write_report(plan, clips, labels, fold_reports, summary, pooled, final_info,
                        folds.cv, time.perf_counter() - started)


def plan_folds(plan: RunPlan, clips: Clips, labels: list[str]) -> Folds:
    """The test folds of the speakers (or ``--test-actors``, or none when ``--cv-from``
    provides them) and those of them this run trains."""
    speakers = clips.speakers
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
        log(f"the cross-validation in {plan.cv_from} is still running: training the shipped"
            " model now; its folds are taken over when it has finished")
        test_folds: list = []
    elif cv is not None:
        log(f"cross-validation taken from {cv['run']} (differences of the recipe:"
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
        genders = {u.speaker: u.gender for u in clips.utts}
        test_folds = [fold for r in range(plan.repeats)
                      for fold in speaker_folds(speakers, plan.folds or 4, repeat=r,
                                                genders=genders)]
    held_out = set(test_folds[0]) if plan.test_speakers is not None else set()
    if plan.only_folds and test_folds:
        beyond = [k for k in plan.only_folds if not 1 <= k <= len(test_folds)]
        if beyond:
            raise ConfigError(f"--only-folds {beyond[0]}: there are {len(test_folds)} folds")
    run_folds = [k for k in range(len(test_folds))
                 if not plan.only_folds or k + 1 in plan.only_folds]
    return Folds(test_folds, run_folds, held_out, cv, pending)


def run_fold(plan: RunPlan, clips: Clips, variants: Variants, labels: list[str], folds: Folds,
             k: int) -> FoldResult:
    """Fold ``k``: validation speakers drawn from the rest, one model trained, its held-out
    scores (clean, interim, conditions, corpora), saved in the fold's directory; or the
    result an interrupted start of the same run saved for it."""
    test_spk = folds.test[k]
    rest = [u for u, m in zip(clips.utts, clips.main) if m and u.speaker not in set(test_spk)]
    n_rest = len({u.speaker for u in rest})
    val_spk = choose_validation_speakers(rest, min(plan.val_speakers, n_rest - 1),
                                         plan.train.seed + k)
    train_spk = sorted_speakers(s for s in clips.speaker
                                if s not in set(val_spk) | set(test_spk))
    tr = np.isin(clips.speaker, train_spk)
    va = clips.main & np.isin(clips.speaker, val_spk)
    te = clips.main & np.isin(clips.speaker, test_spk)
    y = clips.y
    log(f"fold {k + 1}/{len(folds.test)}: test {', '.join(test_spk)}; val"
        f" {', '.join(val_spk) or '-'}; train {tr.sum()} clips, val {va.sum()},"
        f" test {te.sum()}")
    fold_dir = (plan.out / "folds" / f"fold-{k + 1}") if plan.test_speakers is None \
        else plan.out
    key = fold_key(plan, k, labels, train_spk, val_spk, list(test_spk), int(te.sum()))
    finished = finished_fold(fold_dir, key)
    if finished is not None:
        log(f"fold {k + 1}: taken over from the interrupted run in {fold_dir}"
            f" (accuracy {finished['report']['test']['accuracy']:.3f})")
        return FoldResult(finished["report"], np.asarray(finished["y_true"], np.int64),
                          np.asarray(finished["y_pred"], np.int64))
    cfg = replace(plan.train, seed=plan.train.seed + k)
    result, normalizer = _fit(plan, cfg, len(labels), pick(clips.clean, tr), y[tr],
                              [pick(c, tr) for c in variants.copies], pick(clips.clean, va),
                              y[va], name=f"fold {k + 1} ",
                              teacher=_teacher(plan, k, train_spk + val_spk),
                              corpus=clips.corpus[tr])
    evaluation, y_pred = evaluate_model(
        result.model, plan.spec, labels, y[te], pick(clips.clean, te),
        {n: pick(c, te) for n, c in variants.conditions.items()})
    evaluation["corpora"] = {c.name: corpus_scores(result.model, c, plan.spec, labels)
                             for c in variants.others}
    t = evaluation["test"]
    figures = [f"accuracy {t['accuracy']:.3f}", f"macro-F1 {t['macro_f1']:.3f}",
               f"interim {evaluation['interim']['accuracy']:.3f}"]
    figures += [f"{n} {v['accuracy']:.3f}" for n, v in
                {**evaluation["conditions"], **evaluation["corpora"]}.items()]
    log(f"fold {k + 1}: {', '.join(figures)}; best epoch {result.best_epoch}"
        f" ({result.seconds:.0f} s)")
    training = training_dict(plan, train_spk, val_spk, list(test_spk), result.best_epoch,
                             train_spk if variants.copies else [])
    save_model(fold_dir, result, plan, labels, normalizer, training,
               {"accuracy": t["accuracy"], "macro_f1": t["macro_f1"],
                "n_clips": t["n"], "test_speakers": list(test_spk),
                "interim_accuracy": evaluation["interim"]["accuracy"],
                "conditions": {n: v["accuracy"] for n, v in evaluation["conditions"].items()}})
    write_json(fold_dir / "predictions.json", {
        "labels": labels,
        "clips": [{"path": str(clips.utts[i].path), "speaker": clips.utts[i].speaker,
                   "label": labels[y[i]], "predicted": labels[int(p)] if p >= 0 else None}
                  for i, p in zip(np.flatnonzero(te), y_pred)],
    })
    report = {
        "fold": k + 1, "repeat": k // (plan.folds or 4) if plan.test_speakers is None
        else 0, "test_speakers": list(test_spk), "val_speakers": val_spk,
        "train_speakers": train_spk,
        "sizes": {"train": int(tr.sum()), "val": int(va.sum()), "test": int(te.sum())},
        "best_epoch": result.best_epoch, "seconds": round(result.seconds, 1),
        **evaluation, "history": result.history,
    }
    if plan.test_speakers is None:  # a run stopped later resumes after this fold
        write_json(fold_dir / FOLD_RESULT, {"key": key, "report": report,
                                            "y_true": y[te].tolist(),
                                            "y_pred": y_pred.tolist()})
    return FoldResult(report, y[te], y_pred)


def cross_validated(plan: RunPlan, labels: list[str], folds: Folds,
                    results: list[FoldResult]
                    ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The fold reports, their summary and the pooled scores: this run's folds, or those of
    ``--cv-from`` (whose fold directories are copied in)."""
    if folds.cv is not None:
        report = folds.cv["report"]
        shutil.copytree(Path(folds.cv["run"]) / "folds", plan.out / "folds",
                        dirs_exist_ok=True)
        return report["folds"], report["summary"], report["pooled"]
    fold_reports = [r.report for r in results]
    summary = summarize_folds(fold_reports)
    if len(folds.run) < len(folds.test):
        summary["only_folds"] = [k + 1 for k in folds.run]
        summary["of_folds"] = len(folds.test)
    y_true = np.concatenate([r.y_true for r in results])
    y_pred = np.concatenate([r.y_pred for r in results])
    pooled = scores(y_true, np.where(y_pred < 0, len(labels), y_pred), labels)
    return fold_reports, summary, pooled


def fit_final(plan: RunPlan, clips: Clips, variants: Variants, n_classes: int, epochs: int
              ) -> tuple[FitResult, Normalizer]:
    """The shipped model: every clip, ``epochs`` epochs, no validation."""
    return _fit(plan, replace(plan.train, epochs=epochs), n_classes, clips.clean, clips.y,
                variants.copies, [], clips.y[:0], name="final ",
                teacher=_teacher(plan, None, sorted_speakers(clips.speaker)),
                corpus=clips.corpus)


def final_model(plan: RunPlan, clips: Clips, variants: Variants, labels: list[str],
                fold_reports: list[dict[str, Any]], summary: dict[str, Any],
                cv: dict[str, Any] | None, early: tuple[FitResult, Normalizer] | None
                ) -> dict[str, Any]:
    """Train (or take ``early``, trained while ``--cv-from`` ran) and save the shipped model:
    all speakers, the median of the folds' best epochs; its report entry."""
    everyone = sorted_speakers(clips.speaker)
    best_epochs = [f["best_epoch"] for f in fold_reports]
    epochs = max(1, int(round(float(np.median(best_epochs)))))
    if early is not None and epochs == plan.train.epochs:
        result, normalizer = early
    else:
        log(f"final model: all {len(everyone)} speakers, {epochs} epochs"
            f" (median of the folds' best epochs {best_epochs})")
        result, normalizer = fit_final(plan, clips, variants, len(labels), epochs)
    training = training_dict(plan, everyone, [], [], epochs,
                             everyone if variants.copies else [])
    training["fold_best_epochs"] = best_epochs
    corpora = {c.name: corpus_scores(result.model, c, plan.spec, labels)
               for c in variants.others}
    cv_info = _cv_info(cv)
    save_model(plan.out, result, plan, labels, normalizer, training,
               {**summary, "method": cv_method(summary)
                + (" (an earlier run's folds: cv_from)" if cv_info else ""),
                **({"cv_from": cv_info} if cv_info else {}),
                "corpora": {n: v["accuracy"] for n, v in corpora.items()}})
    return {"train_speakers": everyone,
            "speakers_per_corpus": speakers_per_corpus(clips.utts), "epochs": epochs,
            "fold_best_epochs": best_epochs, "seconds": round(result.seconds, 1),
            "corpora": corpora}


def _cv_info(cv: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the report says of a cross-validation taken over (all but its report)."""
    return None if cv is None else {k: v for k, v in cv.items() if k != "report"}


def write_report(plan: RunPlan, clips: Clips, labels: list[str],
                 fold_reports: list[dict[str, Any]], summary: dict[str, Any],
                 pooled: dict[str, Any], final_info: dict[str, Any] | None,
                 cv: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    """report.json, report.md and confusion.png in RUN_DIR; returns the report."""
    report = {
        "command": plan.command, "model": {"kind": plan.train.kind}, "labels": labels,
        "data": list(plan.data), "extra_data": list(plan.extra_data),
        "eval_data": list(plan.eval_data), "n_clips": int(clips.main.sum()),
        "n_extra_clips": int((~clips.main).sum()),
        "speakers": clips.speakers,
        "skipped_files": [{"path": str(u.path), "reason": m} for u, m in clips.failed],
        "summary": summary, "pooled": pooled,
        "folds": fold_reports, "final": final_info, "cv_from": _cv_info(cv),
        "seconds": round(seconds, 1), "versions": versions(),
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
    y_base = y_train[base.window_recording]
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
        x_val, y_val_rows = dv.inputs, y_val[dv.window_recording]
    result = fit_model(n_classes, normalizer, epoch_inputs, y_train, cfg, x_val=x_val,
                       y_val=y_val_rows, teacher=teacher, name=name, label_groups=groups)
    return result, normalizer
