"""``make demo`` (tools/demo.py): the replay of real clips through ``edge-ser listen``, its
table, its bad inputs, and the pure functions that place clips and map windows to them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest_demo import DEMO, load_demo
from conftest_edge import shipped

from train.corpora import EMOTIONS as LABELS
from train.corpora import Utterance


@pytest.fixture(scope="module")
def demo():
    return load_demo()


def run_demo(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEMO), *args], capture_output=True, text=True,
                          timeout=timeout)


def utterance(label: str, speaker: str = "ravdess-01", name: str = "x.wav") -> Utterance:
    return Utterance(Path(name), label, speaker, "ravdess", intensity="strong",
                     statement="Kids are talking by the door")


# --------------------------------------------------------------------------------------
# Through the script, on real clips
# --------------------------------------------------------------------------------------


@pytest.mark.data
def test_replay_reports_each_clip_and_silent_pauses(ravdess_dir):
    run = run_demo("--clips", "3", "--json", "--model", str(shipped()), "--data",
                   str(ravdess_dir))
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    clips = report["clips"]
    assert len(clips) == 3
    assert len({c["true"] for c in clips}) == 3, "the clips are of different emotions"
    assert len({c["speaker"] for c in clips}) == 3
    for c in clips:
        assert c["utterances"] >= 1 and c["predicted"] in LABELS, c
        assert c["correct"] == (c["predicted"] == c["true"])
    assert report["finals"] >= 3
    pauses = report["pauses"]
    assert pauses["pauses"] == 2 and pauses["results"] >= 4
    assert pauses["no_speech"] >= 0.95 * pauses["results"]
    assert "training speaker" in report["note"] or "held out" in report["note"]


@pytest.mark.data
def test_replay_prefers_speakers_the_model_never_heard(ravdess_dir, tmp_path):
    """With a model whose metadata lists its training speakers, and data holding others,
    the demo replays the others and says so."""
    from edge.bundle import load_bundle

    trained = load_bundle(shipped()).metadata.training.get("train_speakers") or []
    others = sorted({p.name for p in ravdess_dir.iterdir() if p.is_dir()}
                    - {f"Actor_{s.split('-')[-1]}" for s in trained})
    if not others:  # every actor here trained the shipped model: it must say so
        run = run_demo("--clips", "2", "--json", "--model", str(shipped()), "--data",
                       str(ravdess_dir))
        report = json.loads(run.stdout)
        assert not report["held_out_speakers"] and "training speaker" in report["note"]
        return
    run = run_demo("--clips", "2", "--json", "--model", str(shipped()), "--data",
                   str(ravdess_dir))
    report = json.loads(run.stdout)
    assert report["held_out_speakers"] and "held out" in report["note"]


@pytest.mark.data
def test_replay_prints_each_utterance_and_the_table(ravdess_dir):
    run = run_demo("--clips", "2", "--model", str(shipped()), "--data", str(ravdess_dir))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    track = [line for line in lines if " s  clip " in line]
    assert len(track) >= 2
    assert any("clip 1" in line for line in track) and any("clip 2" in line for line in track)
    assert any(line.startswith("clips right: ") and line.endswith(" of 2") for line in lines)
    assert any(line.startswith("pauses: ") for line in lines)
    assert any(line.startswith("note: ") for line in lines)
    assert "replaying 2 clips" in run.stderr


def test_missing_data_is_one_line_and_exit_2(tmp_path):
    run = run_demo("--data", str(tmp_path / "nowhere"), "--model", str(shipped()))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"demo: no speech data at {tmp_path / 'nowhere'}; set SER_DATA to a corpus directory"
        " (RAVDESS Actor_XX folders) or pass --data"]
    assert run.stdout == ""


def test_bad_model_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a model at all")
    run = run_demo("--model", str(bad))
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("demo: ") and str(bad) in lines[0]
    assert "Traceback" not in run.stderr


# --------------------------------------------------------------------------------------
# The pure parts
# --------------------------------------------------------------------------------------


def test_choose_clips_gives_different_emotions_from_different_actors(demo):
    pool = [utterance(e, f"ravdess-{a:02d}", f"{a}-{e}.wav")
            for a in (1, 2, 3) for e in ("neutral", "happy", "sad", "angry")]
    chosen = demo.choose_clips(pool, 3, labels=("neutral", "happy", "sad", "angry"))
    assert [u.label for u in chosen] == ["neutral", "happy", "sad"]
    assert [u.speaker for u in chosen] == ["ravdess-01", "ravdess-02", "ravdess-03"]
    assert demo.choose_clips(pool, 3, labels=("neutral", "happy", "sad", "angry")) == chosen
    preferred = demo.choose_clips(pool, 2, labels=("happy", "sad"),
                                  prefer_speakers=["ravdess-03"])
    assert [(u.speaker, u.label) for u in preferred] == [("ravdess-03", "happy"),
                                                         ("ravdess-03", "sad")]


def test_build_track_places_clips_and_their_speech(demo):
    rate = 16000
    rng = np.random.default_rng(0)
    speech = np.zeros(3 * rate, dtype=np.float32)
    speech[rate:2 * rate] = 0.1 * rng.standard_normal(rate)  # 1-2 s of a 3 s clip
    clips = [(utterance("sad"), speech), (utterance("angry"), speech)]
    track, placed = demo.build_track(clips, rate, gap_seconds=2.0, lead_seconds=1.0)
    assert track.size == (1 + 3 + 2 + 3 + 1) * rate
    assert [(p.start, p.end) for p in placed] == [(1.0, 4.0), (6.0, 9.0)]
    assert placed[0].speech_start == pytest.approx(2.0, abs=0.04)  # 32 ms frames
    assert placed[0].speech_end == pytest.approx(3.0, abs=0.04)
    pause = track[4 * rate:6 * rate]
    assert 10 * np.log10(np.mean(pause**2)) == pytest.approx(demo.NOISE_DB, abs=0.5)
    np.testing.assert_allclose(track[2 * rate:3 * rate], speech[rate:2 * rate], atol=0.006)


def test_finals_map_to_the_clips_they_overlap(demo):
    placed = [demo.Placed(utterance("sad"), 1.0, 4.0, 2.0, 3.0),
              demo.Placed(utterance("angry"), 6.0, 9.0, 7.0, 8.0),
              demo.Placed(utterance("happy"), 11.0, 14.0, 12.0, 13.0)]

    def final(start, end, probs, speech=1.0):
        return {"event": "final", "start": start, "end": end, "speech_seconds": speech,
                "probs": dict(zip(("sad", "angry", "happy"), probs)), "t": end + 0.3}

    results = [
        {"event": "no_speech", "t": 1.5},
        final(1.9, 2.6, (0.2, 0.7, 0.1), speech=0.5),  # two utterances in the first clip:
        final(2.7, 3.1, (0.9, 0.05, 0.05), speech=1.5),  # speech-weighted, sad wins
        {"event": "interim", "t": 7.5, "start": 6.9, "end": 7.5},
        final(6.9, 8.1, (0.1, 0.8, 0.1)),
        {"event": "no_speech", "t": 9.5},
    ]
    first, second, third = demo.outcomes(results, placed)
    assert (first.predicted, first.utterances) == ("sad", 2) and first.correct
    assert second.predicted == "angry" and second.confidence == pytest.approx(0.8)
    assert third.predicted is None and third.utterances == 0 and not third.correct
    shifted = [{**r, "t": r["t"] + 10.0, **({"start": r["start"] + 10, "end": r["end"] + 10}
                                            if "start" in r else {})} for r in results]
    assert [r.predicted for r in demo.outcomes(shifted, placed, shift=10.0)] == \
        ["sad", "angry", None]
    pauses = demo.pause_results(results, placed)
    assert [r["t"] for r in pauses] == [9.5]  # 1.5 is the lead-in; 7.5 is in a clip
