"""``ser-bench``: int8 against float, every model side by side, in one run on one machine.

Writes ``OUT/benchmark.json`` (everything, for machines), ``OUT/benchmark.md`` (for people),
``OUT/confusion-<model>.png`` and ``OUT/latency.png``. ``ser-bench --readme OUT/benchmark.json``
prints the README's tables from a report.

Runs without TensorFlow, librosa or matplotlib (a Raspberry Pi with only the edge runtime):
Keras models, the room conditions and the front-end peers are then skipped with a note, and
the float side of the int8 comparison is the float32 TFLite bundle.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks import latency, live, plots, report
from benchmarks.accuracy import EvalSet
from benchmarks.choose import choose_models, held_out_by, keras_references, table_order
from benchmarks.contenders import (
    KERAS,
    Contender,
    KerasRunner,
    float_counterparts,
    tensorflow_available,
)
from benchmarks.data import Corpus, read_corpora, spec_groups
from benchmarks.progress import say
from benchmarks.stages import (
    SingleThreadedBlas,
    clean_sets,
    clip_list,
    fresh_processes,
    frontend_peers,
    live_all,
    score_conditions,
    score_corpora,
)
from edge.cli_errors import CliError
from edge.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ConfigError, EdgeSerError
from edge.extras import run_command
from train.conditions import CONDITIONS_HELP, ConditionsType

PROG = "ser-bench"
LATENCY_WINDOWS = 20
"""Real utterances the latency figures cycle through."""


def parse_threads(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        threads = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter(f"{value!r}: give thread counts like 1,2,4") from None
    if not threads or threads[0] < 1:
        raise click.BadParameter(f"{value!r}: thread counts must be >= 1")
    return threads


def versions() -> dict[str, str | None]:
    """Installed versions of the runtimes and references (without importing them)."""
    out: dict[str, str | None] = {}
    for dist in ("ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu", "keras",
                 "librosa", "python_speech_features", "matplotlib", "edge-ser"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine_info() -> dict[str, Any]:
    from benchmarks.frontend import machine
    from edge.interpreter import find_backend

    info = machine()
    try:
        backend, _ = find_backend()
    except EdgeSerError:
        backend = None
    v = versions()
    info.update(runtime=backend, runtime_version=v.get(backend) if backend else None,
                tensorflow=v.get("tensorflow") or v.get("tensorflow-cpu"), versions=v)
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


class _Stages:
    """Numbered progress lines on stderr, and how long each stage took."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.name = total, 0, ""
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, detail: str = "") -> None:
        self._close()
        self.n += 1
        self.name = name
        say(f"[{self.n}/{self.total}] {name}{detail}")

    def _close(self) -> None:
        now = time.perf_counter()
        if self.name:
            self.seconds[self.name] = round(now - self.started, 1)
        self.name, self.started = "", now

    def done(self) -> dict[str, float]:
        self._close()
        return self.seconds


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("more_models", nargs=-1, metavar="[MODEL...]")
@click.option("--data", "data", multiple=True, metavar="DIR",
              help="Labelled clips (RAVDESS names, or another corpus train.corpora reads);"
                   " repeat it to score more corpora, each on its own. The first is the"
                   " primary corpus (headline, room conditions, timing audio).  [default:"
                   " $SER_DATA]")
@click.option("--models", "models", multiple=True, metavar="MODEL",
              help="A .tflite bundle, a ser-train RUN_DIR (Keras float) or a shipped name;"
                   " repeat it or list several after it.  [default: every shipped bundle,"
                   " int8 and float32]")
@click.option("--threads", default="1,2,4", show_default=True, callback=parse_threads,
              metavar="N,N,...", help="Interpreter thread counts to time.")
@click.option("--out", "out", default="reports", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False), help="Where the report and plots go.")
@click.option("--clips", type=click.IntRange(min=1), metavar="N",
              help="Score at most N clips per corpus, spread over speakers and labels."
                   "  [default: all]")
@click.option("--conditions", type=ConditionsType(), default="all", show_default=True,
              help=CONDITIONS_HELP)
@click.option("--live-clips", type=click.IntRange(min=0), default=480, show_default=True,
              metavar="N", help="Clips in each int8 bundle's live recording (0: no live"
                                " measurement).")
@click.option("--hour-seconds", type=click.FloatRange(min=0.0), default=3600.0,
              show_default=True, metavar="S",
              help="Length of the long recording predict and listen --file read for peak"
                   " RSS (0: skip).")
@click.option("--repeats", type=click.IntRange(min=5), default=500, show_default=True,
              metavar="N", help="Timings per latency figure (median, p95, p99 over N).")
@click.option("--keras-repeats", type=click.IntRange(min=3), default=50, show_default=True,
              metavar="N", help="Timings of Keras predict (about 100x slower per call).")
