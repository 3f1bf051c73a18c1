"""Interim results from the newest window against every window of the utterance so far,
paired, on speakers a bundle never heard.

``edge-ser listen`` shows an interim result every hop while someone speaks. It is now the
model on the newest window of the utterance so far (:func:`edge.utterance.interim_inputs`:
one model run per hop); before, every window of the utterance so far was run and averaged
(:func:`edge.utterance.utterance_inputs`, up to four windows at the 6 s maximum). This scores
both on the same interim hops (the endpointer's, :mod:`benchmarks.recordings`) and reports the
accuracy of each, their paired difference with its standard error, and how many interims
had more than one window (the only ones that can differ):

* the clips of the held-out speakers as files (RAVDESS clips are 3-4 s: few interims
  outgrow one window);
* long utterances: two clips of one speaker and one emotion, each cut to its utterance and
  brought to one loudness, end to end (every interim after 3 s differs).

``python -m benchmarks.interims --help``. Needs the host's ``train`` extra (corpus reader).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

from benchmarks.recordings import load_recordings
from edge.batch import Recording, recording_of
from edge.bundle import load_bundle
from edge.classifier import Classifier
from edge.utterance import interim_inputs, utterance_inputs


def paired(classifier: Classifier, recordings: list[tuple[str, Recording]]
           ) -> dict[str, Any]:
    """Both kinds of interim on every interim hop of ``(label, recording)`` pairs."""
    spec, labels = classifier.spec, classifier.labels
    every, newest, multi = [], [], 0
    for label, r in recordings:
        for seg in r.interims:
            mel, lv = r.mel[seg.start:seg.end], r.levels[seg.start:seg.end]
            a = classifier.classify_inputs(utterance_inputs(mel, spec, levels=lv))
            b = classifier.classify_inputs(interim_inputs(mel, spec, levels=lv))
            multi += a.windows > 1
            every.append(labels[int(np.argmax(a.probs))] == label)
            newest.append(labels[int(np.argmax(b.probs))] == label)
    o, n = np.array(every, bool), np.array(newest, bool)
    d = n.astype(float) - o
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return {"interims": int(o.size), "more_than_one_window": int(multi),
            "every_window": float(o.mean()) if o.size else None,
            "newest_window": float(n.mean()) if n.size else None,
            "difference": float(d.mean()) if d.size else None, "paired_se": se,
            "only_every_right": int((o & ~n).sum()), "only_newest_right": int((n & ~o).sum())}


def joined_pairs(utterances: list, spec: Any, hop: int) -> list[tuple[str, Recording]]:
    """Two clips of one speaker and one emotion end to end, each cut to its utterance and
    brought to one RMS (0.05), after 0.5 s and before 1 s of silence."""
    from edge.audio import load
    from edge.utterance import recording_frames, recording_segments

    rate, step = spec.frontend.sample_rate, spec.frontend.hop_length

    def cut(path: Any) -> np.ndarray | None:
        x = load(path, rate)
        segments = recording_segments(recording_frames(x, spec)[1], spec)
        if not segments:
            return None
        part = x[segments[0].start * step:segments[0].end * step].astype(np.float64)
        return (part * 0.05 / max(float(np.sqrt(np.mean(part**2))), 1e-9)).astype(np.float32)

    groups: dict[tuple[str, str], list] = {}
    for u in utterances:
        groups.setdefault((u.speaker, u.label), []).append(u)
    out = []
    for (_, label), us in sorted(groups.items()):
        us = sorted(us, key=lambda u: str(u.path))
        for a, b in zip(us[0::2], us[1::2]):
            parts = [cut(a.path), cut(b.path)]
            if any(p is None for p in parts):
                continue
            x = np.concatenate([np.zeros(rate // 2, np.float32), *parts,
                                np.zeros(rate, np.float32)])
            out.append((label, recording_of(x, spec, hop)))
    return out


def run(model: str, data: str, speakers: list[str] | None) -> dict[str, Any]:
    from benchmarks.accuracy import read_clips

    bundle = load_bundle(model)
    classifier = Classifier(bundle)
    spec = bundle.metadata.features
    held = speakers or list(bundle.metadata.training.get("test_speakers") or [])
    if not held:
        raise SystemExit(f"interims: {model} names no test speakers; pass --speakers")
    utterances, _ = read_clips(data)
    mine = [u for u in utterances if u.speaker in held]
    if not mine:
        raise SystemExit(f"interims: no clip of {', '.join(held)} under {data}")
    hop = spec.hop_frames(bundle.metadata.hop_seconds)
    loaded = load_recordings(mine, spec, hop, progress=False)
    return {"model": str(model), "data": data, "speakers": held, "clips": len(loaded.kept),
            "files": paired(classifier, [(u.label, r) for u, r in
                                         zip(loaded.kept, loaded.recordings)]),
            "two_clips_end_to_end": paired(classifier, joined_pairs(mine, spec, hop))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tests/models/fold1-cnn-lstm-int8.tflite",
                        help="bundle whose metadata names its test speakers")
    parser.add_argument("--data", default=os.environ.get("SER_DATA",
                        "../shared/data/ravdess-speech-16k"), help="labelled clips")
    parser.add_argument("--speakers", help="comma-separated speakers (default: the bundle's"
                                           " test speakers)")
    args = parser.parse_args(argv)
    result = run(args.model, args.data,
                 args.speakers.split(",") if args.speakers else None)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
