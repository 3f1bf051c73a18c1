"""Accuracy of each contender on the same recordings, honest about which speakers it has heard.

Each recording is scored exactly as ``edge-ser predict`` scores a file
(:mod:`benchmarks.recordings`, :mod:`benchmarks.inputs`): endpointed utterances, each
utterance's windows averaged, the utterances averaged weighted by their speech. A recording
in which no utterance is found has no result and counts as wrong (and is counted). Beside
it, the **interim accuracy**: the share of interim results (the utterance so far, every hop
during speech, as ``edge-ser listen`` shows it live) whose label is the recording's.

An :class:`EvalSet` is one corpus (a ``--data`` directory), clean or under one of the room
conditions (:data:`train.conditions.CONDITIONS`). Every contender scores the same recordings;
int8 and float versions of one trained model are compared recording by recording.

Speaker independence: a bundle's metadata lists the speakers it was trained and validated
on. Recordings of those speakers are scored separately and labelled "training speakers - not
a generalisation figure"; the headline uses only the other speakers when there are any.
Labels: a corpus label the model has no class for is left out (and named); a corpus without
"calm" counts a predicted calm as neutral (as ``ser-train``'s other-corpus scores do).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contenders import Contender, float_counterparts, runner
from benchmarks.inputs import Scored, build
from benchmarks.inputs import score as score_inputs
from benchmarks.metrics import binomial_se, score
from benchmarks.progress import bar
from edge.batch import Recording, predicted_labels
from edge.features import FeatureSpec
from train.corpora import Utterance, read_corpus

HELD_OUT = "held-out speakers"
TRAINING = "training speakers - not a generalisation figure"
UNKNOWN = "speakers unverified - the model does not say whom it was trained on"
CLEAN = "clean"
CHUNK = 96
"""Recordings whose inputs are built at once (and scored by every contender in turn)."""


@dataclass
class EvalSet:
    """The recordings every contender is scored on: one corpus, clean or one condition."""

    name: str
    """The corpus's name in the report (its directory's name, ``ravdess-speech-16k``)."""
    directory: str
    condition: str
    """``"clean"`` or a :data:`train.conditions.CONDITIONS` name."""
    spec: FeatureSpec
    hop: int
    """Frames per hop (interim results)."""
    utterances: list[Utterance]
    recordings: list[Recording]
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)`` of files that could not be used."""

    @property
    def speakers(self) -> np.ndarray:
        return np.array([u.speaker for u in self.utterances])

    @property
    def labels(self) -> np.ndarray:
        return np.array([u.label for u in self.utterances])

    def describe(self) -> dict[str, Any]:
        return {
            "clips": len(self.utterances),
            "speakers": sorted(set(self.speakers.tolist())),
            "label_counts": dict(sorted(Counter(self.labels.tolist()).items())),
            "no_utterance": int(sum(not r.finals for r in self.recordings)),
            "utterances": int(sum(len(r.finals) for r in self.recordings)),
            "interims": int(sum(len(r.interims) for r in self.recordings)),
            "speech_seconds": round(sum(s.speech_frames for r in self.recordings
                                        for s in r.finals) / self.spec.frames_per_second, 1),
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
        }


def read_clips(data: str | Path, max_clips: int | None = None) -> tuple[list[Utterance], dict]:
    """Labelled utterances under ``data`` (corpus detected from the file names), at most
    ``max_clips`` of them spread evenly over the sorted list (so over speakers and labels);
    and what the reader skipped."""
    corpus = read_corpus(data)
    utterances = sorted(corpus.utterances, key=lambda u: (u.speaker, str(u.path)))
    if max_clips is not None and 0 < max_clips < len(utterances):
        picks = np.linspace(0, len(utterances) - 1, max_clips).round().astype(int)
        utterances = [utterances[i] for i in np.unique(picks)]
    return utterances, {"corpus": corpus.name, "skipped": dict(corpus.skipped)}


def spec_key(spec: FeatureSpec) -> str:
    """Contenders with equal keys share one set of recordings and model inputs."""
    import json

    return json.dumps(spec.to_dict(), sort_keys=True)


# --------------------------------------------------------------------------------------
# Predicting
# --------------------------------------------------------------------------------------


@dataclass
class Predictions:
    """One contender's results on one :class:`EvalSet`."""

    probs: np.ndarray
    """``(n_recordings, n_labels)`` float64; NaN rows: no utterance, or not scored."""
    scored: np.ndarray
    """Which recordings the contender scored, bool ``(n_recordings,)``."""
    interim_probs: np.ndarray | None = None
    """``(n_interims, n_labels)``; None when interims were not scored."""
    interim_recording: np.ndarray | None = None


