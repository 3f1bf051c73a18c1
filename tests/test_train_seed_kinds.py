"""The write-ups' other model kinds through ``ser-train`` on real RAVDESS audio (issue 23):
``lstm``, ``conv1d`` and ``cnn-bilstm`` (Keras, scored like the CNN) and ``svm``, ``knn`` and
``egemaps-svm`` (classical, grids chosen on training speakers only). A tiny setting (4 actors,
2 folds by speaker, 1 epoch): these tests check that each kind trains, is scored on the same
speaker folds and writes the same report as the CNN, not how accurate it is (that is
reports/seed-models.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import require_module
from conftest_export import run_export, subset_corpus

pytestmark = [pytest.mark.data, pytest.mark.slow]

keras = require_module("keras")
require_module("opensmile")

KERAS_KINDS = ("lstm", "conv1d", "cnn-bilstm")
CLASSICAL_KINDS = ("svm", "knn", "egemaps-svm")


def ser_train(*args: str):
    from train.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(ravdess_dir, tmp_path_factory) -> dict:
    """A cnn reference and every new kind on the same 4 actors and folds, one cache."""
    root = tmp_path_factory.mktemp("seed-kinds")
    data = subset_corpus(ravdess_dir, root / "data")
    common = ["--data", data, "--folds", "2", "--seed", "0", "--cache-dir", root / "cache"]
    networks = [*common, "--epochs", "1", "--no-augment", "--conditions", "none", "--no-final",
                "--only-folds", "1", "--batch-size", "64"]
    out = {}
    for kind in ("cnn", *KERAS_KINDS):
        out[kind] = (root / kind, ser_train(*networks, "--model", kind, "--out", root / kind))
    # A host-only kind teaches the shipped kind (issue 23, item 4): fold 1 from fold 1.
    out["taught"] = (root / "taught", ser_train(*networks, "--model", "cnn", "--teacher",
                                                root / "lstm", "--out", root / "taught"))
    for kind in CLASSICAL_KINDS:
        out[kind] = (root / kind, ser_train(*common, "--model", kind, "--out", root / kind))
    for name, (_, r) in out.items():
        assert r.exit_code == 0, f"{name}: {r.output[-3000:]} {r.exception!r}"
    return {name: run for name, (run, _) in out.items()}


def report(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


@pytest.mark.parametrize("kind", KERAS_KINDS + CLASSICAL_KINDS)
def test_each_kind_writes_the_cnn_report_on_the_same_folds(runs, kind):
    ref, got = report(runs["cnn"]), report(runs[kind])
    assert set(got) == set(ref)
    assert set(got["summary"]) >= {"folds", "accuracy_mean", "accuracy_std", "macro_f1_mean"}
    assert got["model"]["kind"] == kind and got["labels"] == ref["labels"]
    assert got["n_clips"] == ref["n_clips"] == 240
    fold1 = got["folds"][0]
    assert fold1["test_speakers"] == ref["folds"][0]["test_speakers"]
    assert not set(fold1["test_speakers"]) & set(fold1["train_speakers"])
    assert fold1["sizes"]["test"] == ref["folds"][0]["sizes"]["test"] == 120
    assert 0.0 <= fold1["test"]["accuracy"] <= 1.0 and len(got["pooled"]["confusion"]) == 8
    assert (runs[kind] / "report.md").is_file() and (runs[kind] / "confusion.png").is_file()


@pytest.mark.parametrize(("kind", "layer", "steps"), [
    ("lstm", keras.layers.LSTM, None), ("conv1d", keras.layers.Conv1D, None),
    ("cnn-bilstm", keras.layers.Bidirectional, None)])
def test_keras_kinds_are_what_the_write_ups_describe(runs, kind, layer, steps):
    fold = runs[kind] / "folds" / "fold-1"
    cfg = json.loads((fold / "config.json").read_text())
    core = keras.models.load_model(fold / "core.keras", compile=False)
    ours = [x for x in core.layers if isinstance(x, layer)]
    assert cfg["model"]["kind"] == kind
    assert cfg["model"]["parameters"] == core.count_params() > 86_184  # larger than the cnn
    assert cfg["model"]["multiply_adds"] > 0
    if kind == "lstm":
        assert [x.units for x in ours] == [128, 64] and not any(x.unroll for x in ours)
    elif kind == "conv1d":
        assert [(x.filters, x.kernel_size) for x in ours] == [(128, (5,)), (256, (5,)),
                                                               (512, (5,))]
        assert len([x for x in core.layers if isinstance(x, keras.layers.BatchNormalization)]) \
            == 3
    else:
        assert len(ours) == 2 and any(isinstance(x, keras.layers.Conv2D) for x in core.layers)
    predictions = json.loads((fold / "predictions.json").read_text())["clips"]
    assert len(predictions) == 120


def test_a_host_only_kind_teaches_the_cnn(runs):
    taught = report(runs["taught"])
    cfg = json.loads((runs["taught"] / "folds" / "fold-1" / "config.json").read_text())
    assert cfg["training"]["teachers"] == [str(runs["lstm"])]
    assert cfg["model"]["kind"] == "cnn" and taught["folds"][0]["test_speakers"] == \
        report(runs["lstm"])["folds"][0]["test_speakers"]


@pytest.mark.parametrize("kind", CLASSICAL_KINDS)
def test_classical_grids_are_chosen_per_fold_on_training_speakers(runs, kind):
    got = report(runs[kind])
    grid = got["model"]["grid"]
    assert grid and got["summary"]["folds"] == 2
    for fold in got["folds"]:
        chosen = fold["chosen"]
        for key, values in grid.items():
            assert chosen[key.split("__", 1)[1]] in values
        assert 0.0 <= chosen["inner_accuracy"] <= 1.0
    assert got["model"]["dimensions"] == (88 if kind == "egemaps-svm" else 4 * 40 * 2 + 34)


def test_fit_classifier_chooses_on_the_rows_it_is_given_only():
    """The grid point depends only on the training rows: rows of other speakers appended
    to the test side change nothing."""
    import numpy as np

    from train.baseline import fit_classifier

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = rng.normal(0, 1, (120, 6)) + y[:, None] * 0.8
    speaker = np.tile(np.arange(6), 20).astype(str)
    clf, chosen = fit_classifier("knn", x, y, speaker, 0)
    assert set(chosen) == {"n_neighbors", "weights", "inner_accuracy"}
    assert chosen["inner_accuracy"] > 0.5 and (clf.predict(x) == y).mean() > 0.5
    again, chosen_again = fit_classifier("knn", x, y, speaker, 0)
    assert chosen_again == chosen


@pytest.mark.parametrize(("args", "says"), [
    (["--model", "svm", "--only-folds", "1"], "--only-folds picks folds"),
    (["--model", "knn", "--model-option", "k=3"], "--model knn: --model-option not supported"),
    (["--model", "lstm", "--model-option", "unit=3"], "unit: not an option of lstm"),
])
def test_bad_combinations_are_one_line_and_exit_2(tmp_path, ravdess_dir, args, says):
    r = ser_train("--data", ravdess_dir, "--out", tmp_path / "run", *args)
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()


def test_a_classical_run_cannot_teach(runs, tmp_path):
    r = ser_train("--data", runs["cnn"].parent / "data", "--teacher", runs["svm"],
                  "--out", tmp_path / "run")
    assert r.exit_code == 2 and "a svm run cannot teach" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["lstm", "svm"])
def test_host_only_kinds_do_not_export(runs, tmp_path, kind):
    run_dir = runs[kind] / "folds" / "fold-1" if kind == "lstm" else runs[kind]
    r = run_export([str(run_dir), "--out", str(tmp_path / "x.tflite")])
    assert r.exit_code == 2, r.output
    assert "host-only" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.tflite").exists()


def test_the_comparison_table_pairs_every_kind_with_the_cnn(runs, tmp_path):
    from benchmarks.seed_models import NOT_MEASURED, main

    kinds = ("cnn", *KERAS_KINDS, *CLASSICAL_KINDS)
    out = tmp_path / "seed-models.md"
    assert main([*(str(runs[k]) for k in kinds), "--reference", str(runs["cnn"]),
                 "--setting", "4 actors, 2 folds, 1 epoch", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Setting: 4 actors, 2 folds, 1 epoch" in text
    for kind in (*kinds, *NOT_MEASURED):
        assert f"| `{kind}` |" in text
    assert text.count("not measured here: weights not available") == len(NOT_MEASURED)
    figures = {r["kind"]: r for r in json.loads(out.with_suffix(".json").read_text())["runs"]}
    cnn1 = report(runs["cnn"])["folds"][0]["test"]["accuracy"]
    for kind in kinds[1:]:
        pair = figures[kind]["paired_against_reference"]
        assert pair["folds"] == [1] and pair["n"] == 120  # the same recordings, one by one
        mine = report(runs[kind])["folds"][0]["test"]["accuracy"]
        assert pair["difference"] == pytest.approx(mine - cnn1)
    assert figures["conv1d"]["parameters"] > figures["cnn"]["parameters"]
    assert figures["svm"]["parameters"] is None  # no weights count for a classical kind


def test_every_kind_is_registered_once_with_its_builder():
    from train.baseline import CLASSIFIERS, FEATURES
    from train.cli import MODELS
    from train.kinds import KINDS, kinds_of
    from train.models import builder_of

    assert tuple(KINDS) == MODELS
    assert all(builder_of(k) is not None for k in kinds_of("keras"))
    assert set(kinds_of("classical")) == set(CLASSIFIERS) == set(FEATURES)
    for kind in KINDS.values():  # exported, or a reason why not
        assert kind.exportable != bool(kind.host_only), kind.name
