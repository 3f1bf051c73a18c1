"""An accuracy floor for the fold bundle of the shipped recipe, on voices it never heard.

``tests/models/fold1-<default kind>-int8.tflite`` is fold 1 of the default family's
cross-validation (``tools/make_models.sh``): trained without RAVDESS actors 01-04. Their 240
clips go through ``edge-ser predict --json`` as a user runs it. A retrained model that answers
one emotion for everything, or has lost its way, fails here; the floor sits well under the
fold's measured accuracy (its metadata) and well over chance (1/8)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
from conftest_edge import EDGE_SER, fold_bundle

from edge.bundle import load_bundle

pytestmark = pytest.mark.data

ACTORS = ("Actor_01", "Actor_02", "Actor_03", "Actor_04")
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
FLOOR = 0.45
"""Clean accuracy the fold bundle must reach on its 240 held-out clips (binomial SE ~0.03)."""
MAX_SHARE = 0.30
"""No label may take more than this share of the answers (8 balanced-ish classes: ~0.13)."""


def test_the_fold_bundle_is_right_on_voices_it_never_heard(ravdess_dir):
    bundle = fold_bundle()
    held_out = load_bundle(bundle).metadata.training.get("test_speakers", [])
    assert sorted(held_out) == [f"ravdess-{a[-2:]}" for a in ACTORS], held_out
    clips = sorted(p for a in ACTORS for p in (ravdess_dir / a).glob("03-01-*"))
    assert len(clips) == 240
    r = subprocess.run([str(EDGE_SER), "predict", *map(str, clips), "--model", str(bundle),
                        "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert len(rows) == 240
    truth = [EMOTIONS[int(p.name.split("-")[2]) - 1] for p in clips]
    said = [row["label"] for row in rows]
    accuracy = sum(a == b for a, b in zip(said, truth)) / len(truth)
    share = Counter(said).most_common(1)[0][1] / len(said)
    assert accuracy >= FLOOR, f"accuracy {accuracy:.3f} under the floor {FLOOR}"
    assert share <= MAX_SHARE, Counter(said).most_common(3)
    assert len(set(said)) == len(EMOTIONS), Counter(said)
