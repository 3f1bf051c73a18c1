"""Live accuracy: labelled clips played as one long recording through ``edge-ser listen``.

This is how users meet the model: someone talks, pauses, talks again, in a room that is never
silent. :func:`build_recording` lays clips end to end with pauses between them over a quiet
room's noise; :func:`run_listen` replays it through the real command line
(``edge-ser listen --file REC --fast --json``); :func:`score_live` gives each clip the
speech-weighted average of the final results that overlap it (the rule ``edge-ser predict``
applies to a file's utterances) and measures:

* per-utterance accuracy, against ``edge-ser predict`` on the same clips as files;
* the share of results over pure pauses that say ``no_speech``;
* how long after a clip's speech ends its final result comes (seconds of audio);
* the per-hop processing time ``listen`` reports.

Usage: ``python -m benchmarks.live --data DIR --model MODEL [--clips N] [--json]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.audio import load, write_wav
from edge.levels import frame_levels
from edge.frontend import FrontendConfig, mel_power

RATE = 16000
ROOM_DB = -60.0
"""RMS of the room noise under the whole recording, dBFS."""
PAUSE_SECONDS = (1.5, 5.0)
SPEECH_TOP_DB = 40.0
"""A clip's speech ends with its last frame within this of its loudest (for the latency)."""


@dataclass(frozen=True)
class Placed:
    """One clip in the recording."""

    path: str
    label: str
    start: float
    """Where the clip's audio begins in the recording, seconds."""
    end: float
    speech_start: float
    speech_end: float
    """Its first / last frame within ``SPEECH_TOP_DB`` of its loudest frame, seconds."""


def _speech_span(x: np.ndarray) -> tuple[float, float]:
    c = FrontendConfig()
    levels = frame_levels(mel_power(x, c), c)
    inside = np.flatnonzero(levels >= levels.max() - SPEECH_TOP_DB)
    hop = c.hop_length / c.sample_rate
    return float(inside[0] * hop), float(inside[-1] * hop + c.frame_length / c.sample_rate)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink noise, float64."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(f), n=n)
    return x / np.sqrt(np.mean(x**2))


def build_recording(clips: list[tuple[str, str]], *, seed: int = 0,
                    pause_seconds: tuple[float, float] = PAUSE_SECONDS,
                    room_db: float = ROOM_DB) -> tuple[np.ndarray, list[Placed]]:
    """``(path, label)`` clips in order, pauses drawn uniformly from ``pause_seconds``
    between them (and before the first), pink room noise at ``room_db`` under everything.

    Returns the recording (mono float32 at 16 kHz) and where each clip is."""
    rng = np.random.default_rng(seed)
    pieces, placed, t = [], [], 0
    for path, label in clips:
        pause = int(rng.uniform(*pause_seconds) * RATE)
        pieces.append(np.zeros(pause, np.float32))
        t += pause
        x = load(path, RATE)
        s0, s1 = _speech_span(x)
        placed.append(Placed(str(path), label, t / RATE, (t + x.size) / RATE,
                             t / RATE + s0, t / RATE + s1))
        pieces.append(x)
        t += x.size
    pieces.append(np.zeros(int(pause_seconds[0] * RATE), np.float32))
    audio = np.concatenate(pieces).astype(np.float64)
    audio += pink_noise(audio.size, rng) * 10.0 ** (room_db / 20.0)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), placed


def _edge_ser() -> list[str]:
    exe = Path(sys.executable).with_name("edge-ser")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edge.cli"]


