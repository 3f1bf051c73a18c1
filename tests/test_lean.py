"""Lean installs: the edge package runs with only what a device installs, and imports nothing
else.

Two venvs, built once into a cache outside the repository by ``tools/lean_venv.sh`` (keyed by
a hash of pyproject.toml; about 30 s each the first time, then instant):

- ``litert``: ``pip install -e '.[mic]'``, i.e. numpy 2, click, ai-edge-litert, sounddevice;
- ``tflite-runtime``: tflite-runtime 2.14 with numpy<2 (the only numpy it supports), click,
  sounddevice, and the project with ``--no-deps``.

Both also hold the test tools (pytest, hypothesis, soundfile for the RAVDESS FLAC files). A
third, ``wheel``, is ``pip install WHEEL`` of the wheel ``tools/dist.sh`` builds, nothing else
(no test tools, not editable): the commands' import checks and the host commands' install hint
run there too (tests/test_package.py checks the wheel itself). In each: the interpreter
backend is the one installed; the edge tests pass (not in ``wheel``); and ``info``,
``predict``, ``listen --file`` and ``devices`` import none of TensorFlow, Keras, librosa,
SciPy, scikit-learn, soundfile (the inputs are WAV), sounddevice (except ``devices``), or
edge-ser's host packages. Imports are checked twice: in one process that runs the commands
through click (``sys.modules`` afterwards, and ``-X importtime``, which also lists imports
that were tried and failed), and through the ``edge-ser`` console script
(``PYTHONPROFILEIMPORTTIME``). The same import checks run in the development venv too, where
all those packages are installed and a stray import would succeed.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import LEAN_ENV
from conftest_dist import build_lean_venv
from conftest_edge import CLIPS, ravdess_wavs, shipped, write_wav

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"

FORBIDDEN = ("tensorflow", "keras", "tf_keras", "librosa", "scipy", "sklearn", "soundfile",
             "numba", "matplotlib", "pandas", "python_speech_features", "sounddevice",
             "paho", "train", "export", "benchmarks")
"""Top-level modules an edge command on WAV input must not import (not even try to); paho
(MQTT) only with ``listen --mqtt``."""
LEAN_KINDS = ("litert", "tflite-runtime")
"""The lean venvs that run the edge tests."""
INSTALL_KINDS = (*LEAN_KINDS, "wheel")
"""Every edge-only install: the lean venvs and the built wheel's."""
BACKEND = {"dev": "ai-edge-litert", "litert": "ai-edge-litert",
           "tflite-runtime": "tflite-runtime", "wheel": "ai-edge-litert"}
LEAN_IMPORTS = {"numpy", "pytest", "hypothesis", "click", "soundfile", "edge", "_pytest"}
"""What a test module may import to count as an edge test (besides the standard library and
helpers in tests/ that themselves qualify)."""
NOT_IN_LEAN_RUN = {
    "test_lean.py": "this file",
    "test_mic.py": "the same CLI on a PulseAudio device; runs in the dev venv",
    "test_demo.py": "tools/demo.py is a host tool (train.corpora)",
    "test_package.py": "builds the wheel with the development venv's `build`",
    "test_docs.py": "runs the documentation's examples and generators (host side too)",
}


# --------------------------------------------------------------------------------------
# Which tests are edge tests: those whose imports a lean venv has
# --------------------------------------------------------------------------------------


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth (lazy imports too)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def runs_lean(path: Path, seen: frozenset[str] = frozenset()) -> bool:
    """Does ``path`` import only the standard library, :data:`LEAN_IMPORTS` and local helpers
    that themselves qualify?"""
    for root in imported_roots(path) - LEAN_IMPORTS - set(sys.stdlib_module_names):
        helper = TESTS / f"{root}.py"
        if root in seen or not helper.is_file() or not runs_lean(helper, seen | {root}):
            return False
    return True


def edge_test_files() -> list[Path]:
    return [p for p in sorted(TESTS.glob("test_*.py"))
            if p.name not in NOT_IN_LEAN_RUN and runs_lean(p)]


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["dev", *INSTALL_KINDS])
def venv(request) -> tuple[str, Path]:
    """(kind, python): the development venv running these tests, or a lean one."""
    if request.param == "dev":
        return "dev", Path(sys.executable)
    return request.param, build_lean_venv(request.param)


