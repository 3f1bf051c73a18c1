"""``ser-train --model wav2vec2-rf | vgg16-lstm --pretrained PATH``: embed each clip with the
pretrained network, train a small classifier on the embeddings per speaker fold, report.

Each file gives one example, as for ``--model rf``: its first endpointed utterance
(:func:`train.dataset.load_recordings`, the device's front end and endpointer), cut to the
networks' first window.

- ``wav2vec2-rf``: the window's audio through wav2vec2 (:mod:`train.pretrained.wav2vec2`);
  every hidden state (the encoder input and each transformer layer: 13 for wav2vec2-base) is
  mean-pooled over time and the 13 x 768 means are concatenated into one 9,984-dim vector; a
  random forest (rf's settings) on them. All layers, not one: which layer carries emotion best
  differs between models and corpora (middle layers for wav2vec2-base in Pepino et al.,
  2021), and the forest's feature sampling picks among them on the training speakers only.
- ``vgg16-lstm``: the window's log-mel image through VGG16's frozen convolutions, a
  bidirectional LSTM over its time columns (:mod:`train.pretrained.vgg16`).

Embeddings are cached beside the front end's features (key: the network's weights file, the
front end and window, each audio file's bytes), so a second run only trains. The network is
loaded, and ``--pretrained`` checked, before any clip is embedded.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.errors import ConfigError
from edge.features import FeatureSpec
from train.corpora import Utterance
from train.dataset import (
    default_cache_dir,
    file_digest,
    load_recordings,
    load_signal,
    sorted_speakers,
)
from train.labels import LabelMap
from train.pretrained import KINDS
from train.pretrained.folds import cross_validate, held_out_folds, write_report


def check_pretrained(kind: str, pretrained: Path | None) -> Path:
    """``--pretrained`` for ``kind``, checked without loading the weights: ConfigError when
    missing or of the wrong form (a model directory for wav2vec2-rf, an HDF5 file for
    vgg16-lstm)."""
    if pretrained is None:
        what = KINDS[kind]
        raise ConfigError(f"--model {kind} needs --pretrained {what.metavar}: {what.weights}"
                          " (this machine downloads none; docs/training.md says how to get"
                          " them)")
    if kind == "wav2vec2-rf":
        from train.pretrained.wav2vec2 import check_directory

        return check_directory(pretrained)
    from train.pretrained.vgg16 import check_weights

    return check_weights(pretrained)


class EmbeddingCache:
    """One ``.npy`` per (network, file) under ``root/pretrained-<key>/``; ``root`` None: off."""

    def __init__(self, root: Path | None, key: dict[str, Any]):
        text = json.dumps(key, sort_keys=True)
        self.directory = None if root is None else \
            root / f"pretrained-{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def get(self, digest: str) -> np.ndarray | None:
        if self.directory is None or not (self.directory / f"{digest}.npy").exists():
            return None
        try:
            return np.load(self.directory / f"{digest}.npy")
        except (OSError, ValueError):
            return None

    def put(self, digest: str, x: np.ndarray) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{digest}.npy"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, x)
        os.replace(tmp, path)


def embed(items: list, digests: list[str], cache: EmbeddingCache,
          compute: Callable[[Any], np.ndarray], desc: str) -> np.ndarray:
    """``compute(item)`` for each item not in the cache; stacked ``(n, ...)`` float32."""
    out = []
    for item, digest in tqdm(list(zip(items, digests)), desc=desc, unit="clip",
                             file=sys.stderr, leave=False, disable=None):
        x = cache.get(digest)
        if x is None:
            x = np.asarray(compute(item), np.float32)
            cache.put(digest, x)
        out.append(x)
    return np.stack(out)


def run_pretrained(kind: str, pretrained: Path, out: Path, spec: FeatureSpec,
                   data: tuple[dict, ...], utterances: list[Utterance], label_map: LabelMap,
                   *, folds: int, test_speakers: tuple[str, ...] | None, seed: int,
                   epochs: int, batch_size: int, cache_dir, use_cache: bool, command: str
                   ) -> dict[str, Any]:
    """K-fold (or held-out speakers) ``kind``; writes the final model, report.* to ``out``."""
    started = time.perf_counter()
    pretrained = check_pretrained(kind, pretrained)
    network = _load_network(kind, pretrained, spec)       # before any clip is embedded
    labels = list(label_map.classes)
    utts = [u for u in utterances if label_map(u.label) is not None]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    ex = load_recordings(utts, spec, cache_dir=root, use_cache=use_cache)
    for _, message in ex.failed:
        print(f"skipped: {message}", file=sys.stderr)
    utts = ex.kept
    if not utts:
        raise ConfigError("no usable clips in --data for these --classes")
    digests = [file_digest(u.path) for u in utts]
    cache = EmbeddingCache(root if use_cache else None,
                           {"kind": kind, "weights": _weights_digest(kind, pretrained),
                            "frontend": spec.to_dict(), "config": network["config"]})
    x = embed(list(zip(utts, ex.recordings)), digests, cache, network["embed"],
              desc=f"{kind} embeddings")
    y = np.array([label_map.index(u.label) for u in utts])
    speaker = np.array([u.speaker for u in utts])
    held = held_out_folds(speaker, folds, test_speakers)
    fit = _FITTERS[kind]

    def fit_predict(k: int, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = fit(x[train], y[train], len(labels), seed=seed + k, epochs=epochs,
                    batch_size=batch_size)
        return _predict(kind, model, x[test])

    cv = cross_validate(y, speaker, labels, held, fit_predict)
    train_rows = ~np.isin(speaker, held[0]) if test_speakers else np.ones(len(y), bool)
    final = fit(x[train_rows], y[train_rows], len(labels), seed=seed, epochs=epochs,
                batch_size=batch_size)
    out.mkdir(parents=True, exist_ok=True)
    model_info = {"kind": kind, "pretrained": str(pretrained), **network["describe"],
                  "dimensions": list(x.shape[1:])}
    _save(kind, final, out, {**model_info, "labels": labels, "features": spec.to_dict()})
    return write_report(out, cv, command=command, model=model_info, labels=labels, data=data,
                        n_clips=len(utts), speakers=sorted_speakers(speaker),
                        skipped=[{"path": str(u.path), "reason": m} for u, m in ex.failed],
                        started=started)


def _weights_digest(kind: str, pretrained: Path) -> str:
    if kind == "wav2vec2-rf":
        from train.pretrained.wav2vec2 import WEIGHTS_FILE

        return file_digest(pretrained / WEIGHTS_FILE) + file_digest(pretrained / "config.json")
    return file_digest(pretrained)


def _window_audio(utt: Utterance, recording, spec: FeatureSpec) -> np.ndarray:
    """The audio of the first utterance's first window (at most ``window_seconds``)."""
    fe = spec.frontend
    seg = recording.utterances[0]
    end = min(seg.end, seg.start + spec.window_frames)
    return load_signal(utt, spec)[seg.start * fe.hop_length:fe.samples_for(end)]