def _rows(contender: Contender, evalset: EvalSet) -> np.ndarray:
    rows = np.ones(len(evalset.utterances), bool)
    if contender.score_speakers is not None:
        rows &= np.isin(evalset.speakers, list(contender.score_speakers))
    return rows


def predict_all(contenders: list[Contender], evalset: EvalSet, *, interims: bool,
                runners: dict[str, Any], progress: bool = True) -> dict[str, Predictions]:
    """Every contender's (and pooled member's) results on ``evalset``, building each chunk
    of recordings' inputs once. ``runners`` maps names to runners (built when missing)."""
    n = len(evalset.utterances)
    singles: list[Contender] = []
    for c in contenders:
        singles += list(c.members) if c.members else [c]
    out = {}
    for c in singles:
        n_labels = len(c.labels)
        out[c.name] = Predictions(np.full((n, n_labels), np.nan), _rows(c, evalset),
                                  [] if interims else None, [] if interims else None)
    chunks = [np.arange(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]
    desc = f"scoring {evalset.name} {evalset.condition} ({len(singles)} models)"
    for idx in bar(chunks, desc, total=len(chunks), unit="chunk", enabled=progress):
        wanted = np.zeros(len(idx), bool)
        for c in singles:
            wanted |= out[c.name].scored[idx]
        if not wanted.any():
            continue
        recs = [evalset.recordings[i] for i in idx]
        x = build(recs, evalset.spec, interims=interims, keep=wanted)
        for c in singles:
            p = out[c.name]
            keep = p.scored[idx]
            if not keep.any():
                continue
            if c.name not in runners:
                runners[c.name] = runner(c)
            s: Scored = score_inputs(runners[c.name].predict, x.subset(keep), len(c.labels))
            p.probs[idx[keep]] = s.recording_probs[keep]
            if interims:
                p.interim_probs.append(s.interim_probs)
                p.interim_recording.append(idx[s.interim_recording])
    for p in out.values():
        if interims:
            width = p.probs.shape[1]
            p.interim_probs = (np.concatenate(p.interim_probs) if p.interim_probs
                               else np.zeros((0, width), np.float32))
            p.interim_recording = (np.concatenate(p.interim_recording) if p.interim_recording
                                   else np.zeros(0, np.int64))
    for c in contenders:  # pooled: each member filled its own speakers' rows
        if c.members:
            out[c.name] = _pool([out[m.name] for m in c.members], interims)
    return out


def _pool(parts: list[Predictions], interims: bool) -> Predictions:
    probs = np.full_like(parts[0].probs, np.nan)
    scored = np.zeros_like(parts[0].scored)
    for p in parts:
        probs[p.scored] = p.probs[p.scored]
        scored |= p.scored
    if not interims:
        return Predictions(probs, scored)
    return Predictions(probs, scored, np.concatenate([p.interim_probs for p in parts]),
                       np.concatenate([p.interim_recording for p in parts]))


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------


def truth_of(contender: Contender, evalset: EvalSet) -> np.ndarray:
    """Index of each recording's label in the contender's classes; -1 when it has none."""
    classes = [contender.class_of(lab) for lab in evalset.labels]
    return np.array([-1 if c is None else c for c in classes], dtype=np.int64)


def label_merge(contender: Contender, truth: np.ndarray) -> dict[int, int]:
    """``{calm: neutral}`` when the model has both and no recording is calm (a corpus
    without calm), else ``{}``."""
    labels = contender.labels
    if "calm" in labels and "neutral" in labels and labels.index("calm") not in set(
            truth[truth >= 0].tolist()):
        return {labels.index("calm"): labels.index("neutral")}
    return {}


def _group(name: str, truth: np.ndarray, pred: np.ndarray, rows: np.ndarray,
           labels: tuple[str, ...], interim: tuple[np.ndarray, np.ndarray] | None
           ) -> dict[str, Any] | None:
    if not rows.any():
        return None
    s = score(truth[rows], pred[rows], labels)
    d = s.to_dict()
    d["speakers_label"] = name
    d["accuracy_se"] = binomial_se(s.accuracy, s.n)
    if interim is not None:
        ipred, irec = interim
        mine = rows[irec]
        d["interim"] = {"accuracy": (float(np.mean(ipred[mine] == truth[irec[mine]]))
                                     if mine.any() else None),
                        "n": int(mine.sum())}
    return d


def score_contender(contender: Contender, p: Predictions, evalset: EvalSet) -> dict[str, Any]:
    """Scores on held-out speakers and on training speakers, and which is the headline."""
    truth = truth_of(contender, evalset)
    merge = label_merge(contender, truth)
    pred = predicted_labels(p.probs, merge)
    usable = p.scored & (truth >= 0)
    interim = None
    if p.interim_probs is not None:
        interim = (predicted_labels(p.interim_probs, merge), p.interim_recording)
    unlabelled = sorted({lab for lab, t, s in zip(evalset.labels, truth, p.scored)
                         if t < 0 and s})
    speakers = evalset.speakers
    labels = contender.labels
    if contender.documents_speakers:
        seen = np.isin(speakers, contender.seen_speakers)
        held = _group(HELD_OUT, truth, pred, usable & ~seen, labels, interim)
        trained = _group(TRAINING, truth, pred, usable & seen, labels, interim)
    else:
        held, trained = None, _group(UNKNOWN, truth, pred, usable, labels, interim)
    headline = held or trained
    result: dict[str, Any] = {
        "corpus": evalset.name, "condition": evalset.condition,
        "clips_scored": int(usable.sum()),
        "held_out": held,
        "training_speakers": trained if contender.documents_speakers else None,
        "unverified": None if contender.documents_speakers else trained,
        "headline": headline["speakers_label"] if headline else None,
        "speakers_scored": sorted(set(speakers[usable].tolist())),
        "labels_not_in_model": unlabelled,
        "counted_as": {labels[a]: labels[b] for a, b in merge.items()},
    }
    if headline:
        result.update({k: headline[k] for k in ("accuracy", "macro_f1", "recall", "confusion",
                                                "n", "accuracy_se", "no_result",
                                                "no_result_per_class")})
        result["interim"] = headline.get("interim")
    return result


def compare(q: Contender, f: Contender, preds: dict[str, Predictions],
            scores: dict[str, dict], evalset: EvalSet) -> dict[str, Any]:
    """int8 against its float counterpart, recording by recording, on the recordings both
    scored and both gave a result for."""
    pq, pf = preds[q.name], preds[f.name]
    both = pq.scored & pf.scored
    answered = both & ~np.isnan(pq.probs).any(axis=1) & ~np.isnan(pf.probs).any(axis=1)
    seen = (np.isin(evalset.speakers, q.seen_speakers) if q.documents_speakers
            else np.zeros(len(both), dtype=bool))
    lq, lf = predicted_labels(pq.probs), predicted_labels(pf.probs)
    out: dict[str, Any] = {"int8": q.name, "float": f.name, "corpus": evalset.name,
                           "condition": evalset.condition, "clips": int(answered.sum()),
                           "answered_differently": int(np.sum(both & ((lq < 0) != (lf < 0))))}
    if answered.any():
        out["agreement"] = float(np.mean(lq[answered] == lf[answered]))
        out["max_abs_prob_diff_median"] = float(np.median(
            np.abs(pq.probs[answered] - pf.probs[answered]).max(axis=1)))
    held = answered & ~seen
    out["agreement_held_out"] = float(np.mean(lq[held] == lf[held])) if held.any() else None
    out["clips_held_out"] = int(held.sum())
    sq, sf = scores[q.name], scores[f.name]
    if sq.get("accuracy") is not None and sf.get("accuracy") is not None \
            and sq["headline"] == sf["headline"]:
        out["speakers_label"] = sq["headline"]
        out["accuracy_gap"] = sf["accuracy"] - sq["accuracy"]
        out["macro_f1_gap"] = sf["macro_f1"] - sq["macro_f1"]
    return out


def evaluate(contenders: list[Contender], evalset: EvalSet, *, interims: bool,
             runners: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Scores of every contender (not latency-only ones) on ``evalset`` and every int8/float
    comparison; ``probs`` too (for the live comparison and the tests)."""
    scored = [c for c in contenders if not c.latency_only]
    preds = predict_all(scored, evalset, interims=interims, runners=runners,
                        progress=progress)
    scores = {c.name: score_contender(c, preds[c.name], evalset) for c in scored}
    comparisons = [x for x in (compare(q, f, preds, scores, evalset)
                               for q, f in float_counterparts(scored)) if x["clips"]]
    return {"models": scores, "comparisons": comparisons,
            "probs": {c.name: preds[c.name].probs for c in scored}}