@click.option("--stream-seconds", type=click.FloatRange(min=5.0), default=60.0,
              show_default=True, metavar="S",
              help="Length of the recording (clips and pauses over a quiet room) the latency"
                   " figures and the RTF runs of `edge-ser listen` use, seconds.")
@click.option("--process-repeats", type=click.IntRange(min=1), default=3, show_default=True,
              metavar="N", help="Runs of each fresh-process measurement (start-up, RSS, RTF).")
@click.option("--hop", "hop_seconds", type=click.FloatRange(min=0.01), default=None,
              metavar="S", help="Hop between interim results, seconds.  [default: the"
                                " models' own]")
@click.option("--folds", is_flag=True,
              help="Also score each RUN_DIR's fold models (RUN_DIR/folds/fold-k) on their own"
                   " test speakers: a held-out figure even when --data holds training"
                   " speakers.")
@click.option("--no-keras", is_flag=True,
              help="Skip the Keras reference model that is built when no RUN_DIR gives one.")
@click.option("--no-peers", is_flag=True,
              help="Skip the librosa / python_speech_features front-end comparison.")
@click.option("--no-instructions", is_flag=True,
              help="Skip the instruction counts per hop and per file (valgrind's callgrind,"
                   " about a minute per int8 bundle) and the predicted Raspberry Pi times.")
@click.option("--json", "as_json", is_flag=True,
              help="Also print benchmark.json to stdout (nothing else goes to stdout).")
@click.option("--readme", "readme", metavar="JSON", type=click.Path(dir_okay=False),
              help="Print the README's benchmark tables from an existing benchmark.json and"
                   " exit.")
