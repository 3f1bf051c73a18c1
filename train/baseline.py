"""The classical kinds (``--model rf|svm|knn|egemaps-svm``): one feature vector per clip and
a scikit-learn classifier.

Per clip, from its first endpointed utterance (the networks' first window of it):

- ``rf``, ``svm``, ``knn``: utterance statistics: mean, std, min and max over time of the 40
  level-normalised MFCCs and their deltas, plus chroma, RMS, zero-crossing rate, spectral
  centroid, bandwidth and roll-off means and stds (librosa) of the utterance's audio;
- ``egemaps-svm``: the 88 eGeMAPSv02 functionals of the utterance's audio (openSMILE, through
  the ``opensmile`` package).

``svm``, ``knn`` and ``egemaps-svm`` scale the features (a StandardScaler in the pipeline, so
fitted on training clips only) and choose their hyperparameters from a small grid by an inner
cross-validation grouped by speaker (GroupKFold) on the fold's training speakers alone: the
test speakers never choose anything. Scored with the same speaker-independent folds as the
networks and written in the same report format.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import librosa
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm import tqdm

from edge.errors import ConfigError
from edge.features import FeatureSpec
from train.corpora import Utterance
from train.dataset import (
    default_cache_dir,
    file_digest,
    first_input,
    load_recordings,
    load_signal,
    sorted_speakers,
    speaker_folds,
)
from train.egemaps import egemaps_functionals
from train.evaluate import markdown_report, plot_confusion, scores, summarize_folds, write_json
from train.labels import LabelMap
from train.plan import versions


def utterance_statistics(inputs: np.ndarray, windows: list[np.ndarray],
                         sample_rate: int) -> np.ndarray:
    """Statistics per clip: ``(n, 4 * n_mfcc * channels + 34)`` float32."""
    mfcc_stats = np.concatenate([inputs.mean(1), inputs.std(1), inputs.min(1), inputs.max(1)],
                                axis=1).reshape(len(inputs), -1)
    extra = []
    for w in tqdm(windows, desc="spectral statistics", unit="clip", file=sys.stderr,
                  leave=False):
        feats = [
            librosa.feature.chroma_stft(y=w, sr=sample_rate, n_fft=512, hop_length=160),
            librosa.feature.rms(y=w, frame_length=512, hop_length=160),
            librosa.feature.zero_crossing_rate(w, frame_length=512, hop_length=160),
            librosa.feature.spectral_centroid(y=w, sr=sample_rate, n_fft=512, hop_length=160),
            librosa.feature.spectral_bandwidth(y=w, sr=sample_rate, n_fft=512, hop_length=160),
            librosa.feature.spectral_rolloff(y=w, sr=sample_rate, n_fft=512, hop_length=160),
        ]
        f = np.concatenate(feats, axis=0)
        extra.append(np.concatenate([f.mean(1), f.std(1)]))
    return np.concatenate([mfcc_stats, np.asarray(extra)], axis=1).astype(np.float32)


INNER_FOLDS = 4
"""Speaker-grouped inner folds that choose a grid point (fewer when a fold trains on fewer
speakers)."""


def _forest(seed: int):
    return RandomForestClassifier(n_estimators=300, class_weight="balanced",
                                  min_samples_leaf=2, random_state=seed, n_jobs=1), None


def _svm(seed: int):
    pipe = Pipeline([("scale", StandardScaler()),
                     ("svm", SVC(kernel="rbf", class_weight="balanced", random_state=seed))])
    return pipe, {"svm__C": [1.0, 10.0, 100.0], "svm__gamma": ["scale", 3e-4]}


def _knn(seed: int):
    pipe = Pipeline([("scale", StandardScaler()), ("knn", KNeighborsClassifier())])
    return pipe, {"knn__n_neighbors": [5, 10, 20, 40], "knn__weights": ["uniform", "distance"]}


def _linear_svm(seed: int):
    pipe = Pipeline([("scale", StandardScaler()),
                     ("svm", SVC(kernel="linear", class_weight="balanced", random_state=seed))])
    return pipe, {"svm__C": [0.01, 0.1, 1.0]}


CLASSIFIERS = {"rf": _forest, "svm": _svm, "knn": _knn, "egemaps-svm": _linear_svm}
"""Classical kind -> ``seed -> (estimator, grid or None)``: the grid is searched on the
training speakers only (:func:`fit_classifier`)."""
FEATURES = {"rf": "statistics", "svm": "statistics", "knn": "statistics",
            "egemaps-svm": "egemaps"}
"""Classical kind -> its clip features: ``statistics`` (:func:`utterance_statistics`) or
``egemaps`` (:func:`train.egemaps.egemaps_functionals`)."""


def fit_classifier(kind: str, x: np.ndarray, y: np.ndarray, speaker: np.ndarray, seed: int
                   ) -> tuple[Any, dict[str, Any]]:
    """Fit ``kind`` on ``x (n, d)``, labels ``y (n,)``; with a grid, the grid point is chosen by
    accuracy over GroupKFold(speaker) on these rows alone, then refitted on all of them.
    Returns the fitted classifier and the chosen parameters (empty without a grid)."""
    estimator, grid = CLASSIFIERS[kind](seed)
    if grid is None:
        return estimator.fit(x, y), {}
    n_speakers = len(set(speaker.tolist()))
    if n_speakers < 2:
        raise ConfigError(f"--model {kind}: its grid is chosen on training speakers by"
                          f" speaker-grouped folds, which needs >= 2 training speakers"
                          f" (a fold has {n_speakers})")
    search = GridSearchCV(estimator, grid, cv=GroupKFold(min(INNER_FOLDS, n_speakers)),
                          scoring="accuracy", n_jobs=1, refit=True)
    search.fit(x, y, groups=speaker)
    chosen = {k.split("__", 1)[1]: v for k, v in search.best_params_.items()}
    chosen["inner_accuracy"] = round(float(search.best_score_), 4)
    return search.best_estimator_, chosen


CLIP_FEATURES_VERSION = 1
"""Part of every clip-feature cache key: bump it when a feature's computation changes."""


