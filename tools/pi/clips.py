"""The audio pi-check feeds both sides: RAVDESS clips chosen, decoded to WAV and joined.

Runs on the host, in the project's venv (``HOST_PY``), before anything runs in the emulated
Pi: the Pi side only ever gets the WAV files this writes, so this module may use the host
side. RAVDESS names are parsed by :func:`train.corpora.read_ravdess` (the one parser of them);
the edge runtime under test never imports this.

    python tools/pi/clips.py select DATA N            N clips, one a line
    python tools/pi/clips.py pair DATA                two clips to join, one a line
    python tools/pi/clips.py to-wav DIR FILE...       WAV copies (FLAC decoded, 16-bit)
    python tools/pi/clips.py concat OUT NAME...       WAVs (beside OUT) end to end
    python tools/pi/clips.py join OUT A B             A's speech then B's, ~0.2 s between

Exit status: 0, or 1 with one line on stderr (``pi-check: ...``).
"""

from __future__ import annotations

import shutil
import sys
import wave
from pathlib import Path

import numpy as np

from train.corpora import EMOTIONS, Utterance, actor_number, read_ravdess


class ClipError(Exception):
    """Why the clips cannot be prepared (one line)."""


def speech_clips(root: Path) -> list[Utterance]:
    """RAVDESS speech (not song) under ``root``, sorted by path."""
    found = [u for u in read_ravdess(root).utterances if u.channel == "speech"]
    if not found:
        raise ClipError(f"no RAVDESS speech files under {root}")
    return sorted(found, key=lambda u: u.path)


def select(root: Path, n: int) -> list[Path]:
    """``n`` clips over all emotions, the highest-numbered actors (held out) first."""
    by: dict[tuple[int, int], list[Path]] = {}
    for u in speech_clips(root):
        by.setdefault((actor_number(u.speaker), EMOTIONS.index(u.label)), []).append(u.path)
    actors = sorted({a for a, _ in by}, reverse=True)
    emotions = sorted({e for _, e in by})
    chosen: list[Path] = []
    i = 0
    while len(chosen) < n and i < 8 * n:
        a, e = actors[i % len(actors)], emotions[i % len(emotions)]
        pool = [p for p in by.get((a, e), []) if p not in chosen]
        if pool:
            chosen.append(pool[(i // len(emotions)) % len(pool)])
        i += 1
    return chosen


def pair(root: Path) -> tuple[Path, Path]:
    """Statements 1 and 2 of one actor, emotion and intensity (the first repetition): the
    last actor first, strong angry first (long, loud sentences)."""
    by: dict[tuple[int, int, str], dict[str, Path]] = {}
    for u in speech_clips(root):  # sorted: the first repetition of each comes first
        key = (actor_number(u.speaker), EMOTIONS.index(u.label), u.intensity or "")
        by.setdefault(key, {}).setdefault(u.statement or "", u.path)
    angry = EMOTIONS.index("angry")
    pairs = sorted((k for k, v in by.items() if len(v) == 2),
                   key=lambda k: (-k[0], (k[1], k[2]) != (angry, "strong"), k))
    if not pairs:
        raise ClipError(f"no actor with both RAVDESS statements under {root}")
    first, second = sorted(by[pairs[0]].values(), key=lambda p: p.stem.split("-")[4])
    return first, second


def to_wav(out: Path, sources: list[Path]) -> None:
    """Each source into ``out``: a WAV copied as it is, anything else decoded to 16-bit WAV
    (the edge reads WAV itself; FLAC would need soundfile on the Pi)."""
    for src in sources:
        if src.suffix.lower() == ".wav":
            shutil.copyfile(src, out / src.name)
            continue
        try:
            import soundfile
        except ImportError:
            raise ClipError("the clips are not WAV and the host venv has no soundfile to"
                            " decode them") from None
        data, rate = soundfile.read(str(src), dtype="int16", always_2d=True)
        soundfile.write(str(out / (src.stem + ".wav")), data, rate, subtype="PCM_16")


def read_pcm(path: Path) -> tuple[tuple[int, int, int], bytes]:
    """(channels, sample width, rate) and the frames of a WAV."""
    with wave.open(str(path), "rb") as w:
        return (w.getnchannels(), w.getsampwidth(), w.getframerate()), \
            w.readframes(w.getnframes())


def write_pcm(path: Path, params: tuple[int, int, int], frames: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(params[0])
        w.setsampwidth(params[1])
        w.setframerate(params[2])
        w.writeframes(frames)


def concat(out: Path, names: list[str]) -> None:
    """The WAVs ``names`` (beside ``out``) end to end, into ``out``; all alike."""
    params, frames = None, []
    for name in names:
        p, f = read_pcm(out.parent / name)
        if params is not None and p != params:
            raise ClipError(f"{name} is {p}, the others {params}: cannot join them")
        params = p
        frames.append(f)
    write_pcm(out, params, b"".join(frames))


def speech_span(x: np.ndarray, rate: int) -> tuple[int, int]:
    """First and last sample of the 10 ms frames within 40 dB of the loudest, widened by
    100 ms either side."""
    hop, pad = rate // 100, rate // 10
    n = len(x) // hop
    rms = np.sqrt(np.mean(x[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1))
    db = 20 * np.log10(rms + 1e-9)
    on = np.flatnonzero(db > db.max() - 40.0)
    return max(0, on[0] * hop - pad), min(len(x), (on[-1] + 1) * hop + pad)


def join(out: Path, a: Path, b: Path) -> None:
    """``a``'s speech then ``b``'s with only ~0.2 s of their quiet between (less than the
    endpointer's 0.4 s pause): one utterance longer than a model window, hence several
    windows of scores. ``a``'s leading and ``b``'s trailing quiet are kept."""
    clips, params = [], None
    for path in (a, b):
        p, frames = read_pcm(path)
        if p[:2] != (1, 2) or (params is not None and p != params):
            raise ClipError(f"{path} is {p}: cannot join it (want mono 16-bit, alike)")
        params = p
        clips.append(np.frombuffer(frames, dtype="<i2"))
    x, y = clips
    rate = params[2]
    joined = np.concatenate([x[: speech_span(x, rate)[1]], y[speech_span(y, rate)[0]:]])
    write_pcm(out, params, joined.astype("<i2").tobytes())


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    try:
        if command == "select" and len(args) == 2:
            print("\n".join(map(str, select(Path(args[0]), int(args[1])))))
        elif command == "pair" and len(args) == 1:
            print("\n".join(map(str, pair(Path(args[0])))))
        elif command == "to-wav" and args:
            to_wav(Path(args[0]), [Path(a) for a in args[1:]])
        elif command == "concat" and len(args) >= 2:
            concat(Path(args[0]), args[1:])
        elif command == "join" and len(args) == 3:
            join(*map(Path, args))
        else:
            print(__doc__.split("\n\n")[2], file=sys.stderr)
            return 2
    except ClipError as e:
        print(f"pi-check: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
