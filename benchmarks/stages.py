"""The measuring stages of ``ser-bench`` between choosing the models and writing the report:
recordings, accuracy (clean, conditions, every corpus), fresh processes, the live recordings
and the hour, the front-end peers. Each returns JSON-ready dicts and appends what it could not
do to ``notes`` (skips) or ``errors`` (failures: exit status 2)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import accuracy, live, processes
from benchmarks.accuracy import EvalSet
from benchmarks.choose import group_of
from benchmarks.contenders import Contender
from benchmarks.data import (
    Corpus,
    SpecGroup,
    condition_rows,
    live_clips,
    load_evalset,
    report_failures,
)
from benchmarks.progress import say
from benchmarks.recordings import conditions_available
from edge.errors import ConfigError
from edge.extras import TRAIN_EXTRA


def clean_sets(corpora: list[Corpus], groups: list[SpecGroup], errors: list[str]
                ) -> dict[tuple[str, int], EvalSet]:
    """Every corpus's clean recordings for every spec group; unreadable clips reported."""
    out: dict[tuple[str, int], EvalSet] = {}
    for corpus in corpora:
        for g, group in enumerate(groups):
            evalset = load_evalset(corpus, group)
            out[(corpus.name, g)] = evalset
            if g == 0:
                if not evalset.utterances:
                    raise ConfigError(f"--data {corpus.directory}: none of the"
                                      f" {len(corpus.utterances)} clips could be read"
                                      f" ({evalset.failed[0][1]})")
                report_failures(evalset, errors)
            d = evalset.describe()
            say(f"  {corpus.name}: {d['clips']} clips of {len(d['speakers'])} speakers,"
                f" {d['utterances']} utterances, {d['interims']} interim hops,"
                f" {d['no_utterance']} clips without an utterance")
    return out


def score_corpora(groups: list[SpecGroup], sets: dict[tuple[str, int], EvalSet],
                  corpora: list[Corpus], runners: dict[str, Any], *, interims: bool
           ) -> dict[str, dict[str, Any]]:
    """Per corpus name: every contender's scores (``models``), the int8/float
    ``comparisons`` and the recording ``probs``."""
    out: dict[str, dict[str, Any]] = {}
    for corpus in corpora:
        merged: dict[str, Any] = {"models": {}, "comparisons": [], "probs": {}}
        for g, group in enumerate(groups):
            s = accuracy.evaluate(list(group.contenders), sets[(corpus.name, g)],
                                  interims=interims, runners=runners)
            for key in ("models", "probs"):
                merged[key].update(s[key])
            merged["comparisons"] += s["comparisons"]
        out[corpus.name] = merged
    return out


def score_conditions(primary: Corpus, groups: list[SpecGroup], names: list[str],
                     runners: dict[str, Any], notes: list[str]) -> dict[str, dict[str, Any]]:
    """Per condition: scores of the primary corpus's held-out recordings under it."""
    if not names:
        return {}
    if not conditions_available():
        notes.append("room conditions skipped: they need the host's train extra (librosa,"
                     f" SciPy, tqdm; {TRAIN_EXTRA})")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        merged: dict[str, Any] = {"models": {}, "comparisons": []}
        for group in groups:
            keep = condition_rows(list(group.contenders), primary)
            if not keep.any():
                continue
            evalset = load_evalset(primary, group, condition=name, keep=keep)
            s = accuracy.evaluate(list(group.contenders), evalset, interims=False,
                                  runners=runners)
            merged["models"].update(s["models"])
            merged["comparisons"] += s["comparisons"]
        if not merged["models"]:
            notes.append(f"room conditions skipped: no model has held-out speakers in"
                         f" {primary.directory} (--folds scores fold models on theirs)")
            return {}
        out[name] = merged
    return out


class SingleThreadedBlas:
    """numpy's BLAS limited to one thread while timing (``threadpoolctl``, when installed).

    On a busy machine a multi-threaded BLAS call waits for worker threads that are not
    scheduled: a 40x257 float32 matrix product (librosa's mel projection) was measured at
    0.1 ms alone and 16 ms under load. The device runs the front end on one core; the
    interpreter's own threads (``--threads``) and TensorFlow's pools are not affected.
    """

    def __init__(self) -> None:
        self.threads: int | str = "default (threadpoolctl not installed)"
        self._limit: Any = None

    def __enter__(self) -> SingleThreadedBlas:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return self
        self._limit = threadpool_limits(limits=1, user_api="blas")
        self.threads = 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self._limit is not None:
            self._limit.restore_original_limits()


def clip_list(evalset: EvalSet, rows, *, seed: int) -> list[tuple[str, str]]:
    """``(path, label)`` of the ``rows`` recordings in a seeded shuffled order."""
    rows = np.asarray(list(rows))
    rows = rows[np.random.default_rng(seed).permutation(rows.size)]
    return [(str(evalset.utterances[i].path), evalset.utterances[i].label) for i in rows]


