"""Seeded fuzzing of the default shipped bundle through ``edge-ser predict``: every damaged
copy is refused with one line and exit 2; none is run, none crashes the process, none ends in
a traceback. A share goes through the installed console script, one process per mutant; the
rest through benchmarks.fuzz's worker, the same click command in-process, many per process.
The larger campaign over every shipped bundle is ``python -m benchmarks.fuzz``."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
from conftest_edge import shipped

from benchmarks.fuzz import (
    KINDS,
    REGIONS,
    Mutant,
    console_script,
    mutants,
    restamped,
    run_mutants,
    speech_like_clip,
)
from edge.bundle import load_bundle

SEED = 14
MUTANTS = 300
CLI_EVERY = 6
"""Every 6th mutant (50 of 300) through the console script, one process each."""
KNOWN_REFUSALS = ("damaged (", "not a TFLite model", "without edge-ser metadata")
"""How a damaged bundle is refused: the checksum or structure message; a damaged identifier
or metadata entry name makes the file not an edge-ser bundle at all."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return speech_like_clip(tmp_path_factory.mktemp("clip") / "speech.wav")


@pytest.fixture(scope="module")
def original() -> bytes:
    return shipped().read_bytes()


@pytest.fixture(scope="module")
def damaged(original):
    return mutants(original, MUTANTS, seed=SEED)


def test_the_undamaged_bundle_is_accepted(original, clip, tmp_path):
    path = tmp_path / "intact.tflite"
    path.write_bytes(original)
    done = subprocess.run([*console_script(), "predict", "--json", "--model", str(path),
                           str(clip)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    result = json.loads(line)
    assert result["label"] == max(result["probs"], key=result["probs"].get)
    assert list(result["probs"]) == list(load_bundle(path).metadata.labels)


def test_mutants_cover_every_kind_and_region(damaged, original):
    distinct = {m.data for m in damaged}
    assert original not in distinct
    assert len(distinct) >= 0.95 * MUTANTS  # a few small truncations of the header repeat
    assert {m.kind for m in damaged} == set(KINDS)
    assert {m.region for m in damaged} == {*REGIONS, "end"}


def test_every_damaged_bundle_is_refused_with_one_line(damaged, clip, tmp_path):
    outcomes = run_mutants(damaged, clip, tmp_path, cli_every=CLI_EVERY, jobs=2)
    assert len(outcomes) == MUTANTS
    assert Counter(o.via for o in outcomes)["cli"] >= MUTANTS // CLI_EVERY
    wrong = [o for o in outcomes if o.status != "refused"]
    assert wrong == [], f"{len(wrong)} not refused: {[o.to_dict() for o in wrong[:5]]}"
    unknown = [o.message for o in outcomes if not any(k in o.message for k in KNOWN_REFUSALS)]
    assert unknown == []
    by_cause = Counter("checksum" if "checksum mismatch" in o.message else "other"
                       for o in outcomes)
    print(f"{MUTANTS} mutants refused: {dict(by_cause)}")


def test_checksum_valid_malformed_bundles_never_crash(damaged, clip, tmp_path):
    """The same damage with the checksum recomputed (as if the file had been damaged before
    it was stamped): the structural check and the interpreter refuse or run them, but no
    process dies and nothing escapes as a traceback."""
    stamped = [Mutant(m.name, m.kind, m.region, d) for m in damaged
               if (d := restamped(m.data)) is not None]
    assert len(stamped) >= 60
    outcomes = run_mutants(stamped, clip, tmp_path, cli_every=CLI_EVERY, jobs=2)
    bad = [o for o in outcomes if o.status not in ("refused", "accepted")]
    assert bad == [], [o.to_dict() for o in bad[:5]]
    counts = Counter(o.status for o in outcomes)
    assert counts["refused"] > 0
    print(f"{len(stamped)} re-stamped mutants: {dict(counts)}")
