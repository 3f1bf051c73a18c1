"""Live accuracy: labelled clips played as one long recording through ``edge-ser listen``.

This is how users meet the model: someone talks, pauses, talks again, in a room that is never
silent. :func:`write_recording` lays clips end to end with pauses between them over a quiet
room's noise (pink, ``ROOM_DB``), streaming to a WAV file (an hour stays out of memory);
:func:`run_listen` replays it through the real command line (``edge-ser listen --file REC
--fast --json``) in a fresh, measured process; :func:`score_live` gives each clip the
speech-weighted average of the final results that overlap it (the rule ``edge-ser predict``
applies to a file's utterances) and measures:

* per-clip accuracy live, against ``edge-ser predict`` on the same clips as files
  (:func:`run_predict`), and how often the two agree;
* the interim results during each clip that carry its label;
* the share of results over pure pauses (from ``PAUSE_GUARD_SECONDS`` after a clip to the
  next) that say ``no_speech``;
* how long after a clip's speech ends its last final result comes (seconds of audio; the
  issue's bound is ``FINAL_BOUND_SECONDS``);
* the per-hop processing time, real-time factor and peak RSS of the ``listen`` process.

A clip's speech is where its frames are within ``SPEECH_TOP_DB`` of its loudest, on the clean
clip before the room is added: a reference independent of the endpointer under test.

Usage: ``python -m benchmarks.live --data DIR [--model MODEL] [--clips N] [--json]``
(numpy and the edge package only).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.processes import ProcessRun, edge_ser, run_measured, shown
from edge.audio import load
from edge.frontend import FrontendConfig, mel_power
from edge.levels import frame_levels
from edge.predict import speech_weighted

RATE = 16000
"""Sample rate of the recordings written here, Hz (the models' front-end rate)."""
ROOM_DB = -60.0
"""RMS of the room noise under the whole recording, dBFS."""
PAUSE_SECONDS = (1.5, 5.0)
"""Pauses before each clip are drawn uniformly from this range, seconds."""
SPEECH_TOP_DB = 40.0
"""A clip's speech is its frames within this of its loudest frame, dB."""
PAUSE_GUARD_SECONDS = 1.0
"""Results less than this after a clip's audio count as neither clip nor pause, seconds."""
FINAL_BOUND_SECONDS = 0.5
"""The issue's bound on a final result's delay after the speech ends, seconds of audio."""
NOISE_BLOCK_SECONDS = 10.0
"""Room noise is generated in independent blocks of this length, seconds."""


@dataclass(frozen=True)
class Placed:
    """One clip in the recording (times in seconds from the recording's start)."""

    path: str
    label: str
    start: float
    """Where the clip's audio begins."""
    end: float
    speech_start: float
    speech_end: float
    """Its first frame's start / last frame's end within ``SPEECH_TOP_DB`` of its loudest."""


def speech_span(x: np.ndarray, config: FrontendConfig = FrontendConfig()) -> tuple[float, float]:
    """Start and end of the speech in a clean clip, seconds (see :class:`Placed`)."""
    levels = frame_levels(mel_power(x, config), config)
    if not levels.size:
        return 0.0, x.size / config.sample_rate
    inside = np.flatnonzero(levels >= levels.max() - SPEECH_TOP_DB)
    hop = config.hop_length / config.sample_rate
    frame = config.frame_length / config.sample_rate
    return float(inside[0] * hop), float(inside[-1] * hop + frame)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink noise (power ``1/f``), float64 ``(n,)``."""
    if n == 0:
        return np.zeros(0)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(f), n=n)
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-12)


def _pieces(clips: Sequence[tuple[str, str]], rng: np.random.Generator,
            pause_seconds: tuple[float, float], total_seconds: float | None
            ) -> Iterator[tuple[np.ndarray, Placed | None]]:
    """Pause, clip, pause, clip, ... (cycling through ``clips`` until ``total_seconds``
    when given), and a last pause; each clip with where it lands."""
    t, i = 0, 0
    while (i < len(clips)) if total_seconds is None else (t < total_seconds * RATE):
        path, label = clips[i % len(clips)]
        pause = int(rng.uniform(*pause_seconds) * RATE)
        yield np.zeros(pause, np.float32), None
        t += pause
        x = load(path, RATE)
        s0, s1 = speech_span(x)
        yield x, Placed(str(path), label, t / RATE, (t + x.size) / RATE, t / RATE + s0,
                        t / RATE + s1)
        t += x.size
        i += 1
    yield np.zeros(int(pause_seconds[0] * RATE), np.float32), None


def write_recording(path: Path, clips: Sequence[tuple[str, str]], *, seed: int = 0,
                    pause_seconds: tuple[float, float] = PAUSE_SECONDS,
                    room_db: float = ROOM_DB, total_seconds: float | None = None
                    ) -> list[Placed]:
    """Write ``(path, label)`` clips in order as one 16-bit mono WAV at ``RATE``: a pause
    before each (uniform in ``pause_seconds``) and after the last, pink room noise at
    ``room_db`` under everything. ``total_seconds``: repeat the clips until the recording is
    at least that long. Streams to ``path`` (memory: one clip and one noise block).

    Returns where each clip is (in recording order)."""
    if not clips:
        raise ValueError("no clips to lay out")
    rng = np.random.default_rng(seed)
    noise_rng = np.random.default_rng([seed, 1])
    placed: list[Placed] = []
    block = int(NOISE_BLOCK_SECONDS * RATE)
    noise = np.zeros(0)
    scale = 10.0 ** (room_db / 20.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        for x, where in _pieces(clips, rng, pause_seconds, total_seconds):
            if where is not None:
                placed.append(where)
            while noise.size < x.size:
                noise = np.concatenate((noise, pink_noise(block, noise_rng)))
            y = x.astype(np.float64) + noise[:x.size] * scale
            noise = noise[x.size:]
            # the inverse of edge.audio's reader, as edge.audio.write_wav writes
            w.writeframes(np.clip(np.round(y * 32768), -32768, 32767).astype("<i2").tobytes())
    return placed


def build_recording(clips: Sequence[tuple[str, str]], *, seed: int = 0,
                    pause_seconds: tuple[float, float] = PAUSE_SECONDS,
                    room_db: float = ROOM_DB, total_seconds: float | None = None
                    ) -> tuple[np.ndarray, list[Placed]]:
    """:func:`write_recording` in memory: the samples (float32, on the 16-bit grid) and the
    placements. For short recordings (the latency figures)."""
    with tempfile.TemporaryDirectory(prefix="ser-bench-live-") as tmp:
        p = Path(tmp) / "rec.wav"
        placed = write_recording(p, clips, seed=seed, pause_seconds=pause_seconds,
                                 room_db=room_db, total_seconds=total_seconds)
        return load(p, RATE), placed


# --------------------------------------------------------------------------------------
# Running the commands
# --------------------------------------------------------------------------------------


def run_listen(recording: Path, model: str | None, *, threads: int = 1,
               hop_seconds: float | None = None) -> tuple[list[dict], dict, ProcessRun]:
    """``edge-ser listen --file REC --fast --json`` (the real command, a measured fresh
    process): its results, its summary object and the run."""
    command = [*edge_ser(), "listen", "--file", str(recording), "--fast", "--json",
               "--threads", str(threads)]
    if model:
        command += ["--model", str(model)]
    if hop_seconds is not None:
        command += ["--hop", f"{hop_seconds:g}"]
    run = run_measured(command, timeout=3600)
    failure = run.failure()
    if failure:
        raise RuntimeError(failure)
    lines = run.json_lines()
    summary = next((d["summary"] for d in lines if "summary" in d), {})
    return [d for d in lines if "event" in d], summary, run


def run_predict(paths: Sequence[str], model: str | None) -> tuple[dict[str, dict], ProcessRun]:
    """``edge-ser predict --json FILE...`` in one process: the result per file."""
    command = [*edge_ser(), "predict", "--json", *(["--model", str(model)] if model else []),
               *map(str, paths)]
    run = run_measured(command, timeout=3600)
    found = {d["file"]: d for d in run.json_lines() if "file" in d}
    if run.returncode not in (0, 2) or not found and paths:
        raise RuntimeError(run.failure() or "edge-ser predict printed no result")
    return found, run


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------


def weighted_label(results: Sequence[dict], merge: dict[str, str] | None = None) -> str | None:
    """Top label of the speech-weighted average of final results (``predict``'s rule,
    :func:`edge.predict.speech_weighted`); ``merge`` maps a predicted label onto another
    afterwards; None without results."""
    probs = speech_weighted(results)
    if not probs:
        return None
    top = max(probs, key=probs.get)
    return (merge or {}).get(top, top)


def _seconds(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None, "within_bound": None}
    a = np.asarray(values)
    return {"n": int(a.size), "median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
            "max": float(a.max()), "within_bound": float(np.mean(a <= FINAL_BOUND_SECONDS)),
            "bound_seconds": FINAL_BOUND_SECONDS}


def score_live(results: Sequence[dict], placed: Sequence[Placed],
               files: dict[str, dict] | None = None, *,
               merge: dict[str, str] | None = None) -> dict[str, Any]:
    """Per-clip labels from the finals that overlap each clip, and the measures above.

    ``placed`` labels are the model's class names (map corpus labels first); ``files`` is
    :func:`run_predict`'s result for the same clips; ``merge`` maps predicted labels (``calm
    -> neutral`` for a corpus without calm)."""
    merge = merge or {}
    finals = [r for r in results if r["event"] == "final"]
    interims = [r for r in results if r["event"] == "interim"]
    rows, delays, finals_per_clip = [], [], []
    interim_right = interim_n = 0
    for clip in placed:
        mine = [f for f in finals if f["start"] < clip.end and f["end"] > clip.start]
        label = weighted_label(mine, merge)
        finals_per_clip.append(len(mine))
        if mine:
            delays.append(max(f["t"] for f in mine) - clip.speech_end)
        during = [r for r in interims if r["start"] < clip.end and r["end"] > clip.start]
        interim_n += len(during)
        interim_right += sum(merge.get(r["label"], r["label"]) == clip.label for r in during)
        row = {"path": clip.path, "label": clip.label, "live": label, "finals": len(mine)}
        if files is not None:
            f = files.get(clip.path) or {}
            row["file"] = merge.get(f.get("label"), f.get("label"))
        rows.append(row)
    pauses = [(a.end + PAUSE_GUARD_SECONDS, b.start) for a, b in zip(placed, placed[1:])
              if b.start > a.end + PAUSE_GUARD_SECONDS]
    in_pause = [r for r in results if r["event"] != "final"
                and any(s <= r["t"] <= e for s, e in pauses)]
    n = len(placed)
    out: dict[str, Any] = {
        "clips": n,
        "live_accuracy": sum(r["live"] == r["label"] for r in rows) / n if n else None,
        "clips_without_final": int(sum(k == 0 for k in finals_per_clip)),
        "clips_with_one_final": float(np.mean([k == 1 for k in finals_per_clip])) if n else None,
        "finals": len(finals),
        "interim_accuracy": interim_right / interim_n if interim_n else None,
        "interims": interim_n,
        "pause_results": len(in_pause),
        "pause_no_speech": (float(np.mean([r["event"] == "no_speech" for r in in_pause]))
                            if in_pause else None),
        "final_after_speech_end_s": _seconds(delays),
        "per_clip": rows,
    }
    if files is not None:
        out["file_accuracy"] = sum(r["file"] == r["label"] for r in rows) / n if n else None
        out["live_equals_file"] = (sum(r["file"] == r["live"] for r in rows) / n) if n else None
        out["files_without_result"] = int(sum(r["file"] is None for r in rows))
    return out


def measure(clips: Sequence[tuple[str, str]], model: str, directory: Path, *, seed: int = 0,
            threads: int = 1, hop_seconds: float | None = None,
            merge: dict[str, str] | None = None, keep: bool = False,
            progress: Callable[[str], None] | None = None
            ) -> tuple[dict[str, Any], dict[str, dict]]:
    """The whole live measurement of one model on ``(path, class label)`` clips: the
    recording (in ``directory``), ``listen`` on it, ``predict`` on the clips; the scores and
    ``predict``'s result per file. ``keep``: leave the recording (``live.wav``) there."""
    say = progress or (lambda _m: None)
    rec = directory / "live.wav"
    placed = write_recording(rec, clips, seed=seed)
    audio_seconds = placed[-1].end + PAUSE_SECONDS[0] if placed else 0.0
    say(f"live: {len(placed)} clips as one {audio_seconds / 60:.1f}-minute recording through"
        " edge-ser listen --file --fast --json")
    results, summary, run = run_listen(rec, model, threads=threads, hop_seconds=hop_seconds)
    say(f"live: edge-ser predict on the same {len(placed)} clips as files")
    files, prun = run_predict([c.path for c in placed], model)
    scored = score_live(results, placed, files, merge=merge)
    scored.update(
        audio_seconds=summary.get("audio_seconds"), hop_ms_mean=summary.get("hop_ms_mean"),
        hop_ms_max=summary.get("hop_ms_max"), overruns=summary.get("overruns"),
        summary=summary, listen_command=shown(run.command),
        listen_rtf=(run.wall_seconds / summary["audio_seconds"]
                    if summary.get("audio_seconds") else None),
        listen_peak_rss_bytes=run.max_rss_bytes,
        predict_command=shown(prun.command[:len(prun.command) - len(placed)]) + " FILE...",
        predict_peak_rss_bytes=prun.max_rss_bytes, seed=seed,
        room_db=ROOM_DB, pause_seconds=list(PAUSE_SECONDS))
    if not keep:
        rec.unlink()
    return scored, files


