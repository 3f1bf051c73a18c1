"""``ser-bench``: its scoring is the device's batch path (:mod:`edge.batch`, whose tests show
that it is ``edge-ser predict``'s and ``listen``'s) on the endpointer's own segmentation; a
tiny run through the console script produces a well-formed report (JSON, Markdown, PNGs,
README tables) whose figures are internally consistent; bad input gets one line and exit
status 2 without losing the good models; the live scorer and the recording writer do what
they say. Nothing here is a timed test: figures are checked for shape and
sanity, not speed.

Models: ``tests/conftest_edge.py``'s bundles (``EDGE_SER_TEST_MODELS`` during development);
the console-script run takes the fold bundles of the shipped recipe in ``tests/models/``
(int8 and float32 of one fold model): its primary corpus is that fold's test actors (RAVDESS
01-04, voices the models never heard, as their metadata says) and SAVEE, a corpus the
shipped recipe trains on, is scored beside it as training speakers.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module
from conftest_edge import fold_bundle, shipped

from benchmarks.accuracy import (
    HELD_OUT,
    TRAINING,
    EvalSet,
    Predictions,
    compare,
    score_contender,
)
from benchmarks.contenders import TFLITE, Contender, float_counterparts, from_bundle
from benchmarks.metrics import agreement, score
from edge.batch import predicted_labels
from edge.bundle import load_bundle
from edge.features import FeatureSpec, Normalizer
from train.corpora import Utterance

# The Keras reference (TensorFlow in two processes, ~30 s) is left out of the CLI run and
# checked in-process below; one room condition stands for the four.
TINY = ["--clips", "12", "--repeats", "20", "--threads", "1", "--stream-seconds", "8",
        "--process-repeats", "1", "--no-keras", "--live-clips", "6", "--hour-seconds", "30",
        "--conditions", "quiet", "--no-instructions"]  # callgrind: tests/test_instructions.py


def f1_and_recall(cm: np.ndarray, no_result: np.ndarray) -> tuple[float, list[float | None]]:
    """Macro-F1 over the classes in the truth, and per-class recall (None where absent),
    recomputed from a confusion matrix (rows true) and the unanswered clips per class."""
    support = cm.sum(axis=1) + no_result
    f1s, recall = [], []
    for i in range(len(cm)):
        if not support[i]:
            recall.append(None)
            continue
        r = cm[i, i] / support[i]
        p = cm[i, i] / cm[:, i].sum() if cm[:, i].sum() else 0.0
        recall.append(r)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(f1s)), recall


def is_count_share(value: float, n: int) -> bool:
    """``value`` is k / n for a whole k in [0, n]: a share of ``n`` things, as reported."""
    k = value * n
    return 0 <= round(k) <= n and abs(k - round(k)) < 1e-6


def ser_bench() -> list[str]:
    script = Path(sys.executable).parent / "ser-bench"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "benchmarks.cli"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG (checks the signature and the IHDR chunk)."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def bench(ravdess_dir: Path, savee_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    int8, float32 = fold_bundle("int8"), fold_bundle("float32")
    out = tmp_path_factory.mktemp("bench")
    held = load_bundle(int8).metadata.training["test_speakers"]
    assert held, "the fold bundle names its test speakers"
    # The fold's test actors only, under the corpus's own directory name (symlinks).
    heard_not = tmp_path_factory.mktemp("held-out") / ravdess_dir.name
    heard_not.mkdir()
    for speaker in held:
        actor = f"Actor_{speaker.split('-')[-1]}"
        (heard_not / actor).symlink_to(ravdess_dir / actor, target_is_directory=True)
    proc = subprocess.run(
        ser_bench() + ["--data", str(heard_not), "--data", str(savee_dir),
                       "--models", str(int8), str(float32), *TINY, "--out", str(out),
                       "--json"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"proc": proc, "out": out, "int8": int8.stem, "float32": float32.stem,
            "report": json.loads((out / "benchmark.json").read_text())}


# --------------------------------------------------------------------------------------
# The benchmark's scoring is the device's
# --------------------------------------------------------------------------------------


def _clips(ravdess_dir: Path) -> list[Utterance]:
    from train.corpora import read_corpus

    return sorted(read_corpus(ravdess_dir).utterances, key=lambda u: str(u.path))[::97][:6]


def test_the_replay_is_the_endpointers_own_segmentation():
    """Finals are speech_segments' utterances; interims are the active utterance at hop
    boundaries only, each inside its final."""
    from edge.endpoint import replay, speech_segments

    spec = FeatureSpec()
    rng = np.random.default_rng(3)
    levels = -70 + rng.normal(0, 1, 1500)
    for a, b in ((200, 420), (700, 760), (1000, 1490)):  # two words and a shorter blip
        levels[a:b] = -30 + rng.normal(0, 2, b - a)
    finals, interims = replay(levels, spec.endpoint, spec.frames_per_second, 50)
    assert list(finals) == speech_segments(levels, spec.endpoint, spec.frames_per_second)
    assert len(finals) >= 2 and interims
    for s in interims:
        assert s.end % 50 == 0
        assert any(f.start < s.end and s.start < f.end for f in finals)


# --------------------------------------------------------------------------------------
# The run through the console script
# --------------------------------------------------------------------------------------


def test_run_writes_json_markdown_and_pngs(bench: dict) -> None:
    proc, out = bench["proc"], bench["out"]
    assert "Traceback" not in proc.stderr
    # --json: stdout is exactly the report, nothing else
    assert json.loads(proc.stdout) == bench["report"]
    md = (out / "benchmark.md").read_text()
    for section in ("## Accuracy", "## Room conditions", "## Other corpus: savee-16k",
                    "## Live", "## Latency", "## Streaming", "## Size, start-up and memory",
                    "## Front end against its peers", "## README tables"):
        assert section in md
    report = bench["report"]
    assert set(report["plots"]["confusion"]) == {bench["int8"], bench["float32"]}
    for name in [report["plots"]["latency"], *report["plots"]["confusion"].values()]:
        assert f"]({name})" in md
        width, height = png_size(out / name)
        assert width >= 300 and height >= 300


def test_accuracy_is_consistent_and_honest_about_speakers(bench: dict) -> None:
    report = bench["report"]
    ravdess, savee = report["data"]
    assert savee["clips"] == ravdess["clips"] == 12
    models = {x["name"]: x for x in report["models"]}
    for name in (bench["int8"], bench["float32"]):
        x = models[name]
        for a, data in ((x["accuracy"], ravdess), (x["corpora"]["savee-16k"], savee)):
            cm = np.array(a["confusion"])
            assert cm.shape == (len(x["labels"]),) * 2
            # every recording is counted: a result, or none (a wrong answer)
            assert cm.sum() + a["no_result"] == a["n"] == data["clips"]
            assert a["accuracy"] == pytest.approx(np.trace(cm) / a["n"])
            assert set(a["recall"]) == set(x["labels"])
            f1, recall = f1_and_recall(cm, np.array(a["no_result_per_class"]))
            assert a["macro_f1"] == pytest.approx(f1)
            assert [a["recall"][k] for k in x["labels"]] == pytest.approx(recall)
            assert a["interim"]["n"] == data["interims"] > 0
            assert is_count_share(a["interim"]["accuracy"], a["interim"]["n"])
        # RAVDESS 01-04: the fold's test actors; SAVEE: held out too when the recipe leaves it
        # out (the shipped CNN's), else training speakers (flagged); and no calm
        assert not set(ravdess["speakers"]) & set(x["trained_on_speakers"])
        assert x["accuracy"]["headline"] == HELD_OUT
        calm = x["labels"].index("calm")
        cm = np.array(x["accuracy"]["confusion"])
        assert x["accuracy"]["recall"]["calm"] == pytest.approx(
            cm[calm, calm] / (cm[calm].sum() + x["accuracy"]["no_result_per_class"][calm]))
        sav = x["corpora"]["savee-16k"]
        heard = set(savee["speakers"]) & set(x["trained_on_speakers"])
        assert heard in (set(), set(savee["speakers"]))
        if heard:
            assert sav["headline"] == TRAINING and sav["held_out"] is None
        else:
            assert sav["headline"] == HELD_OUT
        assert sav["counted_as"] == {"calm": "neutral"} and sav["recall"]["calm"] is None
        quiet = x["conditions"]["quiet"]
        assert quiet["headline"] == HELD_OUT and quiet["n"] == x["accuracy"]["n"]
    comps = [c for c in report["comparisons"]
             if (c["int8"], c["float"]) == (bench["int8"], bench["float32"])]
    assert {c["corpus"] for c in comps} == {"savee-16k", "ravdess-speech-16k"}
    for c in comps:
        assert c["clips"] <= 12 and is_count_share(c["agreement"], c["clips"])
        assert c["agreement"] >= 0.75  # the fold's int8 and float bundles (0.95 at export)


def test_live_equals_predict_offline_and_pauses_say_no_speech(bench: dict) -> None:
    models = {x["name"]: x for x in bench["report"]["models"]}
    assert models[bench["float32"]]["live"] is None  # int8 bundles only
    live = models[bench["int8"]]["live"]
    assert live["corpus"] == "ravdess-speech-16k" and live["speakers_label"] == HELD_OUT
    assert live["clips"] == len(live["per_clip"]) == 6
    # the benchmark's own scoring of these clips is edge-ser predict's (4 printed digits)
    parity = live["offline_vs_predict"]
    assert parity["same_label"] == parity["clips"] == 6
    assert parity["max_abs_prob_diff"] <= 5.1e-5
    assert live["file_accuracy"] == pytest.approx(
        np.mean([r["file"] == r["label"] for r in live["per_clip"]]))
    assert live["pause_results"] > 0 and live["pause_no_speech"] >= 0.9
    delay = live["final_after_speech_end_s"]
    assert delay["n"] == 6 - live["clips_without_final"] and 0.0 < delay["median"] < 2.0
    assert live["listen_peak_rss_bytes"] > 10 * 2**20 and live["hop_ms_mean"] > 0
    hour = bench["report"]["hour"]
    assert hour["model"] == bench["int8"] and hour["audio_seconds"] >= 30
    assert hour["listen"]["finals"] >= 1 and hour["predict"]["utterances"] >= 1
    assert hour["predict"]["peak_rss_bytes"] > 10 * 2**20


def test_latency_streaming_and_memory_figures(bench: dict) -> None:
    report = bench["report"]
    rows = report["latency"]["rows"]
    whats = {(r["what"], r["model"], r["threads"]) for r in rows}
    for step in ("front end, per hop", "endpointer, per hop", "utterance inputs, per window"):
        assert (step, None, None) in whats
    for name in (bench["int8"], bench["float32"]):
        assert ("invoke", name, 1) in whats
        assert ("end to end, interim hop", name, 1) in whats
        assert ("end to end, no-speech hop", name, 1) in whats
    for r in rows:
        assert r["n"] >= 3 and 0 < r["median_ms"] <= r["p95_ms"] <= r["p99_ms"]
        assert len(report["latency"]["samples"][r["key"]]) == r["n"]
    baseline = report["baseline_process"]["peak_rss_bytes"]["median"]
    for x in report["models"]:
        s = x["streaming"]
        assert s["results"] >= s["hops"] >= 1 and s["utterances"] >= 1
        assert s["rtf_process"]["median"] > 0
        assert s["peak_rss_bytes"]["median"] > baseline > 10 * 2**20
        assert x["first_prediction"]["seconds"]["median"] > 0
        assert x["load_only"]["peak_rss_bytes"]["median"] >= baseline
        assert x["size_bytes"] == Path(x["path"]).stat().st_size
    assert report["frontend_peers"]["ratios"]["librosa / edge"] > 0


def test_readme_tables_are_generated_from_the_json(bench: dict, tmp_path: Path) -> None:
    out = bench["out"]
    proc = subprocess.run(ser_bench() + ["--readme", str(out / "benchmark.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() and proc.stdout.strip() in (out / "benchmark.md").read_text()
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| model |"))
    assert "interim" in header and "quiet" in header and "savee-16k" in header
    assert f"| {bench['int8']} |" in proc.stdout and "not from a Raspberry Pi" in proc.stdout
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**bench["report"], "format_version": 1}))
    proc = subprocess.run(ser_bench() + ["--readme", str(old)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "run ser-bench again" in proc.stderr


# Without TensorFlow, librosa, matplotlib, python_speech_features, tqdm and SciPy (a Raspberry
# Pi with only the edge runtime): those imports fail in this process as if not installed.
WITHOUT_OPTIONAL = (
    "import sys\n"
    "for m in ('tensorflow', 'keras', 'librosa', 'matplotlib', 'python_speech_features',"
    " 'tqdm', 'sklearn', 'scipy'):\n"
    "    sys.modules[m] = None\n"
    "sys.argv[0] = 'ser-bench'\n"
    "from benchmarks.cli import main\n"
    "main()\n"
)


def test_bad_model_and_clip_reported_others_benchmarked_without_optional_deps(
        ravdess_dir: Path, tmp_path: Path) -> None:
    int8 = shipped("cnn-int8")
    data = tmp_path / "data"
    data.mkdir()
    for clip in sorted(ravdess_dir.rglob("03-01-0[1-5]-01-01-01-*.*"))[:4]:
        (data / clip.name).symlink_to(clip)
    (data / "03-01-03-01-02-02-01.wav").write_bytes(b"RIFF but not really audio")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\0" * 64)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPTIONAL, "--data", str(data), "--models", str(int8),
         str(garbage), "--clips", "20", "--repeats", "5", "--threads", "1", "--stream-seconds",
         "5", "--process-repeats", "1", "--live-clips", "3", "--hour-seconds", "0",
         "--no-instructions", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines()
              if str(garbage) in line or "03-01-03-01-02-02-01.wav" in line]
    assert errors, proc.stderr
    report = json.loads((out / "benchmark.json").read_text())
    assert [x["name"] for x in report["models"]] == [int8.stem]
    assert report["models"][0]["accuracy"]["n"] == 4
    assert report["models"][0]["live"]["clips"] == 3
    assert len(report["errors"]) == 2
    notes = " ".join(report["notes"])
    assert "TensorFlow is not installed" in notes and "matplotlib is not installed" in notes
    assert "room conditions skipped" in notes
    assert "librosa" in report["frontend_peers"]["skipped"]
    assert not list(out.glob("*.png"))
    assert (out / "benchmark.md").read_text().startswith("# edge-ser benchmark")


def test_missing_data_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(ser_bench() + ["--data", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"ser-bench: --data {tmp_path / 'nowhere'}:"
                                                " no such directory"]


def test_keras_reference_has_the_bundles_architecture(tmp_path: Path) -> None:
    require_module("tensorflow")
    from benchmarks.contenders import KerasRunner, keras_reference

    int8 = from_bundle(shipped("cnn-int8"))
    ref = keras_reference(int8, tmp_path / "ref")
    assert ref.latency_only and ref.runtime == "keras" and ref.kind == int8.kind
    assert ref.parameters == int8.parameters  # same layers as the bundle's model
    probs = KerasRunner(ref).predict_one(np.zeros(int8.spec.input_shape, np.float32))
    assert probs.shape == (1, len(int8.labels)) and probs.sum() == pytest.approx(1, abs=1e-4)


# --------------------------------------------------------------------------------------
# Scores, live scoring and the recording writer by hand
# --------------------------------------------------------------------------------------


def test_scores_against_a_hand_count() -> None:
    labels = ("a", "b", "c")
    truth = np.array([0, 0, 1, 1, 1, 2, 1])
    pred = np.array([0, 1, 1, 1, 0, 0, -1])  # the last recording got no result
    s = score(truth, pred, labels)
    assert s.n == 7 and s.accuracy == pytest.approx(3 / 7)
    assert s.recall == {"a": 0.5, "b": pytest.approx(2 / 4), "c": 0.0}
    # F1: a: p=1/3 r=1/2 -> 0.4; b: p=2/3 r=1/2 -> 4/7; c: 0
    assert s.macro_f1 == pytest.approx((0.4 + 4 / 7 + 0.0) / 3)
    assert s.confusion.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]
    assert s.no_result.tolist() == [0, 1, 0]
    p = np.eye(3)[[0, 1, 2, 2]]
    q = np.eye(3)[[0, 1, 1, 2]]
    assert agreement(p, q) == 0.75
    probs = np.array([[0.2, 0.7, 0.1], [np.nan] * 3, [0.1, 0.2, 0.7]])
    assert predicted_labels(probs).tolist() == [1, -1, 2]
    assert predicted_labels(probs, {1: 0}).tolist() == [0, -1, 2]


def _contender(name: str, quantization: str, trained_on: list[str],
               labels: tuple[str, ...] = ("angry", "sad")) -> Contender:
    spec = FeatureSpec()
    shape = (spec.frontend.n_mfcc, spec.channels)
    return Contender(name=name, path=Path(f"{name}.tflite"), runtime=TFLITE, kind="cnn",
                     quantization=quantization, labels=labels, spec=spec,
                     normalizer=Normalizer(np.zeros(shape), np.ones(shape)),
                     training={"train_speakers": trained_on, "val_speakers": []})


def _evalset(rows: list[tuple[str, str]]) -> EvalSet:
    utts = [Utterance(Path(f"{i}.wav"), lab, spk, "ravdess") for i, (lab, spk) in
            enumerate(rows)]
    return EvalSet("test", "test", "clean", FeatureSpec(), 50, utts, [None] * len(utts))


def test_training_speakers_are_scored_apart_from_held_out_ones() -> None:
    q = _contender("m-int8", "int8", ["ravdess-01"])
    f = _contender("m-float32", "float32", ["ravdess-01"])
    assert float_counterparts([q, f]) == [(q, f)]
    evalset = _evalset([("angry", "ravdess-01"), ("sad", "ravdess-01"), ("angry", "ravdess-02"),
                        ("sad", "ravdess-02"), ("sad", "ravdess-02"), ("calm", "ravdess-02"),
                        ("angry", "ravdess-02")])
    # int8: the held-out speaker's second "sad" is wrong; the float model gets it right; the
    # last recording has no utterance for either (no result: wrong, counted)
    eye = np.eye(2)
    pq = np.vstack([eye[[0, 1, 0, 0, 1, 0]], [[np.nan, np.nan]]])
    pf = np.vstack([eye[[0, 1, 0, 1, 1, 0]], [[np.nan, np.nan]]])
    scored = np.ones(7, bool)
    interim = (np.eye(2, dtype=np.float32)[[0, 1, 1, 0]], np.array([2, 2, 3, 4]))
    preds = {q.name: Predictions(pq, scored, *interim), f.name: Predictions(pf, scored)}
    sq = score_contender(q, preds[q.name], evalset)
    sf = score_contender(f, preds[f.name], evalset)
    assert sq["headline"] == HELD_OUT and sq["speakers_scored"] == ["ravdess-01", "ravdess-02"]
    assert sq["n"] == 4 and sq["no_result"] == 1  # ravdess-02 without "calm"
    assert sq["accuracy"] == pytest.approx(2 / 4) and sf["accuracy"] == pytest.approx(3 / 4)
    assert sq["interim"] == {"accuracy": pytest.approx(2 / 4), "n": 4}
    assert sq["training_speakers"]["n"] == 2
    assert sq["training_speakers"]["speakers_label"] == TRAINING
    assert sq["labels_not_in_model"] == ["calm"] and sq["counted_as"] == {}
    c = compare(q, f, preds, {q.name: sq, f.name: sf}, evalset)
    assert c["clips"] == 6 and c["agreement"] == pytest.approx(5 / 6)
    assert c["agreement_held_out"] == pytest.approx(3 / 4) and c["answered_differently"] == 0
    assert c["accuracy_gap"] == pytest.approx(1 / 4)


def test_a_corpus_without_calm_counts_a_predicted_calm_as_neutral() -> None:
    m = _contender("m", "int8", [], labels=("neutral", "calm", "sad"))
    evalset = _evalset([("neutral", "savee-DC"), ("sad", "savee-DC"), ("neutral", "savee-JE")])
    probs = np.eye(3)[[1, 1, 0]]  # calm, calm, neutral
    s = score_contender(m, Predictions(probs, np.ones(3, bool)), evalset)
    assert s["counted_as"] == {"calm": "neutral"}
    assert s["accuracy"] == pytest.approx(2 / 3) and s["recall"]["calm"] is None


def test_fold_figures_stand_for_the_model_they_were_cut_from() -> None:
    from benchmarks.choose import held_out_by

    bundle = _contender("cnn-int8", "int8", ["ravdess-01"])
    run = replace(_contender("cnn-keras", "float32", ["ravdess-01"]), runtime="keras",
                  path=Path("runs/cnn"))
    run = replace(run, training={**run.training, "epochs": 30})
    retrained = replace(run, name="cnn-keras-2", path=Path("runs/other"),
                        training={**run.training, "epochs": 99})
    folds = replace(bundle, name="cnn-int8 folds", path=Path("runs/cnn"), members=(bundle,))
    keras_folds = replace(run, name="cnn-keras folds", members=(run,))
    links = held_out_by([bundle, run, retrained, folds, keras_folds])
    assert links == {"cnn-int8": "cnn-int8 folds", "cnn-keras": "cnn-keras folds"}


def _result(event: str, t: float, start=None, end=None, label=None, probs=None,
            speech=0.0) -> dict:
    return {"event": event, "t": t, "start": start, "end": end, "label": label,
            "probs": probs or {}, "speech_seconds": speech}


def test_live_scoring_by_hand() -> None:
    from benchmarks.live import Placed, score_live

    placed = [Placed("a.wav", "sad", 2.0, 5.0, 2.3, 4.5),
              Placed("b.wav", "neutral", 9.0, 12.0, 9.2, 11.6),
              Placed("c.wav", "angry", 16.0, 18.0, 16.1, 17.8)]
    sad, calm = {"sad": 0.6, "calm": 0.4}, {"sad": 0.3, "calm": 0.7}
    results = [
        _result("no_speech", 1.0), _result("interim", 3.0, 2.2, 3.0, "sad", sad, 0.5),
        _result("interim", 3.5, 2.2, 3.5, "calm", calm, 1.0),
        # a's two finals: speech-weighted, sad wins (0.6 * 2 + 0.3 * 0.5 > 0.4 * 2 + 0.7 * 0.5)
        _result("final", 4.1, 2.2, 3.6, "sad", sad, 2.0),
        _result("final", 4.9, 3.9, 4.6, "calm", calm, 0.5),
        _result("no_speech", 6.5), _result("no_speech", 7.0), _result("interim", 8.0, 7.8, 8.0,
                                                                       "sad", sad, 0.2),
        _result("final", 12.0, 9.1, 11.7, "calm", calm, 2.0),  # b: calm, counted as neutral
        _result("no_speech", 14.0),
    ]
    files = {"a.wav": {"label": "sad"}, "b.wav": {"label": "sad"}, "c.wav": {"label": None}}
    s = score_live(results, placed, files, merge={"calm": "neutral"})
    assert [r["live"] for r in s["per_clip"]] == ["sad", "neutral", None]
    assert s["live_accuracy"] == pytest.approx(2 / 3) and s["clips_without_final"] == 1
    assert s["file_accuracy"] == pytest.approx(1 / 3) and s["files_without_result"] == 1
    assert s["live_equals_file"] == pytest.approx(2 / 3)  # c: no result either way
    assert s["interims"] == 2 and s["interim_accuracy"] == pytest.approx(1 / 2)
    # pauses from 1 s after a clip: 6.5, 7.0, the stray interim at 8.0, 14.0
    assert s["pause_results"] == 4 and s["pause_no_speech"] == pytest.approx(3 / 4)
    delay = s["final_after_speech_end_s"]
    assert delay["n"] == 2 and delay["max"] == pytest.approx(0.4)
    assert delay["within_bound"] == 1.0


def test_the_recording_puts_each_clip_where_it_says(ravdess_dir: Path, tmp_path: Path) -> None:
    from benchmarks.live import RATE, ROOM_DB, write_recording
    from edge.audio import load

    clips = [(str(u.path), u.label) for u in _clips(ravdess_dir)[:2]]
    path = tmp_path / "rec.wav"
    placed = write_recording(path, clips, seed=1, total_seconds=20.0)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
    audio = load(path, RATE)
    assert len(placed) >= 3 and placed[2].path == clips[0][0]  # repeated to 20 s
    assert audio.size / RATE >= 20.0 and placed[-1].end <= audio.size / RATE
    for p in placed[:2]:
        clip = load(p.path, RATE)
        start = int(round(p.start * RATE))
        # the clip, plus the room: about -60 dBFS of difference
        diff = audio[start:start + clip.size] - clip
        assert 20 * np.log10(np.sqrt(np.mean(diff**2))) == pytest.approx(ROOM_DB, abs=2.0)
        assert p.start < p.speech_start < p.speech_end <= p.end
    pause = audio[: int(placed[0].start * RATE)]
    assert 20 * np.log10(np.sqrt(np.mean(pause.astype(np.float64) ** 2))) == pytest.approx(
        ROOM_DB, abs=2.0)


def test_input_subsets_keep_only_their_recordings() -> None:
    """A pooled fold member sees only its speakers' windows (finals and interims), and they
    combine as before."""
    from benchmarks.inputs import Inputs, score
    from edge.batch import Windows

    x = np.arange(6, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32)
    w = Windows(x, np.array([0, 0, 1, 2, 2, 3]), np.array([0, 1, 2, 2]),
                np.array([1.0, 2.0, 1.0, 3.0]), 3)
    inputs = Inputs(w, w)

    def predict(batch: np.ndarray) -> np.ndarray:
        v = batch[:, 0, 0, 0]
        return np.stack([v / 10, 1 - v / 10], axis=1)

    full = score(predict, inputs, 2)
    part = score(predict, inputs.subset(np.array([False, True, True])), 2)
    assert np.isnan(part.recording_probs[0]).all()
    np.testing.assert_allclose(part.recording_probs[1:], full.recording_probs[1:])
    # recording 2: utterances (windows 3-4: mean 0.35) and (window 5: 0.5), weights 1 and 3
    assert full.recording_probs[2, 0] == pytest.approx((0.35 * 1 + 0.5 * 3) / 4)
    assert full.utterances.tolist() == [1, 1, 2]
    assert part.interim_recording.tolist() == [1, 2, 2]
    np.testing.assert_array_equal(part.interim_probs, full.interim_probs[1:])


def test_readme_tables_are_the_committed_reports() -> None:
    """The published benchmark tables (docs/benchmarks.md, linked from the README) are
    `ser-bench --readme reports/benchmark.json`, to the letter: a figure edited by hand, or a
    report re-run without regenerating the tables, fails here."""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([*ser_bench(), "--readme", str(repo / "reports" / "benchmark.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    tables = done.stdout.strip()
    assert tables.count("\n| --- |") >= 2  # the accuracy and the device tables
    page = (repo / "docs" / "benchmarks.md").read_text()
    assert tables in page, "docs/benchmarks.md's tables differ from `ser-bench --readme" \
        " reports/benchmark.json`: run make docs"
