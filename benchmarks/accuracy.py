"""Accuracy of each contender on the same clips, honest about which speakers it has heard.

Each recording becomes one model window exactly as training and ``edge-ser predict`` make
it (:func:`edge.clip.clip_window`, then :func:`edge.features.signal_input`). Every contender
scores the same clips; int8 and float versions of one trained model are compared clip by
clip (top-1 agreement) as well as by their scores.

Speaker independence: a bundle's metadata lists the speakers it was trained and validated
on. Clips of those speakers are scored separately and labelled "training speakers - not a
generalisation figure"; the headline figure uses only the other speakers when there are any.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contenders import Contender, float_counterparts, runner
from benchmarks.metrics import agreement, binomial_se, score
from benchmarks.progress import bar
from edge.audio import load
from edge.clip import clip_window
from edge.errors import AudioError
from edge.features import FeatureSpec, signal_input
from train.corpora import Utterance, read_corpus

HELD_OUT = "held-out speakers"
TRAINING = "training speakers - not a generalisation figure"
UNKNOWN = "speakers unverified - the model does not say whom it was trained on"


@dataclass
class EvalSet:
    """The clips every contender is scored on, as un-normalised model inputs."""

    spec: FeatureSpec
    utterances: list[Utterance]
    inputs: np.ndarray
    """``(n, *spec.input_shape)`` float32."""
    failed: list[tuple[str, str]]
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


def model_window(path: Path, spec: FeatureSpec) -> np.ndarray:
    """The model's window of one recording (trimmed, cropped/padded, noise floor), float32."""
    return clip_window(load(path, spec.frontend.sample_rate, min_samples=1), spec)


def build_eval_set(utterances: list[Utterance], spec: FeatureSpec, *,
                   progress: bool = True) -> EvalSet:
    """Model inputs of ``utterances``; unreadable files are listed in ``failed``."""
    rows, kept, failed = [], [], []
    for u in bar(utterances, "features", total=len(utterances), unit="clip",
                 enabled=progress):
        try:
            rows.append(signal_input(model_window(u.path, spec), spec))
        except AudioError as e:
            failed.append((str(u.path), str(e)))
            continue
        kept.append(u)
    inputs = (np.stack(rows) if rows
              else np.zeros((0, *spec.input_shape), dtype=np.float32))
    return EvalSet(spec, kept, inputs, failed)


