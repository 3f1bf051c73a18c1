"""Latency of every step the device runs, for each model and thread count, in one run.

What is timed (all with the runtime's own code, on real audio):

* ``front end, per window``: :func:`edge.features.signal_input` on one window of audio
  (MFCC of every frame, then deltas): what ``edge-ser predict`` computes per file;
* ``front end, per hop``: what ``edge-ser listen`` computes per hop before the model:
  :class:`edge.frontend.MfccStream` on one hop of new audio, then the window's deltas
  (:func:`edge.features.window_input`);
* ``invoke``: the interpreter wrapper's ``invoke`` on one prepared (normalised, quantised)
  window, per model and per interpreter thread count;
* ``end to end, per hop``: :meth:`edge.recognizer.Recognizer.push` of one hop of audio into
  a running recogniser: front end, frame levels, normalisation and quantisation, invoke,
  speech gate, smoothing; per model and thread count;
* ``Keras predict``: ``model.predict`` on one window (float32, TensorFlow's own threads):
  the reference a user without the edge runtime would have.

Contenders run interleaved (round robin, :func:`benchmarks.frontend.interleaved`), so the
noise of a shared machine hits them alike, and ratios are taken within the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.contenders import KERAS, Contender, KerasRunner
from benchmarks.frontend import interleaved_samples, summarise
from edge.classifier import Classifier
from edge.features import FeatureSpec, signal_input, window_input
from edge.frontend import MfccStream
from edge.recognizer import Recognizer

FRONTEND_WINDOW = "front end, per window"
FRONTEND_HOP = "front end, per hop"
INVOKE = "invoke"
END_TO_END = "end to end, per hop"
KERAS_PREDICT = "Keras predict, one window"


def rounds(samples: int, items: int) -> int:
    """Rounds over ``items`` windows that give at least ``samples`` timings."""
    return max(1, math.ceil(samples / max(1, items)))


def hop_samples(spec: FeatureSpec, hop_seconds: float) -> int:
    """Samples in one hop, rounded to whole frames as the recogniser does."""
    c = spec.frontend
    frames = max(1, int(round(hop_seconds * c.sample_rate / c.hop_length)))
    return frames * c.hop_length


class _HopFeed:
    """Cycles through a long signal one hop block at a time."""

    def __init__(self, signal: np.ndarray, hop: int) -> None:
        n = (signal.size // hop) * hop
        self.blocks = signal[:n].reshape(-1, hop)
        self.i = 0

    def next(self) -> np.ndarray:
        block = self.blocks[self.i % len(self.blocks)]
        self.i += 1
        return block


def _frontend_hop(spec: FeatureSpec, stream_signal: np.ndarray, hop: int
                  ) -> Callable[[int], object]:
    """One hop of the streaming front end: new MFCC frames, then the window's features."""
    stream = MfccStream(spec.frontend)
    frames = stream.push(stream_signal[: spec.window_samples])
    feed = _HopFeed(stream_signal, hop)
    state = {"frames": frames[-spec.window_frames:]}

    def step(_: int) -> object:
        new = stream.push(feed.next())
        state["frames"] = np.concatenate((state["frames"], new))[-spec.window_frames:]
        return window_input(state["frames"], spec)

    return step


def _recognizer_hop(contender: Contender, classifier: Classifier, stream_signal: np.ndarray,
                    hop_seconds: float) -> Callable[[int], object]:
    """One hop through a running recogniser (primed with a full window first)."""
    rec = Recognizer(contender.bundle, hop_seconds=hop_seconds, classifier=classifier)
    hop = hop_samples(contender.spec, hop_seconds)
    rec.push(stream_signal[: contender.spec.window_samples])
    feed = _HopFeed(stream_signal, hop)

    def step(_: int) -> object:
        results = rec.push(feed.next())
        if len(results) != 1:
            raise RuntimeError(f"recogniser gave {len(results)} results for one hop")
        return results

    return step


