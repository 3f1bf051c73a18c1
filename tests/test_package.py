"""The distribution a user installs: what the wheel holds, that it installs and runs outside
the checkout, licences, and the version a user sees.

The wheel and sdist are built once per session from a clean copy of the working tree
(``tools/dist.sh``, as from a fresh clone; ``$EDGE_SER_DIST`` checks an already built release
instead), and the wheel is installed alone into a venv outside the checkout
(``tools/lean_venv.sh wheel``: numpy, click, ai-edge-litert; no TensorFlow, no librosa).
tests/test_lean.py runs its import checks and the host commands' install hint in that venv too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest_dist import REPO, build_lean_venv, built_dist
from conftest_edge import CLIPS, ravdess_wavs

import edge
from edge.cli import cli

PACKAGES = {"edge", "train", "export", "benchmarks"}
"""The project's import names: the only top-level names the wheel may hold."""
MODELS = REPO / "edge" / "models"


def machine_paths() -> list[str]:
    """Absolute paths of this machine that no distributed file may contain: the checkout, the
    directory beside it (runs/, shared/ data), the home, this Python, the build's copy."""
    home = Path.home().resolve()
    paths = {str(REPO), str(REPO.parent) + "/", str(home) + "/", sys.prefix,
             str(Path(tempfile.gettempdir()).resolve() / "edge-ser-dist.")}
    return sorted(p for p in paths if p not in ("/", ""))


def paths_in(data: bytes, forbidden: list[str]) -> list[str]:
    return [p for p in forbidden if p.encode() in data]


