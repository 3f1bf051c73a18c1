#!/usr/bin/env python3
"""Convert one CNN+LSTM to full int8 many times in a row and count the first-attempt failures.

The check behind the removal of ``ser-export``'s int8 retry loop: TF 2.21 used to leave one
unrolled-LSTM step's SPLIT in float in about half of the conversions of the same model with
the same data (cause: :mod:`train.lstm`). Each conversion here is exactly ``ser-export``'s
(bias correction, then :func:`export.convert.convert_full_int8`, once, no retry).

    tools/int8_conversions.py --data ../shared/data/ravdess-speech-16k          # 20 x UnrolledLSTM
    tools/int8_conversions.py --data ... --layer keras --conversions 10         # the old layer

The model is ``train.models.build_cnn_lstm`` with seeded random weights, optionally fitted
for a few epochs (``--fit-epochs``) on the calibration clips; calibration is real speech:
``--clips`` RAVDESS clips through the device's front end, normalised with their own
mean/std (as training fits it), clipped to +-5 sd (``ser-export``'s default). Prints one
line per conversion and a summary; ``--json`` adds a JSON report on stdout. Exit status 1
when any conversion left a float or custom op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-speech-16k"


def calibration_set(data: Path, n_clips: int, seed: int):
    """``(normalised inputs, labels, label names)`` of ``n_clips`` RAVDESS clips."""
    from edge.features import FeatureSpec
    from export.data import pick_calibration
    from train.corpora import read_ravdess
    from train.dataset import clip_inputs

    spec = FeatureSpec()
    corpus = read_ravdess(data)
    if not corpus.utterances:
        sys.exit(f"int8_conversions.py: no RAVDESS clips under {data} (set --data)")
    chosen = pick_calibration(list(corpus.utterances), n_clips, seed)
    x = clip_inputs(chosen, spec, progress=False)
    mean, std = x.mean(axis=0).mean(axis=0), x.std(axis=(0, 1))
    x = np.clip((x - mean) / np.maximum(std, 1e-6), -5, 5).astype(np.float32)
    names = sorted({u.label for u in chosen})
    labels = np.array([names.index(u.label) for u in chosen])
    return x, labels, names


def keras_lstm_twin(core):
    """``core`` with its UnrolledLSTM replaced by ``keras.layers.LSTM(unroll=True)``, same
    weights: the layer the CNN+LSTM had before train.lstm."""
    import keras

    from train.lstm import UnrolledLSTM

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, UnrolledLSTM):
            return keras.layers.LSTM.from_config(config)
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(core, clone_function=clone)
    twin.set_weights(core.get_weights())
    return twin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SER_DATA")
                                                          or DEFAULT_DATA))
    parser.add_argument("--conversions", type=int, default=20)
    parser.add_argument("--clips", type=int, default=160, help="calibration clips")
    parser.add_argument("--fit-epochs", type=int, default=0,
                        help="fit the random model this many epochs on the clips first")
    parser.add_argument("--layer", choices=("unrolled", "keras"), default="unrolled",
                        help="unrolled: train.lstm.UnrolledLSTM (what build_cnn_lstm makes);"
                             " keras: keras.layers.LSTM(unroll=True) converted as it is")
    parser.add_argument("--no-bias-correction", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import keras

    from edge.features import FeatureSpec
    from export import convert as convert_module
    from export.correct import bias_corrected
    from export.errors import ExportError
    from export.graph import summarize
    from train.models import build_cnn_lstm

    x, labels, names = calibration_set(args.data, args.clips, args.seed)
    keras.utils.set_random_seed(args.seed)
    core = build_cnn_lstm(FeatureSpec().input_shape, len(names))
    if args.fit_epochs:
        core.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        core.fit(x, labels, epochs=args.fit_epochs, batch_size=32, verbose=0)
    if args.layer == "keras":
        core = keras_lstm_twin(core)
        # convert the plain LSTM as it is (convert() would swap it for UnrolledLSTM)
        convert_module.with_unrolled_lstm = lambda model: model
    source = core
    if not args.no_bias_correction:
        source, _ = bias_corrected(core, x[:: max(1, len(x) // 400)])
    print(f"{args.layer} LSTM, {core.count_params()} parameters, calibration {len(x)} clips"
          f" from {args.data}", file=sys.stderr)

    runs = []
    for k in range(1, args.conversions + 1):
        started = time.perf_counter()
        try:
            model_bytes = convert_module.convert_full_int8(source, x, what=f"conversion {k}")
            error = None
        except ExportError as e:
            model_bytes, error = None, str(e)
        seconds = time.perf_counter() - started
        run = {"conversion": k, "ok": error is None, "seconds": round(seconds, 2),
               "error": error}
        if model_bytes is not None:
            graph = summarize(model_bytes)
            run.update(size_bytes=len(model_bytes),
                       sha256=hashlib.sha256(model_bytes).hexdigest(),
                       ops=sum(graph.op_counts.values()))
        runs.append(run)
        print(f"{k:3d}  {'ok    ' if run['ok'] else 'FLOAT '}  {seconds:5.1f} s  "
              + (f"{run['size_bytes']} bytes sha256 {run['sha256'][:16]}" if run["ok"]
                 else error), flush=True)
    ok = sum(r["ok"] for r in runs)
    digests = sorted({r["sha256"] for r in runs if r["ok"]})
    print(f"{args.layer} LSTM: {ok}/{len(runs)} conversions full int8 at the first attempt;"
          f" {len(digests)} distinct flatbuffer(s) among them", flush=True)
    if args.json:
        print(json.dumps({"layer": args.layer, "conversions": len(runs), "first_attempt_ok": ok,
                          "distinct_flatbuffers": len(digests), "runs": runs}))
    return 0 if ok == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
