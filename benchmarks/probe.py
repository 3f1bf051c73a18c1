"""A process that only loads one model and runs it once; ``ser-bench`` measures its peak RSS.

    python -m benchmarks.probe --tflite MODEL.tflite [--clip CLIP]
    python -m benchmarks.probe --keras RUN_DIR [--clip CLIP]
    python -m benchmarks.probe --baseline

The model runs once on the windows of the clip's first utterance (or, without a clip, on one
window of the silence floor). Prints one JSON line: import, load and first-run seconds, the
backend, and this process's ``VmHWM`` (peak RSS from ``/proc/self/status``; null where there
is no /proc). A TFLite probe imports only the edge runtime, never TensorFlow; ``--baseline``
imports numpy and the interpreter module and loads nothing, the floor under every edge
figure.
"""

from __future__ import annotations

import json
import sys
import time

_STARTED = time.perf_counter()


def vm_hwm_bytes() -> int | None:
    """Peak resident set size of this process so far, bytes (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _inputs(spec, clip: str | None):
    """The model inputs of the clip's first utterance (all of it when the endpointer finds
    none), or of one window of silence (the floor) without a clip: ``(k, *input_shape)``."""
    import numpy as np

    from edge.utterance import recording_frames, recording_segments, utterance_inputs

    if clip is None:
        return utterance_inputs(np.zeros((1, spec.frontend.n_mels), np.float32), spec)
    from edge.audio import load

    mel, levels = recording_frames(load(clip, spec.frontend.sample_rate,
                                        min_samples=spec.frontend.frame_length), spec)
    segments = recording_segments(levels, spec)
    start, end = (segments[0].start, segments[0].end) if segments else (0, len(mel))
    return utterance_inputs(mel[start:end], spec, levels=levels[start:end])


def run_tflite(path: str, clip: str | None) -> dict:
    from edge.bundle import load_bundle
    from edge.classifier import Classifier

    imported = time.perf_counter()
    bundle = load_bundle(path)
    classifier = Classifier(bundle, threads=1)
    loaded = time.perf_counter()
    scores = classifier.classify_inputs(_inputs(bundle.metadata.features, clip))
    label = classifier.labels[int(scores.probs.argmax())]
    ran = time.perf_counter()
    return {"backend": classifier.model.backend, "label": label,
            "import_seconds": imported - _STARTED, "load_seconds": loaded - imported,
            "first_run_seconds": ran - loaded}


def run_keras(run_dir: str, clip: str | None) -> dict:
    import os
    from pathlib import Path

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import train.lstm  # noqa: F401  (registers UnrolledLSTM, the CNN+LSTM's layer)
    from edge.features import FeatureSpec

    imported = time.perf_counter()
    config = json.loads((Path(run_dir) / "config.json").read_text())
    spec = FeatureSpec.from_dict(config["features"])
    model = keras.saving.load_model(Path(run_dir) / "model.keras", compile=False)
    loaded = time.perf_counter()
    probs = model.predict(_inputs(spec, clip), verbose=0).mean(axis=0)
    ran = time.perf_counter()
    return {"backend": f"keras {keras.__version__}", "label": config["labels"][int(probs.argmax())],
            "import_seconds": imported - _STARTED, "load_seconds": loaded - imported,
            "first_run_seconds": ran - loaded}


def run_baseline() -> dict:
    import numpy  # noqa: F401

    from edge.interpreter import find_backend

    backend, _ = find_backend()
    imported = time.perf_counter()
    return {"backend": backend, "import_seconds": imported - _STARTED, "load_seconds": 0.0,
            "first_run_seconds": 0.0}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--tflite", metavar="MODEL")
    group.add_argument("--keras", metavar="RUN_DIR")
    group.add_argument("--baseline", action="store_true")
    parser.add_argument("--clip", help="run the model on this recording (default: silence)")
    args = parser.parse_args(argv)
    try:
        if args.tflite:
            report = run_tflite(args.tflite, args.clip)
        elif args.keras:
            report = run_keras(args.keras, args.clip)
        else:
            report = run_baseline()
    except Exception as e:  # one line for the parent, whatever went wrong
        print(f"probe: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    report["vm_hwm_bytes"] = vm_hwm_bytes()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