def members(path: Path) -> dict[str, bytes]:
    """name -> bytes of every file in a wheel (zip) or sdist (tar.gz)."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            return {n: z.read(n) for n in z.namelist() if not n.endswith("/")}
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def wheel() -> dict[str, bytes]:
    return members(built_dist()[0])


@pytest.fixture(scope="module")
def sdist() -> dict[str, bytes]:
    return members(built_dist()[1])


def test_wheel_holds_the_four_packages_and_no_tests_or_tools(wheel):
    dist_info = f"edge_ser-{edge.__version__}.dist-info"
    tops = {name.split("/")[0] for name in wheel}
    assert tops == PACKAGES | {dist_info}, tops
    for package in PACKAGES:
        assert f"{package}/__init__.py" in wheel
    assert not [n for n in wheel if re.search(r"(^|/)(tests?|tools|conftest)[/_.]", n)]


def test_wheel_carries_the_shipped_models_and_both_licences(wheel):
    dist_info = f"edge_ser-{edge.__version__}.dist-info"
    shipped = {p.name for p in MODELS.glob("*.tflite")} | {"DEFAULT", "NOTICE"}
    assert {n.split("/")[-1] for n in wheel if n.startswith("edge/models/")} == shipped
    for name in shipped:
        assert wheel[f"edge/models/{name}"] == (MODELS / name).read_bytes(), name
    licence = (REPO / "LICENSE").read_bytes()
    assert wheel[f"{dist_info}/licenses/LICENSE"] == licence
    assert b"Apache License" in licence and b"Version 2.0" in licence
    notice = wheel[f"{dist_info}/licenses/edge/models/NOTICE"]
    assert notice == (MODELS / "NOTICE").read_bytes()
    for corpus in (b"RAVDESS", b"SAVEE", b"nEMO", b"CC BY-NC-SA 4.0", b"Non-commercial"):
        assert corpus in notice, corpus
    metadata = wheel[f"{dist_info}/METADATA"].decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert f"Version: {edge.__version__}" in metadata


@pytest.mark.parametrize("which", ["wheel", "sdist"])
def test_no_path_of_this_machine_in_any_file(which, wheel, sdist):
    forbidden = machine_paths()
    found = {name: hits for name, data in (wheel if which == "wheel" else sdist).items()
             if (hits := paths_in(data, forbidden))}
    assert found == {}, f"{which}: files naming this machine's paths: {found}"


def test_the_path_check_sees_an_export_report_of_this_machine():
    """What the committed edge/models/*.export.json of 0.2.0 held (the absolute path of the
    run directory beside the checkout);
    the export now writes a relative path (tests/test_export.py), and any report carrying an
    absolute one fails the check above if it ever goes into the distribution."""
    report = json.dumps({"run": str(REPO.parent / "runs" / "final-cnn")}).encode()
    assert paths_in(report, machine_paths())
    assert not paths_in(json.dumps({"run": "runs/final-cnn"}).encode(), machine_paths())


def test_sdist_builds_the_wheel_and_has_the_licences(sdist):
    root = f"edge_ser-{edge.__version__}"
    for name in ("pyproject.toml", "README.md", "LICENSE", "edge/models/NOTICE",
                 "edge/models/DEFAULT"):
        assert f"{root}/{name}" in sdist, name
    assert not [n for n in sdist if n.startswith(f"{root}/tools/")]


@pytest.fixture(scope="module")
def installed(ravdess_dir, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(the wheel venv's bin, a RAVDESS clip as WAV, a working directory outside the
    checkout)."""
    python = build_lean_venv("wheel")
    work = tmp_path_factory.mktemp("user")
    (clip,) = ravdess_wavs(ravdess_dir, work, CLIPS[:1])
    assert REPO not in work.resolve().parents and REPO not in python.parents
    return python.parent, clip, work


def run_in(installed, *args: str) -> subprocess.CompletedProcess:
    bin_dir, _, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGE_SER_MODEL")}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                          cwd=work, env=env, timeout=300)


def test_the_wheel_runs_from_its_own_install(installed):
    bin_dir, _, _ = installed
    probe = run_in(installed, "python", "-c", "import edge, importlib.util as u; print(edge."
                   "__file__); print([m for m in ('tests', 'tools', 'tensorflow', 'librosa')"
                   " if u.find_spec(m)])")
    assert probe.returncode == 0, probe.stderr
    location, absent = probe.stdout.splitlines()
    assert Path(location).resolve().is_relative_to(bin_dir.parent.resolve())
    assert absent == "[]"
    version = run_in(installed, "edge-ser", "--version")
    assert version.returncode == 0 and version.stdout == f"edge-ser, version {edge.__version__}\n"


def test_info_shows_the_installed_model_and_its_licence(installed):
    bin_dir, _, _ = installed
    done = run_in(installed, "edge-ser", "info")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(None, 1) for line in done.stdout.splitlines() if line.strip())
    model = Path(lines["model"].split(" (")[0])
    assert model.is_file() and model.resolve().is_relative_to(bin_dir.parent.resolve())
    assert "Apache-2.0" in lines["licence"] and "RAVDESS (CC BY-NC-SA 4.0)" in lines["licence"]
    assert "non-commercial" in lines["licence"]
    notice = Path(lines["notice"])
    assert notice.read_bytes() == (MODELS / "NOTICE").read_bytes()
    assert notice.resolve().is_relative_to(bin_dir.parent.resolve())


def test_predict_and_listen_from_the_wheel(installed):
    _, clip, _ = installed
    done = run_in(installed, "edge-ser", "predict", clip.name, "--json")
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(x) for x in done.stdout.splitlines()]
    assert line["speech"] is True and line["label"] in line["probs"]
    done = run_in(installed, "edge-ser", "listen", "--file", clip.name, "--fast", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(x) for x in done.stdout.splitlines()]
    finals = [e for e in events if e.get("event") == "final"]
    assert len(finals) == 1 and finals[0]["label"] == line["label"]
    assert "summary" in events[-1]


def test_weights_licence_names_every_training_corpus():
    from edge.licences import weights_licence

    line = weights_licence({"corpora": ["ravdess"], "extra_corpora": ["ravdess", "savee",
                                                                      "nemo"]})
    assert line == ("weights trained on RAVDESS (CC BY-NC-SA 4.0), SAVEE (research use only),"
                    " nEMO (CC BY-NC-SA 4.0): non-commercial use only, share-alike")
    assert weights_licence({"corpora": ["csv"]}) == "weights trained on csv (its own licence)"
    assert "not recorded" in weights_licence({})


def test_info_json_carries_the_licences():
    result = CliRunner().invoke(cli, ["info", "--json"])
    assert result.exit_code == 0, result.output
    licence = json.loads(result.stdout)["licence"]
    assert licence["code"] == "Apache-2.0" and "RAVDESS" in licence["weights"]
    assert Path(licence["notice"]).read_bytes() == (MODELS / "NOTICE").read_bytes()


def test_version_is_one_number_everywhere():
    """pyproject takes the version from edge.__version__; ``--version`` prints it, and the
    changelog's newest release is it."""
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "edge.__version__"' in pyproject
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"edge-ser, version {edge.__version__}\n"
    changelog = (REPO / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert releases and releases[0] == edge.__version__, releases
    assert re.search(r"^## \[Unreleased\]$", changelog, re.M)
    assert "keepachangelog.com" in changelog
