"""Paired comparison of two ``ser-train`` runs on the same speaker folds.

Recipes are 3-6 points apart between folds on a few actors, so two runs are compared fold by
fold (the folds matched by their test speakers): the mean of the paired differences, their
standard deviation and standard error, and on how many folds B beat A, for the clean accuracy,
the interim accuracy, each room condition and each other corpus. (Folds of repeated
partitions share speakers, so their differences are not independent: with ``--repeats`` the
standard error is optimistic; count the folds B wins too.)

    python -m train.compare runs/a runs/b [--json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _folds(report: dict[str, Any]) -> dict[tuple[str, ...], dict[str, float]]:
    out = {}
    for f in report["folds"]:
        figures = {"accuracy": f["test"]["accuracy"], "macro_f1": f["test"]["macro_f1"]}
        if "interim" in f:
            figures["interim"] = f["interim"]["accuracy"]
        for group in ("conditions", "corpora"):
            for name, v in f.get(group, {}).items():
                figures[name] = v["accuracy"]
        out[(f.get("repeat", 0), *sorted(f["test_speakers"]))] = figures
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per measure: paired differences B - A over the folds both runs have."""
    fa, fb = _folds(a), _folds(b)
    common = [k for k in fa if k in fb]
    if not common:
        raise ValueError("the two runs share no fold (no test-speaker set in common)")
    measures = [m for m in fa[common[0]] if all(m in fa[k] and m in fb[k] for k in common)]
    out: dict[str, Any] = {"folds": len(common), "measures": {}}
    for m in measures:
        x = np.array([fa[k][m] for k in common])
        y = np.array([fb[k][m] for k in common])
        d = y - x
        out["measures"][m] = {
            "a": float(x.mean()), "b": float(y.mean()), "difference": float(d.mean()),
            "sd": float(d.std(ddof=1)) if d.size > 1 else 0.0,
            "se": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0,
            "b_better": int(np.sum(d > 0)), "per_fold": [round(float(v), 4) for v in d],
        }
    return out


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    paths = [a for a in args if a != "--json"]
    if len(paths) != 2:
        print("usage: python -m train.compare RUN_A RUN_B [--json]", file=sys.stderr)
        sys.exit(2)
    reports = []
    for p in paths:
        f = Path(p) / "report.json" if Path(p).is_dir() else Path(p)
        try:
            reports.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError) as e:
            print(f"compare: {f}: not a ser-train report ({e})", file=sys.stderr)
            sys.exit(2)
    try:
        result = compare(*reports)
    except ValueError as e:
        print(f"compare: {e}", file=sys.stderr)
        sys.exit(2)
    if as_json:
        print(json.dumps(result))
        return
    print(f"B = {paths[1]} against A = {paths[0]}, {result['folds']} paired folds")
    print(f"{'measure':<12} {'A':>6} {'B':>6} {'B-A':>7} {'± se':>6}  B better  per fold")
    for m, v in result["measures"].items():
        print(f"{m:<12} {v['a']:6.3f} {v['b']:6.3f} {v['difference']:+7.3f} {v['se']:6.3f}"
              f"  {v['b_better']}/{result['folds']}      "
              + " ".join(f"{d:+.3f}" for d in v["per_fold"]))


if __name__ == "__main__":
    main()