def predict(contender: Contender, evalset: EvalSet, *, progress: bool = True,
            loaded: Any = None) -> np.ndarray:
    """Probabilities ``(n_clips, n_labels)``; NaN rows for clips the contender does not score
    (outside its ``score_speakers``)."""
    out = np.full((len(evalset.utterances), len(contender.labels)), np.nan, dtype=np.float32)
    for member in contender.members:  # pooled folds: each fills its own speakers' rows
        p = predict(member, evalset, progress=progress)
        filled = ~np.isnan(p).any(axis=1)
        out[filled] = p[filled]
    if contender.members:
        return out
    rows = np.arange(len(evalset.utterances))
    if contender.score_speakers is not None:
        rows = rows[np.isin(evalset.speakers, list(contender.score_speakers))]
    if rows.size == 0:
        return out
    run = loaded or runner(contender)
    chunks = np.array_split(rows, max(1, rows.size // run.batch))
    for chunk in bar(chunks, f"scoring {contender.name}", total=len(chunks), unit="batch",
                     enabled=progress):
        out[chunk] = run.predict(evalset.inputs[chunk])
    return out


def _truth(contender: Contender, evalset: EvalSet) -> np.ndarray:
    """Index of each clip's label in the contender's labels; -1 when it has no such label."""
    classes = [contender.class_of(lab) for lab in evalset.labels]
    return np.array([-1 if c is None else c for c in classes], dtype=np.int64)


def _subset(name: str, truth: np.ndarray, probs: np.ndarray, rows: np.ndarray,
            labels: tuple[str, ...]) -> dict[str, Any] | None:
    if not rows.any():
        return None
    s = score(truth[rows], probs[rows].argmax(axis=1), labels)
    d = s.to_dict()
    d["speakers_label"] = name
    d["accuracy_se"] = binomial_se(s.accuracy, s.n)
    return d


def score_contender(contender: Contender, probs: np.ndarray, evalset: EvalSet
                    ) -> dict[str, Any]:
    """Scores on held-out speakers and on training speakers, and which is the headline."""
    truth = _truth(contender, evalset)
    scored = ~np.isnan(probs).any(axis=1)
    usable = scored & (truth >= 0)
    unlabelled = sorted({lab for lab, t, s in zip(evalset.labels, truth, scored)
                         if t < 0 and s})
    speakers = evalset.speakers
    if contender.documents_speakers:
        seen = np.isin(speakers, contender.seen_speakers)
        held = _subset(HELD_OUT, truth, probs, usable & ~seen, contender.labels)
        trained = _subset(TRAINING, truth, probs, usable & seen, contender.labels)
    else:
        held, trained = None, _subset(UNKNOWN, truth, probs, usable, contender.labels)
    headline = held or trained
    result = {
        "clips_scored": int(usable.sum()),
        "held_out": held,
        "training_speakers": trained if contender.documents_speakers else None,
        "unverified": None if contender.documents_speakers else trained,
        "headline": headline["speakers_label"] if headline else None,
        "speakers_scored": sorted(set(speakers[usable].tolist())),
        "labels_not_in_model": unlabelled,
    }
    if headline:
        result.update(accuracy=headline["accuracy"], macro_f1=headline["macro_f1"],
                      recall=headline["recall"], confusion=headline["confusion"],
                      n=headline["n"], accuracy_se=headline["accuracy_se"])
    return result


def compare(q: Contender, f: Contender, probs: dict[str, np.ndarray], scores: dict[str, dict],
            evalset: EvalSet) -> dict[str, Any]:
    """int8 against its float counterpart on the clips both scored."""
    pq, pf = probs[q.name], probs[f.name]
    both = ~(np.isnan(pq).any(axis=1) | np.isnan(pf).any(axis=1))
    seen = (np.isin(evalset.speakers, q.seen_speakers) if q.documents_speakers
            else np.zeros(len(both), dtype=bool))
    out: dict[str, Any] = {"int8": q.name, "float": f.name, "clips": int(both.sum())}
    if both.any():
        out["agreement"] = agreement(pq[both], pf[both])
        out["max_abs_prob_diff_median"] = float(np.median(np.abs(pq[both] - pf[both]).max(1)))
    held = both & ~seen
    out["agreement_held_out"] = agreement(pq[held], pf[held]) if held.any() else None
    sq, sf = scores[q.name], scores[f.name]
    if sq.get("accuracy") is not None and sf.get("accuracy") is not None \
            and sq["headline"] == sf["headline"]:
        out["speakers_label"] = sq["headline"]
        out["accuracy_gap"] = sf["accuracy"] - sq["accuracy"]
        out["macro_f1_gap"] = sf["macro_f1"] - sq["macro_f1"]
    return out


def evaluate(contenders: list[Contender], evalsets: dict[str, EvalSet], *,
             progress: bool = True, loaded: dict[str, Any] | None = None) -> dict[str, Any]:
    """Scores of every contender and every int8/float comparison.

    ``evalsets`` maps a feature-spec key (:func:`spec_key`) to the clips' inputs for that
    spec; ``loaded`` optionally maps contender names to runners already built.
    """
    probs: dict[str, np.ndarray] = {}
    scores: dict[str, dict[str, Any]] = {}
    for c in (c for c in contenders if not c.latency_only):
        evalset = evalsets[spec_key(c.spec)]
        probs[c.name] = predict(c, evalset, progress=progress,
                                loaded=(loaded or {}).get(c.name))
        scores[c.name] = score_contender(c, probs[c.name], evalset)
    comparisons = [compare(q, f, probs, scores, evalsets[spec_key(q.spec)])
                   for q, f in float_counterparts(contenders)]
    return {"models": scores, "comparisons": comparisons, "probs": probs}


def spec_key(spec: FeatureSpec) -> str:
    """Contenders with equal keys share one set of model inputs."""
    return f"{spec.frontend.config_hash()}-{spec.window_seconds}-{spec.delta_width}"
