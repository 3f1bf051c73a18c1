"""Instructions per hop and per file, by stage, counted by valgrind's callgrind.

Wall-clock figures on a shared machine move by tens of percent between runs; the number of
instructions a hop executes does not (callgrind counts them on a simulated CPU, whatever else
runs). This module runs the recogniser in a child ``python`` under
``valgrind --tool=callgrind`` and splits the count by stage:

* ``front end``: :class:`edge.frontend.MelStream` on the new audio and the new frames' levels
  (:func:`edge.levels.frame_levels`);
* ``endpointer``: :meth:`edge.endpoint.Endpointer.push`;
* ``model invoke``: the interpreter wrapper's :meth:`edge.interpreter.TfliteModel.invoke`
  (set the input, run the TFLite graph, read the output);
* ``Python glue``: everything else :meth:`edge.recognizer.Recognizer.push` does (the ring
  buffer, the utterance's level, the window's log-mel, cepstra and deltas, the int8 input map,
  probabilities, the result objects).

How: the child calls ``os.getppid()`` (libc's ``getppid``) at every stage boundary and
callgrind dumps its counters before each call (``--dump-before=getppid``), so dump ``k``
holds exactly the instructions between boundary ``k - 1`` and ``k``. A boundary costs about a
thousand instructions (a hop is about a million); they are counted in ``Python glue``.

Per hop: one continuous stretch of real speech (clips cut to their utterances, end to end,
after a second of near silence), pushed one hop at a time after a warm-up on its first
seconds, so that the utterance under way grows to ``max_speech_s``. Per file: one clip's
decoded samples through a recogniser without interims (what ``edge-ser predict`` runs on a
file), pushed at once and finished.

``python -m benchmarks.instructions --help`` runs it alone; ``ser-bench`` runs it for every
int8 bundle and puts the figures (and the predicted Raspberry Pi times, :mod:`benchmarks.pi`)
in its report. Needs valgrind; without it the figures are skipped with a note.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("front end", "endpointer", "model invoke", "Python glue")
GLUE = STAGES[-1]
LEAD_IN_SECONDS = 1.0
"""Quiet before the speech (no-speech hops), seconds."""
ROOM_DB = -90.0
"""Level of the noise under everything: below the endpointer's ``min_level_db``, so the
stream's first second (before it has a noise floor) is not taken for speech."""
WARM_UP_SECONDS = 3.0
"""Audio pushed through a recogniser sharing the interpreter before counting (first-call
set-up: the interpreter's weight packing, cached matrices), then its utterance finished."""
MARK = "getppid"
"""The libc function whose calls mark stage boundaries (callgrind dumps before each)."""


def valgrind() -> str | None:
    """Path of the valgrind executable, or None."""
    return shutil.which("valgrind")