def clip_features(name: str, compute, spec: FeatureSpec, utterances: list[Utterance],
                  recordings: list, *, cache_dir, use_cache: bool) -> np.ndarray:
    """``compute()`` (the ``(n, d)`` feature table of ``utterances``), cached as one ``.npy``
    per (feature set, front end, clip contents and first utterances, in order) under
    ``<cache>/clip-features/``: svm, knn and rf share the statistics, a second run reuses
    them."""
    if not use_cache:
        return compute()
    clips = [(file_digest(u.path), int(r.utterances[0].start), int(r.utterances[0].end))
             for u, r in zip(utterances, recordings)]
    text = json.dumps({"features": name, "spec": spec.to_dict(), "clips": clips,
                       "version": CLIP_FEATURES_VERSION}, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()[:20]
    path = (Path(cache_dir) if cache_dir else default_cache_dir()) / "clip-features" \
        / f"{name}-{key}.npy"
    with contextlib.suppress(OSError, ValueError):
        x = np.load(path)
        if x.shape[0] == len(utterances):
            return x
    x = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, x)
    os.replace(tmp, path)
    return x


def run_baseline(out: Path, spec: FeatureSpec, data: tuple[dict, ...],
                 utterances: list[Utterance], label_map: LabelMap, *, folds: int,
                 test_speakers: tuple[str, ...] | None, seed: int, cache_dir, use_cache: bool,
                 command: str, kind: str = "rf") -> dict[str, Any]:
    """K-fold (or held-out speakers) classical ``kind``; writes model.pkl, report.* to
    ``out``."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    labels = list(label_map.classes)
    utts = [u for u in utterances if label_map(u.label) is not None]
    ex = load_recordings(utts, spec, cache_dir=cache_dir, use_cache=use_cache)
    for _, message in ex.failed:
        print(f"skipped: {message}", file=sys.stderr)
    utts = ex.kept
    fe = spec.frontend

    def compute() -> np.ndarray:
        windows = []
        for u, r in zip(utts, ex.recordings):
            seg = r.utterances[0]
            windows.append(load_signal(u, spec)[seg.start * fe.hop_length:
                                                fe.samples_for(seg.end)])
        if FEATURES[kind] == "egemaps":
            return egemaps_functionals(windows, fe.sample_rate)
        inputs = np.stack([first_input(r, spec) for r in ex.recordings])
        return utterance_statistics(inputs, windows, fe.sample_rate)

    x = clip_features(FEATURES[kind], compute, spec, utts, ex.recordings,
                      cache_dir=cache_dir, use_cache=use_cache)
    y = np.array([label_map.index(u.label) for u in utts])
    speaker = np.array([u.speaker for u in utts])
    speakers = sorted_speakers(speaker)
    if test_speakers is not None:
        test_folds = [sorted_speakers(test_speakers)]
        if not set(test_speakers) <= set(speakers):
            raise ConfigError("--test-actors: some speakers have no clips")
    else:
        test_folds = speaker_folds(speakers, folds)

    fold_reports, trues, preds = [], [], []
    for k, test_spk in enumerate(test_folds):
        te = np.isin(speaker, test_spk)
        t0 = time.perf_counter()
        clf, chosen = fit_classifier(kind, x[~te], y[~te], speaker[~te], seed + k)
        fit_seconds = time.perf_counter() - t0
        pred = clf.predict(x[te])
        s = scores(y[te], pred, labels)
        print(f"fold {k + 1}/{len(test_folds)}: accuracy {s['accuracy']:.3f}, macro-F1"
              f" {s['macro_f1']:.3f}" + (f"; chose {chosen}" if chosen else ""),
              file=sys.stderr)
        trues.append(y[te])
        fold_dir = out / "folds" / f"fold-{k + 1}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        write_json(fold_dir / "predictions.json", {  # as the Keras kinds' folds: pairable
            "labels": labels,
            "clips": [{"path": str(utts[i].path), "speaker": utts[i].speaker,
                       "label": labels[y[i]], "predicted": labels[int(p)]}
                      for i, p in zip(np.flatnonzero(te), pred)],
        })
        preds.append(pred)
        fold_reports.append({
            "fold": k + 1, "test_speakers": list(test_spk), "val_speakers": [],
            "train_speakers": sorted_speakers(speaker[~te]),
            "sizes": {"train": int((~te).sum()), "val": 0, "test": int(te.sum())},
            "chosen": chosen, "seconds": round(fit_seconds, 1),
            "test": s,
        })
    summary = summarize_folds(fold_reports)
    pooled = scores(np.concatenate(trues), np.concatenate(preds), labels)
    train_rows = ~np.isin(speaker, test_folds[0]) if test_speakers else np.ones(len(y), bool)
    final, chosen = fit_classifier(kind, x[train_rows], y[train_rows], speaker[train_rows],
                                   seed)
    with open(out / "model.pkl", "wb") as f:
        pickle.dump({"model": final, "kind": kind, "labels": labels,
                     "features": spec.to_dict(), "clip_features": FEATURES[kind]}, f)
    report = {
        "command": command, "labels": labels, "data": list(data),
        "model": {"kind": kind, "features": FEATURES[kind], "dimensions": int(x.shape[1]),
                  "grid": CLASSIFIERS[kind](seed)[1] or {},
                  "final_chosen": chosen},
        "extra_data": [], "eval_data": [], "n_clips": len(utts), "n_extra_clips": 0,
        "speakers": speakers,
        "skipped_files": [{"path": str(u.path), "reason": m} for u, m in ex.failed],
        "summary": summary, "pooled": pooled, "folds": fold_reports, "final": None,
        "cv_from": None,
        "seconds": round(time.perf_counter() - started, 1), "versions": versions(),
    }
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown_report(report))
    plot_confusion(pooled["confusion"], labels, out / "confusion.png",
                   f"{kind}: {summary['folds']} fold(s), accuracy {summary['accuracy_mean']:.3f}"
                   f" ± {summary['accuracy_std']:.3f}")
    return report