@pytest.fixture(scope="module")
def inputs(ravdess_dir, tmp_path_factory) -> dict[str, str]:
    """The default test model, a RAVDESS clip as WAV, and two clips with a pause as WAV."""
    tmp = tmp_path_factory.mktemp("lean")
    clips = ravdess_wavs(ravdess_dir, tmp, CLIPS[:2])
    from edge.audio import load

    rate = 16000
    a, b = (load(p, rate) for p in clips)
    pause = (np.random.default_rng(0).standard_normal(2 * rate) * 10 ** (-70 / 20))
    track = write_wav(tmp / "track.wav", np.concatenate([a, pause, b]), rate)
    return {"model": str(shipped()), "clip": str(clips[0]), "clip2": str(clips[1]),
            "track": str(track)}


def commands(inputs: dict[str, str]) -> list[list[str]]:
    return [
        ["info", inputs["model"]],
        ["predict", inputs["clip"], "--json", "--model", inputs["model"]],
        ["listen", "--file", inputs["track"], "--fast", "--json", "--model", inputs["model"]],
    ]


def importtime_modules(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines (imports that failed are listed too)."""
    names = set()
    for line in stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and len(fields) == 3 and fields[0].strip().isdigit():
            names.add(fields[2].strip())
    return names


def forbidden_in(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(m for m in modules
                  if m.split(".")[0] in FORBIDDEN and m.split(".")[0] not in allowed)


def check_outputs(name: str, stdout: str) -> None:
    """What each command printed is what it should have."""
    if name == "info":
        assert "labels" in stdout and "kind" in stdout, stdout
    elif name == "predict":
        (line,) = [json.loads(x) for x in stdout.splitlines() if x.strip()]
        assert line["speech"] is True and line["label"] in line["probs"]
    elif name == "listen":
        objects = [json.loads(x) for x in stdout.splitlines() if x.strip()]
        hops = [o for o in objects if "summary" not in o]
        assert len(hops) >= 5 and "summary" in objects[-1]
        assert any(h["speech"] for h in hops) and not all(h["speech"] for h in hops)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def test_the_installed_interpreter_backend_is_used(venv):
    kind, python = venv
    probe = ("import json, numpy, importlib.util as u; from edge.interpreter import"
             " find_backend; print(json.dumps([find_backend()[0], numpy.__version__,"
             " [m for m in ('tensorflow', 'librosa', 'scipy', 'sklearn')"
             " if u.find_spec(m)]]))")
    run = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    backend, numpy_version, heavy = json.loads(run.stdout)
    assert backend == BACKEND[kind]
    if kind == "tflite-runtime":
        assert int(numpy_version.split(".")[0]) < 2
    if kind != "dev":
        assert heavy == [], f"the lean venv has {heavy} installed"


@pytest.fixture(scope="module")
def lean_edge_runs(tmp_path_factory) -> dict[str, tuple[subprocess.Popen, Path]]:
    """The edge tests started in both lean venvs at once (much of their time is waiting on
    real-time replays, which overlaps): kind -> (process, its output file)."""
    files = edge_test_files()
    assert files, "no edge test files found"
    runs = {}
    for kind in LEAN_KINDS:
        python = build_lean_venv(kind)
        out = tmp_path_factory.mktemp(f"lean-{kind}")
        with open(out / "pytest.log", "w") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                 str(out / "tmp"), *map(str, files)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, LEAN_ENV: kind})
        runs[kind] = (proc, out / "pytest.log")
    yield runs
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("kind", LEAN_KINDS)
def test_edge_tests_pass_in_the_lean_venv(lean_edge_runs, kind):
    proc, log = lean_edge_runs[kind]
    try:
        code = proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    output = log.read_text()
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    print(f"{kind}: {' '.join(p.name for p in edge_test_files())}: {summary}")
    assert code == 0, f"{kind}: edge tests failed:\n{output[-5000:]}"


PROBE = """
import json, sys
from click.testing import CliRunner
from edge.cli import cli
runs = []
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(cli, args)
    error = result.exception if not isinstance(result.exception, SystemExit) else None
    runs.append({"name": args[0], "exit_code": result.exit_code, "stdout": result.stdout,
                 "error": repr(error) if error else None})
print(json.dumps({"runs": runs, "modules": sorted(sys.modules)}))
"""


def test_commands_in_one_process_import_nothing_heavy(venv, inputs):
    kind, python = venv
    run = subprocess.run([str(python), "-X", "importtime", "-c", PROBE,
                          json.dumps(commands(inputs))], capture_output=True, text=True,
                         cwd=Path(inputs["clip"]).parent, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    for r in report["runs"]:
        assert r["exit_code"] == 0 and r["error"] is None, r
        check_outputs(r["name"], r["stdout"])
    loaded = set(report["modules"])
    assert "edge.interpreter" in loaded and "edge.recognizer" in loaded
    assert forbidden_in(loaded) == [], f"{kind}: loaded after the commands"
    assert forbidden_in(importtime_modules(run.stderr)) == [], f"{kind}: imported or tried"


@pytest.mark.parametrize("name", ["info", "predict", "listen", "devices"])
def test_console_script_imports_nothing_heavy(venv, inputs, name):
    kind, python = venv
    args = {c[0]: c for c in commands(inputs)}.get(name, ["devices", "--json"])
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    run = subprocess.run([str(python.with_name("edge-ser")), *args], capture_output=True,
                         text=True, env=env, timeout=300)
    if name == "devices" and run.returncode == 2:  # no input device here: one clear line
        expected = ("needs sounddevice: pip install sounddevice" if kind == "wheel"  # no [mic]
                    else "edge-ser: no audio input device")
        said = [x for x in run.stderr.splitlines() if not x.startswith("import time:")]
        assert len(said) == 1 and expected in said[0], run.stderr[-3000:]
    else:
        assert run.returncode == 0, run.stderr[-3000:]
    modules = importtime_modules(run.stderr)
    assert "edge.cli" in modules
    allowed = ("sounddevice",) if name == "devices" else ()
    assert forbidden_in(modules, allowed) == [], f"{kind}: edge-ser {name} imported or tried"
    if name == "devices":
        assert "sounddevice" in modules
    else:
        check_outputs(name, run.stdout)


@pytest.mark.parametrize("kind", LEAN_KINDS)
def test_listen_mqtt_without_paho_names_the_extra(inputs, kind):
    """The edge install has no MQTT client: ``listen --mqtt`` says which extra to install,
    in one line, exit 2, before loading anything."""
    python = build_lean_venv(kind)
    probe = subprocess.run([str(python), "-c", "import importlib.util as u;"
                            " print(u.find_spec('paho') is None)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "True", f"{kind}: paho-mqtt is installed in the lean venv"
    run = subprocess.run([str(python.with_name("edge-ser")), "listen", "--file",
                          inputs["track"], "--fast", "--model", inputs["model"],
                          "--mqtt", "mqtt://localhost"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr == ("edge-ser: --mqtt needs paho-mqtt: pip install './edge-ser[mqtt]'\n")
    assert run.stdout == ""


def predictions(python: Path, inputs: dict[str, str]) -> list[dict]:
    """`edge-ser predict --json` on two clips and the two-clip track (two utterances)."""
    run = subprocess.run([str(python.with_name("edge-ser")), "predict", "--json", "--model",
                          inputs["model"], inputs["clip"], inputs["clip2"], inputs["track"]],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


SCORE_TOLERANCE = {"litert": 0, "tflite-runtime": 8}
"""Raw int8 output steps a lean runtime may differ by from the development venv's LiteRT.
The litert venv runs the same LiteRT: identical. tflite-runtime 2.14's int8 kernels differ
from LiteRT 2.3's on identical inputs (the numpy 1 and numpy 2 front ends give identical
features): on 120 RAVDESS clips through a CNN bundle, at most 6 steps (1.2 on average),
with the same label on all 120."""


@pytest.mark.parametrize("kind", LEAN_KINDS)
def test_lean_runtimes_give_the_same_answers(inputs, kind):
    """LiteRT (numpy 2) and tflite-runtime 2.14 (numpy 1) agree with the development venv:
    raw int8 scores within :data:`SCORE_TOLERANCE`, and the same label wherever the
    reference's top two scores are further apart than twice that."""
    tolerance = SCORE_TOLERANCE[kind]
    reference = predictions(Path(sys.executable), inputs)
    lean = predictions(build_lean_venv(kind), inputs)
    assert len(lean) == len(reference) == 3
    for a, b in zip(reference, lean):
        # the same utterances (the front end and the endpointer are numpy: identical)
        assert [(u["start"], u["end"]) for u in a["utterances"]] == \
            [(u["start"], u["end"]) for u in b["utterances"]], a["file"]
        assert a["utterances"], a["file"]
        for ua, ub in zip(a["utterances"], b["utterances"]):
            if ua.get("scores") is None:  # a float model: compare the probabilities
                assert max(abs(ua["probs"][k] - ub["probs"][k]) for k in ua["probs"]) < 0.05
                margin = 0.1
            else:  # int8: every window's raw scores, step by step
                assert len(ua["scores"]) == len(ub["scores"])
                for wa, wb in zip(ua["scores"], ub["scores"]):
                    assert max(abs(x - y) for x, y in zip(wa, wb)) <= tolerance, (ua, ub)
                margin = 4 * tolerance / 256  # a step is 1/256, a bit more once renormalised
            top, second = sorted(ua["probs"].values(), reverse=True)[:2]
            if top - second > margin:
                assert ua["label"] == ub["label"], (ua, ub)


