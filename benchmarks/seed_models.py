"""The comparison table of every ``ser-train --model`` kind (issue 23): reads run directories
and writes ``reports/seed-models.md`` (and the figures as ``.json``).

    python -m benchmarks.seed_models RUN_DIR... --reference RUN_DIR --setting TEXT \\
        --out reports/seed-models.md

Per run: its kind, the folds it ran, accuracy (mean ± standard deviation over those folds, or
± the standard error over the recordings when there is one fold), macro-F1, the paired
difference against the reference run (the shipped default, ``cnn``) on the recordings of the
folds both ran (each recording scored by both: mean of ``correct(kind) - correct(cnn)`` ± its
standard error), parameters and multiply-adds (Keras kinds, from the fold's ``config.json``),
the fit time per fold, and the CPU time of the whole run when ``RUN_DIR.time.json`` (JSON
Lines written beside the run by ``/usr/bin/time -a``, one per invocation) exists. Kinds in
:data:`NOT_MEASURED` get a row that says why they have no figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from train.kinds import KINDS

NOT_MEASURED = {
    "wav2vec2-rf": "not measured here: weights not available (wav2vec2-base; no download on"
                   " this machine)",
    "vgg16-lstm": "not measured here: weights not available (VGG16 ImageNet weights; no"
                  " download on this machine)",
}
"""Kinds that have no figures in this table, and why."""


def _shown(run: Path) -> str:
    """A run directory as the committed report names it (never a path of this machine)."""
    from export.pipeline import portable_path

    return portable_path(Path(run))


def _json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing or empty (a run still going)."""
    text = path.read_text().strip() if path.is_file() else ""
    return json.loads(text) if text else None


def _timing(path: Path) -> dict[str, float] | None:
    """``/usr/bin/time`` figures of the invocations that built a run (JSON Lines, one per
    invocation: a run resumed later adds one), summed; None when there are none."""
    rows = [json.loads(line) for line in (path.read_text().splitlines() if path.is_file()
                                          else []) if line.strip().startswith("{")]
    if not rows:
        return None
    return {k: round(sum(float(r[k]) for r in rows), 2)
            for k in ("cpu_seconds", "sys_seconds", "wall_seconds")}


def read_run(run: Path) -> dict[str, Any]:
    """What the table needs of one run directory."""
    report = _json(run / "report.json")
    if report is None:
        raise SystemExit(f"{run}: no report.json (not a finished ser-train run)")
    folds = {}
    for f in report["folds"]:
        preds = _json(run / "folds" / f"fold-{f['fold']}" / "predictions.json")
        folds[f["fold"]] = {
            "test_speakers": f["test_speakers"], "accuracy": f["test"]["accuracy"],
            "n": f["test"]["n"], "seconds": f.get("seconds"),
            "correct": None if preds is None else
            {c["path"]: c["predicted"] == c["label"] for c in preds["clips"]},
        }
    first = min(folds) if folds else None
    config = _json(run / "folds" / f"fold-{first}" / "config.json") if first else None
    model = (config or {}).get("model") or {}
    timing = _timing(run.with_name(run.name + ".time.json"))
    return {"run": _shown(run), "kind": report["model"]["kind"], "summary": report["summary"],
            "folds": folds, "parameters": model.get("parameters"),
            "multiply_adds": model.get("multiply_adds"), "timing": timing}


def paired(run: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any] | None:
    """``correct(run) - correct(ref)`` on the recordings of the folds both ran with the same
    test speakers: mean, standard error, recordings, folds. None without common folds."""
    diffs, folds = [], []
    for k, f in run["folds"].items():
        g = ref["folds"].get(k)
        if g is None or g["test_speakers"] != f["test_speakers"]:
            continue
        if f["correct"] is None or g["correct"] is None:
            continue
        common = sorted(set(f["correct"]) & set(g["correct"]))
        diffs += [int(f["correct"][p]) - int(g["correct"][p]) for p in common]
        folds.append(k)
    if not diffs:
        return None
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return {"difference": mean, "standard_error": math.sqrt(var / n), "n": n, "folds": folds}


def _accuracy(run: dict[str, Any]) -> str:
    s = run["summary"]
    if s["folds"] == 1:
        (f,) = run["folds"].values()
        se = math.sqrt(f["accuracy"] * (1 - f["accuracy"]) / f["n"])
        return f"{s['accuracy_mean']:.3f} ± {se:.3f} (1 fold; SE over {f['n']} recordings)"
    return f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f} ({s['folds']} folds; SD)"


