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

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError
from edge.features import DEFAULT_HOP_SECONDS, Normalizer
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
from train.plan import RunPlan, log, training_dict, versions
from train.reuse import FOLD_RESULT, finished_fold, fold_key, reused_cv, wait_for_cv
from train.scoring import EvalCorpus, corpus_scores, evaluate_model
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
# The run
# --------------------------------------------------------------------------------------




def _load(plan: RunPlan, utts: list[Utterance], variant: Variant, desc: str
          ) -> list[Recording]:
    loaded = load_recordings(utts, plan.spec, variant=variant, cache_dir=plan.cache_dir,
                             use_cache=plan.use_cache, desc=desc)
    if len(loaded.kept) != len(utts):
        raise ConfigError(f"an audio file became unreadable during the run:"
                          f" {loaded.failed[0][1]}")
    log(f"{desc}: {len(utts)} clips ({loaded.computed} computed)")
    return loaded.recordings


def _eval_corpora(plan: RunPlan, corpora: list[tuple[str, list[Utterance]]],
                  label_map: LabelMap) -> list[EvalCorpus]:
    out = []
    for name, utts in corpora:
        keep = [u for u in utts if label_map(u.label) is not None]
        loaded = load_recordings(keep, plan.spec, cache_dir=plan.cache_dir,
                                 use_cache=plan.use_cache, desc=f"{name} (eval)")
        for _u, message in loaded.failed:
            log(f"skipped: {message}")
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
        log(f"skipped: {message}")
    utts, clean = loaded.kept, loaded.recordings
    y = np.array([label_map.index(u.label) for u in utts], dtype=np.int64)
    speaker = np.array([u.speaker for u in utts])
    main = np.array([is_main[id(u)] for u in utts])
    corpus = np.array([u.corpus for u in utts])
    speakers = sorted_speakers(speaker[main])
    no_segment = sum(1 for r in clean if not r.segments)
    log(f"{len(utts)} clips, {len(speakers)} speakers, classes: {', '.join(labels)}"
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
        log(f"fold {k + 1}/{len(test_folds)}: test {', '.join(test_spk)}; val"
             f" {', '.join(val_spk) or '-'}; train {tr.sum()} clips, val {va.sum()},"
             f" test {te.sum()}")
        fold_dir = (plan.out / "folds" / f"fold-{k + 1}") if plan.test_speakers is None \
            else plan.out
        key = fold_key(plan, k, labels, train_spk, val_spk, list(test_spk), int(te.sum()))
        finished = finished_fold(fold_dir, key)
        if finished is not None:
            log(f"fold {k + 1}: taken over from the interrupted run in {fold_dir}"
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
        log(f"fold {k + 1}: {', '.join(figures)}; best epoch {result.best_epoch}"
             f" ({result.seconds:.0f} s)")
        y_true_all.append(y[te])
        y_pred_all.append(y_pred)
        training = training_dict(plan, train_spk, val_spk, list(test_spk), result.best_epoch,
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
        log(f"final model: all {len(everyone)} speakers, {plan.train.epochs} epochs")
        early = fit_final(plan.train.epochs)
        cv = wait_for_cv(plan, labels, speakers)
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
            log(f"final model: all {len(everyone)} speakers, {epochs} epochs"
                 f" (median of the folds' best epochs {best_epochs})")
            result, normalizer = fit_final(epochs)
        training = training_dict(plan, everyone, [], [], epochs, everyone if copies else [])
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
