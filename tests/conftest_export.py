"""Helpers for the exporter tests (imported by tests/test_export*.py).

``make_tiny_run`` trains a real run directory with the real ``ser-train`` CLI on a few RAVDESS
actors (symlinked into a temporary corpus: the audio never enters the repository): 2 folds
by speaker plus the final model on all of them, a few epochs, no augmentation. Fast (well
under a minute on 2 cores) and in exactly the layout the exporter reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

ACTORS = ("01", "02", "03", "04")
"""Actors of the tiny run: 2 folds of 2 actors each, then a final model on all 4."""
SER_EXPORT = Path(sys.executable).with_name("ser-export")


def subset_corpus(ravdess_dir: Path, out: Path, actors=ACTORS) -> Path:
    """A RAVDESS tree of symlinks to the real files of ``actors`` (no audio is copied)."""
    for actor in actors:
        src = ravdess_dir / f"Actor_{actor}"
        dst = out / f"Actor_{actor}"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            link = dst / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
    return out


def make_tiny_run(ravdess_dir: Path, root: Path, *, epochs: int = 6) -> tuple[Path, Path]:
    """Train ``root/run`` with ser-train (2 folds + final) on the subset; returns
    (run directory, feature cache directory)."""
    from train.cli import main as ser_train

    data = subset_corpus(ravdess_dir, root / "data")
    cache = root / "cache"
    run = root / "run"
    result = CliRunner().invoke(ser_train, [
        "--data", str(data), "--model", "cnn", "--out", str(run), "--folds", "2",
        "--val-speakers", "0", "--epochs", str(epochs), "--no-augment", "--seed", "0",
        "--cache-dir", str(cache), "--conditions", "",
    ])
    if result.exit_code != 0:
        raise RuntimeError(f"ser-train failed ({result.exit_code}): {result.output[-2000:]}"
                           f"{result.exception!r}")
    return run, cache


def run_export(args: list[str]):
    """``ser-export`` in-process through click; returns the click Result."""
    from export.cli import main as ser_export

    return CliRunner().invoke(ser_export, args)


def edge_subprocess(code: str, *, env: dict | None = None) -> dict:
    """Run python ``code`` in a fresh interpreter; it prints one JSON object on its last
    line, which is returned."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"subprocess failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def top1(probs: np.ndarray) -> np.ndarray:
    return np.asarray(probs).argmax(axis=1)
