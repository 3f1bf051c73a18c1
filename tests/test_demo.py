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
        assert c["windows"] >= 3 and c["speech_windows"] >= 3, c
        assert c["predicted"] in c["votes"] and c["correct"] == (c["predicted"] == c["true"])
    assert report["pauses"]["pauses"] == 2
    assert report["pauses"]["covered"] == 2, "a pause with no window inside it"
    assert report["pauses"]["speech_false"] == report["pauses"]["windows"]
    assert "training speaker" in report["note"] or "held out" in report["note"]


@pytest.mark.data
def test_replay_prints_the_live_track_and_the_table(ravdess_dir):
    run = run_demo("--clips", "2", "--model", str(shipped()), "--data", str(ravdess_dir))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    track = [line for line in lines if line.strip().split(" ")[0].replace(".", "").isdigit()
             and " s  " in line]
    assert len(track) >= 10
    assert any("no speech" in line for line in track)
    assert any("clip 1" in line for line in track) and any("clip 2" in line for line in track)
    assert any(line.startswith("clips right: ") and line.endswith(" of 2") for line in lines)
    assert any(line.startswith("pauses: ") for line in lines)
    assert any(line.startswith("note: ") for line in lines)
    assert "replaying 2 clips" in run.stderr


def test_missing_data_is_one_line_and_exit_2(tmp_path):
    run = run_demo("--data", str(tmp_path / "nowhere"), "--model", str(shipped()))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"demo: no RAVDESS data at {tmp_path / 'nowhere'}; set SER_DATA to the directory of"
        " Actor_XX folders (or pass --data)"]
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
    rate = 1000
    speech = np.zeros(3000, dtype=np.float32)
    speech[1000:2000] = 0.5 * np.sin(np.arange(1000) * 0.3)  # 1-2 s of a 3 s clip
    clips = [(utterance("sad"), speech), (utterance("angry"), speech)]
    track, placed = demo.build_track(clips, rate, gap_seconds=2.0, lead_seconds=1.0)
    assert track.size == 1000 + 3000 + 2000 + 3000 + 1000
    assert [(p.start, p.end) for p in placed] == [(1.0, 4.0), (6.0, 9.0)]
    assert placed[0].speech_start == pytest.approx(2.0, abs=0.03)  # 25 ms frames
    assert placed[0].speech_end == pytest.approx(3.0, abs=0.03)
    assert (placed[0].sound_start, placed[0].sound_end) == pytest.approx((1.98, 3.015),
                                                                          abs=0.011)
    pause = track[4000:6000]
    assert 10 * np.log10(np.mean(pause**2)) == pytest.approx(demo.NOISE_DB, abs=0.5)
    np.testing.assert_allclose(track[2000:3000], speech[1000:2000], atol=0.002)


def test_windows_map_to_the_clip_whose_speech_they_hold(demo):
    placed = [demo.Placed(utterance("sad"), 1.0, 4.0, 2.0, 3.0, 1.9, 3.1),
              demo.Placed(utterance("angry"), 6.0, 9.0, 7.0, 8.0, 7.0, 8.0)]
    assert demo.clip_of_window(3.5, 3.0, placed) == 0  # [0.5, 3.5] holds all of [2, 3]
    assert demo.clip_of_window(8.5, 3.0, placed) == 1
    assert demo.clip_of_window(7.6, 3.0, placed) == 1  # 0.6 s of the second clip's speech
    assert demo.clip_of_window(7.3, 3.0, placed) is None  # 0.3 s: less than MIN_OVERLAP
    assert demo.clip_of_window(6.2, 3.0, placed) is None  # [3.2, 6.2]: no speech at all
    assert demo.is_pause(6.5, 3.0, placed)  # [3.5, 6.5]: between the two clips' sound
    assert demo.is_pause(7.0, 3.0, placed)  # [4, 7] ends where the sound starts
    assert not demo.is_pause(7.0, 3.0, placed, margin=0.1)
    assert not demo.is_pause(6.05, 3.0, placed)  # [3.05, 6.05] holds a breath at 3-3.1
    assert not demo.is_pause(5.0, 3.0, placed)  # [2, 5] holds the first clip's speech
    assert not demo.is_pause(3.9, 3.0, placed)  # starts in the lead-in, not between clips
    assert not demo.is_pause(10.0, 1.0, placed)  # the lead-out
    assert demo.pause_of_window(6.5, 3.0, placed) == 0


def test_majority_vote_per_clip_with_confidence_tie_break(demo):
    placed = [demo.Placed(utterance("sad"), 1.0, 4.0, 2.0, 3.0, 2.0, 3.0),
              demo.Placed(utterance("angry"), 6.0, 9.0, 7.0, 8.0, 7.0, 8.0)]
    hops = [
        {"t": 3.0, "speech": True, "label": "sad", "confidence": 0.5},
        {"t": 3.5, "speech": True, "label": "calm", "confidence": 0.9},
        {"t": 4.0, "speech": True, "label": "sad", "confidence": 0.5},
        {"t": 4.5, "speech": False, "label": None, "confidence": None},
        {"t": 8.5, "speech": True, "label": "happy", "confidence": 0.4},
        {"t": 9.0, "speech": True, "label": "angry", "confidence": 0.6},
        {"t": 9.5, "speech": False, "label": None, "confidence": None},
    ]
    first, second = demo.outcomes(hops, placed, 3.0)
    assert (first.predicted, first.windows, first.speech_windows) == ("sad", 4, 3)
    assert first.correct and first.votes == {"sad": 2, "calm": 1}
    assert (second.predicted, second.speech_windows) == ("angry", 2)  # tie: more confident
    assert second.correct
    shifted = [{**h, "t": h["t"] + 10.0} for h in hops]
    assert [r.predicted for r in demo.outcomes(shifted, placed, 3.0, shift=10.0)] == \
        ["sad", "angry"]
