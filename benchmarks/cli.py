"""``ser-bench``: int8 against float, every model side by side, in one run on one machine.

Writes ``OUT/benchmark.json`` (everything, for machines), ``OUT/benchmark.md`` (for people),
``OUT/confusion-<model>.png`` and ``OUT/latency.png``. ``ser-bench --readme OUT/benchmark.json``
prints the README's table from a report.

Runs without TensorFlow, librosa or matplotlib (a Raspberry Pi with only the edge runtime):
Keras models and the front-end peers are then skipped with a note, and the float side of the
int8 comparison is the float32 TFLite bundle.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
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

from benchmarks import accuracy, latency, plots, processes, report
from benchmarks.contenders import (
    KERAS,
    Contender,
    KerasRunner,
    default_arguments,
    float_counterparts,
    keras_reference,
    load_contenders,
    same_training,
    tensorflow_available,
)
from benchmarks.progress import say
from edge.cli_errors import CliError
from edge.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ConfigError, EdgeSerError
from edge.extras import TRAIN_EXTRA, ExtraMissingError, missing_extra

PROG = "ser-bench"
FORMAT = "edge-ser-benchmark"
FORMAT_VERSION = 1
LATENCY_WINDOWS = 20
"""Real audio windows the latency figures cycle through."""
SHOWN_FAILURES = 5
"""Unreadable clips named on stderr; the rest are counted (all are in the JSON)."""


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
@click.option("--data", "data", metavar="DIR", default=lambda: os.environ.get("SER_DATA"),
              help="Labelled clips the models were NOT trained on (RAVDESS names, or another"
                   " corpus train.corpora reads).  [default: $SER_DATA]")
@click.option("--models", "models", multiple=True, metavar="MODEL",
              help="A .tflite bundle, a ser-train RUN_DIR (Keras float) or a shipped name;"
                   " repeat it or list several after it.  [default: every shipped bundle,"
                   " int8 and float32]")
@click.option("--threads", default="1,2,4", show_default=True, callback=parse_threads,
              metavar="N,N,...", help="Interpreter thread counts to time.")
@click.option("--out", "out", default="reports", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False), help="Where the report and plots go.")
@click.option("--clips", type=click.IntRange(min=1), metavar="N",
              help="Score at most N clips, spread over speakers and labels.  [default: all]")
@click.option("--repeats", type=click.IntRange(min=5), default=500, show_default=True,
              metavar="N", help="Timings per latency figure (median, p95, p99 over N).")
@click.option("--keras-repeats", type=click.IntRange(min=3), default=50, show_default=True,
              metavar="N", help="Timings of Keras predict (about 100x slower per call).")
@click.option("--stream-seconds", type=click.FloatRange(min=5.0), default=60.0,
              show_default=True, metavar="S",
              help="Length of the recording `edge-ser listen` replays, seconds.")
@click.option("--process-repeats", type=click.IntRange(min=1), default=3, show_default=True,
              metavar="N", help="Runs of each fresh-process measurement (start-up, RSS, RTF).")
@click.option("--hop", "hop_seconds", type=click.FloatRange(min=0.01), default=None,
              metavar="S", help="Streaming hop, seconds.  [default: the models' own]")
@click.option("--folds", is_flag=True,
              help="Also score each RUN_DIR's fold models (RUN_DIR/folds/fold-k) on their own"
                   " test speakers: a held-out figure even when --data holds training"
                   " speakers.")
@click.option("--no-keras", is_flag=True,
              help="Skip the Keras reference model that is built when no RUN_DIR gives one.")
@click.option("--no-peers", is_flag=True,
              help="Skip the librosa / python_speech_features front-end comparison.")
@click.option("--json", "as_json", is_flag=True,
              help="Also print benchmark.json to stdout (nothing else goes to stdout).")
@click.option("--readme", "readme", metavar="JSON", type=click.Path(dir_okay=False),
              help="Print the README's benchmark table from an existing benchmark.json and"
                   " exit.")
def cli(more_models: tuple[str, ...], data: str | None, models: tuple[str, ...],
        threads: list[int], out: str, clips: int | None, repeats: int, keras_repeats: int,
        stream_seconds: float, process_repeats: int, hop_seconds: float | None, folds: bool,
        no_keras: bool, no_peers: bool, as_json: bool, readme: str | None) -> None:
    """Benchmark int8 against float models on accuracy, latency, streaming, size and memory.

    \b
      ser-bench --data DIR                      the shipped bundles (int8 + float32)
      ser-bench --data DIR --models a.tflite runs/cnn --threads 1,2
      ser-bench --data DIR --models runs/cnn --folds   + held-out fold scores
      ser-bench --readme reports/benchmark.json       the README table

    DIR holds labelled recordings of speakers the models were not trained on. Clips of
    speakers a model's metadata lists as training speakers are scored separately and marked
    "training speakers - not a generalisation figure".

    Measured, each model side by side in one run: accuracy, macro-F1, per-class recall and
    a confusion matrix; int8-vs-float accuracy gap and top-1 agreement on the same clips;
    latency (median/p95/p99) of the front end per window and per hop, of the interpreter
    invoke and of a whole streaming hop, for each thread count, with Keras predict as the
    reference; `edge-ser listen` real-time factor and peak RSS; process start to first
    prediction; bundle size, parameters and the peak RSS of a process that only loads and
    runs the model; our MFCC against librosa and python_speech_features.

    Exit status: 0 ok, 1 failure, 2 bad input (no data, no usable model; a bad model or
    clip among good ones is reported, the rest benchmarked, and the exit status is 2).
    """
    try:
        if readme:
            click.echo(report.readme_table(report.read_report(Path(readme))), nl=False)
            return
        code = run(list(models) + list(more_models), data=data, threads=threads, out=Path(out),
                   clips=clips, repeats=repeats, keras_repeats=keras_repeats,
                   stream_seconds=stream_seconds, process_repeats=process_repeats,
                   hop_seconds=hop_seconds, folds=folds, with_keras=not no_keras,
                   peers=not no_peers, as_json=as_json)
    except EdgeSerError as e:
        raise CliError(e, PROG) from None
    except KeyboardInterrupt:
        click.echo(f"{PROG}: interrupted; no report written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if code:
        sys.exit(code)


def run(arguments: list[str], *, data: str | None, threads: list[int], out: Path,
        clips: int | None, repeats: int, keras_repeats: int, stream_seconds: float,
        process_repeats: int, hop_seconds: float | None, folds: bool, with_keras: bool,
        peers: bool, as_json: bool) -> int:
    """The whole benchmark; returns the exit status."""
    started = time.perf_counter()
    load_at_start = load_average()
    command = " ".join([PROG, *(shlex.quote(a) for a in sys.argv[1:])])
    if not data:
        raise ConfigError("no data: pass --data DIR (labelled clips) or set SER_DATA")
    if not Path(data).exists():
        raise ConfigError(f"--data {data}: no such directory")
    notes: list[str] = []
    errors: list[str] = []
    stage = _Stages(7)

    stage("models")
    contenders = _choose_models(arguments, folds, notes, errors)
    has_tf = tensorflow_available()

    stage("clips", f" under {data}")
    evalsets, corpus_info = _read_data(data, clips, contenders, errors)
    first_set = next(iter(evalsets.values()))

    stage("accuracy")
    keras_runners = {c.name: KerasRunner(c) for c in contenders
                     if c.runtime == KERAS and not c.pooled}
    scored = accuracy.evaluate(contenders, evalsets, loaded=keras_runners)

    blas = _SingleThreadedBlas()
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp, blas:
        stage("latency", f" ({repeats} timings per figure, threads"
                         f" {','.join(map(str, threads))})")
        main_models = [c for c in contenders if not c.pooled]
        if has_tf and with_keras:
            for ref in _keras_references(main_models, Path(tmp), notes):
                main_models.append(ref)
                contenders.append(ref)
                keras_runners[ref.name] = KerasRunner(ref)
            contenders.sort(key=_table_order)
        tflite_models = [c for c in main_models if c.bundle is not None]
        hop = hop_seconds or (tflite_models[0].bundle.metadata.hop_seconds if tflite_models
                              else 0.5)
        spec = (tflite_models or main_models)[0].spec
        windows, stream_signal, whole = _audio_for_timing(first_set, spec, stream_seconds)
        lat = latency.measure(main_models, windows, stream_signal, threads=threads,
                              samples=repeats, keras_samples=keras_repeats, hop_seconds=hop,
                              keras={c.name: keras_runners[c.name] for c in main_models
                                     if c.name in keras_runners},
                              pairs=[(q.name, f.name) for q, f in
                                     float_counterparts(main_models)])
        if max(threads) > (os.cpu_count() or 1):
            notes.append(f"{max(threads)} interpreter threads on {os.cpu_count()} cores:"
                         " oversubscribed, so those figures show contention, not scaling.")

        stage("fresh processes", f" (streaming {stream_seconds:g} s, start-up, memory;"
                                 f" {process_repeats} runs each)")
        recording = processes.write_wav(Path(tmp) / "stream.wav", whole,
                                        spec.frontend.sample_rate)
        proc, baseline = _fresh_processes(
            main_models, recording, whole.size / spec.frontend.sample_rate,
            Path(first_set.utterances[0].path), threads=threads[0], repeats=process_repeats,
            hop_seconds=hop_seconds, errors=errors)

    stage("front-end peers")
    with _SingleThreadedBlas():
        peer = _peers(first_set, repeats, notes) if peers else {"skipped": "--no-peers"}

    stage("report", f" in {out}")
    result = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average": {"start": load_at_start, "end": load_average()},
        "settings": {"threads": threads, "repeats": repeats, "keras_repeats": keras_repeats,
                     "stream_seconds": stream_seconds, "process_repeats": process_repeats,
                     "hop_seconds": lat["hop_seconds"], "clips_limit": clips,
                     "folds": folds, "blas_threads": blas.threads},
        "data": {"dir": str(data), **corpus_info, **first_set.describe()},
        "models": [_model_entry(c, scored, proc, _held_out_by(contenders))
                   for c in contenders],
        "comparisons": scored["comparisons"],
        "latency": lat,
        "baseline_process": baseline,
        "frontend_peers": peer,
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


def _choose_models(arguments: list[str], folds: bool, notes: list[str],
                   errors: list[str]) -> list[Contender]:
    """The contenders: ``arguments`` or the shipped bundles; Keras ones only with
    TensorFlow; pooled fold models with ``--folds``. Unusable arguments go to ``errors``."""
    chosen = arguments or default_arguments()
    if not chosen:
        raise ConfigError("no models: no shipped bundles are installed; pass --models"
                          " MODEL.tflite or a RUN_DIR")
    contenders, bad = load_contenders(chosen)
    for message in bad:
        say(message)
    errors += bad
    has_tf = tensorflow_available()
    if not has_tf:
        skipped = [c for c in contenders if c.runtime == KERAS]
        contenders = [c for c in contenders if c.runtime != KERAS]
        for c in skipped:  # asked for by name: an error (exit 2) that names the extra
            message = (f"{c.path}: a Keras RUN_DIR needs TensorFlow, which this install does"
                       f" not have; install the host extra: {TRAIN_EXTRA}")
            say(message)
            errors.append(message)
        notes.append("TensorFlow is not installed: no Keras models or reference; the float"
                     f" side is the float32 TFLite bundle ({TRAIN_EXTRA} adds them).")
    if folds and has_tf:
        from benchmarks.folds import all_fold_contenders

        pooled, fold_notes = all_fold_contenders(contenders)
        contenders += pooled
        notes += fold_notes
    elif folds:
        message = ("--folds needs TensorFlow (Keras fold models), which this install does not"
                   f" have: skipped; install the host extra: {TRAIN_EXTRA}")
        say(message)
        errors.append(message)
    if not contenders:
        if not has_tf and any(e.endswith(TRAIN_EXTRA) for e in errors):
            raise ExtraMissingError("no usable models: Keras RUN_DIRs need TensorFlow;"
                                    f" install the host extra: {TRAIN_EXTRA}")
        raise ConfigError("no usable models (see the messages above)")
    contenders.sort(key=_table_order)
    for c in contenders:
        say(f"  {c.name}: {c.runtime} {c.kind} {c.quantization}, {c.size_bytes} bytes")
    return contenders


class _SingleThreadedBlas:
    """numpy's BLAS limited to one thread while timing (``threadpoolctl``, when installed).

    On a busy machine a multi-threaded BLAS call waits for worker threads that are not
    scheduled: a 40x257 float32 matrix product (librosa's mel projection) was measured at
    0.1 ms alone and 16 ms under load. The device runs the front end on one core; the
    interpreter's own threads (``--threads``) and TensorFlow's pools are not affected.
    """

    def __init__(self) -> None:
        self.threads: int | str = "default (threadpoolctl not installed)"
        self._limit: Any = None

    def __enter__(self) -> _SingleThreadedBlas:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return self
        self._limit = threadpool_limits(limits=1, user_api="blas")
        self.threads = 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self._limit is not None:
            self._limit.restore_original_limits()


def _table_order(c: Contender) -> tuple:
    """Kind by kind: int8, float32 TFLite, Keras; pooled folds after the single models."""
    rank = 0 if c.is_int8 else 1 if c.runtime != KERAS else 2
    return (c.kind, c.pooled, rank)


def _read_data(data: str, clips: int | None, contenders: list[Contender],
               errors: list[str]) -> tuple[dict[str, accuracy.EvalSet], dict[str, Any]]:
    """Model inputs of the clips under ``data``, once per feature spec among the
    contenders; unreadable clips go to ``errors`` (a few named on stderr)."""
    utterances, corpus_info = accuracy.read_clips(data, clips)
    if not utterances:
        raise ConfigError(f"--data {data}: no labelled clips found")
    evalsets: dict[str, accuracy.EvalSet] = {}
    for c in contenders:
        key = accuracy.spec_key(c.spec)
        if key not in evalsets:
            evalsets[key] = accuracy.build_eval_set(utterances, c.spec)
    first_set = next(iter(evalsets.values()))
    if not first_set.utterances:
        raise ConfigError(f"--data {data}: none of the {len(utterances)} clips could be read"
                          f" ({first_set.failed[0][1]})")
    for i, (path, reason) in enumerate(first_set.failed):
        message = reason if reason.startswith(path) else f"{path}: {reason}"
        errors.append(message)
        if i < SHOWN_FAILURES:
            say(f"skipped clip: {message}")
    if len(first_set.failed) > SHOWN_FAILURES:
        say(f"... and {len(first_set.failed) - SHOWN_FAILURES} more clips skipped (all listed"
            " in benchmark.json)")
    return evalsets, corpus_info


def _fresh_processes(models: list[Contender], recording: Path, audio_seconds: float,
                     clip: Path, *, threads: int, repeats: int, hop_seconds: float | None,
                     errors: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Streaming, start-up and load-only figures per model, and the baseline process."""
    out: dict[str, dict[str, Any]] = {}
    for c in models:
        entry: dict[str, Any] = {}
        if c.bundle is not None:
            entry["streaming"] = processes.streaming(c, recording, audio_seconds,
                                                     threads=threads, repeats=repeats,
                                                     hop_seconds=hop_seconds)
        entry["first_prediction"] = processes.first_prediction(c, clip, repeats=repeats)
        entry["load_only"] = processes.load_only(c, None, repeats=repeats)
        for key, value in entry.items():
            if "error" in value:
                say(f"{c.name} {key}: {value['error']}")
                errors.append(f"{c.name} {key}: {value['error']}")
        out[c.name] = entry
    return out, processes.load_only(None, None, repeats=repeats)


def _keras_references(models: list[Contender], directory: Path,
                      notes: list[str]) -> list[Contender]:
    """Keras models of the same architecture for kinds that have no RUN_DIR contender."""
    have = {c.kind for c in models if c.runtime == KERAS}
    refs = []
    for c in models:
        if c.bundle is None or c.kind in have or c.kind not in ("cnn", "cnn-lstm"):
            continue
        have.add(c.kind)
        try:
            refs.append(keras_reference(c, directory / c.kind))
        except Exception as e:  # a reference is a nicety; never fail the benchmark for it
            notes.append(f"no Keras reference for {c.kind}: {type(e).__name__}: {e}")
            continue
        notes.append(f"{refs[-1].name}: the {c.kind} architecture in Keras with untrained"
                     " weights, for Keras predict latency and memory only (pass the RUN_DIR"
                     " to time the trained model).")
    return refs


def _audio_for_timing(evalset: accuracy.EvalSet, spec, stream_seconds: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows for the latency figures, a signal to stream hop by hop, and the recording
    ``edge-ser listen`` replays (whole clips back to back, about ``stream_seconds``)."""
    from edge.audio import load

    utts = evalset.utterances
    picks = np.unique(np.linspace(0, len(utts) - 1, min(LATENCY_WINDOWS, len(utts)))
                      .round().astype(int))
    windows = np.stack([accuracy.model_window(utts[i].path, spec) for i in picks])
    rate = spec.frontend.sample_rate
    pieces, total, i = [], 0, 0
    order = np.random.default_rng(0).permutation(len(utts))
    while total < stream_seconds * rate:
        x = load(utts[order[i % len(utts)]].path, rate, min_samples=1)
        pieces.append(x)
        total += x.size
        i += 1
    whole = np.concatenate(pieces)[: int(stream_seconds * rate)].astype(np.float32)
    return windows, whole[: max(spec.window_samples * 4, 20 * rate)], whole


def _peers(evalset: accuracy.EvalSet, repeats: int, notes: list[str]) -> dict[str, Any]:
    missing = [m for m in ("librosa", "python_speech_features")
               if importlib.util.find_spec(m) is None]
    if missing:
        notes.append(f"front-end peers skipped: {', '.join(missing)} not installed"
                     f" ({TRAIN_EXTRA} adds them)")
        return {"skipped": f"{', '.join(missing)} not installed"}
    from benchmarks.frontend import run as frontend_run

    paths = [u.path for u in evalset.utterances]
    picks = np.unique(np.linspace(0, len(paths) - 1, min(40, len(paths))).round().astype(int))
    chosen = [paths[i] for i in picks]
    return frontend_run(chosen, repeats=max(3, repeats // len(chosen)))


def _model_entry(c: Contender, scored: dict, proc: dict,
                 held_out_by: dict[str, str]) -> dict[str, Any]:
    entry = c.describe()
    entry["accuracy"] = scored["models"].get(c.name)
    entry["held_out_by"] = held_out_by.get(c.name)
    entry.update(proc.get(c.name, {}))
    return entry


def _held_out_by(contenders: list[Contender]) -> dict[str, str]:
    """Model name -> the pooled fold contender that stands for it on held-out speakers: the
    folds of its RUN_DIR (or of the run it was exported from), run the same way."""
    links: dict[str, str] = {}
    runs = {c.path: c for c in contenders if c.runtime == KERAS and not c.pooled}
    for p in (c for c in contenders if c.pooled):
        run = runs.get(p.path)
        if run is None:
            continue
        for c in contenders:
            if c.pooled or c.latency_only or (c.runtime, c.quantization) != (p.runtime,
                                                                              p.quantization):
                continue
            if c is run or same_training(c, run):
                links[c.name] = p.name
    return links


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
                 f" (n={acc['n']})\n{acc['headline']}")
        plots.confusion(acc["confusion"], m["labels"], out / name, title)
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
    try:
        cli(prog_name=PROG)
    except ImportError as e:
        extra = missing_extra(e, "this part of the benchmark")
        if extra is None:
            raise
        click.echo(f"{PROG}: {extra}", err=True)
        sys.exit(extra.exit_code)


if __name__ == "__main__":
    main()