def fresh_processes(models: list[Contender], recording: Path, audio_seconds: float,
                    clip: Path, *, threads: int, repeats: int, hop_seconds: float | None,
                    errors: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Streaming, start-up and load-only figures per model, and the baseline process."""
    out: dict[str, dict[str, Any]] = {}
    for c in models:
        entry: dict[str, Any] = {}
        if c.bundle is not None:
            entry["streaming"] = processes.streaming(c, recording, audio_seconds,
                                                     threads=threads, repeats=repeats,
                                                     hop_seconds=hop_seconds)
        entry["first_prediction"] = processes.first_prediction(c, clip, repeats=repeats)
        entry["load_only"] = processes.load_only(c, None, repeats=repeats)
        for key, value in entry.items():
            if "error" in value:
                say(f"{c.name} {key}: {value['error']}")
                errors.append(f"{c.name} {key}: {value['error']}")
        out[c.name] = entry
    return out, processes.load_only(None, None, repeats=repeats)


def live_all(bundles: list[Contender], clean: dict[tuple[str, int], EvalSet],
             groups: list[SpecGroup], corpora: list[Corpus], scored: dict[str, dict],
             limit: int, hour_seconds: float, tmp: Path, threads: int,
             hop_seconds: float | None, notes: list[str], errors: list[str]
          ) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """Each int8 bundle's live measurement, and the hour through one of them."""
    out: dict[str, dict[str, Any]] = {}
    int8 = [c for c in bundles if c.is_int8]
    if not int8:
        notes.append("live measurement skipped: no int8 bundle among the models")
        return out, None
    for c in int8 if limit else []:
        evalsets = [clean[(k.name, group_of(groups, c))] for k in corpora]
        picked = live_clips(c, evalsets, limit)
        if picked is None:
            notes.append(f"{c.name}: no clip with one of its labels; no live measurement")
            continue
        ev = picked.evalset
        clips = [(str(ev.utterances[i].path), lab) for i, lab in zip(picked.rows,
                                                                       picked.labels)]
        say(f"{c.name}: live on {len(clips)} clips of {ev.name} ({picked.speakers_label})")
        try:
            m, files = live.measure(clips, str(c.path), tmp, threads=threads,
                                    hop_seconds=hop_seconds, merge=picked.merge, progress=say)
        except RuntimeError as e:
            errors.append(f"{c.name} live: {e}")
            say(f"{c.name} live: {e}")
            continue
        m["corpus"] = ev.name
        m["speakers_label"] = picked.speakers_label
        m["offline_vs_predict"] = offline_parity(c, ev, picked, scored[ev.name]["probs"]
                                                  .get(c.name), files)
        say(f"{c.name}: {live.summary_line(m)}")
        out[c.name] = m
    if hour_seconds <= 0:
        return out, None
    model = default_among(int8)
    primary = clean[(corpora[0].name, group_of(groups, model))]
    clips = clip_list(primary, range(len(primary.utterances)), seed=1)
    say(f"hour: {hour_seconds / 60:.1f} minutes of clips and pauses through edge-ser predict and"
        f" listen --file --fast with {model.name}")
    try:
        h = live.hour(clips, str(model.path), tmp, seconds=hour_seconds, threads=threads)
    except RuntimeError as e:
        errors.append(f"hour: {e}")
        return out, None
    h["model"] = model.name
    say(f"hour: peak RSS predict {h['predict']['peak_rss_bytes'] / 2**20:.0f} MB, listen"
        f" {h['listen']['peak_rss_bytes'] / 2**20:.0f} MB")
    return out, h


def offline_parity(c: Contender, evalset: EvalSet, picked: Any, probs: np.ndarray | None,
                   files: dict[str, dict] | None) -> dict[str, Any] | None:
    """Whether the benchmark's own scoring of the live clips equals ``edge-ser predict`` on
    the same files: labels, and probabilities to the 4 digits predict prints."""
    if probs is None or not files:
        return None
    same, worst, n = 0, 0.0, 0
    for i in picked.rows:
        f = files.get(str(evalset.utterances[i].path))
        if f is None:
            continue
        n += 1
        mine = probs[i]
        if f["label"] is None or np.isnan(mine).any():
            same += (f["label"] is None) == bool(np.isnan(mine).any())
            continue
        theirs = np.array([f["probs"][k] for k in c.labels])
        same += c.labels[int(np.argmax(mine))] == f["label"]
        worst = max(worst, float(np.abs(theirs - mine).max()))
    return {"clips": n, "same_label": same, "max_abs_prob_diff": worst}


def default_among(bundles: list[Contender]) -> Contender:
    """The bundle its directory's ``DEFAULT`` names, else the first."""
    for c in bundles:
        default = c.path.parent / "DEFAULT"
        try:
            if default.is_file() and default.read_text().strip() in (c.path.name, c.path.stem):
                return c
        except OSError:
            continue
    return bundles[0]


def frontend_peers(evalset: EvalSet, repeats: int, notes: list[str]) -> dict[str, Any]:
    missing = [m for m in ("librosa", "python_speech_features")
               if importlib.util.find_spec(m) is None]
    if missing:
        notes.append(f"front-end peers skipped: {', '.join(missing)} not installed"
                     f" ({TRAIN_EXTRA} adds them)")
        return {"skipped": f"{', '.join(missing)} not installed"}
    from benchmarks.frontend import run as frontend_run

    paths = [u.path for u in evalset.utterances]
    picks = np.unique(np.linspace(0, len(paths) - 1, min(40, len(paths))).round().astype(int))
    chosen = [paths[i] for i in picks]
    return frontend_run(chosen, repeats=max(3, repeats // len(chosen)))