def cli(more_models: tuple[str, ...], data: tuple[str, ...], models: tuple[str, ...],
        threads: list[int], out: str, clips: int | None, conditions: list[str],
        live_clips: int, hour_seconds: float, repeats: int, keras_repeats: int,
        stream_seconds: float, process_repeats: int, hop_seconds: float | None, folds: bool,
        no_keras: bool, no_peers: bool, no_instructions: bool, as_json: bool,
        readme: str | None) -> None:
    """Benchmark int8 against float models on accuracy, live use, latency, size and memory.

    \b
      ser-bench --data DIR                      the shipped bundles (int8 + float32)
      ser-bench --data DIR --data OTHER         + another corpus, scored on its own
      ser-bench --data DIR --models a.tflite runs/cnn --threads 1,2
      ser-bench --data DIR --models runs/cnn --folds   + held-out fold scores
      ser-bench --readme reports/benchmark.json       the README tables

    DIR holds labelled recordings. Each is scored as `edge-ser predict` scores a file
    (endpointed utterances, their windows, speech-weighted); a recording with no utterance
    counts as wrong. Recordings of speakers a model's metadata lists as training speakers
    are scored separately and marked "training speakers - not a generalisation figure".

    Measured, each model side by side in one run: accuracy, macro-F1, per-class recall and
    a confusion matrix; interim accuracy (every hop during speech); accuracy under the room
    conditions (quiet, reverb, noise, combined) and on every other corpus; int8-vs-float
    agreement recording by recording; live: each int8 bundle on a long recording of clips
    with pauses through `edge-ser listen --file --fast --json` against `edge-ser predict` on
    the clips (pauses, final latency); latency of every step per hop (interim hops apart),
    the invoke and Keras predict; `listen` real-time factor, peak RSS and start to first
    result; an hour through predict and listen (peak RSS); size and load-only memory; our
    front end against librosa and python_speech_features; instructions per hop and per file
    by stage (valgrind's callgrind, the same on a busy machine) and the Raspberry Pi 4 /
    Zero 2 W time predicted from them.

    Exit status: 0 ok, 1 failure, 2 bad input (no data, no usable model; a bad model or
    clip among good ones is reported, the rest benchmarked, and the exit status is 2).
    """
    try:
        if readme:
            from benchmarks.readme import readme_table

            click.echo(readme_table(report.read_report(Path(readme))), nl=False)
            return
        directories = list(data) or ([os.environ["SER_DATA"]] if os.environ.get("SER_DATA")
                                     else [])
        code = run(list(models) + list(more_models), data=directories, threads=threads,
                   out=Path(out), clips=clips, conditions=conditions, live_clips=live_clips,
                   hour_seconds=hour_seconds, repeats=repeats, keras_repeats=keras_repeats,
                   stream_seconds=stream_seconds, process_repeats=process_repeats,
                   hop_seconds=hop_seconds, folds=folds, with_keras=not no_keras,
                   peers=not no_peers, instructions=not no_instructions, as_json=as_json)
    except EdgeSerError as e:
        raise CliError(e, PROG) from None
    except KeyboardInterrupt:
        click.echo(f"{PROG}: interrupted; no report written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if code:
        sys.exit(code)


def run(arguments: list[str], *, data: list[str], threads: list[int], out: Path,
        clips: int | None, conditions: list[str], live_clips: int, hour_seconds: float,
        repeats: int, keras_repeats: int, stream_seconds: float, process_repeats: int,
        hop_seconds: float | None, folds: bool, with_keras: bool, peers: bool,
        instructions: bool, as_json: bool) -> int:
    """The whole benchmark; returns the exit status."""
    started = time.perf_counter()
    load_at_start = load_average()
    command = " ".join([PROG, *(shlex.quote(a) for a in sys.argv[1:])])
    if not data:
        raise ConfigError("no data: pass --data DIR (labelled clips) or set SER_DATA")
    for d in data:
        if not Path(d).exists():
            raise ConfigError(f"--data {d}: no such directory")
    notes: list[str] = []
    errors: list[str] = []
    stage = _Stages(10)

    stage("models")
    contenders = choose_models(arguments, folds, notes, errors)
    has_tf = tensorflow_available()
    groups = spec_groups(contenders, hop_seconds)

    stage("recordings", f" ({', '.join(data)})")
    corpora = read_corpora(data, clips)
    clean = clean_sets(corpora, groups, errors)

    stage("accuracy", " (clean, with interim results)")
    runners: dict[str, Any] = {}
    scored = score_corpora(groups, clean, corpora, runners, interims=True)

    stage("room conditions", f" ({', '.join(conditions) or 'none'})")
    by_condition = score_conditions(corpora[0], groups, conditions, runners, notes)

    blas = SingleThreadedBlas()
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp, blas:
        stage("latency", f" ({repeats} timings per figure, threads"
                         f" {','.join(map(str, threads))})")
        main_models = [c for c in contenders if not c.pooled]
        keras_runners = {c.name: runners.get(c.name) or KerasRunner(c) for c in main_models
                         if c.runtime == KERAS}
        if has_tf and with_keras:
            for ref in keras_references(main_models, Path(tmp), notes):
                main_models.append(ref)
                contenders.append(ref)
                keras_runners[ref.name] = KerasRunner(ref)
            contenders.sort(key=table_order)
        tflite_models = [c for c in main_models if c.bundle is not None]
        timing_set = clean[(corpora[0].name, 0)]
        hop = hop_seconds or (tflite_models or main_models)[0].hop_seconds
        recording = Path(tmp) / "stream.wav"
        stream_placed = live.write_recording(
            recording, clip_list(timing_set, range(len(timing_set.utterances)), seed=0),
            total_seconds=stream_seconds)
        stream_signal = live.load(recording, live.RATE)
        lat = latency.measure(
            main_models, latency.utterance_windows(timing_set.recordings, timing_set.spec,
                                                   LATENCY_WINDOWS),
            stream_signal, threads=threads, samples=repeats, keras_samples=keras_repeats,
            hop_seconds=hop, keras=keras_runners,
            pairs=[(q.name, f.name) for q, f in float_counterparts(main_models)])
        if max(threads) > (os.cpu_count() or 1):
            notes.append(f"{max(threads)} interpreter threads on {os.cpu_count()} cores:"
                         " oversubscribed, so those figures show contention, not scaling.")

        stage("fresh processes", f" (listen on {stream_seconds:g} s, start-up, memory;"
                                 f" {process_repeats} runs each)")
        proc, baseline = fresh_processes(
            main_models, recording, stream_signal.size / live.RATE,
            Path(timing_set.utterances[0].path), threads=threads[0], repeats=process_repeats,
            hop_seconds=hop_seconds, errors=errors)

        stage("live", f" ({live_clips} clips per int8 bundle; an hour-long recording:"
                      f" {hour_seconds:g} s)")
        lives, hour = live_all(tflite_models, clean, groups, corpora, scored, live_clips,
                            hour_seconds, Path(tmp), threads[0], hop_seconds, notes, errors)

    stage("front-end peers")
    with SingleThreadedBlas():
        peer = (frontend_peers(timing_set, repeats, notes) if peers
                else {"skipped": "--no-peers"})

    stage("instructions", " (callgrind, int8 bundles)")
    counted = (instruction_counts(tflite_models, timing_set) if instructions
               else {"skipped": "--no-instructions"})

    stage("report", f" in {out}")
    result = {
        "format": report.FORMAT, "format_version": report.FORMAT_VERSION,
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average": {"start": load_at_start, "end": load_average()},
        "settings": {"threads": threads, "repeats": repeats, "keras_repeats": keras_repeats,
                     "stream_seconds": stream_seconds, "process_repeats": process_repeats,
                     "hop_seconds": lat["hop_seconds"], "clips_limit": clips,
                     "conditions": conditions, "live_clips": live_clips,
                     "hour_seconds": hour_seconds, "folds": folds,
                     "blas_threads": blas.threads},
        "data": [_describe_corpus(c, clean[(c.name, 0)]) for c in corpora],
        "models": [_model_entry(c, scored, by_condition, corpora, proc, lives,
                                held_out_by(contenders)) for c in contenders],
        "comparisons": [x for s in scored.values() for x in s["comparisons"]],
        "condition_comparisons": [x for s in by_condition.values() for x in s["comparisons"]],
        "latency": lat,
        "stream_recording": {"seconds": round(stream_signal.size / live.RATE, 1),
                             "clips": len(stream_placed), "room_db": live.ROOM_DB,
                             "pause_seconds": list(live.PAUSE_SECONDS)},
        "baseline_process": baseline,
        "hour": hour,
        "frontend_peers": peer,
        "instructions": counted,
        "notes": notes, "errors": errors,
    }
    out.mkdir(parents=True, exist_ok=True)
    result["plots"] = _plots(result, lat, out, notes)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["stage_seconds"] = stage.done()
    paths = report.write(result, out)
    say(f"wrote {', '.join(str(p) for p in paths)} ({result['seconds']:.0f} s)")
    if as_json:
        click.echo(json.dumps(report.jsonable(result), indent=2))
    return EXIT_BAD_INPUT if errors else 0


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------


def instruction_counts(bundles: list[Contender], evalset: EvalSet) -> dict[str, Any]:
    """Per-hop and per-file instructions of each int8 bundle (:mod:`benchmarks.instructions`)
    on the timing corpus's first clips."""
    from benchmarks import instructions
    from edge.audio import load

    int8 = [c for c in bundles if c.is_int8]
    if not int8:
        return {"skipped": "no int8 bundle among the models"}
    spec = int8[0].spec
    clips = []
    for u in evalset.utterances[:: max(1, len(evalset.utterances) // 12)][:12]:
        try:
            clips.append(load(u.path, spec.frontend.sample_rate))
        except EdgeSerError:
            continue
    try:
        return instructions.measure([(c.name, str(c.path)) for c in int8], clips, spec,
                                    progress=say)
    except ValueError as e:
        return {"skipped": str(e)}


def _describe_corpus(corpus: Corpus, evalset: EvalSet) -> dict[str, Any]:
    return {"name": corpus.name, "dir": corpus.directory, **corpus.info, **evalset.describe()}


def _model_entry(c: Contender, scored: dict[str, dict], by_condition: dict[str, dict],
                 corpora: list[Corpus], proc: dict, lives: dict,
                 links: dict[str, str]) -> dict[str, Any]:
    entry = c.describe()
    primary = corpora[0].name
    entry["accuracy"] = scored[primary]["models"].get(c.name)
    entry["conditions"] = {name: s["models"][c.name] for name, s in by_condition.items()
                           if c.name in s["models"]}
    entry["corpora"] = {k.name: scored[k.name]["models"].get(c.name) for k in corpora[1:]}
    entry["held_out_by"] = links.get(c.name)
    entry["live"] = lives.get(c.name)
    entry.update(proc.get(c.name, {}))
    return entry


def _plots(result: dict, lat: dict, out: Path, notes: list[str]) -> dict[str, Any]:
    if not plots.available():
        notes.append("matplotlib is not installed: PNG plots skipped")
        return {}
    made: dict[str, Any] = {"confusion": {}}
    for m in result["models"]:
        acc = m.get("accuracy")
        if not acc or acc.get("confusion") is None:
            continue
        name = f"confusion-{report.slug(m['name'])}.png"
        title = (f"{m['name']}: accuracy {acc['accuracy']:.3f}, macro-F1 {acc['macro_f1']:.3f}"
                 f" (n={acc['n']}, {acc['no_result']} without result)\n{acc['headline']}")
        plots.confusion(acc["confusion"], m["labels"], out / name, title,
                        no_result=acc.get("no_result_per_class"))
        made["confusion"][m["name"]] = name
    t1 = min(result["settings"]["threads"])
    series = {}
    for row in lat["rows"]:
        samples = lat.get("samples", {}).get(row["key"])
        if (samples is not None and row["threads"] in (None, t1)
                and "beside" not in row["what"]):
            series[row["key"]] = np.asarray(samples) * 1e3
    if series:
        m = result["machine"]
        plots.latency_histograms(series, out / "latency.png",
                                 f"latency per call on {m['cpu']} ({m['cores']} cores),"
                                 f" {m['runtime']} {m['runtime_version']}")
        made["latency"] = "latency.png"
    return made


def main() -> None:
    """Console-script entry point. A module of the ``train`` extra missing where a part of
    the benchmark needs it is one line naming the extra (exit 2), not a traceback."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow, if a Keras model loads it
    run_command(lambda: cli(prog_name=PROG), PROG, "this part of the benchmark")


if __name__ == "__main__":
    main()
