"""``ser-bench`` end to end: a tiny run through the console script produces a well-formed
report (JSON, Markdown, PNGs) whose figures are internally consistent, and bad input gets
one line and exit status 2 without losing the good models. Nothing here is a timed test:
the figures are checked for shape and sanity, not speed.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.accuracy import HELD_OUT, TRAINING, EvalSet, compare, score_contender
from benchmarks.contenders import TFLITE, Contender, float_counterparts
from benchmarks.metrics import agreement, score
from edge.features import FeatureSpec, Normalizer
from train.corpora import Utterance

# The Keras reference (TensorFlow in two processes, ~30 s) is left out of the CLI run and
# checked in-process below.
TINY = ["--clips", "12", "--repeats", "20", "--threads", "1", "--stream-seconds", "8",
        "--process-repeats", "1", "--no-keras"]


def ser_bench() -> list[str]:
    script = Path(sys.executable).parent / "ser-bench"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "benchmarks.cli"]


def shipped_cnn_pair() -> tuple[Path, Path]:
    """The shipped int8 CNN bundle and its float32 counterpart."""
    from edge.shipped import MODELS_DIR

    pair = (MODELS_DIR / "cnn-int8.tflite", MODELS_DIR / "cnn-float32.tflite")
    if not all(p.is_file() for p in pair):
        message = f"shipped bundles cnn-int8/cnn-float32 missing in {MODELS_DIR}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return pair


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG (checks the signature and the IHDR chunk)."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def bench(ravdess_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    int8, float32 = shipped_cnn_pair()
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        ser_bench() + ["--data", str(ravdess_dir), "--models", str(int8), str(float32),
                       *TINY, "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=300)
    return {"proc": proc, "out": out, "int8": int8.stem, "float32": float32.stem}


def test_run_writes_json_markdown_and_pngs(bench: dict) -> None:
    proc, out = bench["proc"], bench["out"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    # --json: stdout is exactly the report, nothing else
    assert json.loads(proc.stdout) == json.loads((out / "benchmark.json").read_text())
    md = (out / "benchmark.md").read_text()
    for section in ("## Accuracy", "## Latency", "## Streaming", "## Size, start-up and memory",
                    "## Front end against its peers", "## README table"):
        assert section in md
    report = json.loads((out / "benchmark.json").read_text())
    pngs = [report["plots"]["latency"], *report["plots"]["confusion"].values()]
    assert set(report["plots"]["confusion"]) == {bench["int8"], bench["float32"]}
    for name in pngs:
        assert f"]({name})" in md
        width, height = png_size(out / name)
        assert width >= 300 and height >= 300


def test_accuracy_is_consistent_and_labels_training_speakers(bench: dict) -> None:
    report = json.loads((bench["out"] / "benchmark.json").read_text())
    assert report["format"] == "edge-ser-benchmark"
    m = report["machine"]
    assert m["cores"] >= 1 and m["python"] and m["numpy"] and m["runtime"]
    data_speakers = set(report["data"]["speakers"])
    models = {x["name"]: x for x in report["models"]}
    for name in (bench["int8"], bench["float32"]):
        x = models[name]
        acc = x["accuracy"]
        cm = np.array(acc["confusion"])
        assert cm.shape == (len(x["labels"]),) * 2
        assert cm.sum() == acc["n"] == report["data"]["clips"] == 12
        assert acc["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
        assert 0.0 <= acc["macro_f1"] <= 1.0
        assert set(acc["recall"]) == set(x["labels"])
        if data_speakers <= set(x["trained_on_speakers"] or ()):
            # the shared actors trained the shipped models: never sold as generalisation
            assert acc["headline"] == TRAINING and acc["held_out"] is None
    [comp] = [c for c in report["comparisons"]
              if (c["int8"], c["float"]) == (bench["int8"], bench["float32"])]
    assert comp["clips"] == 12 and 0.0 <= comp["agreement"] <= 1.0


def test_latency_streaming_and_memory_figures(bench: dict) -> None:
    report = json.loads((bench["out"] / "benchmark.json").read_text())
    rows = report["latency"]["rows"]
    whats = {(r["what"], r["model"], r["threads"]) for r in rows}
    assert ("front end, per window", None, None) in whats
    assert ("front end, per hop", None, None) in whats
    for name in (bench["int8"], bench["float32"]):
        assert ("invoke", name, 1) in whats and ("end to end, per hop", name, 1) in whats
    for r in rows:
        assert r["n"] >= 3 and 0 < r["median_ms"] <= r["p95_ms"] <= r["p99_ms"]
        assert len(report["latency"]["samples"][r["key"]]) == r["n"]
    baseline = report["baseline_process"]["peak_rss_bytes"]["median"]
    for x in report["models"]:
        if x["runtime"] != "tflite":
            continue
        s = x["streaming"]
        assert s["results"] >= 1 and s["rtf_process"]["median"] > 0
        assert s["peak_rss_bytes"]["median"] > baseline > 10 * 2**20
        assert x["first_prediction"]["seconds"]["median"] > 0
        assert x["load_only"]["peak_rss_bytes"]["median"] >= baseline
        assert x["size_bytes"] == Path(x["path"]).stat().st_size
    ratios = report["frontend_peers"]["ratios"]
    assert ratios["librosa / edge"] > 0


def test_readme_table_is_generated_from_the_json(bench: dict) -> None:
    out = bench["out"]
    proc = subprocess.run(ser_bench() + ["--readme", str(out / "benchmark.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    md = (out / "benchmark.md").read_text()
    assert proc.stdout.strip() and proc.stdout.strip() in md
    assert f"| {bench['int8']} |" in proc.stdout
    assert "not from a Raspberry Pi" in proc.stdout


# Without TensorFlow, librosa, matplotlib, python_speech_features and tqdm (a Raspberry Pi
# with only the edge runtime): those imports fail in this process as if not installed.
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
    int8, _ = shipped_cnn_pair()
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
         "5", "--process-repeats", "1", "--out", str(out)],
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
    assert len(report["errors"]) == 2
    notes = " ".join(report["notes"])
    assert "TensorFlow is not installed" in notes and "matplotlib is not installed" in notes
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
    pytest.importorskip("tensorflow")
    from benchmarks.contenders import KerasRunner, from_bundle, keras_reference

    int8 = from_bundle(shipped_cnn_pair()[0])
    ref = keras_reference(int8, tmp_path / "ref")
    assert ref.latency_only and ref.runtime == "keras" and ref.kind == int8.kind
    assert ref.parameters == int8.parameters  # same layers as the shipped model
    probs = KerasRunner(ref).predict_one(np.zeros(int8.spec.input_shape, np.float32))
    assert probs.shape == (1, len(int8.labels)) and probs.sum() == pytest.approx(1, abs=1e-4)


def test_scores_against_a_hand_count() -> None:
    labels = ("a", "b", "c")
    truth = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 0])
    s = score(truth, pred, labels)
    assert s.accuracy == pytest.approx(3 / 6)
    assert s.recall == {"a": 0.5, "b": pytest.approx(2 / 3), "c": 0.0}
    # F1: a: p=1/3 r=1/2 -> 0.4; b: p=2/3 r=2/3; c: 0
    assert s.macro_f1 == pytest.approx((0.4 + 2 / 3 + 0.0) / 3)
    assert s.confusion.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]
    p = np.eye(3)[[0, 1, 2, 2]]
    q = np.eye(3)[[0, 1, 1, 2]]
    assert agreement(p, q) == 0.75


def _contender(name: str, quantization: str, trained_on: list[str]) -> Contender:
    spec = FeatureSpec()
    shape = (spec.frontend.n_mfcc, spec.channels)
    return Contender(name=name, path=Path(f"{name}.tflite"), runtime=TFLITE, kind="cnn",
                     quantization=quantization, labels=("angry", "sad"), spec=spec,
                     normalizer=Normalizer(np.zeros(shape), np.ones(shape)),
                     training={"train_speakers": trained_on, "val_speakers": []})


def test_training_speakers_are_scored_apart_from_held_out_ones() -> None:
    q = _contender("m-int8", "int8", ["ravdess-01"])
    f = _contender("m-float32", "float32", ["ravdess-01"])
    assert float_counterparts([q, f]) == [(q, f)]
    utts = [Utterance(Path(f"{i}.wav"), lab, spk, "ravdess") for i, (lab, spk) in enumerate(
        [("angry", "ravdess-01"), ("sad", "ravdess-01"), ("angry", "ravdess-02"),
         ("sad", "ravdess-02"), ("sad", "ravdess-02"), ("calm", "ravdess-02")])]
    evalset = EvalSet(FeatureSpec(), utts, np.zeros((6, 1)), [])
    # int8: the held-out speaker's second "sad" is wrong; the float model gets all right
    pq = np.eye(2, dtype=np.float32)[[0, 1, 0, 0, 1, 0]]
    pf = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1, 0]]
    sq, sf = score_contender(q, pq, evalset), score_contender(f, pf, evalset)
    assert sq["headline"] == HELD_OUT and sq["speakers_scored"] == ["ravdess-01", "ravdess-02"]
    assert sq["n"] == 3 and sq["accuracy"] == pytest.approx(2 / 3)  # ravdess-02, no "calm"
    assert sq["training_speakers"]["n"] == 2
    assert sq["training_speakers"]["speakers_label"] == TRAINING
    assert sq["labels_not_in_model"] == ["calm"]
    c = compare(q, f, {q.name: pq, f.name: pf}, {q.name: sq, f.name: sf}, evalset)
    assert c["clips"] == 6 and c["agreement"] == pytest.approx(5 / 6)
    assert c["agreement_held_out"] == pytest.approx(3 / 4)
    assert c["accuracy_gap"] == pytest.approx(1 - 2 / 3)


def test_fold_figures_stand_for_the_model_they_were_cut_from() -> None:
    from dataclasses import replace

    from benchmarks.cli import _held_out_by

    bundle = _contender("cnn-int8", "int8", ["ravdess-01"])
    run = replace(_contender("cnn-keras", "float32", ["ravdess-01"]), runtime="keras",
                  path=Path("runs/cnn"))
    run = replace(run, training={**run.training, "epochs": 30})
    retrained = replace(run, name="cnn-keras-2", path=Path("runs/other"),
                        training={**run.training, "epochs": 99})
    folds = replace(bundle, name="cnn-int8 folds", path=Path("runs/cnn"), members=(bundle,))
    keras_folds = replace(run, name="cnn-keras folds", members=(run,))
    links = _held_out_by([bundle, run, retrained, folds, keras_folds])
    assert links == {"cnn-int8": "cnn-int8 folds", "cnn-keras": "cnn-keras folds"}
