"""Instructions per hop, by stage (valgrind's callgrind), and the Raspberry Pi prediction made
from them: a hop costs the same whatever the length of the utterance under way; the stage
split adds up; the exact percentile the endpointer now uses is numpy's to the last bit."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest_edge import CLIPS, shipped

from benchmarks import instructions, pi
from benchmarks.report import _instructions_section
from edge.audio import load
from edge.bundle import load_bundle
from edge.levels import percentile

SR = 16000


def test_percentile_is_numpys_to_the_last_bit():
    rng = np.random.default_rng(0)
    for n in [*range(1, 30), 99, 500, 501]:
        x = rng.normal(-60.0, 15.0, n)
        if n % 3 == 0:
            x = np.round(x)  # ties
        if n % 4 == 0:
            x[: n // 2] = -120.0  # digital silence
        for q in (0.0, 0.02, 1.0, 3.7, 9.98, 10.0, 50.0, 90.0, 99.9, 100.0):
            assert percentile(x, q) == float(np.percentile(x, q)), (n, q)


def test_stage_attribution_adds_up():
    labels = ["hop+", "front end+", "front end-", "endpointer+", "endpointer-",
              "model invoke+", "model invoke-", "hop-", "file+", "front end+", "front end-",
              "file-"]
    #   after: hop+  fe+  fe-  ep+  ep-  mi+  mi-  hop-  file+ fe+  fe-  file-
    counts = [5, 100, 7, 20, 3, 900, 11, 1000, 2, 50, 4, 1]
    hop, file = instructions.attribute(labels, counts)
    assert (hop["front end"], hop["endpointer"], hop["model invoke"]) == (100, 20, 900)
    assert hop["Python glue"] == 5 + 7 + 3 + 11 and hop["total"] == 1046
    assert file["front end"] == 50 and file["Python glue"] == 2 + 4 and file["total"] == 56


def test_prediction_scales_with_the_counts_and_brackets_its_centre():
    stages = {"front end": 1e6, "endpointer": 2e5, "model invoke": 1e7, "Python glue": 3e6}
    for board in pi.BOARDS:
        p = pi.predict_seconds(stages, board)
        assert p["low"] < p["seconds"] < p["high"]
        twice = pi.predict_seconds({k: 2 * v for k, v in stages.items()}, board)
        assert twice["seconds"] == pytest.approx(2 * p["seconds"])
    pi4, zero2 = (pi.predict_seconds(stages, b)["seconds"] for b in pi.BOARDS)
    assert zero2 > pi4


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_a_hop_costs_the_same_at_6_s_as_at_1_s(ravdess_dir):
    """The default bundle under callgrind on real speech: the interim hop 6 s into an
    utterance within 1.5x of the one 1 s in; every stage counted; the report renders it."""
    model = shipped()
    spec = load_bundle(model).metadata.features
    clips = [load(ravdess_dir / f"{c}.flac", SR) for c in CLIPS] * 2
    result = instructions.measure([(model.stem, str(model))], clips, spec, seconds=6.5)
    m = result["models"][model.stem]
    assert "error" not in m, m
    s = m["summary"]
    near_1, near_6 = s["at"]
    assert abs(near_1["utterance_seconds"] - 1.0) <= 0.3
    assert near_6["utterance_seconds"] >= 5.5
    assert s["ratio_last_first"] <= 1.5
    for row in (near_1, near_6, s["file"]):
        assert all(row[stage] > 0 for stage in instructions.STAGES), row
        assert row["total"] == sum(row[stage] for stage in instructions.STAGES)
    # one model run per interim, whatever the length: the invoke counts barely differ
    assert near_6["model invoke"] == pytest.approx(near_1["model invoke"], rel=0.02)
    text = "\n".join(_instructions_section({"instructions": result}))
    assert "Predicted, not measured" in text and "Raspberry Pi Zero 2 W" in text
