"""Latency of every step the device runs, for each model and thread count, in one run.

What is timed (all with the runtime's own code, on real audio: clips with pauses over a quiet
room, :func:`benchmarks.live.build_recording`):

* ``front end, per hop``: :class:`edge.frontend.MelStream` on one hop of new audio and the
  new frames' levels (:func:`edge.levels.frame_levels`);
* ``endpointer, per hop``: :class:`edge.endpoint.Endpointer` on one hop of frame levels;
* ``utterance inputs, per window``: :func:`edge.utterance.utterance_inputs` of a real
  utterance of up to one window (level normalisation, floor, cepstra, deltas);
* ``invoke``: the interpreter wrapper's ``invoke`` on one prepared (normalised, quantised)
  window, per model and per interpreter thread count;
* ``end to end, ... hop``: :meth:`edge.recognizer.Recognizer.push` of one hop of audio into a
  running recogniser, split by what the hop produced: an **interim** (speech under way: the
  utterance so far through the model, the expensive hop), a **no-speech** result, or a hop in
  which an utterance ended (its **final** result, then the hop's own);
* ``Keras predict``: ``model.predict`` on one window (float32, TensorFlow's own threads): the
  reference a user without the edge runtime would have.

Contenders run interleaved (round robin, :func:`benchmarks.frontend.interleaved_samples`),
so the noise of a shared machine hits them alike, and ratios are taken within the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.contenders import KERAS, Contender, KerasRunner
from benchmarks.frontend import interleaved_samples, summarise
from edge.batch import Recording
from edge.classifier import Classifier
from edge.endpoint import Endpointer
from edge.features import FeatureSpec
from edge.frontend import MelStream
from edge.levels import frame_levels
from edge.recognizer import Recognizer
from edge.utterance import utterance_inputs

FRONTEND_HOP = "front end, per hop"
ENDPOINT_HOP = "endpointer, per hop"
UTTERANCE_INPUTS = "utterance inputs, per window"
INVOKE = "invoke"
INTERIM_HOP = "end to end, interim hop"
NO_SPEECH_HOP = "end to end, no-speech hop"
FINAL_HOP = "end to end, hop with a final"
END_TO_END = (INTERIM_HOP, NO_SPEECH_HOP, FINAL_HOP)
KERAS_PREDICT = "Keras predict, one window"
_KIND_STEP = {"interim": INTERIM_HOP, "no_speech": NO_SPEECH_HOP, "final": FINAL_HOP}
MIN_SPLIT = 3
"""Fewest timings a split end-to-end figure needs to be reported."""


def rounds(samples: int, items: int) -> int:
    """Rounds over ``items`` windows that give at least ``samples`` timings."""
    return max(1, math.ceil(samples / max(1, items)))


def hop_samples(spec: FeatureSpec, hop_seconds: float) -> int:
    """Samples in one hop, rounded to whole frames as the recogniser does."""
    return spec.hop_frames(hop_seconds) * spec.frontend.hop_length


class _HopFeed:
    """Cycles through a long signal one hop block at a time."""

    def __init__(self, signal: np.ndarray, hop: int) -> None:
        n = (signal.size // hop) * hop
        if n == 0:
            raise ValueError(f"a signal of {signal.size} samples has no whole hop of {hop}")
        self.blocks = signal[:n].reshape(-1, hop)
        self.i = 0

    def next(self) -> np.ndarray:
        block = self.blocks[self.i % len(self.blocks)]
        self.i += 1
        return block


def _frontend_hop(spec: FeatureSpec, signal: np.ndarray, hop: int) -> Callable[[int], object]:
    stream = MelStream(spec.frontend)
    feed = _HopFeed(signal, hop)

    def step(_: int) -> object:
        return frame_levels(stream.push(feed.next()), spec.frontend)

    return step


def _endpoint_hop(spec: FeatureSpec, levels: np.ndarray, hop: int) -> Callable[[int], object]:
    endpointer = Endpointer(spec.endpoint, spec.frames_per_second)
    blocks = [levels[i:i + hop] for i in range(0, len(levels) - hop + 1, hop)]
    state = {"i": 0}

    def step(_: int) -> object:
        state["i"] += 1
        return endpointer.push(blocks[state["i"] % len(blocks)])

    return step


class _RecognizerFeed:
    """One hop of audio per call into a running recogniser; remembers what each call
    produced (``interim``, ``no_speech`` or ``final``), so the timings can be split."""

    def __init__(self, contender: Contender, classifier: Classifier, signal: np.ndarray,
                 hop_seconds: float) -> None:
        self.recognizer = Recognizer(contender.bundle, hop_seconds=hop_seconds,
                                     classifier=classifier)
        c = contender.spec.frontend
        # a frame needs frame_length samples: after this lead-in, every hop block of audio
        # completes exactly one hop of frames
        self.recognizer.push(np.zeros(c.frame_length - c.hop_length, np.float32))
        self.feed = _HopFeed(signal, hop_samples(contender.spec, hop_seconds))
        self.kinds: list[str] = []

    def __call__(self, _: int) -> object:
        results = self.recognizer.push(self.feed.next())
        self.kinds.append("final" if any(r.final for r in results)
                          else results[-1].event if results else "none")
        return results


def utterance_windows(recordings: list[Recording], spec: FeatureSpec, n: int
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mel frames and levels of up to ``n`` real utterances, each cut to at most one window
    (spread over the recordings)."""
    found = [(r.mel[s.start:s.end], r.levels[s.start:s.end]) for r in recordings
             for s in r.finals[:1]]
    if not found:
        raise ValueError("no utterance in the recordings to time")
    picks = np.unique(np.linspace(0, len(found) - 1, min(n, len(found))).round().astype(int))
    w = spec.window_frames
    return [(found[i][0][:w], found[i][1][:w]) for i in picks]