def hour(clips: Sequence[tuple[str, str]], model: str, directory: Path, *,
         seconds: float = 3600.0, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    """Peak RSS and wall time of ``predict`` and ``listen --file --fast`` on one long
    recording (``seconds``, clips repeated with pauses) written into ``directory``."""
    rec = directory / "hour.wav"
    placed = write_recording(rec, clips, seed=seed, total_seconds=seconds)
    audio = placed[-1].end + PAUSE_SECONDS[0]
    results, summary, lrun = run_listen(rec, model, threads=threads)
    files, prun = run_predict([str(rec)], model)
    f = files.get(str(rec)) or {}
    out = {
        "audio_seconds": audio, "clips": len(placed), "wav_bytes": rec.stat().st_size,
        "listen": {"command": shown(lrun.command), "peak_rss_bytes": lrun.max_rss_bytes,
                   "wall_seconds": lrun.wall_seconds, "rtf": lrun.wall_seconds / audio,
                   "finals": sum(r["event"] == "final" for r in results),
                   "hops": summary.get("hops"), "overruns": summary.get("overruns")},
        "predict": {"command": shown(prun.command), "peak_rss_bytes": prun.max_rss_bytes,
                    "wall_seconds": prun.wall_seconds, "rtf": prun.wall_seconds / audio,
                    "utterances": len(f.get("utterances") or []),
                    "returncode": prun.returncode},
        "budget_bytes": 100 * 2**20,
    }
    rec.unlink()
    return out


def summary_line(live: dict[str, Any]) -> str:
    """One line for people."""
    d = live["final_after_speech_end_s"]
    return (f"live {_f(live['live_accuracy'])} vs files {_f(live.get('file_accuracy'))}"
            f" (agree {_f(live.get('live_equals_file'))}) on {live['clips']} clips;"
            f" interim {_f(live['interim_accuracy'])}; pauses no speech"
            f" {_f(live['pause_no_speech'])}; final after speech end median"
            f" {_f(d['median'], '.2f')} s, max {_f(d['max'], '.2f')} s")


def _f(v: Any, fmt: str = ".3f") -> str:
    return "-" if v is None else format(v, fmt)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from benchmarks.contenders import from_bundle
    from edge.errors import EdgeSerError
    from edge.shipped import resolve_model
    from train.corpora import read_corpus

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a labelled corpus directory")
    ap.add_argument("--model", default=None, help="a .tflite bundle [default: the shipped"
                    " default]")
    ap.add_argument("--clips", type=int, default=0, help="at most this many (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="a directory to keep the recording in")
    ap.add_argument("--json", action="store_true", help="print everything as JSON")
    args = ap.parse_args(argv)
    try:
        model = str(resolve_model(args.model))
        contender = from_bundle(model)
        utts = sorted(read_corpus(args.data).utterances, key=lambda u: str(u.path))
    except EdgeSerError as e:
        print(f"benchmarks.live: {e}", file=sys.stderr)
        return 2
    clips = [(str(u.path), contender.labels[k]) for u in utts
             if (k := contender.class_of(u.label)) is not None]
    if not clips:
        print(f"benchmarks.live: no clips under {args.data} with a label of the model",
              file=sys.stderr)
        return 2
    order = np.random.default_rng(args.seed).permutation(len(clips))
    if args.clips:
        order = order[:args.clips]
    clips = [clips[i] for i in order]
    merge = ({"calm": "neutral"} if "calm" in contender.labels
             and "calm" not in {c[1] for c in clips} else {})
    with tempfile.TemporaryDirectory(prefix="ser-live-") as tmp:
        directory = Path(args.keep) if args.keep else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        try:
            scored, _ = measure(clips, model, directory, seed=args.seed, merge=merge,
                                keep=bool(args.keep),
                                progress=lambda m: print(m, file=sys.stderr, flush=True))
        except (EdgeSerError, RuntimeError, OSError) as e:  # a clip, listen or predict failing
            print(f"benchmarks.live: {e}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(scored))
    else:
        print(summary_line(scored))
        print(json.dumps({k: v for k, v in scored.items() if k not in ("per_clip", "summary")},
                         indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
