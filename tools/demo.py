"""``make demo``: edge-ser's live recogniser on the shipped default int8 model.

With a microphone (``--mic``, or an interactive terminal that has an input device) this is
``edge-ser listen`` on it, until Ctrl-C. Without one (CI, a headless box) it replays real
speech as if it were live: a few RAVDESS clips of different emotions from ``SER_DATA``, joined
into one recording with pauses between them and a low noise floor under everything (a room is
never digitally silent), streamed through ``edge-ser listen --file TRACK --fast --json`` (the
command a user types, the same code path as a microphone). It prints the live track as it
comes, then one row per clip: the true emotion, the emotion the stream reported for it (the
majority over the windows that hold most of the clip's speech) and whether the pauses were
reported as ``speech: false``.

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
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from edge.audio import load, write_wav
from edge.bundle import Bundle
from edge.clip import ENERGY_FRAME_SECONDS, ENERGY_HOP_SECONDS, TOP_DB, frame_energy_db
from edge.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    ConfigError,
    EdgeSerError,
)
from edge.shipped import load_model_bundle
from train.corpora import EMOTIONS, Utterance, read_ravdess

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ravdess-speech-16k"
DATA_ENV = "SER_DATA"

GAP_SECONDS = 2.5
"""Pause between clips, seconds. RAVDESS clips carry about 1 s of silence before the speech
and 0.5-1 s after it (less where breaths are audible), so the speech of neighbouring clips is
about 3.5-4.5 s apart: room for a 3 s window with no speech in it, in every pause."""
LEAD_SECONDS = 2.0
"""Noise before the first clip and after the last, seconds."""
NOISE_DB = -70.0
"""RMS level of the white noise floor under the whole track, dBFS (a quiet room; the level
edge-ser's training windows carry)."""
SOUND_MARGIN_DB = 6.0
"""A clip's frames this much above the noise floor are sound (a pause holds none of them)."""
MIN_OVERLAP_SECONDS = 0.5
"""A window counts for a clip when it holds at least this much of the clip's speech."""
NOISE_SEED = 7


@dataclass(frozen=True)
class Placed:
    """A clip in the track, times in seconds from the start of the track."""

    utterance: Utterance
    start: float
    end: float
    speech_start: float
    """First and last frame within ``TOP_DB`` of the clip's loudest frame."""
    speech_end: float
    sound_start: float
    """First and last frame louder than the noise floor by ``SOUND_MARGIN_DB``: breaths and
    the tails of words included (at least the speech)."""
    sound_end: float


@dataclass(frozen=True)
class ClipOutcome:
    """What the stream reported while one clip played."""

    placed: Placed
    predicted: str | None
    """Majority label over the clip's windows with speech; None when none had speech."""
    windows: int
    """Windows that hold at least ``MIN_OVERLAP_SECONDS`` of this clip's speech (more than
    of any other clip's)."""
    speech_windows: int
    votes: dict[str, int]

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
    actor, preferring ``prefer_speakers`` when any are present: statement 1, first
    repetition, strong intensity when the emotion has one (neutral has not).
    """
    emotions = [e for e in EMOTIONS if e in labels]
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    preferred = set(prefer_speakers)
    speakers = sorted(s for s in by_speaker if s in preferred) or sorted(by_speaker)
    if not emotions or not speakers:
        return []

    def rank(u: Utterance) -> tuple:
        return (u.intensity != "strong", u.statement != "Kids are talking by the door",
                u.path.name)

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


def active_span(x: np.ndarray, rate: int, *, threshold_db: float | None = None,
                ) -> tuple[float, float]:
    """Start and end of the active part of a clip, seconds: the first and last frame (25 ms
    every 10 ms) louder than ``threshold_db`` dBFS, or, by default, within ``TOP_DB`` dB of
    the loudest frame (the speech, by the rule of the clip onset in ``edge.clip``). A clip
    with no frame above the threshold gives its speech."""
    frame = max(1, int(round(ENERGY_FRAME_SECONDS * rate)))
    hop = max(1, int(round(ENERGY_HOP_SECONDS * rate)))
    db = frame_energy_db(x, frame_length=frame, hop_length=hop)
    active = np.flatnonzero(db >= (db.max() - TOP_DB if threshold_db is None else threshold_db))
    if active.size == 0:
        return active_span(x, rate)
    return active[0] * hop / rate, min(x.size, active[-1] * hop + frame) / rate


def build_track(clips: Sequence[tuple[Utterance, np.ndarray]], rate: int, *,
                gap_seconds: float = GAP_SECONDS, lead_seconds: float = LEAD_SECONDS,
                noise_db: float = NOISE_DB, seed: int = NOISE_SEED,
                ) -> tuple[np.ndarray, list[Placed]]:
    """One recording: lead, clip, gap, clip, ..., lead; white noise at ``noise_db`` dBFS
    under all of it.

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
        s0, s1 = active_span(x, rate)
        a0, a1 = active_span(x, rate, threshold_db=noise_db + SOUND_MARGIN_DB)
        at = position / rate
        placed.append(Placed(utterance, at, at + x.size / rate, at + s0, at + s1,
                             at + min(a0, s0), at + max(a1, s1)))
        pieces.append(np.asarray(x, dtype=np.float32))
        position += x.size
    pieces.append(np.zeros(lead, dtype=np.float32))
    track = np.concatenate(pieces)
    rng = np.random.default_rng(seed)
    track += (rng.standard_normal(track.size) * 10.0 ** (noise_db / 20.0)).astype(np.float32)
    return np.clip(track, -1.0, 1.0), placed


# --------------------------------------------------------------------------------------
# Mapping the stream's windows to clips
# --------------------------------------------------------------------------------------


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def clip_of_window(t: float, window_seconds: float, placed: Sequence[Placed], *,
                   min_overlap: float = MIN_OVERLAP_SECONDS) -> int | None:
    """Index of the clip whose speech the window ending at ``t`` holds most of (at least
    ``min_overlap`` seconds), else None."""
    shares = [overlap(t - window_seconds, t, p.speech_start, p.speech_end) for p in placed]
    if not shares:
        return None
    best = int(np.argmax(shares))
    return best if shares[best] >= min_overlap else None


def pause_of_window(t: float, window_seconds: float, placed: Sequence[Placed], *,
                    margin: float = 0.0) -> int | None:
    """``i`` when the window ending at ``t`` lies between the sound of clips ``i`` and
    ``i + 1`` (with ``margin`` seconds to spare on both sides), holding only the noise
    floor; else None (the lead-in and lead-out are not pauses)."""
    for i in range(len(placed) - 1):
        if (placed[i].sound_end <= t - window_seconds - margin
                and t + margin <= placed[i + 1].sound_start):
            return i
    return None


def is_pause(t: float, window_seconds: float, placed: Sequence[Placed], *,
             margin: float = 0.0) -> bool:
    """Does the window ending at ``t`` lie in a pause (see :func:`pause_of_window`)?"""
    return pause_of_window(t, window_seconds, placed, margin=margin) is not None


def outcomes(hops: Sequence[dict[str, Any]], placed: Sequence[Placed],
             window_seconds: float, *, shift: float = 0.0) -> list[ClipOutcome]:
    """Per clip: the majority label over its windows with speech.

    ``hops`` are ``edge-ser listen --json`` objects; a hop's window is ``[t - window, t]`` in
    the stream, ``t - shift`` in the track (``shift``: where the track starts in the stream).
    Ties go to the label with the larger summed confidence.
    """
    votes: list[Counter] = [Counter() for _ in placed]
    weight: list[Counter] = [Counter() for _ in placed]
    counts = [[0, 0] for _ in placed]
    for hop in hops:
        i = clip_of_window(float(hop["t"]) - shift, window_seconds, placed)
        if i is None:
            continue
        counts[i][0] += 1
        if hop.get("speech") and hop.get("label"):
            counts[i][1] += 1
            votes[i][hop["label"]] += 1
            weight[i][hop["label"]] += float(hop.get("confidence") or 0.0)
    result = []
    for i, p in enumerate(placed):
        ranked = sorted(votes[i], key=lambda k: (-votes[i][k], -weight[i][k], k))
        result.append(ClipOutcome(p, ranked[0] if ranked else None, counts[i][0],
                                  counts[i][1], dict(votes[i])))
    return result


def pause_hops(hops: Sequence[dict[str, Any]], placed: Sequence[Placed],
               window_seconds: float, *, shift: float = 0.0,
               margin: float = 0.0) -> list[dict[str, Any]]:
    """The hops whose window lies in a pause between clips (see :func:`is_pause`)."""
    return [h for h in hops
            if is_pause(float(h["t"]) - shift, window_seconds, placed, margin=margin)]


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


def track_line(hop: dict[str, Any], placed: Sequence[Placed], window_seconds: float) -> str:
    """One line of the live track: time, which clip's speech the window holds, the result."""
    t = float(hop["t"])
    i = clip_of_window(t, window_seconds, placed)
    where = f"clip {i + 1} ({placed[i].utterance.label})" if i is not None else (
        "pause" if is_pause(t, window_seconds, placed) else "")
    if not hop.get("speech"):
        said = "· no speech"
    else:
        confidence = float(hop.get("confidence") or 0.0)
        filled = int(round(confidence * 10))
        bar = "#" * filled + "-" * (10 - filled)
        flag = "  (uncertain)" if hop.get("uncertain") else ""
        said = f"{hop.get('label') or '?':<10} {confidence:4.2f} {bar}{flag}"
    return f"{t:6.1f} s  {where:<20}  {said}"


def report(results: Sequence[ClipOutcome], pauses: Sequence[dict[str, Any]],
           pauses_covered: int, training_note: str) -> str:
    """The closing table, the pause verdict and the accuracy line."""
    lines = ["", f"{'#':>2}  {'clip':<28}  {'true':<10}  {'predicted':<10}  windows", ""]
    for i, r in enumerate(results, 1):
        u = r.placed.utterance
        mark = "ok" if r.correct else "--"
        lines.append(f"{i:>2}  {u.path.name:<28}  {u.label:<10}  {r.predicted or '-':<10}"
                     f"  {r.speech_windows}/{r.windows} with speech  {mark}")
    right = sum(r.correct for r in results)
    silent = sum(not h.get("speech") for h in pauses)
    lines += [
        "",
        f"clips right: {right} of {len(results)}",
        f"pauses: {silent} of {len(pauses)} windows that hold only the noise floor between"
        f" clips ({pauses_covered} of {len(results) - 1} pauses) said `speech: false`",
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
@click.option("--data", type=click.Path(path_type=Path), envvar=DATA_ENV,
              default=DEFAULT_DATA, show_default="$SER_DATA or ../shared/data/...",
              help="RAVDESS speech directory (Actor_XX/*.flac or *.wav).")
@click.option("--model", "-m", metavar="MODEL",
              help="Model bundle path or shipped name.  [default: the shipped default]")
@click.option("--clips", "n_clips", type=click.IntRange(1, 32), default=8, show_default=True,
              help="Clips to replay, each of a different emotion (cycling after eight).")
@click.option("--gap", type=click.FloatRange(min=0.0), default=GAP_SECONDS,
              show_default=True, help="Pause between clips, seconds.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Start with the offset-th actor (another set of speakers).")
@click.option("--mic/--replay", default=None,
              help="Listen live to the microphone, or replay clips.  [default: live on an"
                   " interactive terminal with an input device, else replay]")
@click.option("--json", "as_json", is_flag=True,
              help="Replay only: print one JSON report on stdout instead of the track and"
                   " table.")
def main(data: Path, model: str | None, n_clips: int, gap: float, offset: int,
         mic: bool | None, as_json: bool) -> None:
    """The edge-ser demo: live emotion from a microphone, or a replay of real speech.

    \b
    Live (--mic, or by default on an interactive terminal with an input device):
      `edge-ser listen` on the default microphone with the model; Ctrl-C stops it.
    Replay (--replay, or by default without a terminal or a microphone):
      CLIPS RAVDESS clips of different emotions from --data, with GAP seconds of quiet
      noise between them, streamed through `edge-ser listen --file TRACK --fast --json`;
      prints the track as it is recognised, then per clip the true and the reported
      emotion (the majority of the windows holding the clip's speech), whether the
      pauses said `speech: false`, and whether the speakers were in the model's training.

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
        replay(data, bundle, n_clips=n_clips, gap=gap, offset=offset, as_json=as_json)
    except EdgeSerError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)


def replay(data: Path, bundle: Bundle, *, n_clips: int, gap: float, offset: int,
           as_json: bool) -> None:
    if not data.is_dir():
        raise ConfigError(f"no RAVDESS data at {data}; set {DATA_ENV} to the directory of"
                           " Actor_XX folders (or pass --data)")
    meta = bundle.metadata
    rate = meta.features.frontend.sample_rate
    window = meta.features.window_seconds
    corpus = read_ravdess(data)
    if not corpus.utterances:
        raise ConfigError(f"no RAVDESS speech files under {data}")
    trained = set(meta.training.get("train_speakers") or []) | set(
        meta.training.get("val_speakers") or [])
    held_out = [s for s in corpus.speakers if trained and s not in trained]
    chosen = choose_clips(corpus.utterances, n_clips, labels=meta.labels,
                          prefer_speakers=held_out, offset=offset)
    if not chosen:
        raise ConfigError(f"no clips under {data} carry the model's labels"
                           f" ({', '.join(meta.labels)})")
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
        hops = []
        summary: dict[str, Any] = {}
        for obj in stream_listen(wav, bundle.path):
            if "summary" in obj:
                summary = obj["summary"]
                continue
            hops.append(obj)
            if not as_json:
                click.echo(track_line(obj, placed, window), file=out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = outcomes(hops, placed, window)
    pauses = pause_hops(hops, placed, window)
    covered = len({pause_of_window(float(h["t"]), window, placed) for h in pauses})
    if as_json:
        click.echo(json.dumps({
            "model": str(bundle.path),
            "track_seconds": round(track.size / rate, 3),
            "clips": [{
                "file": r.placed.utterance.path.name, "speaker": r.placed.utterance.speaker,
                "true": r.placed.utterance.label, "predicted": r.predicted,
                "correct": r.correct, "windows": r.windows,
                "speech_windows": r.speech_windows, "votes": r.votes,
                "start": round(r.placed.start, 3), "end": round(r.placed.end, 3),
            } for r in results],
            "pauses": {"pauses": len(placed) - 1, "covered": covered, "windows": len(pauses),
                       "speech_false": sum(not h.get("speech") for h in pauses)},
            "windows": len(hops),
            "note": note,
        }))
    else:
        click.echo(report(results, pauses, covered, note))
        if summary.get("wall_seconds"):
            click.echo(f"listen: {summary['audio_seconds']:.1f} s of audio in"
                       f" {summary['wall_seconds']:.1f} s, {summary['overruns']} overruns")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(prog_name="demo")