def _load_network(kind: str, pretrained: Path, spec: FeatureSpec) -> dict[str, Any]:
    """The embedding function of ``kind`` (``(utterance, recording) -> array``), its config
    for the cache key and its description for the report."""
    if kind == "wav2vec2-rf":
        from train.pretrained.wav2vec2 import load_model, pooled_layers

        if spec.frontend.sample_rate != 16000:
            raise ConfigError(f"--model wav2vec2-rf: wav2vec2 takes 16 kHz audio, the front end"
                              f" runs at {spec.frontend.sample_rate} Hz")
        model = load_model(pretrained)
        c = model.config
        return {
            "embed": lambda item: pooled_layers(model, _window_audio(*item, spec)).reshape(-1),
            "config": {"normalize": model.normalize, **c.to_dict()},
            "describe": {"layers": f"all {model.n_layers} hidden states (encoder input and"
                                   f" {c.num_hidden_layers} layers), each mean-pooled over"
                                   " time, concatenated",
                         "hidden_size": c.hidden_size, "classifier": "random forest"},
        }
    from train.pretrained.vgg16 import (
        VggConfig,
        image_shape,
        load_vgg16,
        log_mel_image,
        vgg_features,
    )

    config = VggConfig()
    vgg = load_vgg16(pretrained, image_shape(spec))

    def embed_one(item) -> np.ndarray:
        image = log_mel_image(item[1], spec, config)
        return vgg_features(vgg, image[None], config)[0]

    return {"embed": embed_one, "config": asdict(config),
            "describe": {"image": list(image_shape(spec)), "vgg": asdict(config),
                         "classifier": f"bidirectional LSTM ({config.lstm_units} units per"
                                       " direction) over VGG16's time columns"}}


def _fit_forest(x, y, n_classes, *, seed, epochs, batch_size):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=300, class_weight="balanced", min_samples_leaf=2,
                                  random_state=seed, n_jobs=1).fit(x, y)


def _fit_lstm(x, y, n_classes, *, seed, epochs, batch_size):
    from sklearn.utils.class_weight import compute_class_weight

    from train.pretrained.vgg16 import VggConfig, build_head

    model = build_head(x, n_classes, VggConfig(), seed)
    present = np.unique(y)
    weights = compute_class_weight("balanced", classes=present, y=y)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True,
              class_weight={int(c): float(w) for c, w in zip(present, weights)})
    return model


_FITTERS = {"wav2vec2-rf": _fit_forest, "vgg16-lstm": _fit_lstm}


def _predict(kind: str, model, x: np.ndarray) -> np.ndarray:
    if kind == "wav2vec2-rf":
        return model.predict(x)
    return np.asarray(model.predict(x, verbose=0)).argmax(axis=1)


def _save(kind: str, model, out: Path, info: dict[str, Any]) -> None:
    """The final classifier: model.pkl (the forest) or model.keras (the LSTM head), and
    pretrained.json saying which network's embeddings it takes."""
    if kind == "wav2vec2-rf":
        with open(out / "model.pkl", "wb") as f:
            pickle.dump({"model": model, **info}, f)
    else:
        model.save(out / "model.keras")
    (out / "pretrained.json").write_text(json.dumps(info, indent=1) + "\n")
