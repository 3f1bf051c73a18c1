"""tools/pi/clips.py: the clips pi-check feeds the host and the emulated Pi (real RAVDESS)."""

from __future__ import annotations

import importlib.util
import wave
from pathlib import Path

import numpy as np

from train.corpora import parse_ravdess_name

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pi_clips", REPO / "tools" / "pi" / "clips.py")
clips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clips)


def test_select_spreads_over_emotions_and_the_last_actors(ravdess_dir):
    chosen = clips.select(ravdess_dir, 12)
    parsed = [parse_ravdess_name(p.stem) for p in chosen]
    assert len(set(chosen)) == 12
    assert len({u.label for u in parsed}) == 8
    top = max(int(p.stem[-2:]) for p in clips.select(ravdess_dir, 200))
    assert parsed[0].speaker == f"ravdess-{top:02d}"


def test_join_keeps_one_utterance_of_two_statements(ravdess_dir, tmp_path):
    a, b = clips.pair(ravdess_dir)
    ua, ub = parse_ravdess_name(a.stem), parse_ravdess_name(b.stem)
    assert (ua.speaker, ua.label, ua.intensity) == (ub.speaker, ub.label, ub.intensity)
    assert {ua.statement, ub.statement} == {"Kids are talking by the door",
                                            "Dogs are sitting by the door"}
    clips.to_wav(tmp_path, [a, b])
    wavs = [tmp_path / (p.stem + ".wav") for p in (a, b)]
    clips.join(tmp_path / "joined.wav", *wavs)
    with wave.open(str(tmp_path / "joined.wav")) as w:
        joined = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        rate = w.getframerate()
    lengths = [len(clips.read_pcm(p)[1]) // 2 for p in wavs]
    assert len(joined) < sum(lengths)  # the quiet between them was cut
    level = np.sqrt(np.convolve(joined.astype(float) ** 2, np.ones(rate // 100) / (rate // 100),
                                "valid"))
    loud = np.flatnonzero(level > level.max() / 100)  # within 40 dB of the loudest
    gaps = np.diff(loud) / rate
    assert gaps.max() < 0.4  # no pause the endpointer would end the utterance at
