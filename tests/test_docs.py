"""The documentation is checked: README.md and docs/*.md.

- every ```python block runs (a subprocess of this venv, in a directory holding
  ``clip.wav``, a real RAVDESS recording), and a broken one fails its test;
- every relative link and ``#anchor`` between the pages resolves;
- the generated sections (model tables, the README's picture and quickstart output) equal what
  ``benchmarks.readme`` makes now from ``reports/benchmark.json``, ``edge/models/DEFAULT``
  and the commands themselves (``make docs`` rewrites them);
- the JSON event schema of docs/cli.md is what ``edge-ser listen --json`` emits, and every
  option of the edge commands is in docs/cli.md;
- the README stays short and links every page.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest_edge import ravdess_wavs

from benchmarks import readme
from edge.audio import load, write_wav
from edge.cli import cli

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINKED = [*PAGES, REPO / "CHANGELOG.md"]
EDGE_SER = Path(sys.executable).with_name("edge-ser")
README_MAX_LINES = 200
CLIP = readme.QUICKSTART_CLIPS[0]


def python_blocks(pages: list[Path]) -> list[tuple[str, str]]:
    """(``page:line``, code) of every ```python block."""
    blocks = []
    for page in pages:
        text = page.read_text()
        for m in re.finditer(r"^```python\n(.*?)^```$", text, re.M | re.S):
            line = text.count("\n", 0, m.start()) + 1
            name = page.relative_to(REPO) if page.is_relative_to(REPO) else page.name
            blocks.append((f"{name}:{line}", m.group(1)))
    return blocks


BLOCKS = python_blocks(PAGES)


def run_block(code: str, cwd: Path) -> None:
    """Run one block as a user would (a fresh interpreter, the page's working directory);
    AssertionError with its output when it fails."""
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def work(ravdess_dir, tmp_path_factory) -> Path:
    """A directory with ``clip.wav`` (RAVDESS, angry) and ``two.wav`` (two clips, a pause)."""
    d = tmp_path_factory.mktemp("docs")
    (clip,) = ravdess_wavs(ravdess_dir, d, [CLIP])
    clip.rename(d / "clip.wav")
    a = load(d / "clip.wav", 16000)
    (b,) = [load(p, 16000) for p in ravdess_wavs(ravdess_dir, d, [readme.QUICKSTART_CLIPS[1]])]
    pause = np.random.default_rng(0).standard_normal(2 * 16000) * 10 ** (-60 / 20)
    write_wav(d / "two.wav", np.concatenate([a, pause, b]), 16000)
    return d


def test_the_pages_have_python_examples():
    pages = {where.split(":")[0] for where, _ in BLOCKS}
    assert {"README.md", "docs/python-api.md"} <= pages, pages


@pytest.mark.parametrize("where,code", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_python_block_runs(where, code, work):
    run_block(code, work)


def test_a_broken_block_fails(work, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```python\nfrom edge.recognizer import Recognizer\n"
                    "Recognizer.from_model('no-such-model')\n```\n")
    ((where, code),) = python_blocks([page])
    assert where == "page.md:3"
    with pytest.raises(AssertionError, match="no-such-model"):
        run_block(code, work)


# --------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.M | re.S)
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6} (.+)$", text, re.M):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", LINKED, ids=[p.name for p in LINKED])
def test_links_resolve(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # a web address: not checked here
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert broken == [], f"{page.name}: {broken}"


def test_the_link_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "a.md"
    page.write_text("# A page\n\n[b](b.md) [self](#a-page) [gone](#nothing)\n")
    (tmp_path / "b.md").write_text("# B\n")
    assert links(page) == ["b.md", "#a-page", "#nothing"]
    assert anchors(page) == {"a-page"} and "nothing" not in anchors(page)


# --------------------------------------------------------------------------------------
# Generated sections
# --------------------------------------------------------------------------------------


def test_generated_sections_match_the_reports_and_the_commands(ravdess_dir):
    stale = readme.stale(PAGES, REPO, data=ravdess_dir)
    assert stale == [], f"stale generated sections (run `make docs` and commit): {stale}"


def test_every_generated_section_is_in_a_page():
    names = {m.group(1) for p in PAGES for m in readme._SECTION.finditer(p.read_text())}
    assert names == {"shipped", "picture", "benchmark", "recall", "seed-models",
                     *readme.QUICKSTART}, names


def test_a_changed_figure_is_stale():
    text = (REPO / "README.md").read_text()
    r, default = readme._inputs(REPO, None, None)
    bodies = readme.sections(r, default, "")
    assert readme.regenerate(text, bodies) == text
    table = readme.shipped_table(r, default)
    changed = text.replace(table, table.replace("0.", "0.9", 1))
    assert changed != text and readme.regenerate(changed, bodies) == text


# --------------------------------------------------------------------------------------
# The event schema and the options in docs/cli.md
# --------------------------------------------------------------------------------------

TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool,
         "object": dict, "array": list, "null": type(None)}


