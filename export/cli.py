"""``ser-export``: a trained run -> a verified int8 (or float32) TFLite bundle."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from edge.cli_errors import CliError
from edge.errors import EXIT_INTERRUPTED, EdgeSerError
from edge.extras import needs_extra

PROG = "ser-export"
EXPORT_NEEDS = ("tensorflow", "keras", "librosa")
"""Modules of the ``train`` extra every export needs (checked before any work starts)."""
REHASH_NEEDS = ("flatbuffers", "ai_edge_litert")


def _summary(report: dict, out: Path) -> str:
    from export.pipeline import report_path

    v = report["verification"]
    ops = ", ".join(f"{name}x{n}" for name, n in report["ops"].items())
    return (f"wrote {out} ({report['size_bytes']:,} bytes = {report['size_bytes'] / 1024:.1f} KiB,"
            f" {report['quantization']},"
            f" {report['kind']}; ops {ops})\nheld-out {v['clips']} clips: accuracy keras"
            f" {v['accuracy']['keras_float']:.3f}, float32 {v['accuracy']['tflite_float32']:.3f},"
            f" int8 {v['accuracy']['tflite_int8']:.3f}; int8/float32 top-1 agreement"
            f" {v['agreement']['int8_vs_float32']:.3f}, largest probability difference"
            f" {v['max_prob_diff']['int8_vs_float32']:.3f}\nreport: {report_path(out)}")


def _warnings(report: dict) -> list[str]:
    t = report["targets"]
    v = report["verification"]
    out = []
    if not t["agreement_met"]:
        out.append(f"int8/float32 agreement {v['agreement']['int8_vs_float32']:.3f} is below"
                   f" the target {t['int8_vs_float32_agreement_min']}")
    if not t["accuracy_gap_met"]:
        out.append(f"int8 accuracy is more than {t['int8_accuracy_gap_max']} below float32")
    if "size_met" in t and not t["size_met"]:
        out.append(f"int8 bundle is over the {t['size_bytes_max'] / 1024:.0f} KiB target for"
                   f" {report['kind']}")
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"],
                                 "max_content_width": 100})
@click.argument("run_dir", type=click.Path(path_type=Path), required=False)
@click.option("--int8/--float", "int8", default=True, show_default=True,
              help="Full-integer int8 (int8 weights, activations, input and output; builtin"
                   " ops only), or a float32 TFLite of the same model.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Bundle to write (.tflite). Default: RUN_DIR/model-int8.tflite or"
                   " RUN_DIR/model-float32.tflite. The report goes beside it as"
                   " <name>.export.json.")
@click.option("--calibration-clips", type=int, default=None,
              help="Clean training-fold clips for int8 calibration, spread over speakers and"
                   " labels. Default: all of them.")
@click.option("--calibration-augmented", type=int, default=0, show_default=True,
              help="Augmented copies of those clips added to the calibration set (the run's"
                   " own waveform augmentation).")
@click.option("--input-clip", type=float, default=5.0, show_default=True,
              help="int8 input range: +-this many standard deviations of the normalised"
                   " features (finer steps; rarer values saturate). 0: the calibration set's"
                   " full range.")
@click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
              help="Before int8 conversion, fold the mean output shift that int8 weight"
                   " rounding causes into the biases (measured on the calibration set).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Which clips --calibration-clips draws.")
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path),
              help="Corpus directory, when it is not where training read it (one per corpus"
                   " of the run, in order).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Feature cache (default $EDGE_SER_CACHE or ~/.cache/edge-ser/features).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the export report as JSON on stdout (diagnostics stay on stderr).")
@click.option("--rehash", "rehash_old", type=click.Path(path_type=Path), default=None,
              metavar="OLD.tflite",
              help="Instead of exporting: check a bundle made before bundles carried a checksum"
                   " (format 1) and write it with one to --out (no RUN_DIR, no TensorFlow).")
@click.option("--expect-sha256", default=None, metavar="HEX",
              help="With --rehash: the SHA-256 OLD must have. Default: the sha256 in"
                   " OLD.export.json beside it.")
@click.option("--unchecked", is_flag=True,
              help="With --rehash: add the checksum even with no SHA-256 to check OLD against.")
def main(run_dir, int8, out, calibration_clips, calibration_augmented, input_clip,
         bias_correction, seed, data, cache_dir, as_json, rehash_old, expect_sha256, unchecked):
    """Export the model of RUN_DIR (from ser-train) as a TFLite bundle for the edge runtime.

    The bundle is one .tflite file that carries its own metadata (labels, MFCC front-end
    config and its hash, window and hop, normalisation, model kind, training speakers,
    measured accuracy), read on the device without TensorFlow: `edge-ser info MODEL`.

    \b
    Verification is part of the export: the float Keras model, the float32 TFLite and the
    int8 TFLite are scored on held-out speakers (the run's test speakers; for a model
    trained on every speaker, each cross-validation fold's model converted the same way
    and scored on its own test speakers). Accuracy of each, int8/float32 top-1 agreement,
    the largest probability difference, sizes and the op list go to <name>.export.json.

    \b
    Every bundle carries a checksum of the whole file, which the device verifies before
    loading it. --rehash adds one to a bundle made before that (format 1): OLD is checked
    against the SHA-256 its export recorded (OLD.export.json, or --expect-sha256), its
    structure and metadata, and the new file must compute exactly what OLD does.

    \b
    Examples:
      ser-export runs/cnn --int8 --out cnn-int8.tflite
      ser-export runs/cnn --float --out cnn-float32.tflite --json
      ser-export --rehash old-cnn-int8.tflite --out cnn-int8.tflite

    Exit codes: 0 ok, 1 conversion or verification failed (e.g. a non-builtin or float
    op in the int8 graph, named), 2 bad input (not a run directory, data missing),
    130 interrupted.
    """
    if rehash_old is not None:
        _rehash(rehash_old, run_dir, out, expect_sha256, unchecked, as_json)
        return
    if run_dir is None:
        raise click.UsageError("give RUN_DIR (a ser-train run directory), or --rehash OLD")
    if expect_sha256 is not None or unchecked:
        raise click.UsageError("--expect-sha256 and --unchecked go with --rehash")
    try:
        with needs_extra("exporting", EXPORT_NEEDS):
            from export.data import Calibration
    except EdgeSerError as e:
        raise CliError(e, PROG) from None

    # TensorFlow's Python warnings (graph retracing as each fold's model is scored) are
    # not something a user can act on; errors still surface as exceptions.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    quantization = "int8" if int8 else "float32"
    out = out if out is not None else Path(run_dir) / f"model-{quantization}.tflite"
    try:
        with needs_extra("exporting"):
            from export.pipeline import ExportOptions, export_run

            options = ExportOptions(
                quantization=quantization,
                calibration=Calibration(clips=calibration_clips,
                                        augmented_copies=calibration_augmented,
                                        input_clip=input_clip or None, seed=seed),
                bias_correction=bias_correction, data=tuple(data), cache_dir=cache_dir,
            )
            report = export_run(run_dir, out, options)
    except EdgeSerError as e:
        raise CliError(e, PROG) from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    click.echo(_summary(report, out), err=True)
    for warning in _warnings(report):
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report))


def _rehash(old: Path, run_dir, out, expect_sha256, unchecked: bool, as_json: bool) -> None:
    if run_dir is not None:
        raise click.UsageError("--rehash OLD takes no RUN_DIR")
    if out is None:
        raise click.UsageError("--rehash OLD needs --out NEW.tflite (it may be OLD itself)")
    try:
        with needs_extra("--rehash", REHASH_NEEDS):
            from export.rehash import rehash

            summary = rehash(old, out, expect_sha256=expect_sha256, unchecked=unchecked)
    except EdgeSerError as e:
        raise CliError(e, PROG) from None
    click.echo(f"wrote {out} ({summary['size_bytes']:,} bytes, format 2, checksum"
               f" {summary['checksum'][:16]}...): {old} checked against {summary['reference']},"
               f" same outputs on {summary['inputs_compared']} inputs", err=True)
    if as_json:
        click.echo(json.dumps(summary))
