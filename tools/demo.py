"""``make demo``: edge-ser's live recogniser on the shipped default int8 model.

With a microphone (``--mic``, or an interactive terminal that has an input device) this is
``edge-ser listen`` on it, until Ctrl-C. Without one (CI, a headless box) it replays real
speech as if it were live: clips of different emotions joined into one recording with pauses
between them and a quiet room's noise under everything, streamed through
``edge-ser listen --file TRACK --fast --json`` (the command a user types, the same code path
as a microphone). It prints each utterance as ``listen`` finishes it, then one row per clip:
the true emotion and the emotion of the utterances ``listen`` found in it, and whether the
pauses were reported as ``no_speech``. It picks speakers the model never heard when the data
has any (the model's metadata names whom it was trained on), and says plainly when it only
has training speakers.

    python tools/demo.py                 # what `make demo` runs
    python tools/demo.py --clips 3 --json

The audio is licensed: the track is written to a temporary directory and deleted.
Exit codes: 0 ok, 1 failure, 2 bad input (no data, a bad model), 130 Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks.live import speech_span
from edge.audio import load, write_wav
from edge.bundle import Bundle
from edge.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    ConfigError,
    EdgeSerError,
)
from edge.frontend import FrontendConfig
from edge.predict import speech_weighted
from edge.shipped import load_model_bundle
from train.corpora import EMOTIONS, Utterance, read_corpus

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ravdess-speech-16k"
DATA_ENV = "SER_DATA"
OTHER_DATA = ("savee-16k",)
"""Corpora beside the default one that the demo also draws speakers from when present."""

GAP_SECONDS = 2.5
"""Pause between clips, seconds (RAVDESS clips also carry about 1 s of silence before the
speech and 0.5-1 s after it)."""
LEAD_SECONDS = 2.0
"""Noise before the first clip and after the last, seconds."""
NOISE_DB = -60.0
"""RMS level of the white noise under the whole track, dBFS: a quiet room."""
PAUSE_MARGIN_SECONDS = 0.6
"""A result counts as over a pause from this long after one clip's speech (the endpointer's
hangover) to the next clip's, seconds."""
NOISE_SEED = 7


@dataclass(frozen=True)
class Placed:
    """A clip in the track, times in seconds from the start of the track."""

    utterance: Utterance
    start: float
    end: float
    speech_start: float
    """First and last frame of the clip's speech (:func:`benchmarks.live.speech_span`)."""
    speech_end: float


@dataclass(frozen=True)
class ClipOutcome:
    """What the stream reported while one clip played."""

    placed: Placed
    predicted: str | None
    """The emotion of the utterances found in the clip (their speech-weighted average, as
    ``edge-ser predict`` combines a file's utterances); None when none was found."""
    utterances: int
    confidence: float | None

    @property
    def correct(self) -> bool:
        return self.predicted == self.placed.utterance.label


# --------------------------------------------------------------------------------------
# Choosing clips and building the track (pure functions)
# --------------------------------------------------------------------------------------


def choose_clips(utterances: Sequence[Utterance], n: int, *, labels: Sequence[str],
                 prefer_speakers: Iterable[str] = (), offset: int = 0) -> list[Utterance]:
    """``n`` clips of different emotions (cycling when ``n`` exceeds them), deterministically.

    Emotion ``i`` (in RAVDESS order, restricted to ``labels``) comes from the ``i + offset``-th
    speaker, only ``prefer_speakers`` when any are present: RAVDESS statement 1, first
    repetition, strong intensity when the emotion has one (neutral has not).
    """
    emotions = [e for e in EMOTIONS if e in labels]
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    preferred = set(prefer_speakers)
    speakers = sorted(s for s in by_speaker if s in preferred) or sorted(by_speaker)
    present = {u.label for s in speakers for u in by_speaker[s]}
    emotions = [e for e in emotions if e in present]  # SAVEE has no calm, song no disgust
    if not emotions or not speakers:
        return []

    def rank(u: Utterance) -> tuple:
        return (u.channel == "song", u.intensity not in ("strong", None),
                u.statement not in ("Kids are talking by the door", None), u.path.name)

    chosen: list[Utterance] = []
    for i in range(n):
        emotion = emotions[i % len(emotions)]
        for k in range(len(speakers)):  # the next actor who has this emotion
            speaker = speakers[(i + offset + k) % len(speakers)]
            pool = sorted((u for u in by_speaker[speaker] if u.label == emotion
                           and u not in chosen), key=rank)
            if pool:
                chosen.append(pool[0])
                break
    return chosen