def schema(name: str) -> list[list[str]]:
    """The rows of the table between ``<!-- schema: NAME -->`` and ``<!-- end schema -->``."""
    text = (REPO / "docs" / "cli.md").read_text()
    m = re.search(rf"<!-- schema: {name} -->\n(.*?)<!-- end schema -->", text, re.S)
    assert m, f"docs/cli.md has no schema {name}"
    rows = [re.split(r"(?<!\\)\|", line.strip())[1:-1] for line in m.group(1).splitlines()
            if line.startswith("|")]
    return [[c.strip().replace("\\|", "|") for c in row] for row in rows[2:]]


def type_ok(value, spec: str) -> bool:
    kinds = spec.split("|")
    if isinstance(value, bool):
        return "boolean" in kinds
    return any(isinstance(value, TYPES[k]) for k in kinds)


def test_listen_json_is_what_the_schema_says(work):
    done = subprocess.run([str(EDGE_SER), "listen", "--file", "two.wav", "--fast", "--json"],
                          cwd=work, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    events, summary = lines[:-1], lines[-1]
    rows = schema("listen-event")
    kinds = ("final", "interim", "no_speech")
    documented = {row[0].strip("`") for row in rows}
    seen = set()
    for event in events:
        kind = event["event"]
        seen.add(kind)
        assert set(event) == documented, (sorted(set(event) ^ documented), event)
        for row in rows:
            field, spec = row[0].strip("`"), row[1 + kinds.index(kind)]
            assert type_ok(event[field], spec), (kind, field, event[field], spec)
    assert seen == set(kinds)
    rows = schema("listen-summary")
    optional = {"mqtt"}
    documented = {row[0].strip("`") for row in rows}
    assert set(summary) == {"summary"}
    assert documented - optional <= set(summary["summary"]) <= documented, \
        sorted(set(summary["summary"]) ^ documented)
    for field, spec, _ in rows:
        name = field.strip("`")
        if name in summary["summary"]:
            assert type_ok(summary["summary"][name], spec), (name, spec)


@pytest.mark.parametrize("command", ["listen", "predict", "devices", "info"])
def test_every_option_is_documented(command):
    text = (REPO / "docs" / "cli.md").read_text()
    missing = [opt for p in cli.commands[command].params for opt in p.opts
               if opt.startswith("--") and f"`{opt}" not in text and f" {opt}" not in text]
    assert missing == [], f"docs/cli.md lacks {command} {missing}"


def test_exit_statuses_are_the_ones_the_code_uses():
    from edge import errors

    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    text = (REPO / "docs" / "cli.md").read_text()
    section = text[text.index("## Exit status"):text.index("## listen")]
    assert {int(c) for c in re.findall(r"^\| (\d+) \|", section, re.M)} == codes


# --------------------------------------------------------------------------------------
# The README
# --------------------------------------------------------------------------------------


def test_wheel_file_names_are_of_this_version():
    import edge

    names = {m for p in LINKED for m in re.findall(r"edge_ser-([\w.]+)-py3-none-any\.whl",
                                                    p.read_text())}
    assert names == {edge.__version__}, names


def test_readme_is_short_with_a_picture_and_links_every_page():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert re.search(r"!\[[^\]]+\]\(reports/confusion-[\w-]+\.png\)", text)
    assert "make demo" in text and "make test" in text
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in text, page.name
    first_screen = "\n".join(text.splitlines()[:40])  # how to run on a Pi, train, publish
    for page in ("install", "training", "mqtt"):
        assert f"](docs/{page}.md)" in first_screen, page
