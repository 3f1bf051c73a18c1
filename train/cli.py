"""``ser-train``: train and evaluate a model speaker-independently, write a run directory."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from pathlib import Path

import click

from edge.cli_errors import CliError
from edge.errors import EXIT_INTERRUPTED, EdgeSerError
from edge.features import FeatureSpec
from train.conditions import CONDITIONS_HELP, ConditionsType
from train.kinds import KINDS
from train.pretrained import KINDS as PRETRAINED

MODELS = tuple(KINDS)
CORPORA = ("ravdess", "crema-d", "tess", "savee", "emodb", "nemo", "csv")


def _parse_actors(text: str, speakers: list[str]) -> tuple[str, ...]:
    """``1,2,15`` or ``ravdess-01,...`` -> speaker ids present in the data."""
    from edge.errors import ConfigError
    from train.corpora import actor_number

    by_number: dict[int, list[str]] = {}
    for s in speakers:
        with contextlib.suppress(ValueError):
            by_number.setdefault(actor_number(s), []).append(s)
    out: list[str] = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item in speakers:
            out.append(item)
        elif item.isdigit() and len(by_number.get(int(item), [])) == 1:
            out.append(by_number[int(item)][0])
        else:
            raise ConfigError(f"--test-actors: {item!r} is not a speaker in the data"
                              f" (e.g. {', '.join(speakers[:4])}, or their numbers)")
    if not out:
        raise ConfigError("--test-actors: empty list")
    return tuple(dict.fromkeys(out))


@click.command(context_settings={"help_option_names": ["-h", "--help"],
                                 "max_content_width": 100})
@click.option("--data", "data", multiple=True, required=True,
              type=click.Path(path_type=Path),
              help="Corpus directory (or a CSV of path,label[,speaker]). Repeat to train on"
                   " several corpora together.")
@click.option("--corpus", "corpora", multiple=True, type=click.Choice(CORPORA),
              help="Reader for each --data, in order (default: detected from file names).")
@click.option("--model", "kind", type=click.Choice(MODELS), default="cnn", show_default=True,
              help="; ".join(f"{k.name}: {k.summary}" for k in KINDS.values())
              + ". Only the exportable kinds run on the device; the others are host-side"
                " comparisons and teachers.")
@click.option("--pretrained", type=click.Path(path_type=Path), default=None,
              metavar="PATH",
              help="The weights of a pretrained --model, never downloaded: a Hugging Face"
                   " wav2vec2 directory (config.json + model.safetensors) for wav2vec2-rf, a"
                   " Keras VGG16 no-top weights file (.h5) for vgg16-lstm.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="Run directory to write (model.keras, config.json, report.*).")
@click.option("--folds", type=int, default=4, show_default=True,
              help="K-fold by speaker: each speaker is tested exactly once; then the shipped"
                   " model is trained on all speakers.")
@click.option("--repeats", type=int, default=1, show_default=True,
              help="Repeat the cross-validation over this many different speaker partitions"
                   " (each speaker tested once per repeat): spreads that can rank recipes.")
@click.option("--final/--no-final", default=True, show_default=True,
              help="After the folds, train the shipped model on all speakers (--no-final:"
                   " folds only, for experiments).")
@click.option("--only-folds", "only_folds", default=None, metavar="K[,K...]",
              help="Run only these folds of the partition (1-based, e.g. 1,2): part of a"
                   " cross-validation when compute is short; the report says which. Finished"
                   " folds of an earlier start are taken over either way.")
@click.option("--cv-from", "cv_from", type=click.Path(path_type=Path), default=None,
              metavar="RUN_DIR",
              help="Take the cross-validation (fold reports and fold models) of RUN_DIR, a run"
                   " of this model on the same corpora and speakers, and train only the"
                   " shipped model; every difference of the recipe is listed in the report.")
@click.option("--test-actors", default=None,
              help="Instead of folds: hold out these speakers (e.g. 1,2 or ravdess-01) and"
                   " ship the model trained on the others.")
@click.option("--val-speakers", type=int, default=0, show_default=True,
              help="0: every epoch of the cosine schedule runs and the last is kept (all other"
                   " speakers train). N: N training speakers per fold choose the epoch (early"
                   " stopping; the shipped model then uses the folds' median).")
@click.option("--epochs", type=int, default=60, show_default=True,
              help="Epochs per fold and for the shipped model (cosine schedule to 0).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same data and seed give the same report on the same machine.")
@click.option("--loss", type=click.Choice(["ce", "focal"]), default="ce", show_default=True,
              help="Cross-entropy, or focal loss alpha*(1-pt)**gamma*CE.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Waveform copies (speed, pitch, reverberation, band limits, noise, gain),"
                   " moved and cut-short windows, and SpecAugment, on training speakers only.")
@click.option("--aug-copies", type=int, default=4, show_default=True,
              help="Augmented waveform copies per training clip (cached; one per epoch, in"
                   " rotation): speed, pitch, reverberation, band limits, noise, gain.")
@click.option("--extra-data", "extra_data", multiple=True, type=click.Path(path_type=Path),
              help="A corpus that only trains: in each fold its clips of test and validation"
                   " speakers are left out, the rest join the training set (e.g. RAVDESS"
                   " song, or SAVEE). Scores stay on --data's speakers. Repeatable.")
@click.option("--eval-data", "eval_data", multiple=True, type=click.Path(path_type=Path),
              help="A corpus scored but never trained on (leave-one-corpus-out), by every fold"
                   " model and the shipped one. Repeatable.")
@click.option("--conditions", type=ConditionsType(), default="all", show_default=True,
              help=CONDITIONS_HELP)
@click.option("--teacher", "teachers", multiple=True, type=click.Path(path_type=Path),
              metavar="RUN_DIR",
              help="Distil from this run's models (repeatable: their average teaches), fold by"
                   " fold on the same speakers; the targets mix --distill of the teacher with"
                   " the label.")
@click.option("--distill", type=click.FloatRange(0.0, 1.0), default=0.7, show_default=True,
              help="Share of the teacher in each target.")
@click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
              help="Extra model-builder argument (e.g. dropout=0.4). Repeatable.")
@click.option("--learning-rate", type=float, default=2e-3, show_default=True,
              help="Peak learning rate (cosine decay to 0 over --epochs).")
@click.option("--mixup", type=float, default=0.0, show_default=True,
              help="Mixup Beta(a, a) parameter on training batches; 0 disables.")
@click.option("--label-smoothing", type=float, default=0.0, show_default=True)
@click.option("--corpus-balance/--no-corpus-balance", default=True, show_default=True,
              help="Class weights per (corpus, class) pair: each corpus's classes balanced"
                   " within it, so a large corpus with another class mix (nEMO) does not"
                   " shift the others' classes. Without: one weight per class, pooled.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True,
              help="Decoupled weight decay (AdamW); 0 uses Adam.")
@click.option("--cmn/--no-cmn", default=False, show_default=True,
              help="Also subtract each coefficient's mean over the window inside the model"
                   " (the level is always normalised per utterance in the front end).")
@click.option("--utterance-mean/--no-utterance-mean", default=False, show_default=True,
              help="Remove each mel band's mean over the utterance from the model input"
                   " (the speaker's and microphone's average spectrum), in the front end.")
@click.option("--window-seconds", type=float, default=3.0, show_default=True,
              help="Audio per model window, seconds (an utterance longer than one gets several).")
@click.option("--classes", default=None,
              help="Classes to keep, comma-separated; a+b merges b into a; others dropped."
                   " E.g. 'neutral+calm,happy,sad,angry'.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Feature cache (default $EDGE_SER_CACHE or ~/.cache/edge-ser/features).")
@click.option("--no-cache", is_flag=True, help="Compute every feature again.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report summary as JSON on stdout.")
def main(as_json: bool, **options) -> None:
    """Train a speech-emotion model speaker-independently and write RUN_DIR (--out).

    \b
    Example (RAVDESS, 4-fold by actor, then the shipped model on all actors):
      ser-train --data ../shared/data/ravdess-speech-16k --model cnn --out runs/cnn

    \b
    RUN_DIR gets model.keras (normalisation inside), core.keras, config.json,
    report.json, report.md, confusion.png and folds/fold-<k>/ with each fold's model.
    Features are cached by front-end config and file contents: a second run is faster.
    Exit codes: 0 ok, 1 failure, 2 bad input, 130 interrupted.
    """
    try:
        report = _main(**options)
    except EdgeSerError as e:
        raise CliError(e, "ser-train") from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    s = report["summary"]
    kind, out = options["kind"], options["out"]
    click.echo(f"{kind}: accuracy {s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f},"
               f" macro-F1 {s['macro_f1_mean']:.3f} ± {s['macro_f1_std']:.3f}"
               f" over {s['folds']} fold(s); wrote {out}", err=True)
    if as_json:
        click.echo(json.dumps({"out": str(out), "model": kind, "summary": s,
                               "labels": report["labels"]}))


def _parse_folds(text: str, n_folds: int) -> tuple[int, ...]:
    """``1,3`` -> (1, 3), each within 1..n_folds (all repeats' folds, numbered on)."""
    from edge.errors import ConfigError

    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if not item.isdigit() or not 1 <= int(item) <= n_folds:
            raise ConfigError(f"--only-folds {item!r}: give fold numbers from 1 to {n_folds}"
                              " (--folds times --repeats)")
        out.append(int(item))
    if not out:
        raise ConfigError("--only-folds: empty list")
    return tuple(sorted(set(out)))


def _parse_options(items: tuple[str, ...]) -> dict:
    """``key=value`` pairs -> dict; values parsed as JSON where they can be (numbers, bools)."""
    from edge.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-option {item!r}: use KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _main(*, data, corpora, kind, pretrained, out, folds, repeats, final, only_folds, cv_from,
          test_actors, val_speakers, epochs,
          batch_size, seed, loss, augment, aug_copies, extra_data, eval_data, conditions,
          teachers, distill, model_options, learning_rate, mixup, label_smoothing, corpus_balance,
          weight_decay, cmn, utterance_mean, window_seconds, classes, cache_dir, no_cache):
    from edge.errors import ConfigError
    from train.corpora import read_corpus
    from train.labels import parse_classes

    if corpora and len(corpora) != len(data):
        raise ConfigError(f"--corpus given {len(corpora)} times for {len(data)} --data:"
                          " give one per --data, in the same order, or none")
    for name, value, low in (("--epochs", epochs, 1), ("--batch-size", batch_size, 1),
                             ("--repeats", repeats, 1), ("--folds", folds, 2),
                             ("--val-speakers", val_speakers, 0), ("--aug-copies", aug_copies, 0)):
        if value < low:
            raise ConfigError(f"{name} {value}: must be >= {low}")
    chosen_folds = _parse_folds(only_folds, folds * repeats) if only_folds else ()
    if kind in PRETRAINED or pretrained is not None:
        from train.pretrained.options import check_options as check_pretrained_options

        check_pretrained_options(kind, pretrained, {
            "--extra-data": extra_data, "--eval-data": eval_data, "--teacher": teachers,
            "--repeats": repeats > 1, "--utterance-mean": utterance_mean, "--only-folds":
            only_folds, "--cv-from": cv_from, "--model-option": model_options})
    classical = KINDS[kind].family == "classical"
    model_word = f"--model {kind}" if classical else "a classical --model"
    if chosen_folds and (test_actors or cv_from is not None or classical):
        raise ConfigError("--only-folds picks folds of this run's cross-validation: it does"
                          f" not go with --test-actors, --cv-from or {model_word}"
                          " (classical kinds run every fold)")
    if cv_from is not None and (test_actors or not final or classical):
        raise ConfigError("--cv-from trains only the shipped model: it does not go with"
                          f" --test-actors, --no-final or {model_word}")
    spec = FeatureSpec(window_seconds=window_seconds, utterance_mean=utterance_mean)
    utterances = []
    sources = []
    for i, root in enumerate(data):
        corpus = read_corpus(root, corpora[i] if corpora else None)
        skipped = sum(corpus.skipped.values())
        click.echo(f"{root}: {corpus.name}, {len(corpus.utterances)} clips,"
                   f" {len(corpus.speakers)} speakers"
                   + (f" ({skipped} files skipped: {corpus.skipped})" if skipped else ""),
                   err=True)
        if not corpus.utterances:
            raise ConfigError(f"--data {root}: no usable {corpus.name} files")
        utterances.extend(corpus.utterances)
        sources.append({"corpus": corpus.name, "path": str(Path(root).resolve())})
    extra_utts = []
    extra_sources = []
    for root in extra_data:
        corpus = read_corpus(root)
        click.echo(f"{root}: {corpus.name}, {len(corpus.utterances)} clips,"
                   f" {len(corpus.speakers)} speakers (training only)", err=True)
        if not corpus.utterances:
            raise ConfigError(f"--extra-data {root}: no usable {corpus.name} files")
        extra_utts.extend(corpus.utterances)
        extra_sources.append({"corpus": corpus.name, "path": str(Path(root).resolve())})
    evaluated = []
    eval_sources = []
    for root in eval_data:
        corpus = read_corpus(root)
        if not corpus.utterances:
            raise ConfigError(f"--eval-data {root}: no usable {corpus.name} files")
        overlap = {u.speaker for u in corpus.utterances} & \
            {u.speaker for u in [*utterances, *extra_utts]}
        if overlap:
            raise ConfigError(f"--eval-data {root}: speakers also in --data"
                              f" ({', '.join(sorted(overlap)[:4])}); an evaluation corpus must"
                              " be one the model never trains on")
        evaluated.append((f"{corpus.name}", list(corpus.utterances)))
        eval_sources.append({"corpus": corpus.name, "path": str(Path(root).resolve())})
    label_map = parse_classes(classes, {u.label for u in [*utterances, *extra_utts]})
    speakers = sorted({u.speaker for u in utterances})
    test = _parse_actors(test_actors, speakers) if test_actors else None
    if test is None and cv_from is None and folds > len(speakers):
        raise ConfigError(f"--folds {folds}: the data has {len(speakers)} speakers; each fold"
                          " needs at least one to test")
    command = "ser-train " + shlex.join(sys.argv[1:])
    if kind in PRETRAINED:
        from train.pretrained.run import run_pretrained

        return run_pretrained(kind, pretrained, out, spec, tuple(sources), utterances, label_map,
                              folds=folds, test_speakers=test, seed=seed, epochs=epochs,
                              batch_size=batch_size, cache_dir=cache_dir,
                              use_cache=not no_cache, command=command)
    if classical:
        from train.baseline import run_baseline

        unsupported = [name for name, given in (
            ("--extra-data", extra_data), ("--eval-data", eval_data), ("--teacher", teachers),
            ("--repeats", repeats > 1), ("--utterance-mean", utterance_mean),
            ("--model-option", model_options)) if given]
        if unsupported:
            raise ConfigError(f"--model {kind}: {', '.join(unsupported)} not supported by the"
                              " classical kinds (speaker folds of --data only)")

        return run_baseline(out, spec, tuple(sources), utterances, label_map, folds=folds,
                            test_speakers=test, seed=seed, cache_dir=cache_dir,
                            use_cache=not no_cache, command=command, kind=kind)
    from train.augment import WaveAugment
    from train.fit import TrainConfig
    from train.models import check_options
    from train.plan import RunPlan
    from train.run import run

    check_options(kind, _parse_options(model_options))
    for teacher in teachers:
        taught_by = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            taught_by = json.loads((Path(teacher) / "report.json").read_text())["model"]["kind"]
        if taught_by in KINDS and KINDS[taught_by].family != "keras":
            raise ConfigError(f"--teacher {teacher}: a {taught_by} run cannot teach (its model"
                              " reads clip features, not the MFCC windows the student sees);"
                              " use a Keras kind's run")
    plan = RunPlan(
        out=out, spec=spec, data=tuple(sources), folds=folds, repeats=repeats,
        test_speakers=test, final=final, only_folds=chosen_folds, cv_from=cv_from,
        val_speakers=val_speakers,
        train=TrainConfig(kind=kind, epochs=epochs, batch_size=batch_size, loss=loss,
                          seed=seed, cmn=cmn, learning_rate=learning_rate, mixup=mixup,
                          label_smoothing=label_smoothing, weight_decay=weight_decay,
                          corpus_balance=corpus_balance,
                          model_options=_parse_options(model_options), distill=distill,
                          spec_augment=TrainConfig().spec_augment if augment
                          else None),
        augment=WaveAugment() if augment else None, aug_copies=aug_copies,
        conditions=conditions, eval_data=tuple(eval_sources), extra_data=tuple(extra_sources),
        teachers=tuple(Path(t) for t in teachers),
        cache_dir=cache_dir, use_cache=not no_cache, command=command,
    )
    return run(plan, utterances, label_map, evaluated, extra_utts)