def measure(contenders: list[Contender], windows: np.ndarray, stream_signal: np.ndarray, *,
            threads: list[int], samples: int, keras_samples: int, hop_seconds: float,
            keras: dict[str, KerasRunner] | None = None,
            pairs: list[tuple[str, str]] = ()) -> dict[str, Any]:
    """All latency figures.

    Parameters
    ----------
    contenders : the TFLite bundles (and Keras models) to time.
    windows : np.ndarray [shape=(n, window_samples)], float32
        Real audio windows, as :func:`edge.clip.clip_window` makes them.
    stream_signal : np.ndarray [shape=(n_samples,)], float32
        Real audio, several windows long, replayed hop by hop.
    threads : interpreter thread counts.
    samples : timings per figure for the fast steps; ``keras_samples`` for Keras predict.
    keras : Keras runners already loaded, by contender name.
    pairs : ``(int8 name, float name)`` pairs whose invoke times are compared.

    Returns
    -------
    dict with ``rows`` (one per figure: key, what, model, threads, median/p95/p99/MAD ms, n),
    ``samples`` (key -> every call's seconds) and ``ratios``.
    """
    tflite = [c for c in contenders if c.bundle is not None]
    specs = {c.spec.to_dict().__repr__(): c.spec for c in tflite} or {"default": FeatureSpec()}
    spec = next(iter(specs.values()))
    hop = hop_samples(spec, hop_seconds)
    n = len(windows)

    fast: dict[str, Callable[[int], object]] = {}
    labels: dict[str, tuple[str, str | None, int | None]] = {}

    def add(name: str, what: str, model: str | None, n_threads: int | None,
            fn: Callable[[int], object], table: dict[str, Callable[[int], object]]) -> None:
        table[name] = fn
        labels[name] = (what, model, n_threads)

    add(FRONTEND_WINDOW, FRONTEND_WINDOW, None, None,
        lambda i: signal_input(windows[i], spec), fast)
    add(FRONTEND_HOP, FRONTEND_HOP, None, None, _frontend_hop(spec, stream_signal, hop), fast)

    classifiers: dict[tuple[str, int], Classifier] = {}
    for c in tflite:
        features = np.stack([signal_input(w, c.spec) for w in windows])
        for t in threads:
            clf = Classifier(c.bundle, threads=t)
            classifiers[(c.name, t)] = clf
            prepared = np.stack([clf.input_map(f)[None] for f in features])
            add(f"{INVOKE} | {c.name} | {t}", INVOKE, c.name, t,
                lambda i, m=clf.model, x=prepared: m.invoke(x[i]), fast)
            add(f"{END_TO_END} | {c.name} | {t}", END_TO_END, c.name, t,
                _recognizer_hop(c, clf, stream_signal, hop_seconds), fast)
    timings = interleaved_samples(fast, n, rounds(samples, n))

    # Keras is ~100x slower per call: its own interleaved group with fewer repetitions,
    # next to the 1-thread invoke of the TFLite models, so its ratio is within one group.
    keras = keras or {}
    slow: dict[str, Callable[[int], object]] = {}
    for c in contenders:
        if c.runtime == KERAS and c.name in keras:
            features = np.stack([signal_input(w, c.spec) for w in windows])
            add(f"{KERAS_PREDICT} | {c.name}", KERAS_PREDICT, c.name, None,
                lambda i, r=keras[c.name], x=features: r.predict_one(x[i]), slow)
    if slow:
        t1 = min(threads)
        for c in tflite:
            clf = classifiers[(c.name, t1)]
            prepared = np.stack([clf.input_map(signal_input(w, c.spec))[None] for w in windows])
            add(f"{INVOKE} (beside Keras) | {c.name} | {t1}", INVOKE + " (beside Keras)",
                c.name, t1, lambda i, m=clf.model, x=prepared: m.invoke(x[i]), slow)
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
            "windows": n, "threads": list(threads), "window_seconds": spec.window_seconds}


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
    / int8 invoke and end to end per hop, 1 thread / N threads."""
    kinds = kinds or {}
    out = []
    for q, f in pairs:
        for what in (INVOKE, END_TO_END):
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
    invokes = [r for r in rows if r["what"] == INVOKE]
    by_model: dict[str, dict[int, dict]] = {}
    for r in invokes:
        by_model.setdefault(r["model"], {})[r["threads"]] = r
    for model, per in by_model.items():
        t1 = min(per)
        for t, r in sorted(per.items()):
            if t != t1:
                out.append({"ratio": f"invoke {model}: {t1} thread / {t} threads",
                            "value": per[t1]["median_ms"] / r["median_ms"]})
    return out