def build_track(clips: Sequence[tuple[Utterance, np.ndarray]], rate: int, *,
                gap_seconds: float = GAP_SECONDS, lead_seconds: float = LEAD_SECONDS,
                noise_db: float = NOISE_DB, seed: int = NOISE_SEED,
                ) -> tuple[np.ndarray, list[Placed]]:
    """One recording: lead, clip, gap, clip, ..., lead; white noise at ``noise_db`` dBFS
    under all of it (a room is never digitally silent).

    Parameters
    ----------
    clips : (utterance, samples) pairs; samples mono float32 at ``rate`` Hz

    Returns
    -------
    track : np.ndarray [shape=(n_samples,)], float32 in [-1, 1]
    placed : where each clip and its speech are, seconds
    """
    lead, gap = int(round(lead_seconds * rate)), int(round(gap_seconds * rate))
    pieces: list[np.ndarray] = [np.zeros(lead, dtype=np.float32)]
    placed = []
    position = lead
    for i, (utterance, x) in enumerate(clips):
        if i:
            pieces.append(np.zeros(gap, dtype=np.float32))
            position += gap
        s0, s1 = speech_span(x, FrontendConfig(sample_rate=rate, fmax=min(8000.0, rate / 2)))
        at = position / rate
        placed.append(Placed(utterance, at, at + x.size / rate, at + s0, at + s1))
        pieces.append(np.asarray(x, dtype=np.float32))
        position += x.size
    pieces.append(np.zeros(lead, dtype=np.float32))
    track = np.concatenate(pieces)
    rng = np.random.default_rng(seed)
    track += (rng.standard_normal(track.size) * 10.0 ** (noise_db / 20.0)).astype(np.float32)
    return np.clip(track, -1.0, 1.0), placed


# --------------------------------------------------------------------------------------
# Mapping the stream's utterances to clips
# --------------------------------------------------------------------------------------


def outcomes(results: Sequence[dict[str, Any]], placed: Sequence[Placed], *,
             shift: float = 0.0) -> list[ClipOutcome]:
    """Per clip: the final results (``edge-ser listen --json`` objects with ``event``
    ``final``) whose utterance overlaps the clip's audio, combined as ``predict`` combines
    a file's utterances. ``shift``: where the track starts in the stream, seconds."""
    finals = [r for r in results if r.get("event") == "final"]
    out = []
    for p in placed:
        mine = [f for f in finals
                if f["start"] - shift < p.end and f["end"] - shift > p.start]
        if not mine:
            out.append(ClipOutcome(p, None, 0, None))
            continue
        probs = speech_weighted(mine)
        top = max(probs, key=probs.get)
        out.append(ClipOutcome(p, top, len(mine), probs[top]))
    return out


def pause_results(results: Sequence[dict[str, Any]], placed: Sequence[Placed], *,
                  shift: float = 0.0, margin: float = PAUSE_MARGIN_SECONDS
                  ) -> list[dict[str, Any]]:
    """The per-hop results (``no_speech`` or ``interim``) decided in a pause between two
    clips' speech, ``margin`` seconds after the first."""
    spans = [(a.speech_end + margin, b.speech_start) for a, b in zip(placed, placed[1:])]
    return [r for r in results if r.get("event") in ("no_speech", "interim")
            and any(s <= float(r["t"]) - shift <= e for s, e in spans)]


# --------------------------------------------------------------------------------------
# Running edge-ser
# --------------------------------------------------------------------------------------


def edge_ser_command() -> list[str]:
    """The installed console script beside this Python, else the module through Python."""
    script = Path(sys.executable).with_name("edge-ser")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from edge.cli import main; main()"]


