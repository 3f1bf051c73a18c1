"""The classical baseline (``--model rf``): utterance statistics + a random forest.

Per clip, from its first endpointed utterance (the networks' first window of it): mean, std,
min and max over time of the 40 level-normalised MFCCs and their deltas, plus chroma, RMS,
zero-crossing rate, spectral centroid, bandwidth and roll-off means and stds (librosa) of the
utterance's audio.
Scored with the same speaker-independent folds and written in the same report format.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path
from typing import Any

import librosa
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from tqdm import tqdm

from edge.errors import ConfigError
from edge.features import FeatureSpec
from train.corpora import Utterance
from train.dataset import (
    first_input,
    load_recordings,
    load_signal,
    sorted_speakers,
    speaker_folds,
)
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


def run_baseline(out: Path, spec: FeatureSpec, data: tuple[dict, ...],
                 utterances: list[Utterance], label_map: LabelMap, *, folds: int,
                 test_speakers: tuple[str, ...] | None, seed: int, cache_dir, use_cache: bool,
                 command: str) -> dict[str, Any]:
    """K-fold (or held-out speakers) random forest; writes model.pkl, report.* to ``out``."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    labels = list(label_map.classes)
    utts = [u for u in utterances if label_map(u.label) is not None]
    ex = load_recordings(utts, spec, cache_dir=cache_dir, use_cache=use_cache)
    for _, message in ex.failed:
        print(f"skipped: {message}", file=sys.stderr)
    utts = ex.kept
    inputs = np.stack([first_input(r, spec) for r in ex.recordings])
    fe = spec.frontend
    windows = []
    for u, r in zip(utts, ex.recordings):
        seg = r.utterances[0]
        windows.append(load_signal(u, spec)[seg.start * fe.hop_length:
                                            fe.samples_for(seg.end)])
    x = utterance_statistics(inputs, windows, fe.sample_rate)
    y = np.array([label_map.index(u.label) for u in utts])
    speaker = np.array([u.speaker for u in utts])
    speakers = sorted_speakers(speaker)
    if test_speakers is not None:
        test_folds = [sorted_speakers(test_speakers)]
        if not set(test_speakers) <= set(speakers):
            raise ConfigError("--test-actors: some speakers have no clips")
    else:
        test_folds = speaker_folds(speakers, folds)

    def forest(k: int) -> RandomForestClassifier:
        return RandomForestClassifier(n_estimators=300, class_weight="balanced",
                                      min_samples_leaf=2, random_state=seed + k, n_jobs=1)

    fold_reports, trues, preds = [], [], []
    for k, test_spk in enumerate(test_folds):
        te = np.isin(speaker, test_spk)
        clf = forest(k).fit(x[~te], y[~te])
        pred = clf.predict(x[te])
        s = scores(y[te], pred, labels)
        print(f"fold {k + 1}/{len(test_folds)}: accuracy {s['accuracy']:.3f}, macro-F1"
              f" {s['macro_f1']:.3f}", file=sys.stderr)
        trues.append(y[te])
        preds.append(pred)
        fold_reports.append({
            "fold": k + 1, "test_speakers": list(test_spk), "val_speakers": [],
            "train_speakers": sorted_speakers(speaker[~te]),
            "sizes": {"train": int((~te).sum()), "val": 0, "test": int(te.sum())},
            "test": s,
        })
    summary = summarize_folds(fold_reports)
    pooled = scores(np.concatenate(trues), np.concatenate(preds), labels)
    train_rows = ~np.isin(speaker, test_folds[0]) if test_speakers else np.ones(len(y), bool)
    final = forest(0).fit(x[train_rows], y[train_rows])
    with open(out / "model.pkl", "wb") as f:
        pickle.dump({"model": final, "labels": labels, "features": spec.to_dict()}, f)
    report = {
        "command": command, "model": {"kind": "rf"}, "labels": labels, "data": list(data),
        "n_clips": len(utts), "speakers": speakers,
        "skipped_files": [{"path": str(u.path), "reason": m} for u, m in ex.failed],
        "summary": summary, "pooled": pooled, "folds": fold_reports, "final": None,
        "seconds": round(time.perf_counter() - started, 1), "versions": versions(),
    }
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown_report(report))
    plot_confusion(pooled["confusion"], labels, out / "confusion.png",
                   f"rf: {summary['folds']} fold(s), accuracy {summary['accuracy_mean']:.3f}"
                   f" ± {summary['accuracy_std']:.3f}")
    return report