def measure(contenders: list[Contender], utterances: list[tuple[np.ndarray, np.ndarray]],
            stream_signal: np.ndarray, *, threads: list[int], samples: int, keras_samples: int,
            hop_seconds: float, keras: dict[str, KerasRunner] | None = None,
            pairs: list[tuple[str, str]] = ()) -> dict[str, Any]:
    """All latency figures.

    Parameters
    ----------
    contenders : the TFLite bundles (and Keras models) to time.
    utterances : ``(mel, levels)`` of real utterances of at most one window
        (:func:`utterance_windows`): ``(n_frames, n_mels)`` float32 and ``(n_frames,)`` dB.
    stream_signal : np.ndarray [shape=(n_samples,)], float32
        Real audio with speech and pauses, replayed hop by hop (cycled).
    threads : interpreter thread counts.
    samples : timings per figure for the fast steps; ``keras_samples`` for Keras predict.
    keras : Keras runners already loaded, by contender name.
    pairs : ``(int8 name, float name)`` pairs whose times are compared.

    Returns
    -------
    dict with ``rows`` (one per figure: key, what, model, threads, median/p95/p99/MAD ms, n),
    ``samples`` (key -> every call's seconds), ``ratios`` and the settings.
    """
    tflite = [c for c in contenders if c.bundle is not None]
    spec = tflite[0].spec if tflite else contenders[0].spec
    hop = hop_samples(spec, hop_seconds)
    n = len(utterances)
    stream_levels = frame_levels(MelStream(spec.frontend).push(stream_signal), spec.frontend)

    fast: dict[str, Callable[[int], object]] = {}
    labels: dict[str, tuple[str, str | None, int | None]] = {}

    def add(name: str, what: str, model: str | None, n_threads: int | None,
            fn: Callable[[int], object], table: dict[str, Callable[[int], object]]) -> None:
        table[name] = fn
        labels[name] = (what, model, n_threads)

    add(FRONTEND_HOP, FRONTEND_HOP, None, None, _frontend_hop(spec, stream_signal, hop), fast)
    add(ENDPOINT_HOP, ENDPOINT_HOP, None, None,
        _endpoint_hop(spec, stream_levels, spec.hop_frames(hop_seconds)), fast)
    add(UTTERANCE_INPUTS, UTTERANCE_INPUTS, None, None,
        lambda i: utterance_inputs(utterances[i][0], spec, levels=utterances[i][1]), fast)

    def features(c: Contender) -> np.ndarray:
        return np.stack([utterance_inputs(m, c.spec, levels=lv)[0] for m, lv in utterances])

    classifiers: dict[tuple[str, int], Classifier] = {}
    feeds: dict[str, _RecognizerFeed] = {}
    for c in tflite:
        x = features(c)
        for t in threads:
            clf = Classifier(c.bundle, threads=t)
            classifiers[(c.name, t)] = clf
            prepared = np.stack([clf.input_map(f)[None] for f in x])
            add(f"{INVOKE} | {c.name} | {t}", INVOKE, c.name, t,
                lambda i, m=clf.model, p=prepared: m.invoke(p[i]), fast)
            key = f"end to end | {c.name} | {t}"
            feeds[key] = _RecognizerFeed(c, clf, stream_signal, hop_seconds)
            add(key, "end to end", c.name, t, feeds[key], fast)
    timings = interleaved_samples(fast, n, rounds(samples, n))
    timings, labels = _split_end_to_end(timings, labels, feeds)

    # Keras is ~100x slower per call: its own interleaved group with fewer repetitions,
    # next to the 1-thread invoke of the TFLite models, so its ratio is within one group.
    keras = keras or {}
    slow: dict[str, Callable[[int], object]] = {}
    for c in contenders:
        if c.runtime == KERAS and c.name in keras:
            add(f"{KERAS_PREDICT} | {c.name}", KERAS_PREDICT, c.name, None,
                lambda i, r=keras[c.name], x=features(c): r.predict_one(x[i]), slow)
    if slow:
        t1 = min(threads)
        for c in tflite:
            clf = classifiers[(c.name, t1)]
            prepared = np.stack([clf.input_map(f)[None] for f in features(c)])
            add(f"{INVOKE} (beside Keras) | {c.name} | {t1}", INVOKE + " (beside Keras)",
                c.name, t1, lambda i, m=clf.model, p=prepared: m.invoke(p[i]), slow)
        timings.update(interleaved_samples(slow, n, rounds(keras_samples, n)))

    rows = []
    for name, values in timings.items():
        what, model, n_threads = labels[name]
        d = summarise(name, values).to_dict()
        d.pop("name")
        rows.append({"key": name, "what": what, "model": model, "threads": n_threads, **d})
    kinds = {c.name: c.kind for c in contenders}
    return {"rows": rows, "ratios": _ratios(rows, pairs, kinds),
            "samples": {k: [round(v, 7) for v in vs] for k, vs in timings.items()},
            "hop_seconds": hop / spec.frontend.sample_rate, "hop_samples": hop,
            "windows": n, "threads": list(threads), "window_seconds": spec.window_seconds,
            "stream_seconds": round(stream_signal.size / spec.frontend.sample_rate, 1)}


