"""ser-train end to end on real RAVDESS audio: a tiny run (4 actors, 1 epoch) through the
installed console script, checked for its files, its splits, its normalisation, where
augmentation went, the feature cache and determinism."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest_train import make_tree

pytestmark = [pytest.mark.data, pytest.mark.slow]

SER_TRAIN = str(Path(sys.executable).with_name("ser-train"))
ACTORS = ("Actor_01", "Actor_02", "Actor_03", "Actor_04")


def ser_train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([SER_TRAIN, *args], capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.fixture(scope="module")
def tiny(ravdess_dir, song_dir, tmp_path_factory):
    """Four actors (symlinked, never copied), one 2-fold run and its repeat, one held-out
    actor run; all sharing one feature cache."""
    root = tmp_path_factory.mktemp("ser-train")
    data = root / "data"
    data.mkdir()
    song = root / "song"
    song.mkdir()
    for actor in ACTORS:
        (data / actor).symlink_to(Path(ravdess_dir) / actor, target_is_directory=True)
        (song / actor).symlink_to(song_dir / actor, target_is_directory=True)
    cache = root / "cache"
    common = ["--data", str(data), "--model", "cnn", "--epochs", "1", "--aug-copies", "1",
              "--val-speakers", "1", "--batch-size", "64", "--cache-dir", str(cache)]
    runs = {
        "folds": ser_train(*common, "--folds", "2", "--out", str(root / "folds"), "--json",
                           "--conditions", "quiet"),
        "repeat": ser_train(*common, "--folds", "2", "--out", str(root / "repeat"),
                            "--conditions", "quiet"),
        "held": ser_train(*common, "--test-actors", "4", "--seed", "7", "--conditions", "",
                          "--extra-data", str(song), "--out", str(root / "held")),
    }
    runs["cv"] = ser_train(*common, "--cv-from", str(root / "folds"), "--learning-rate",
                           "0.001", "--conditions", "", "--extra-data", str(song),
                           "--out", str(root / "cv"))
    # Part of a cross-validation: fold 2 of the same partition alone.
    runs["part"] = ser_train(*common, "--folds", "2", "--only-folds", "2", "--no-final",
                             "--conditions", "quiet", "--out", str(root / "part"))
    # A run stopped after its first fold: started again, it takes fold 1 over.
    shutil.copytree(root / "folds", root / "resumed")
    (root / "resumed" / "report.json").unlink()
    (root / "resumed" / "folds" / "fold-2" / "fold-result.json").unlink()
    runs["resumed"] = ser_train(*common, "--folds", "2", "--out", str(root / "resumed"),
                                "--conditions", "quiet")
    for name, r in runs.items():
        assert r.returncode == 0, f"{name}: {r.stderr[-3000:]}"
    return {"root": root, "data": data, "cache": cache, "runs": runs}


def config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def test_run_dir_files_and_model_contract(tiny):
    import keras

    out = tiny["root"] / "folds"
    for name in ("model.keras", "core.keras", "config.json", "report.json", "report.md",
                 "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    for k in (1, 2):
        for name in ("model.keras", "config.json"):
            assert (out / "folds" / f"fold-{k}" / name).is_file()
    model = keras.models.load_model(out / "model.keras")
    assert model.inputs[0].name == "features"
    assert tuple(model.input_shape[1:]) == (297, 40, 2)
    assert [layer.name for layer in model.layers][1:] == ["normalize", "core"]
    core = model.get_layer("core")
    probs = core.predict(np.zeros((2, 297, 40, 2), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    cfg = config(out)
    assert cfg["labels"] == ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust",
                             "surprised"]
    assert cfg["model"]["parameters"] == core.count_params() <= 100_000
    assert cfg["accuracy"]["folds"] == 2 and cfg["accuracy"]["n_clips"] == 240
    assert cfg["training"]["train_speakers"] == [f"ravdess-0{i}" for i in range(1, 5)]
    summary = json.loads(tiny["runs"]["folds"].stdout)["summary"]  # --json: stdout is JSON
    assert summary == json.loads((out / "report.json").read_text())["summary"]
    # scored the device's way, live (interim) and under a room condition too
    folds = json.loads((out / "report.json").read_text())["folds"]
    assert summary["interim_accuracy_mean"] == pytest.approx(
        np.mean([f["interim"]["accuracy"] for f in folds]))
    for f in folds:  # a share of that fold's interim results
        k = f["interim"]["accuracy"] * f["interim"]["n"]
        assert f["interim"]["n"] > 0 and abs(k - round(k)) < 1e-6
    assert set(summary["conditions"]) == {"quiet"}
    assert "interim accuracy" in (out / "report.md").read_text()


def test_folds_are_speaker_independent(tiny):
    out = tiny["root"] / "folds"
    tested = []
    for k in (1, 2):
        t = config(out / "folds" / f"fold-{k}")["training"]
        train, val, test = set(t["train_speakers"]), set(t["val_speakers"]), set(t["test_speakers"])
        assert train and val and test
        assert not (train & test) and not (val & test) and not (train & val)
        tested += sorted(test)
        preds = json.loads((out / "folds" / f"fold-{k}" / "predictions.json").read_text())
        assert {c["speaker"] for c in preds["clips"]} == test
    assert sorted(tested) == [f"ravdess-0{i}" for i in range(1, 5)]  # each actor tested once
    report = json.loads((out / "report.json").read_text())
    assert sum(f["sizes"]["test"] for f in report["folds"]) == 240


def test_normalisation_is_fitted_on_the_training_fold_only(tiny):
    import keras

    from edge.features import FeatureSpec, Normalizer
    from train.corpora import read_ravdess
    from train.dataset import load_recordings
    from train.models import normalizer_of
    from train.windows import device_inputs

    def inputs_of(utterances):
        recs = load_recordings(utterances, FeatureSpec(), cache_dir=tiny["cache"],
                               progress=False).recordings
        return device_inputs(recs, FeatureSpec(), fallback=True).inputs

    utts = read_ravdess(tiny["data"]).utterances
    fold = tiny["root"] / "folds" / "folds" / "fold-1"
    train = set(config(fold)["training"]["train_speakers"])
    expected = Normalizer.fit(inputs_of([u for u in utts if u.speaker in train]))
    got = normalizer_of(keras.models.load_model(fold / "model.keras"))
    np.testing.assert_allclose(got.mean, expected.mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got.std, expected.std, rtol=1e-5)
    saved = Normalizer.from_dict(config(fold)["normalization"])
    np.testing.assert_allclose(saved.mean, expected.mean, rtol=1e-5, atol=1e-4)
    everyone = Normalizer.fit(inputs_of(list(utts)))
    assert np.abs(everyone.mean - got.mean).max() > 1e-2  # the test can tell the difference


def test_augmentation_never_touches_held_out_actors(tiny):
    from edge.features import FeatureSpec
    from train.corpora import read_ravdess
    from train.dataset import FeatureCache, file_digest

    cfg = config(tiny["root"] / "held")
    assert cfg["training"]["test_speakers"] == ["ravdess-04"]
    assert "ravdess-04" not in cfg["training"]["augmented_speakers"]
    cache = FeatureCache(tiny["cache"], FeatureSpec().frontend)
    entries = {p.name for p in cache.directory.rglob("*.npy")}
    report = json.loads((tiny["root"] / "held" / "report.json").read_text())
    assert cfg["training"]["extra_data"] and report["n_extra_clips"] == 4 * 44
    # the song of the test and validation actors stays out: 2 training actors, speech + song
    (fold,) = report["folds"]
    assert len(fold["train_speakers"]) == 2 and "ravdess-04" not in fold["train_speakers"]
    assert fold["sizes"]["train"] == 2 * 60 + 2 * 44
    song = read_ravdess(tiny["root"] / "song").utterances
    for u in [*read_ravdess(tiny["data"]).utterances, *song]:
        digest = file_digest(u.path)
        # the held-out run (seed 7) names its augmented copies "<digest>-aug<key>-s7-c0"
        held_copies = [e for e in entries if e.startswith(digest) and "-s7-c" in e]
        assert len(held_copies) == (0 if u.speaker == "ravdess-04" else 1), u.path.name
    # in each fold, only that fold's training speakers are augmented
    for k in (1, 2):
        t = config(tiny["root"] / "folds" / "folds" / f"fold-{k}")["training"]
        assert set(t["augmented_speakers"]) == set(t["train_speakers"])


def test_second_run_reuses_the_cache_and_is_deterministic(tiny):
    assert "(0 computed, 240 cached;" in tiny["runs"]["repeat"].stderr
    a = json.loads((tiny["root"] / "folds" / "report.json").read_text())
    b = json.loads((tiny["root"] / "repeat" / "report.json").read_text())
    assert a["summary"] == b["summary"]
    strip = [[{k: v for k, v in h.items() if k != "seconds"} for h in f["history"]]
             for f in a["folds"]]
    strip_b = [[{k: v for k, v in h.items() if k != "seconds"} for h in f["history"]]
               for f in b["folds"]]
    assert strip == strip_b
    assert a["pooled"]["confusion"] == b["pooled"]["confusion"]


def test_cv_from_trains_only_the_shipped_model_and_lists_the_differences(tiny, tmp_path):
    root = tiny["root"]
    cv = json.loads((root / "cv" / "report.json").read_text())
    source = json.loads((root / "folds" / "report.json").read_text())
    assert "fold 1/" not in tiny["runs"]["cv"].stderr  # no fold trained again
    assert cv["summary"] == source["summary"] and cv["folds"] == source["folds"]
    assert cv["cv_from"]["run"] == str((root / "folds").resolve())
    song = str(tiny["root"] / "song")
    assert cv["cv_from"]["differences"] == {
        "training.learning_rate": {"cv_run": 0.002, "this_run": 0.001},
        "training.extra_data": {"cv_run": [], "this_run": [
            {"corpus": "ravdess", "path": str(Path(song).resolve())}]}}
    assert cv["n_extra_clips"] == 4 * 44  # the shipped model trained on the song too
    assert cv["final"]["speakers_per_corpus"] == {"ravdess": 4}
    assert "The shipped model trained on 4 ravdess speakers." in \
        (root / "cv" / "report.md").read_text()
    assert cv["final"]["train_speakers"] == source["speakers"]
    assert (root / "cv" / "folds" / "fold-2" / "model.keras").is_file()  # for ser-export
    assert config(root / "cv")["accuracy"]["cv_from"]["differences"] == \
        cv["cv_from"]["differences"]
    assert "Cross-validation taken from" in (root / "cv" / "report.md").read_text()
    other = ser_train("--data", str(tiny["data"]), "--model", "cnn-lstm", "--epochs", "1",
                      "--cache-dir", str(tiny["cache"]), "--cv-from", str(root / "folds"),
                      "--out", str(tmp_path / "lstm"))
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "its model differ" in other.stderr


def test_cv_from_a_run_still_under_way_trains_first_and_takes_its_folds_at_the_end(
        tiny, tmp_path):
    """The shipped model trains while the cross-validation runs elsewhere (the two share the
    machine); its report takes the folds over once they are written."""
    running = tmp_path / "cv-running"
    running.mkdir()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [SER_TRAIN, "--data", str(tiny["data"]), "--model", "cnn", "--epochs", "1",
         "--aug-copies", "1", "--batch-size", "64", "--cache-dir", str(tiny["cache"]),
         "--conditions", "", "--cv-from", str(running), "--out", str(tmp_path / "shipped")],
        stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("waiting for the cross-validation"):
                break
        assert any("is still running: training the shipped model now" in x for x in seen)
        assert any(x.startswith("final ") for x in seen), "".join(seen)[-2000:]
        shutil.copytree(tiny["root"] / "folds", running, dirs_exist_ok=True)
        rest = proc.communicate(timeout=300)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, rest[-2000:]
    report = json.loads((tmp_path / "shipped" / "report.json").read_text())
    source = json.loads((tiny["root"] / "folds" / "report.json").read_text())
    assert report["summary"] == source["summary"]
    assert report["cv_from"]["run"] == str(running.resolve())
    assert (tmp_path / "shipped" / "model.keras").is_file()
    assert (tmp_path / "shipped" / "folds" / "fold-2" / "model.keras").is_file()


def test_a_stopped_run_resumes_after_its_finished_folds(tiny):
    """Fold 1's saved result is taken over (not trained again); fold 2, whose result was lost,
    is trained again and comes out the same (same seed, same machine)."""
    root = tiny["root"]
    log = tiny["runs"]["resumed"].stderr
    assert "fold 1: taken over from the interrupted run" in log and "fold 1 epoch" not in log
    assert "fold 2 epoch 1/1" in log
    a = json.loads((root / "folds" / "report.json").read_text())
    b = json.loads((root / "resumed" / "report.json").read_text())
    assert a["pooled"]["confusion"] == b["pooled"]["confusion"]
    assert [f["test"] for f in a["folds"]] == [f["test"] for f in b["folds"]]
    assert (root / "resumed" / "folds" / "fold-2" / "fold-result.json").is_file()


def test_only_folds_runs_part_of_the_partition_and_says_so(tiny):
    root = tiny["root"]
    full = json.loads((root / "folds" / "report.json").read_text())
    part = json.loads((root / "part" / "report.json").read_text())
    assert [f["fold"] for f in part["folds"]] == [2]
    assert part["folds"][0]["test_speakers"] == full["folds"][1]["test_speakers"]
    assert part["folds"][0]["test"] == full["folds"][1]["test"]  # the same fold, same seed
    assert part["summary"]["only_folds"] == [2] and part["summary"]["of_folds"] == 2
    assert "| cnn | 2 of 2 |" in (root / "part" / "report.md").read_text()
    assert not (root / "part" / "model.keras").exists()  # --no-final
    bad = ser_train("--data", str(tiny["data"]), "--folds", "2", "--only-folds", "3",
                    "--cache-dir", str(tiny["cache"]), "--out", str(root / "bad-part"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--only-folds '3': give fold numbers from 1 to 2" in bad.stderr
    assert not (root / "bad-part").exists()


def test_a_fold_result_of_another_recipe_is_not_taken_over(tmp_path):
    from edge.features import FeatureSpec
    from train.fit import TrainConfig
    from train.plan import RunPlan
    from train.reuse import finished_fold, fold_key

    plan = RunPlan(out=tmp_path, spec=FeatureSpec(), train=TrainConfig(), data=())
    args = (0, ["a", "b"], ["s1"], [], ["s2"], 60)
    key = fold_key(plan, *args)
    assert key == fold_key(plan, *args)
    other = replace(plan, train=TrainConfig(learning_rate=1e-3))
    assert fold_key(other, *args) != key
    assert fold_key(plan, 1, *args[1:]) != key
    (tmp_path / "fold-result.json").write_text(json.dumps({"key": key, "report": {}}))
    assert finished_fold(tmp_path, key) is None  # no model saved beside it
    (tmp_path / "model.keras").write_bytes(b"x")
    assert finished_fold(tmp_path, key) == {"key": key, "report": {}}
    assert finished_fold(tmp_path, fold_key(other, *args)) is None


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    missing = ser_train("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert missing.returncode == 2
    assert "no audio files" in missing.stderr or "no such" in missing.stderr
    assert "Traceback" not in missing.stderr
    make_tree(tmp_path / "odd", ["hello.wav"])
    odd = ser_train("--data", str(tmp_path / "odd"), "--out", str(tmp_path / "o"))
    assert odd.returncode == 2 and "Traceback" not in odd.stderr
    assert "known corpus" in odd.stderr


def test_rf_baseline_on_two_synthetic_corpora(tmp_path):
    """--model rf, --data twice (EmoDB and SAVEE names, auto-detected), --classes merging."""
    emodb = [f"{s}a0{i}{e}a.wav" for s in ("03", "08", "10") for i, e in enumerate("WFTN")]
    savee = [f"{s}_{e}0{i}.wav" for s in ("DC", "JE") for i, e in enumerate(("a", "h", "sa"))]
    make_tree(tmp_path / "emodb", emodb, seconds=0.6)
    make_tree(tmp_path / "savee", savee, seconds=0.6)
    out = tmp_path / "rf"
    r = ser_train("--data", str(tmp_path / "emodb"), "--data", str(tmp_path / "savee"),
                  "--model", "rf", "--folds", "2", "--classes", "angry+happy,sad,neutral",
                  "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == ["angry", "sad", "neutral"]
    assert report["n_clips"] == len(emodb) + len(savee)
    assert {d["corpus"] for d in report["data"]} == {"emodb", "savee"}
    for f in report["folds"]:
        assert not set(f["test_speakers"]) & set(f["train_speakers"])
    assert (out / "confusion.png").stat().st_size > 0 and (out / "report.md").is_file()
    assert json.loads(r.stdout)["summary"]["folds"] == 2


@pytest.mark.parametrize(("folds", "says"), [("0", "--folds 0: must be >= 2"),
                                             ("1", "--folds 1: must be >= 2"),
                                             ("4", "--folds 4: the data has 3 speakers")])
def test_folds_are_checked_before_any_feature_is_computed(tmp_path, folds, says):
    make_tree(tmp_path / "data", [f"03-01-0{e}-01-01-01-{a:02d}.wav"
                                  for a in (1, 2, 3) for e in (1, 4, 5)], seconds=0.6)
    cache = tmp_path / "cache"
    r = ser_train("--data", str(tmp_path / "data"), "--folds", folds, "--epochs", "1",
                  "--cache-dir", str(cache), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"ser-train: {says}" or says in r.stderr
    assert not cache.exists() and not (tmp_path / "run").exists()  # nothing computed
