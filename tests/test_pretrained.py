"""The pretrained pipelines (``ser-train --model wav2vec2-rf | vgg16-lstm --pretrained``)
without any download: tiny randomly initialised networks written into tmp_path in the layout
the real weights come in, then the whole path through the ``ser-train`` console script on a
few real RAVDESS actors; the numpy wav2vec2 against transformers' own outputs; bad
``--pretrained`` and a missing extra as one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module

require_module("safetensors", "pip install -e '.[pretrained]' (make venv installs it)")

from train.pretrained.wav2vec2 import (  # noqa: E402
    TINY,
    VARIANTS,
    WEIGHTS_FILE,
    hidden_states,
    load_model,
    pooled_layers,
    write_random,
)

SER_TRAIN = str(Path(sys.executable).with_name("ser-train"))
REFERENCE = Path(__file__).parent / "data" / "wav2vec2-tiny-reference.npz"
ACTORS = ("Actor_01", "Actor_02", "Actor_03")
WINDOW = "1.0"
"""Seconds per window: a 40 x 97 log-mel image keeps the full-size VGG16 cheap."""


def _env(extra: dict | None = None) -> dict:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
            **(extra or {})}


def ser_train(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SER_TRAIN, *args], capture_output=True, text=True, env=_env(env),
                          timeout=600)


def ser_train_together(runs: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Several ``ser-train`` runs at once (one per core on a CI machine), each completed."""
    started = {name: subprocess.Popen([SER_TRAIN, *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=_env())
               for name, args in runs.items()}
    done = {}
    for name, p in started.items():
        out, err = p.communicate(timeout=600)
        done[name] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    return done


# --------------------------------------------------------------------------------------
# wav2vec2 in numpy against transformers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_wav2vec2_hidden_states_match_transformers(tmp_path, variant):
    """The stored reference is transformers 4.57's TFWav2Vec2Model on the same random weights
    (tools/wav2vec2_reference.py): every hidden state within 1e-4 (values up to ~5)."""
    import hashlib

    ref = np.load(REFERENCE)
    write_random(tmp_path, VARIANTS[variant], seed=3, prefix="wav2vec2.")
    digest = hashlib.sha256((tmp_path / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert digest == str(ref[f"{variant}/weights_sha256"])  # the same weights, rebuilt
    got = hidden_states(load_model(tmp_path), ref["signal"])
    want = ref[f"{variant}/hidden_states"]
    assert got.shape == want.shape == (TINY.num_hidden_layers + 1, 49, TINY.hidden_size)
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(want).max() > 1.0  # not a degenerate all-zero reference


def test_wav2vec2_reads_both_weight_norm_layouts_and_prefixes(tmp_path):
    """A bare Wav2Vec2Model save (no prefix) with weight norm as parametrizations (newer
    PyTorch) gives the same states as the prefixed weight_g/weight_v file."""
    from safetensors.numpy import load_file, save_file

    old = write_random(tmp_path / "old", TINY, seed=1, prefix="wav2vec2.")
    tensors = load_file(str(old / WEIGHTS_FILE))
    renamed = {}
    for k, v in tensors.items():
        k = k.removeprefix("wav2vec2.")
        k = k.replace("conv.weight_g", "conv.parametrizations.weight.original0")
        k = k.replace("conv.weight_v", "conv.parametrizations.weight.original1")
        renamed[k] = v
    new = tmp_path / "new"
    new.mkdir()
    save_file(renamed, str(new / WEIGHTS_FILE), metadata={"format": "pt"})
    (new / "config.json").write_text((old / "config.json").read_text())
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    a, b = pooled_layers(load_model(old), x), pooled_layers(load_model(new), x)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, TINY.hidden_size)
    # A clip shorter than the 400-sample receptive field is padded to one frame.
    assert hidden_states(load_model(old), x[:100]).shape == (3, 1, TINY.hidden_size)


# --------------------------------------------------------------------------------------
# The whole path through ser-train on real audio
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(ravdess_dir, tmp_path_factory):
    """Three actors (symlinked), angry vs sad: wav2vec2-rf with a tiny random wav2vec2,
    vgg16-lstm with a random full-size VGG16, and rf on the same clips; one feature cache."""
    import keras

    root = tmp_path_factory.mktemp("pretrained")
    data = root / "data"
    data.mkdir()
    for actor in ACTORS:
        (data / actor).symlink_to(Path(ravdess_dir) / actor, target_is_directory=True)
    w2v = write_random(root / "wav2vec2-tiny", TINY, seed=0, prefix="wav2vec2.")
    vgg = root / "vgg16-notop.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None,
                             input_shape=(64, 64, 3)).save_weights(str(vgg))
    common = ["--data", str(data), "--classes", "angry,sad", "--folds", "2", "--conditions",
              "none", "--window-seconds", WINDOW, "--cache-dir", str(root / "cache"), "--json"]
    kinds = {"rf": [], "wav2vec2-rf": ["--pretrained", str(w2v)],
             "vgg16-lstm": ["--pretrained", str(vgg), "--epochs", "3"]}
    done = ser_train_together({kind: [*common, "--model", kind, *extra, "--out",
                                      str(root / kind)] for kind, extra in kinds.items()})
    return {"root": root, "w2v": w2v, "vgg": vgg, "data": data, **done}


def _report(runs, kind: str) -> dict:
    r = runs[kind]
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((runs["root"] / kind / "report.json").read_text())


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wav2vec2-rf", "vgg16-lstm"])
def test_pretrained_kind_runs_end_to_end_with_rf_report(runs, kind):
    rf, report = _report(runs, "rf"), _report(runs, kind)
    assert set(report) == set(rf)
    assert set(report["pooled"]) == set(rf["pooled"])
    assert set(report["summary"]) == set(rf["summary"])
    # every key of rf's folds but "chosen" (the classical kinds' grid choice: none here)
    assert {k for f in report["folds"] for k in f} >= {k for f in rf["folds"] for k in f
                                                        if k != "chosen"}
    assert report["model"]["kind"] == kind and report["labels"] == ["angry", "sad"]
    assert report["speakers"] == rf["speakers"]
    assert report["n_clips"] == rf["n_clips"] == 8 * 2 * len(ACTORS)
    # The same speaker folds as rf, none on both sides.
    assert [f["test_speakers"] for f in report["folds"]] == \
        [f["test_speakers"] for f in rf["folds"]]
    for f in report["folds"]:
        assert not set(f["test_speakers"]) & set(f["train_speakers"])
        assert f["sizes"]["test"] == 16 * len(f["test_speakers"])
    tested = sum(f["sizes"]["test"] for f in report["folds"])
    assert tested == report["n_clips"] == report["pooled"]["n"]
    out = runs["root"] / kind
    assert (out / "report.md").read_text().startswith(f"# ser-train report: {kind}")
    assert (out / "confusion.png").stat().st_size > 0
    assert (out / ("model.pkl" if kind == "wav2vec2-rf" else "model.keras")).is_file()
    summary = json.loads(runs[kind].stdout)
    assert summary["model"] == kind and summary["summary"]["folds"] == 2


@pytest.mark.data
@pytest.mark.slow
def test_wav2vec2_embeddings_are_the_networks_pooled_layers(runs):
    """The cached embedding of a clip is the loaded network's per-layer means of that clip's
    first window, concatenated (so the forest saw what the docs say)."""
    from edge.features import FeatureSpec
    from train.corpora import read_corpus
    from train.dataset import file_digest, load_recordings
    from train.pretrained.run import _window_audio

    info = json.loads((runs["root"] / "wav2vec2-rf" / "pretrained.json").read_text())
    assert info["dimensions"] == [(TINY.num_hidden_layers + 1) * TINY.hidden_size]
    spec = FeatureSpec(window_seconds=float(WINDOW))
    utt = next(u for u in read_corpus(runs["data"]).utterances if u.label == "sad")
    rec = load_recordings([utt], spec, cache_dir=runs["root"] / "cache").recordings[0]
    want = pooled_layers(load_model(runs["w2v"]), _window_audio(utt, rec, spec)).reshape(-1)
    cached = list((runs["root"] / "cache").glob(f"pretrained-*/{file_digest(utt.path)}.npy"))
    assert len(cached) == 2  # one per network
    got = [x for x in map(np.load, cached) if x.shape == want.shape]
    assert len(got) == 1
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    vgg = json.loads((runs["root"] / "vgg16-lstm" / "pretrained.json").read_text())
    assert vgg["dimensions"] == [spec.window_frames // 32, 512]  # 97 frames -> 3 steps


# --------------------------------------------------------------------------------------
# Bad --pretrained, a missing extra: one line, exit 2, nothing computed
# --------------------------------------------------------------------------------------


def _tiny_ravdess(root: Path) -> Path:
    from conftest_train import make_tree

    make_tree(root / "data", [f"03-01-0{e}-01-01-01-{a:02d}.wav"
                              for a in (1, 2) for e in (1, 5)], seconds=0.6)
    return root / "data"


def _bad_cases(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "empty").mkdir()
    (tmp / "bert").mkdir()
    (tmp / "bert" / "config.json").write_text('{"model_type": "bert"}')
    (tmp / "pt-only").mkdir()
    (tmp / "pt-only" / "config.json").write_text('{"model_type": "wav2vec2"}')
    (tmp / "pt-only" / "pytorch_model.bin").write_bytes(b"PK")
    (tmp / "not.h5").write_text("hello")
    write_random(tmp / "short", TINY, seed=0)
    (tmp / "short" / WEIGHTS_FILE).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    w2v, vgg = ["--model", "wav2vec2-rf"], ["--model", "vgg16-lstm"]
    return [
        (w2v, "--model wav2vec2-rf needs --pretrained DIR"),
        (vgg, "--model vgg16-lstm needs --pretrained FILE"),
        ([*w2v, "--pretrained", str(tmp / "nope")], "no such directory"),
        ([*w2v, "--pretrained", str(tmp / "not.h5")], "not a directory"),
        ([*w2v, "--pretrained", str(tmp / "empty")], "no config.json"),
        ([*w2v, "--pretrained", str(tmp / "bert")], "not a wav2vec2 model (model_type 'bert')"),
        ([*w2v, "--pretrained", str(tmp / "pt-only")], "save_pretrained(DIR,"
                                                       " safe_serialization=True)"),
        ([*w2v, "--pretrained", str(tmp / "short")], "lacks"),
        ([*vgg, "--pretrained", str(tmp / "nope.h5")], "no such file"),
        ([*vgg, "--pretrained", str(tmp / "empty")], "a directory"),
        ([*vgg, "--pretrained", str(tmp / "not.h5")], "not an HDF5 weights file"),
        (["--model", "cnn", "--pretrained", str(tmp / "empty")],
         "--pretrained is for --model wav2vec2-rf or vgg16-lstm, not cnn"),
        ([*w2v, "--pretrained", str(tmp / "short"), "--eval-data", str(tmp / "empty")],
         "--eval-data not supported by the pretrained pipelines"),
    ]


def test_bad_pretrained_is_one_line_before_any_feature(tmp_path):
    """In process (click's runner, as the console script calls it) for the many cases; the
    message is the CLI's last line and no cache or run directory appears. Among them a Keras
    weights file of another network given as VGG16's."""
    import keras
    from click.testing import CliRunner

    from train.cli import main

    data = _tiny_ravdess(tmp_path)
    other = tmp_path / "mobilenet.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                   input_shape=(96, 96, 3)).save_weights(str(other))
    cases = [*_bad_cases(tmp_path), (["--model", "vgg16-lstm", "--pretrained", str(other)],
                                     "not VGG16 convolutional weights")]
    runner = CliRunner()
    for args, says in cases:
        cache, out = tmp_path / "cache", tmp_path / "out"
        r = runner.invoke(main, ["--data", str(data), "--folds", "2", "--cache-dir", str(cache),
                                 "--out", str(out), *args])
        assert r.exit_code == 2, (args, r.output)
        assert says in r.output, (args, r.output)
        assert r.output.strip().splitlines()[-1].startswith("ser-train: "), r.output
        assert not cache.exists() and not out.exists(), args


def test_missing_extra_through_the_console_script(tmp_path):
    """An install without safetensors (hidden by a meta-path finder in a sitecustomize on
    PYTHONPATH): one line naming the pretrained extra, exit 2, nothing computed."""
    data = _tiny_ravdess(tmp_path)
    args = ["--data", str(data), "--folds", "2", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out")]
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'safetensors':\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, _Hide())\n")
    w2v = write_random(tmp_path / "w2v", TINY)
    r = ser_train(*args, "--model", "wav2vec2-rf", "--pretrained", str(w2v),
                  env={"PYTHONPATH": str(hide)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        "ser-train: --model wav2vec2-rf needs safetensors, which this install does not have;"
        " install the pretrained extra from an edge-ser checkout:"
        " pip install './edge-ser[pretrained]'")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