def _count(value: int | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value / 1e6:.1f} M{unit}" if value >= 1e6 else f"{value / 1e3:.0f}k{unit}"


def row(run: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    p = paired(run, ref)
    diff = "—" if p is None else (
        "(reference)" if run is ref else
        f"{p['difference']:+.3f} ± {p['standard_error']:.3f} (fold{'s' * (len(p['folds']) > 1)}"
        f" {', '.join(map(str, p['folds']))}, {p['n']} recordings)")
    fit = [f["seconds"] for f in run["folds"].values() if f["seconds"] is not None]
    timing = run["timing"]
    cpu = "—" if not timing else f"{timing['cpu_seconds'] + timing['sys_seconds']:.0f} s"
    family = KINDS[run["kind"]].family if run["kind"] in KINDS else "?"
    first = run["folds"][min(run["folds"])]["accuracy"]
    return [f"`{run['kind']}`", family, _accuracy(run),
            f"{run['summary']['macro_f1_mean']:.3f}", f"{first:.3f}", diff,
            _count(run["parameters"]), _count(run["multiply_adds"]),
            f"{sum(fit) / len(fit):.0f} s" if fit else "—", cpu]


HEADER = ["kind", "family", "accuracy", "macro-F1", "fold 1", "paired against `cnn`",
          "parameters", "multiply-adds", "fit per fold (wall)", "CPU, whole run"]


def table(runs: list[dict[str, Any]], ref: dict[str, Any]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(row(r, ref)) + " |" for r in runs]
    for kind, why in NOT_MEASURED.items():
        lines.append(f"| `{kind}` | pretrained | {why} |" + " |" * (len(HEADER) - 3))
    return lines


FIGURES = "reports/seed-models.json"
"""The committed figures of the table, relative to the repository (the README's section)."""


def readme_table(figures: dict[str, Any]) -> str:
    """The README's short form of the table (generated section ``seed-models``), from the
    ``.json`` this module writes: kind, accuracy, the paired difference against the cnn,
    parameters."""
    lines = ["| kind | accuracy, unseen speakers | against `cnn`, same recordings |"
             " parameters |", "| --- | --- | --- | --- |"]
    for r in figures["runs"]:
        s, p = r["summary"], r["paired_against_reference"]
        acc = (f"{s['accuracy_mean']:.3f} ({s['folds']} folds)" if s["folds"] > 1
               else f"{s['accuracy_mean']:.3f} (fold {next(iter(r['folds']))})")
        diff = "(reference)" if p is None and r["run"] == figures["reference"] else (
            "—" if p is None else f"{p['difference']:+.3f} ± {p['standard_error']:.3f}"
            f" (fold{'s' * (len(p['folds']) > 1)} {', '.join(map(str, p['folds']))})")
        lines.append(f"| `{r['kind']}` | {acc} | {diff} | {_count(r['parameters'])} |")
    for kind in figures["not_measured"]:
        lines.append(f"| `{kind}` | not measured here: weights not available | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed_models",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="ser-train run directories")
    parser.add_argument("--reference", type=Path, required=True,
                        help="the run every other one is paired against (the shipped default)")
    parser.add_argument("--setting", required=True, help="the common setting, in words")
    parser.add_argument("--note", action="append", default=[], help="a line under the table")
    parser.add_argument("--out", type=Path, required=True, help="the .md to write")
    args = parser.parse_args(argv)
    ref = read_run(args.reference)
    runs = [ref] + [read_run(r) for r in args.runs if r.resolve() != args.reference.resolve()]
    lines = ["# Every model kind on the same speaker folds", "",
             f"Setting: {args.setting}", "", *table(runs, ref), "", *args.note]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    figures = [{k: v for k, v in r.items() if k != "folds"}
               | {"folds": {k: {x: y for x, y in f.items() if x != "correct"}
                            for k, f in r["folds"].items()},
                  "paired_against_reference": paired(r, ref) if r is not ref else None}
               for r in runs]
    args.out.with_suffix(".json").write_text(json.dumps(
        {"setting": args.setting, "reference": _shown(args.reference), "runs": figures,
         "not_measured": NOT_MEASURED}, indent=1) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