def has_microphone() -> bool:
    """Does ``edge-ser devices`` list any input device?"""
    try:
        run = subprocess.run([*edge_ser_command(), "devices", "--json"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0 and any(line.strip() for line in run.stdout.splitlines())


def stream_listen(track: Path, model: Path, *, hop: float | None = None,
                  ) -> Iterator[dict[str, Any]]:
    """Run ``edge-ser listen --file TRACK --fast --json`` and yield its objects as they come
    (the final ``{"summary": ...}`` too). Raises :class:`EdgeSerError` when it fails."""
    command = [*edge_ser_command(), "listen", "--file", str(track), "--fast", "--json",
               "--model", str(model)]
    if hop is not None:
        command += ["--hop", str(hop)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            if line.strip():
                yield json.loads(line)
        stderr = proc.stderr.read()
        code = proc.wait()
    if code != 0:
        error = EdgeSerError(stderr.strip().splitlines()[-1] if stderr.strip()
                             else f"edge-ser listen exited with {code}")
        error.exit_code = code if code in (EXIT_BAD_INPUT, EXIT_INTERRUPTED) else EXIT_FAILURE
        raise error


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def track_line(result: dict[str, Any], placed: Sequence[Placed]) -> str:
    """One line per finished utterance: its span, which clip it is in, the emotion."""
    start, end = float(result["start"]), float(result["end"])
    inside = [i for i, p in enumerate(placed) if start < p.end and end > p.start]
    where = (f"clip {inside[0] + 1} ({placed[inside[0]].utterance.label})" if inside
             else "outside the clips")
    confidence = float(result.get("confidence") or 0.0)
    filled = int(round(confidence * 10))
    bar = "#" * filled + "-" * (10 - filled)
    flag = "  (uncertain)" if result.get("uncertain") else ""
    return (f"{start:6.1f}-{end:5.1f} s  {where:<22}  {result.get('label') or '?':<10}"
            f" {confidence:4.2f} {bar}{flag}")


def report(results: Sequence[ClipOutcome], pauses: Sequence[dict[str, Any]],
           training_note: str) -> str:
    """The closing table, the pause verdict and the accuracy line."""
    lines = ["", f"{'#':>2}  {'clip':<28}  {'true':<10}  {'heard':<10}  utterances", ""]
    for i, r in enumerate(results, 1):
        u = r.placed.utterance
        mark = "ok" if r.correct else "--"
        lines.append(f"{i:>2}  {u.path.name:<28}  {u.label:<10}  {r.predicted or '-':<10}"
                     f"  {r.utterances}  {mark}")
    right = sum(r.correct for r in results)
    silent = sum(h.get("event") == "no_speech" for h in pauses)
    lines += [
        "",
        f"clips right: {right} of {len(results)}",
        f"pauses: {silent} of {len(pauses)} results decided in the pauses between clips said"
        " no_speech",
        training_note,
    ]
    return "\n".join(lines)


def training_note(bundle: Bundle, speakers: Iterable[str]) -> str:
    """Are the demo's speakers training speakers of the model? Said plainly either way."""
    trained = set(bundle.metadata.training.get("train_speakers") or [])
    trained |= set(bundle.metadata.training.get("val_speakers") or [])
    names = sorted(set(speakers))
    if not trained:
        return ("note: the model's metadata does not list its training speakers; the shipped"
                " models are trained on all shared actors, so these are probably training"
                " speakers: this shows the pipeline at work, not accuracy on new voices.")
    seen = [s for s in names if s in trained]
    if seen:
        return (f"note: {', '.join(seen)} {'is a' if len(seen) == 1 else 'are'} training"
                f" speaker{'' if len(seen) == 1 else 's'} of this model: this shows the"
                " pipeline at work, not accuracy on new voices (see the README's"
                " held-out numbers).")
    return f"note: {', '.join(names)} are held out of this model's training (new voices)."


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def fail(message: str, code: int) -> None:
    click.echo(f"demo: {message}", err=True)
    sys.exit(code)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path),
              help="Corpus directory (repeatable).  [default: $SER_DATA or"
                   " ../shared/data/ravdess-speech-16k, and savee-16k beside it if there]")
@click.option("--model", "-m", metavar="MODEL",
              help="Model bundle path or shipped name.  [default: the shipped default]")
@click.option("--clips", "n_clips", type=click.IntRange(1, 32), default=8, show_default=True,
              help="Clips to replay, each of a different emotion (cycling after eight).")
@click.option("--gap", type=click.FloatRange(min=0.0), default=GAP_SECONDS,
              show_default=True, help="Pause between clips, seconds.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Start with the offset-th speaker (another set of speakers).")
@click.option("--mic/--replay", default=None,
              help="Listen live to the microphone, or replay clips.  [default: live on an"
                   " interactive terminal with an input device, else replay]")
@click.option("--json", "as_json", is_flag=True,
              help="Replay only: print one JSON report on stdout instead of the track and"
                   " table.")
def main(data: tuple[Path, ...], model: str | None, n_clips: int, gap: float, offset: int,
         mic: bool | None, as_json: bool) -> None:
    """The edge-ser demo: live emotion from a microphone, or a replay of real speech.

    \b
    Live (--mic, or by default on an interactive terminal with an input device):
      `edge-ser listen` on the default microphone with the model; Ctrl-C stops it.
    Replay (--replay, or by default without a terminal or a microphone):
      CLIPS clips of different emotions (speakers the model never heard when the data has
      any), with GAP seconds of a quiet room between them, streamed through
      `edge-ser listen --file TRACK --fast --json`; prints each utterance as listen
      finishes it, then per clip the true and the heard emotion, whether the pauses said
      no_speech, and whether the speakers were in the model's training.

    Exit codes: 0 ok, 1 failure, 2 bad input (no data, a bad model), 130 Ctrl-C.
    """
    try:
        bundle = load_model_bundle(model)
    except EdgeSerError as e:
        fail(str(e), e.exit_code)
    if mic is None:
        mic = (not as_json and sys.stdin.isatty() and sys.stdout.isatty()
               and has_microphone())
    if mic:
        click.echo(f"demo: listening to the default microphone with {bundle.path.name};"
                   " speak, Ctrl-C to stop", err=True)
        command = [*edge_ser_command(), "listen", "--model", str(bundle.path)]
        sys.stdout.flush()
        os.execv(command[0], command)  # edge-ser itself gets Ctrl-C and prints its summary
    try:
        replay(data_dirs(data), bundle, n_clips=n_clips, gap=gap, offset=offset,
               as_json=as_json)
    except EdgeSerError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)


