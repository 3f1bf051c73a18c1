"""``edge-ser``: live speech emotion recognition on the device.

Commands: ``listen`` (microphone, file replay or raw PCM on stdin), ``predict`` (files),
``devices`` (input devices and their rates), ``info`` (a model bundle's metadata).

Exit codes: 0 ok (and listen stopped by SIGTERM), 1 failure (listen: the microphone went
away), 2 bad input (a file, a model, a device, an option), 130 Ctrl-C, 141 stdout closed (a
pipe's reader gone). With ``--json`` only JSON Lines go to stdout; every diagnostic goes to
stderr.

Importing this module is cheap (click only): numpy, the interpreter and sounddevice are
imported inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

import click

from edge import __version__
from edge.cli_errors import CliError
from edge.errors import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EdgeSerError
from edge.mqtt.config import given as mqtt_given
from edge.mqtt.config import mqtt_options

PROG = "edge-ser"
_IMPORTED_AT = time.monotonic()
"""When the CLI module was imported: the start of the time-to-first-result measurement."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgeSerError as e:
            raise CliError(e, PROG) from None
        except KeyboardInterrupt:  # outside listen's own handling (e.g. in predict)
            _warn("interrupted")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:  # the reader went away: `edge-ser listen --json | head -1`
            # quietly, with the status a shell gives a writer killed by SIGPIPE (click would
            # say 1); stdout now points at /dev/null so the final flush cannot fail again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None


def _emit(obj: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed (a consumer reads it as it happens)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _warn(message: str) -> None:
    click.echo(f"{PROG}: {message}", err=True)


model_option = click.option(
    "--model", "-m", metavar="MODEL",
    help="Model bundle: a .tflite path or a shipped name (cnn, cnn-lstm, cnn-float32, ...)."
         "  [default: the shipped default, or $EDGE_SER_MODEL]")
threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True,
    help="Interpreter threads.")
