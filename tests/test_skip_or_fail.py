"""The suite's skip-or-fail rule: what a test needs and lacks skips it on a laptop and fails
it under CI (data, tools, the host stack), so CI cannot pass by running less."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LEAN_ENV

TESTS = Path(__file__).resolve().parent

PROBE = """
from conftest import require_module

missing = require_module("edge_ser_no_such_module")


def test_never_runs():
    assert missing
"""


def run_probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", LEAN_ENV)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_probe.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**clean, "PYTHONPATH": str(TESTS), **env})


@pytest.mark.parametrize(("env", "outcome"), [({}, "skipped"), ({"CI": "true"}, "error"),
                                             ({"CI": "true", LEAN_ENV: "tflite"}, "skipped")])
def test_a_missing_module_skips_on_a_laptop_and_fails_under_ci(tmp_path, env, outcome):
    run = run_probe(tmp_path, **env)
    assert (run.returncode in (0, 5)) == (outcome == "skipped"), run.stdout  # 5: none ran
    assert re.search(rf"\b1 {outcome}", run.stdout), run.stdout
    assert "edge_ser_no_such_module" in run.stdout or outcome == "skipped"


def test_no_test_uses_importorskip():
    """pytest.importorskip skips even under CI: tests use conftest.require_module."""
    users = [p.name for p in TESTS.glob("*.py")
             if p.name != Path(__file__).name and "importorskip(" in p.read_text()]
    assert users == []