def data_dirs(given: tuple[Path, ...]) -> list[Path]:
    """The corpora to draw clips from: ``--data``, else $SER_DATA (or the default) and the
    other shared corpora beside it that exist."""
    if given:
        return list(given)
    first = Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)
    return [first] + [first.parent / n for n in OTHER_DATA if (first.parent / n).is_dir()]


def replay(data: Sequence[Path], bundle: Bundle, *, n_clips: int, gap: float, offset: int,
           as_json: bool) -> None:
    for d in data:
        if not d.is_dir():
            raise ConfigError(f"no speech data at {d}; set {DATA_ENV} to a corpus directory"
                              " (RAVDESS Actor_XX folders) or pass --data")
    meta = bundle.metadata
    rate = meta.features.frontend.sample_rate
    utterances = [u for d in data for u in read_corpus(d).utterances]
    if not utterances:
        raise ConfigError(f"no labelled speech files under {', '.join(map(str, data))}")
    trained = set(meta.training.get("train_speakers") or []) | set(
        meta.training.get("val_speakers") or [])
    held_out = sorted({u.speaker for u in utterances if trained and u.speaker not in trained})
    chosen = choose_clips(utterances, n_clips, labels=meta.labels,
                          prefer_speakers=held_out, offset=offset)
    if not chosen:
        raise ConfigError(f"no clips under {', '.join(map(str, data))} carry the model's"
                          f" labels ({', '.join(meta.labels)})")
    clips = [(u, load(u.path, rate)) for u in chosen]
    track, placed = build_track(clips, rate, gap_seconds=gap)
    note = training_note(bundle, (u.speaker for u in chosen))
    out = sys.stderr if as_json else sys.stdout
    click.echo(f"demo: replaying {len(chosen)} clips ({track.size / rate:.1f} s with pauses)"
               f" through `edge-ser listen --file ... --fast --json` with {bundle.path.name}",
               err=True)
    tmp = Path(tempfile.mkdtemp(prefix="edge-ser-demo-"))
    try:
        wav = write_wav(tmp / "track.wav", track, rate)
        results = []
        summary: dict[str, Any] = {}
        for obj in stream_listen(wav, bundle.path):
            if "summary" in obj:
                summary = obj["summary"]
                continue
            results.append(obj)
            if not as_json and obj.get("event") == "final":
                click.echo(track_line(obj, placed), file=out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_clip = outcomes(results, placed)
    pauses = pause_results(results, placed)
    if as_json:
        click.echo(json.dumps({
            "model": str(bundle.path),
            "track_seconds": round(track.size / rate, 3),
            "clips": [{
                "file": r.placed.utterance.path.name, "speaker": r.placed.utterance.speaker,
                "true": r.placed.utterance.label, "predicted": r.predicted,
                "correct": r.correct, "utterances": r.utterances,
                "confidence": r.confidence,
                "start": round(r.placed.start, 3), "end": round(r.placed.end, 3),
            } for r in per_clip],
            "pauses": {"pauses": len(placed) - 1, "results": len(pauses),
                       "no_speech": sum(h.get("event") == "no_speech" for h in pauses)},
            "finals": sum(r.get("event") == "final" for r in results),
            "held_out_speakers": bool(held_out),
            "note": note,
        }))
    else:
        click.echo(report(per_clip, pauses, note))
        if summary.get("wall_seconds"):
            click.echo(f"listen: {summary['audio_seconds']:.1f} s of audio in"
                       f" {summary['wall_seconds']:.1f} s, {summary['overruns']} overruns")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(prog_name="demo")