json_option = click.option(
    "--json", "as_json", is_flag=True,
    help="JSON Lines on stdout (one object per result), nothing else on stdout.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """Speech emotion recognition on a CPU: a numpy MFCC front end and an int8 TFLite model.

    \b
      edge-ser listen                      live, from the default microphone
      edge-ser listen --file talk.wav      replay a recording as if it were live
      edge-ser predict a.wav b.wav --json  one prediction per file, as JSON Lines
      edge-ser devices                     input devices and the rates they take
      edge-ser info cnn-lstm               what a model bundle contains

    Exit status: 0 ok (listen: also stopped by SIGTERM), 1 failure (listen: the microphone
    went away), 2 bad input (file, model, device, option), 130 Ctrl-C, 141 stdout closed.
    """


# --------------------------------------------------------------------------------------
# listen
# --------------------------------------------------------------------------------------


@cli.command()
@model_option
@click.option("--device", "-d", metavar="DEVICE",
              help="Input device: an index or part of a name from `edge-ser devices`."
                   "  [default: the system's default input]")
@json_option
@click.option("--hop", type=click.FloatRange(min=0.01), metavar="SECONDS",
              help="Seconds between interim / no-speech results.  [default: the model's,"
                   " usually 0.5]")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Top probability below which a result is marked uncertain.")
@click.option("--file", "-f", "file", metavar="FILE",
              help="Replay an audio file as the live source instead of a microphone.")
@click.option("--fast", is_flag=True,
              help="With --file: as fast as possible instead of in real time.")
@click.option("--stdin-raw", type=click.IntRange(min=1), metavar="RATE",
              help="Read raw signed 16-bit little-endian mono PCM at RATE Hz from stdin.")
@click.option("--duration", type=click.FloatRange(min=0.0, min_open=True), metavar="SECONDS",
              help="Stop after this many seconds of audio (exit 0, with the summary).")
@click.option("--record", metavar="FILE.wav",
              help="Also write the audio as it was heard (the source's rate, 32-bit float"
                   " WAV): `edge-ser predict FILE.wav` then gives the same utterances.")
@threads_option
@mqtt_options
def listen(model: str | None, device: str | None, as_json: bool, hop: float | None,
           threshold: float, file: str | None, fast: bool, stdin_raw: int | None,
           duration: float | None, record: str | None, threads: int,
           **mqtt_options: Any) -> None:
    """Stream audio through the model: one emotion per utterance, live.

    The stream is cut into utterances where the speaker pauses (0.4 s of silence); while
    someone speaks, an interim result every hop from the utterance so far; when they stop,
    one final result for the whole utterance, within 0.5 s. On a terminal: a live line for
    the utterance under way and one kept line per finished utterance (start-end, emotion,
    confidence, bar, runner-up; `?` marks an uncertain one). With --json, one object per
    result on stdout (JSON Lines):

    \b
      {"event": "final", "t": 5.81, "utterance": 0, "start": 2.6, "end": 5.5,
       "speech": true, "label": "angry", "confidence": 0.71, "uncertain": false,
       "probs": {...}, "scores": [[...]], "speech_seconds": 2.3, "noise_floor_db": -61.2}

    "event" is "final" (once per utterance), "interim" (every hop while it goes on) or
    "no_speech" (every hop in a pause: label null); `jq 'select(.event == "final")'` keeps
    the finals. "t" is when the result was decided, "start"/"end" the utterance's span,
    all in seconds of audio since the start. At the end (file done, stdin closed,
    --duration reached, or Ctrl-C) a one-line summary goes to stderr and, with --json, a
    last {"summary": {...}} object to stdout. Exit status 0 at the end of a file or stdin
    and after SIGTERM (systemd's stop), 130 after Ctrl-C, 1 when the microphone goes away,
    141 when stdout is closed; overruns (audio dropped because processing fell behind) are counted
    in the summary, never fatal.

    MQTT (--mqtt URL; pip install './edge-ser[mqtt]'): each final result goes, as the JSON line
    above plus "device", "session" and "time" (Unix seconds), to PREFIX/DEVICE/emotion
    (QoS 1, in order); the last one, retained, to PREFIX/DEVICE/state; "online" / "offline"
    (also the last will), retained, to PREFIX/DEVICE/availability; at the end the summary
    to PREFIX/DEVICE/summary. Stdout is unchanged. A broker that is down, at the start or
    later, does not stop listening: one line on stderr, final results queued (--mqtt-queue,
    oldest dropped and counted), reconnection every 1 s doubling to 30 s, and counts in the
    summary. Refused credentials, TLS failures and bad options are errors (exit 2). The
    password comes from $EDGE_SER_MQTT_PASSWORD or --mqtt-password-file, never the command
    line; mqtt:// to another machine warns that it is unencrypted.

    \b
      edge-ser listen --mqtt mqtt://localhost --mqtt-homeassistant
      EDGE_SER_MQTT_PASSWORD=... edge-ser listen --mqtt mqtts://hub:8883 \\
          --mqtt-username pi --mqtt-ca ca.crt
      mosquitto_sub -h hub -t 'edge-ser/+/emotion' -v      # every device's finals
    """
    if file is not None and stdin_raw is not None:
        raise click.UsageError("use either --file or --stdin-raw, not both")
    if fast and file is None:
        raise click.UsageError("--fast only applies to --file")
    mqtt_config = None
    if mqtt_given(mqtt_options):
        from edge.mqtt import config_from_options, import_paho

        mqtt_config = config_from_options(**mqtt_options)
        import_paho()  # before the model loads: a missing extra is said at once
    from edge.live import LiveView
    from edge.native_stderr import filtered_stderr
    from edge.session import Session
    from edge.shipped import load_model_bundle
    from edge.sources import FileSource, MicSource, stdin_source

    bundle = load_model_bundle(model)
    rate = bundle.metadata.features.frontend.sample_rate
    # PortAudio's and ALSA's C messages (at start-up, at an unplug) are kept off stderr
    # while a microphone is in use; edge-ser says what happened in its own line
    quiet = filtered_stderr() if file is None and stdin_raw is None else \
        contextlib.nullcontext()
    with quiet:
        if file is not None:
            fe = bundle.metadata.features.frontend
            source = FileSource(file, realtime=not fast,
                                min_seconds=fe.frame_length / fe.sample_rate)
        elif stdin_raw is not None:
            source = stdin_source(stdin_raw)
        else:
            source = MicSource(device, preferred_rate=rate)
        session = Session(bundle, source, view=LiveView(as_json=as_json,
                                                        labels=bundle.metadata.labels),
                          hop_seconds=hop, threshold=threshold, threads=threads,
                          max_seconds=duration, record=record, mqtt=mqtt_config, warn=_warn,
                          announce=not as_json, started=_IMPORTED_AT)
        outcome = session.run()
    if as_json:
        _emit({"summary": outcome.summary.to_dict()})
    if outcome.exit_code:
        sys.exit(outcome.exit_code)


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@model_option
@json_option
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Top probability below which an utterance is marked uncertain.")
@threads_option
def predict(files: tuple[str, ...], model: str | None, as_json: bool, threshold: float,
            threads: int) -> None:
    """Predict the emotion of each audio FILE (WAV; FLAC and others with soundfile).

    A file is cut into utterances exactly as `listen` cuts a stream, so a clip, a voice note
    and an hour-long meeting are all handled the same way (read as a stream: memory stays
    small whatever the length). On a terminal: one line per file (emotion, confidence,
    runner-up) and, for a file of several utterances, one indented line per utterance. With
    --json, one object per file (JSON Lines):

    \b
      {"file": "a.wav", "label": "sad", "confidence": 0.58, "probs": {label: p},
       "speech": true, "duration": 3.7,
       "utterances": [{"utterance": 0, "start": 0.8, "end": 3.1, "label": "sad",
                       "confidence": 0.58, "uncertain": false, "probs": {...},
                       "scores": [[raw int8 outputs per window]], "speech_seconds": 1.9}]}

    The file's label is the average of its utterances weighted by their speech; a file of
    one utterance gets exactly that utterance's result, one without speech "label": null.
    A file that cannot be used gets one line on stderr (edge-ser: FILE: reason) and nothing
    on stdout; the other files are still predicted, and the exit status is 2 at the end.
    """
    from edge.classifier import Classifier
    from edge.predict import predict_file
    from edge.shipped import load_model_bundle

    bundle = load_model_bundle(model)
    classifier = Classifier(bundle, threads=threads)
    failed = 0
    progress = sys.stderr.isatty() and len(files) > 1
    for i, path in enumerate(files, 1):
        if progress:
            click.echo(f"\r[{i}/{len(files)}] {path}"[:79].ljust(79), err=True, nl=False)
        try:
            result = predict_file(path, classifier, threshold=threshold)
        except EdgeSerError as e:
            failed += 1
            if progress:
                click.echo("\r" + " " * 79 + "\r", err=True, nl=False)
            message = str(e)
            _warn(message if message.startswith(str(path)) else f"{path}: {message}")
            continue
        if as_json:
            _emit(result.to_dict())
        else:
            if progress:
                click.echo("\r" + " " * 79 + "\r", err=True, nl=False)
            click.echo(_predict_lines(result))
    if progress:
        click.echo("\r" + " " * 79 + "\r", err=True, nl=False)
    if failed:
        if len(files) > 1:
            _warn(f"{failed} of {len(files)} files failed")
        sys.exit(EXIT_BAD_INPUT)


def _predict_lines(result: Any) -> str:
    if result.label is None:
        return f"{result.file}\t(no speech)"
    lines = [f"{result.file}\t{_ranked(result.label, result.confidence, result.probs)}"]
    if len(result.utterances) > 1:
        lines += [f"  {u.start:7.1f}-{u.end:7.1f} s\t"
                  f"{_ranked(u.label + ('?' if u.uncertain else ''), u.confidence, u.probs)}"
                  for u in result.utterances]
    return "\n".join(lines)


def _ranked(label: str, confidence: float, probs: dict[str, float]) -> str:
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    runner, p2 = ranked[1] if ranked[0][0] == label.rstrip("?") else ranked[0]
    return f"{label}\t{confidence:.2f}\t(then {runner} {p2:.2f})"


# --------------------------------------------------------------------------------------
# devices, info
# --------------------------------------------------------------------------------------


@cli.command()
@json_option
def devices(as_json: bool) -> None:
    """List audio input devices and the sample rates each accepts (mono).

    The model's rate (16000 Hz) is best; a device without it is captured at its default rate
    and resampled. Pass the index or part of the name to `edge-ser listen --device`.
    """
    from edge.sources import input_devices

    found = input_devices()
    if not found:
        _warn("no audio input devices found; use `edge-ser listen --file FILE` to replay a"
              " recording instead")
        sys.exit(EXIT_BAD_INPUT)
    if as_json:
        for dev in found:
            _emit(dev)
        return
    for dev in found:
        mark = "*" if dev["default"] else " "
        rates = ", ".join(str(r) for r in dev["rates"]) or "none of the common rates"
        click.echo(f"{mark}{dev['index']:>3}  {dev['name']}  ({dev['hostapi']},"
                   f" {dev['channels']} ch, default {dev['default_rate']} Hz)  rates: {rates}")
    click.echo("(* = default input)", err=True)


@cli.command()
@click.argument("model", required=False, metavar="MODEL")
@json_option
def info(model: str | None, as_json: bool) -> None:
    """Show a model bundle's metadata: labels, features, model, training, accuracy.

    MODEL is a .tflite path or a shipped name; without it, the default model. The shipped
    models are listed too, and the licences: the code's, and the weights' (those of the
    corpora the model was trained on; the shipped weights are for non-commercial use).
    """
    from edge.licences import CODE_LICENCE, NOTICE, weights_licence
    from edge.shipped import default_model, load_model_bundle, shipped_models

    bundle = load_model_bundle(model)
    meta = bundle.metadata
    licence = {"code": CODE_LICENCE, "weights": weights_licence(meta.training),
               "notice": str(NOTICE)}
    if as_json:
        _emit({"path": str(bundle.path), "size_bytes": bundle.size_bytes, **meta.to_dict(),
               "licence": licence})
        return
    spec = meta.features
    fe, ep = spec.frontend, spec.endpoint
    lines = [
        f"model        {bundle.path} ({bundle.size_bytes / 1024:.1f} KB)",
        f"kind         {meta.kind}, {meta.quantization},"
        f" {meta.model.get('parameters', '?')} parameters",
        f"labels       {', '.join(meta.labels)}",
        f"input        {spec.input_shape} = {spec.window_seconds:g} s window,"
        f" {fe.n_mfcc} MFCC{' + deltas' if spec.delta_width else ''}, level-normalised per"
        f" utterance (floor {spec.floor_db:g} dB); hop {meta.hop_seconds:g} s",
        f"utterances   end after {ep.min_silence_ms:g} ms of silence, at least"
        f" {ep.min_speech_ms:g} ms of speech, at most {ep.max_speech_s:g} s; longer than a"
        f" window: windows {spec.stride_seconds:g} s apart, averaged",
        f"front end    {fe.convention}, {fe.sample_rate} Hz, n_fft {fe.n_fft},"
        f" win {fe.win_length}, hop {fe.hop_length}, {fe.n_mels} mels,"
        f" {fe.fmin:g}-{fe.fmax:g} Hz (hash {fe.config_hash()})",
        f"training     {_describe(meta.training)}",
        *[f"{'accuracy' if i == 0 else '':<12} {key}: {_describe(value)}"
          for i, (key, value) in enumerate(sorted(meta.accuracy.items()))],
        f"edge-ser     {meta.edge_ser_version or '?'}",
        f"integrity    sha256 {meta.sha256[:16]}... (verified on load)",
        f"licence      code {licence['code']}; {licence['weights']}",
        f"notice       {licence['notice']}",
    ]
    click.echo("\n".join(lines))
    shipped = shipped_models()
    if shipped:
        try:
            default = default_model().name
        except EdgeSerError:
            default = None
        names = ", ".join(p.stem + (" (default)" if p.name == default else "") for p in shipped)
        click.echo(f"shipped      {names}")


def _describe(value: Any) -> str:
    """A metadata value on one line: ``key value, ...``; long lists shortened."""
    if isinstance(value, dict):
        return ", ".join(f"{k} ({_describe(v)})" if isinstance(v, dict) else f"{k} {_describe(v)}"
                         for k, v in sorted(value.items())) or "-"
    if isinstance(value, list) and len(value) > 4:
        return f"[{len(value)}: {value[0]} ... {value[-1]}]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, list) else str(value)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name=PROG)