# --------------------------------------------------------------------------------------
# Host commands on an edge-only install: one line naming the extra, exit 2
# --------------------------------------------------------------------------------------

TRAIN_EXTRA = "pip install './edge-ser[train]'"
HOST_COMMANDS = {
    "ser-train": ["--data", "{data}", "--model", "cnn", "--out", "{tmp}/run"],
    "ser-export": ["{run}", "--int8", "--out", "{tmp}/model-int8.tflite"],
    "ser-bench": ["--data", "{data}", "--models", "{run}", "--out", "{tmp}/reports",
                  "--no-peers"],
}
"""Each is given real-looking arguments; without the train extra none can do its work."""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A RUN_DIR as ser-train lays it out (config.json from the shipped default bundle's
    metadata; model.keras is never opened: without TensorFlow nothing can load it)."""
    from edge.bundle import load_bundle

    d = tmp_path_factory.mktemp("run")
    meta = load_bundle(shipped()).metadata.to_dict()
    config = {k: meta[k] for k in ("labels", "features", "normalization", "hop_seconds",
                                   "model", "training", "accuracy")}
    (d / "config.json").write_text(json.dumps(config))
    (d / "model.keras").write_bytes(b"")
    return d


@pytest.mark.parametrize("kind", INSTALL_KINDS)
@pytest.mark.parametrize("command", sorted(HOST_COMMANDS))
def test_host_commands_name_the_extra_on_an_edge_install(kind, command, run_dir, tmp_path):
    python = build_lean_venv(kind)
    args = [a.format(data=tmp_path, tmp=tmp_path, run=run_dir) for a in HOST_COMMANDS[command]]
    done = subprocess.run([str(python.with_name(command)), *args], capture_output=True,
                          text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert lines[-1].startswith(f"{command}: ") and lines[-1].endswith(TRAIN_EXTRA), lines
    if command != "ser-bench":  # ser-bench prints its stage line first
        assert len(lines) == 1, lines


def test_rehash_runs_on_a_device_with_litert(tmp_path):
    """ser-export --rehash needs no TensorFlow: on the litert edge install it adds the
    checksum to a format-1 bundle (here: the shipped default's metadata as format 1)."""
    import hashlib

    from edge.bundle import METADATA_NAME, metadata_document
    from export.embed import embed_metadata

    data = shipped().read_bytes()
    _, _, document = metadata_document(data, "default")
    document = {k: v for k, v in document.items() if k != "integrity"}
    document["format_version"] = 1
    old = tmp_path / "old.tflite"
    old.write_bytes(embed_metadata(data, METADATA_NAME,
                                   json.dumps(document, sort_keys=True).encode()))
    digest = hashlib.sha256(old.read_bytes()).hexdigest()
    python = build_lean_venv("litert")
    done = subprocess.run([str(python.with_name("ser-export")), "--rehash", str(old), "--out",
                           str(tmp_path / "new.tflite"), "--expect-sha256", digest],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    info = subprocess.run([str(python.with_name("edge-ser")), "info", "--json",
                           str(tmp_path / "new.tflite")], capture_output=True, text=True,
                          timeout=120)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["format_version"] == 2