def run_listen(recording: Path, model: str | None) -> tuple[list[dict], dict]:
    """``edge-ser listen --file REC --fast --json`` (the real command): its results and the
    summary object."""
    cmd = [*_edge_ser(), "listen", "--file", str(recording), "--fast", "--json"]
    if model:
        cmd += ["--model", str(model)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    summary = next((d["summary"] for d in lines if "summary" in d), {})
    return [d for d in lines if "event" in d], summary


def run_predict(paths: list[str], model: str | None) -> dict[str, dict]:
    """``edge-ser predict FILE... --json``: the result per file."""
    cmd = [*_edge_ser(), "predict", "--json", *paths]
    if model:
        cmd += ["--model", str(model)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return {d["file"]: d for d in (json.loads(x) for x in out.stdout.splitlines() if x.strip())}


def _aggregate(finals: list[dict]) -> str | None:
    if not finals:
        return None
    labels = list(finals[0]["probs"])
    w = np.array([max(f["speech_seconds"], 1e-3) for f in finals])
    p = np.array([[f["probs"][k] for k in labels] for f in finals])
    return labels[int(np.argmax((p * w[:, None]).sum(axis=0)))]


def score_live(results: list[dict], placed: list[Placed],
               files: dict[str, dict] | None = None) -> dict[str, Any]:
    """Per-clip labels from the finals that overlap each clip, and the measures above."""
    finals = [r for r in results if r["event"] == "final"]
    right, finals_per_clip, latency, rows = 0, [], [], []
    for clip in placed:
        mine = [f for f in finals if f["start"] < clip.end and f["end"] > clip.start]
        label = _aggregate(mine)
        right += label == clip.label
        finals_per_clip.append(len(mine))
        if mine:
            latency.append(max(f["t"] for f in mine) - clip.speech_end)
        row = {"path": clip.path, "label": clip.label, "live": label, "finals": len(mine)}
        if files is not None:
            row["file"] = files.get(clip.path, {}).get("label")
        rows.append(row)
    # pure pauses: from 1 s after a clip's audio ends (the hangover is over) to the next
    pauses = [(a.end + 1.0, b.start) for a, b in zip(placed, placed[1:]) if b.start > a.end + 1]
    in_pause = [r for r in results if r["event"] != "final"
                and any(s <= r["t"] <= e for s, e in pauses)]
    out = {
        "clips": len(placed),
        "live_accuracy": right / len(placed) if placed else 0.0,
        "clips_with_one_final": float(np.mean([n == 1 for n in finals_per_clip])),
        "clips_without_final": int(sum(n == 0 for n in finals_per_clip)),
        "finals": len(finals),
        "pause_results": len(in_pause),
        "pause_no_speech": (float(np.mean([r["event"] == "no_speech" for r in in_pause]))
                            if in_pause else None),
        "final_after_speech_end_s": {
            "median": float(np.median(latency)) if latency else None,
            "p95": float(np.percentile(latency, 95)) if latency else None,
            "max": float(np.max(latency)) if latency else None},
        "per_clip": rows,
    }
    if files is not None:
        out["file_accuracy"] = float(np.mean([r["file"] == r["label"] for r in rows]))
        out["live_equals_file"] = float(np.mean([r["file"] == r["live"] for r in rows]))
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    from train.corpora import read_corpus

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a labelled corpus directory")
    ap.add_argument("--model", default=None)
    ap.add_argument("--clips", type=int, default=0, help="at most this many (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="write the recording here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    utts = sorted(read_corpus(args.data).utterances, key=lambda u: str(u.path))
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(utts))
    if args.clips:
        order = order[:args.clips]
    clips = [(str(utts[i].path), utts[i].label) for i in order]
    audio, placed = build_recording(clips, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(args.keep) if args.keep else Path(tmp) / "recording.wav"
        write_wav(rec, audio, RATE)
        results, summary = run_listen(rec, args.model)
    files = run_predict([c[0] for c in clips], args.model)
    scored = score_live(results, placed, files)
    scored["hop_ms_mean"] = summary.get("hop_ms_mean")
    scored["audio_seconds"] = summary.get("audio_seconds")
    if args.json:
        print(json.dumps(scored))
    else:
        print(json.dumps({k: v for k, v in scored.items() if k != "per_clip"}, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