def _split_end_to_end(timings: dict[str, list[float]], labels: dict[str, tuple],
                      feeds: dict[str, _RecognizerFeed]) -> tuple[dict, dict]:
    """Each recogniser's timings split by what its hop produced (the last ``len(timings)``
    calls were timed; the first was the warm-up)."""
    out = {k: v for k, v in timings.items() if k not in feeds}
    for key, feed in feeds.items():
        _, model, t = labels.pop(key)
        values = timings[key]
        kinds = feed.kinds[-len(values):]
        for kind, step in _KIND_STEP.items():
            mine = [v for v, k in zip(values, kinds) if k == kind]
            if len(mine) >= MIN_SPLIT:
                name = f"{step} | {model} | {t}"
                out[name] = mine
                labels[name] = (step, model, t)
    return out, labels


def find(rows: list[dict], what: str, model: str | None = None,
         threads: int | None = None) -> dict | None:
    """The row of one figure, or None."""
    for r in rows:
        if r["what"] == what and r["model"] == model and r["threads"] == threads:
            return r
    return None


def _ratios(rows: list[dict], pairs: list[tuple[str, str]] = (),
            kinds: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Within-run ratios of medians: Keras predict / invoke of the same kind of model, float
    / int8 invoke and interim hop, 1 thread / N threads."""
    kinds = kinds or {}
    out = []
    for q, f in pairs:
        for what in (INVOKE, INTERIM_HOP):
            for r in (r for r in rows if r["what"] == what and r["model"] == q):
                other = find(rows, what, f, r["threads"])
                if other is not None:
                    out.append({"ratio": f"{what} {f} / {q} ({r['threads']} thread"
                                         f"{'s' if r['threads'] > 1 else ''})",
                                "value": other["median_ms"] / r["median_ms"]})
    beside = [r for r in rows if r["what"] == INVOKE + " (beside Keras)"]
    for k in (r for r in rows if r["what"] == KERAS_PREDICT):
        for b in (b for b in beside if kinds.get(b["model"]) == kinds.get(k["model"])):
            out.append({"ratio": f"Keras predict ({k['model']}) / invoke ({b['model']})",
                        "value": k["median_ms"] / b["median_ms"], "keras": k["model"],
                        "tflite": b["model"]})
    by_model: dict[str, dict[int, dict]] = {}
    for r in (r for r in rows if r["what"] == INVOKE):
        by_model.setdefault(r["model"], {})[r["threads"]] = r
    for model, per in by_model.items():
        t1 = min(per)
        for t, r in sorted(per.items()):
            if t != t1:
                out.append({"ratio": f"invoke {model}: {t1} thread / {t} threads",
                            "value": per[t1]["median_ms"] / r["median_ms"]})
    return out