def continuous_speech(clips: list[np.ndarray], spec: Any, seconds: float,
                      seed: int = 0) -> np.ndarray:
    """Clips (mono float32 at the front end's rate) cut to their first utterance (the
    endpointer's segment), brought to one RMS and joined end to end until ``seconds`` of
    speech, after
    ``LEAD_IN_SECONDS`` of near silence; float32. Raises ValueError when no clip has an
    utterance."""
    from edge.utterance import recording_frames, recording_segments

    hop = spec.frontend.hop_length
    parts, total = [], 0
    for x in clips:
        segments = recording_segments(recording_frames(x, spec)[1], spec)
        if not segments:
            continue
        s = segments[0]
        part = np.asarray(x[s.start * hop:s.end * hop], np.float64)
        # one loudness for all (an RMS of 0.05): a quiet clip after a loud one would be
        # more than the endpointer's top_db under the utterance's peak and end it
        part *= 0.05 / max(float(np.sqrt(np.mean(part**2))), 1e-9)
        parts.append(part.astype(np.float32))
        total += parts[-1].size
        if total >= seconds * spec.frontend.sample_rate:
            break
    if not parts:
        raise ValueError("no utterance in the clips")
    rate = spec.frontend.sample_rate
    lead = np.zeros(int(LEAD_IN_SECONDS * rate), np.float32)
    x = np.concatenate([lead, *parts, np.zeros(rate // 2, np.float32)])
    room = np.random.default_rng(seed).standard_normal(x.size) * 10 ** (ROOM_DB / 20)
    return (x + room).astype(np.float32)


# --------------------------------------------------------------------------------------
# The child, under callgrind
# --------------------------------------------------------------------------------------


class _Marks:
    """Stage boundaries: a label per boundary, and a libc call callgrind dumps before."""

    def __init__(self) -> None:
        self.labels: list[str] = []

    def __call__(self, label: str) -> None:
        self.labels.append(label)
        os.getppid()

    def wrap(self, owner: Any, attr: str, stage: str) -> None:
        original = getattr(owner, attr)

        def probed(*args: Any, **kwargs: Any) -> Any:
            self(f"{stage}+")
            try:
                return original(*args, **kwargs)
            finally:
                self(f"{stage}-")

        setattr(owner, attr, probed)


def _probe(rec: Any, marks: _Marks) -> None:
    import edge.recognizer

    marks.wrap(rec._mel_stream, "push", "front end")
    marks.wrap(rec._endpointer, "push", "endpointer")
    marks.wrap(rec.classifier.model, "invoke", "model invoke")
    if not hasattr(edge.recognizer, "_unprobed_frame_levels"):
        edge.recognizer._unprobed_frame_levels = edge.recognizer.frame_levels
        marks.wrap(edge.recognizer, "frame_levels", "front end")


def child(model: str, signal_path: str, clip_path: str, out_path: str) -> None:
    """Runs under callgrind: warm up, then every hop of the signal and one file, marked."""
    from edge.bundle import load_bundle
    from edge.classifier import Classifier
    from edge.recognizer import Recognizer

    bundle = load_bundle(model)
    classifier = Classifier(bundle, threads=1)
    signal = np.load(signal_path)
    clip = np.load(clip_path)
    warm = Recognizer(bundle, classifier=classifier)
    warm.push(signal[:int(WARM_UP_SECONDS * bundle.metadata.features.frontend.sample_rate)])
    warm.finish()

    marks = _Marks()
    rec = Recognizer(bundle, classifier=classifier)
    c = rec.spec.frontend
    rec.push(np.zeros(c.frame_length - c.hop_length, np.float32))
    _probe(rec, marks)
    hop = rec.hop_frames * c.hop_length
    hops = []
    for i in range(0, signal.size - hop + 1, hop):
        marks("hop+")
        results = rec.push(signal[i:i + hop])
        marks("hop-")
        active = rec._endpointer.active
        kinds = [r.event for r in results]
        hops.append({"t": round((i + hop) / c.sample_rate, 3),
                     "kind": "final" if "final" in kinds else (kinds[-1] if kinds else "none"),
                     "utterance_seconds": (None if active is None else
                                           round(active.frames / rec.spec.frames_per_second,
                                                 2)),
                     "windows": max((len(r.scores or []) for r in results), default=0)})
    per_file = Recognizer(bundle, classifier=classifier, interims=False)
    _probe(per_file, marks)
    marks("file+")
    per_file.push(clip)
    finals = per_file.finish()
    marks("file-")
    Path(out_path).write_text(json.dumps({"labels": marks.labels, "hops": hops,
                                          "file_finals": len(finals),
                                          "file_seconds": clip.size / c.sample_rate}))


# --------------------------------------------------------------------------------------
# The parent: run the child, read the dumps
# --------------------------------------------------------------------------------------


def _totals(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    return 0


def attribute(labels: list[str], intervals: list[int]) -> list[dict[str, Any]]:
    """Instructions of each ``hop+ ... hop-`` (and ``file+ ... file-``) span by stage.

    ``intervals[j]`` is the count between boundary ``j`` and ``j + 1``; an interval belongs
    to the innermost stage open at its start, else to ``Python glue``.
    """
    spans: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    open_stages: list[str] = []
    for j, label in enumerate(labels):
        name, sign = label[:-1], label[-1]
        if name in ("hop", "file"):
            if sign == "+":
                current = {"span": name, **{s: 0 for s in STAGES}}
                open_stages = []
            else:
                if current is not None:
                    current["total"] = sum(current[s] for s in STAGES)
                    spans.append(current)
                current = None
        elif sign == "+":
            open_stages.append(name)
        elif open_stages and open_stages[-1] == name:
            open_stages.pop()
        if current is not None and j < len(intervals):
            current[open_stages[-1] if open_stages else GLUE] += intervals[j]
    return spans


def count(model: str | os.PathLike, signal: np.ndarray, clip: np.ndarray, *,
          timeout: float = 1200.0) -> dict[str, Any]:
    """Run :func:`child` under callgrind for one bundle; per hop and per file instructions.

    Returns
    -------
    dict with ``hops`` (per hop: time, what it produced, the utterance's length so far,
    instructions per stage and ``total``), ``file`` (the same for the clip) and the
    settings; or ``{"error": ...}``.
    """
    exe = valgrind()
    if exe is None:
        return {"error": "valgrind is not installed"}
    with tempfile.TemporaryDirectory(prefix="ser-callgrind-") as tmp:
        t = Path(tmp)
        np.save(t / "signal.npy", np.asarray(signal, np.float32))
        np.save(t / "clip.npy", np.asarray(clip, np.float32))
        out = t / "child.json"
        cmd = [exe, "--tool=callgrind", f"--callgrind-out-file={t / 'cg.out'}",
               f"--dump-before={MARK}", "--dump-instr=no", "--dump-line=no",
               "--compress-strings=no", sys.executable, "-m", "benchmarks.instructions",
               "--child", str(model), str(t / "signal.npy"), str(t / "clip.npy"), str(out)]
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env=env, cwd=str(Path(__file__).resolve().parents[1]))
        except subprocess.TimeoutExpired:
            return {"error": f"callgrind did not finish in {timeout:.0f} s"}
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {"error": f"callgrind run failed (exit {proc.returncode}): {tail}"}
        child_out = json.loads(out.read_text())
        labels = child_out["labels"]
        # dump k (1-based) ends at boundary k: the interval after boundary j is dump j + 2
        intervals = [_totals(t / f"cg.out.{j + 2}") if (t / f"cg.out.{j + 2}").exists()
                     else _totals(t / "cg.out") for j in range(len(labels))]
    spans = attribute(labels, intervals)
    hops = [s for s in spans if s["span"] == "hop"]
    files = [s for s in spans if s["span"] == "file"]
    for h, meta in zip(hops, child_out["hops"]):
        h.update(meta)
    return {"hops": hops, "file": files[0] if files else None,
            "file_seconds": child_out["file_seconds"], "file_finals": child_out["file_finals"],
            "boundaries": len(labels), "tool": _valgrind_version(exe)}


def _valgrind_version(exe: str) -> str:
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "valgrind"


def summary(counted: dict[str, Any], *, near: tuple[float, float] = (1.0, 6.0)
            ) -> dict[str, Any]:
    """The interim hops nearest ``near`` seconds into the utterance, their ratio, and the
    median over interim and no-speech hops, per stage."""
    hops = counted.get("hops") or []
    interims = [h for h in hops if h.get("kind") == "interim"
                and h.get("utterance_seconds") is not None]
    out: dict[str, Any] = {}
    if interims:
        picks = []
        for target in near:
            picks.append(min(interims, key=lambda h: abs(h["utterance_seconds"] - target)))
        out["at"] = [{**{k: p[k] for k in ("utterance_seconds", "total", *STAGES)}}
                     for p in picks]
        out["ratio_last_first"] = picks[-1]["total"] / picks[0]["total"]
    for kind in ("interim", "no_speech"):
        mine = [h for h in hops if h.get("kind") == kind]
        if mine:
            out[f"median_{kind}"] = {s: float(np.median([h[s] for h in mine]))
                                     for s in (*STAGES, "total")}
            out[f"median_{kind}"]["n"] = len(mine)
    if counted.get("file"):
        out["file"] = {s: counted["file"][s] for s in (*STAGES, "total")}
        out["file_seconds"] = counted.get("file_seconds")
    return out


def measure(models: list[tuple[str, str]], clips: list[np.ndarray], spec: Any, *,
            seconds: float = 7.5, progress: Any = None) -> dict[str, Any]:
    """Per-hop and per-file instructions for each ``(name, bundle path)``: the continuous
    speech of ``clips`` (:func:`continuous_speech`), the first clip as the file."""
    if valgrind() is None:
        return {"skipped": "valgrind is not installed (apt-get install valgrind)"}
    signal = continuous_speech(clips, spec, seconds)
    out: dict[str, Any] = {"signal_seconds": round(signal.size / spec.frontend.sample_rate, 2),
                           "models": {}}
    for name, path in models:
        if progress:
            progress(f"  {name}: callgrind over {out['signal_seconds']:g} s of speech"
                     " and one file")
        counted = count(path, signal, clips[0])
        if "error" in counted:
            out["models"][name] = counted
            continue
        out["tool"] = counted.pop("tool")
        out["models"][name] = {**counted, "summary": summary(counted)}
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """The figures as Markdown tables (per model: instructions per stage)."""
    from benchmarks.pi import predict_table

    if "skipped" in result:
        return f"Instruction counts skipped: {result['skipped']}.\n"
    lines = []
    for name, m in result["models"].items():
        if "error" in m:
            lines += [f"{name}: {m['error']}", ""]
            continue
        s = m["summary"]
        lines += [f"**{name}** (thousands of instructions, x86-64)", "",
                  "| hop | utterance so far s | " + " | ".join(STAGES) + " | total |",
                  "|---|---|" + "---|" * (len(STAGES) + 1)]
        for label, row in zip(("interim near 1 s", "interim near 6 s"), s.get("at", [])):
            lines.append(f"| {label} | {row['utterance_seconds']:.2f} | "
                         + " | ".join(f"{row[k] / 1e3:.0f}" for k in STAGES)
                         + f" | {row['total'] / 1e3:.0f} |")
        for kind in ("interim", "no_speech"):
            med = s.get(f"median_{kind}")
            if med:
                lines.append(f"| median {kind.replace('_', '-')} hop (n={med['n']}) | | "
                             + " | ".join(f"{med[k] / 1e3:.0f}" for k in STAGES)
                             + f" | {med['total'] / 1e3:.0f} |")
        if s.get("file"):
            lines.append(f"| one file ({s['file_seconds']:.1f} s, decoded) | | "
                         + " | ".join(f"{s['file'][k] / 1e3:.0f}" for k in STAGES)
                         + f" | {s['file']['total'] / 1e3:.0f} |")
        if "ratio_last_first" in s:
            lines += ["", f"Interim hop near 6 s / near 1 s: {s['ratio_last_first']:.2f}x."]
        lines += ["", predict_table(s), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("SER_DATA",
                        "../shared/data/ravdess-speech-16k"), help="folder of audio clips")
    parser.add_argument("--models", nargs="*", default=["cnn-int8", "cnn-lstm-int8"],
                        help="bundles (paths or shipped names)")
    parser.add_argument("--seconds", type=float, default=7.5,
                        help="seconds of continuous speech (default 7.5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    from benchmarks.frontend import audio_clips
    from edge.audio import load
    from edge.shipped import load_model_bundle, resolve_model

    files = audio_clips(args.data)
    if not files:
        print(f"instructions: no .wav/.flac clips under {args.data}", file=sys.stderr)
        return 2
    spec = load_model_bundle(args.models[0]).metadata.features
    picks = files[:: max(1, len(files) // 12)][:12]
    clips = [load(p, spec.frontend.sample_rate) for p in picks]
    result = measure([(m, str(resolve_model(m))) for m in args.models], clips, spec,
                     seconds=args.seconds,
                     progress=lambda s: print(s, file=sys.stderr))
    print(json.dumps(result, indent=2) if args.json else to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
