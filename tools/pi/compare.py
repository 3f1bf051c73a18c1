"""Compare `edge-ser ... --json` output from the host with the emulated Pi's.

    python tools/pi/compare.py --mode predict host.jsonl pi.jsonl
    python tools/pi/compare.py --mode listen  host.jsonl pi.jsonl

Both files are JSON Lines. The two sides must give the same labels, and the int8 output
scores must agree within one quantisation step: XNNPACK's int8 kernels differ by one
step between ARM and x86, no more.

- predict: one record per file, matched by the file's base name.
- listen: the window events in order (records that carry no label or scores, such as a
  closing summary with timings, are not compared).

Scores: the record's ``raw`` int8 outputs when both sides have them (|a - b| <= 1);
otherwise ``probs`` (dequantised int8, ``(q - zero_point) * scale``), within one step of
``--step`` (default: the record's output scale if it carries one, else 1/256) + 1e-6.

Exit status: 0 when everything agrees, 1 when something does not, 2 for unreadable input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import PurePath
from typing import Any

DEFAULT_STEP = 1.0 / 256.0
EPS = 1e-6
SCALE_KEYS = ("output_scale", "scale")
TIME_KEYS = ("t", "time", "start", "t_start", "offset", "window_start")


def read_jsonl(path: str) -> list[dict[str, Any]]:
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    msg = f"{path}:{n}: not JSON ({e.msg}): {line[:80]!r}"
                    raise SystemExit(_fail(msg, 2)) from None
                if isinstance(rec, dict):
                    records.append(rec)
    except OSError as e:
        raise SystemExit(_fail(f"{path}: cannot read ({e.strerror})", 2)) from None
    return records


def _fail(msg: str, code: int) -> int:
    print(f"compare: {msg}", file=sys.stderr)
    return code


def _step(*records: dict[str, Any], override: float | None) -> float:
    if override is not None:
        return override
    for rec in records:
        for key in SCALE_KEYS:
            value = rec.get(key)
            if isinstance(value, (int, float)) and value > 0:
                return float(value)
        quant = rec.get("output_quantization") or rec.get("quantization")
        if isinstance(quant, dict) and isinstance(quant.get("scale"), (int, float)):
            return float(quant["scale"])
    return DEFAULT_STEP


def _as_vector(value: Any) -> dict[str, float] | None:
    """A score container (dict label->number, or list) as a dict, else None."""
    if isinstance(value, dict):
        if all(isinstance(v, (int, float)) for v in value.values()):
            return {str(k): float(v) for k, v in value.items()}
        return None
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return {str(i): float(v) for i, v in enumerate(value)}
    return None


def compare_scores(
    host: dict[str, Any], pi: dict[str, Any], step_override: float | None
) -> tuple[float, str | None]:
    """Largest difference in quantisation steps and a reason when out of tolerance."""
    h_raw, p_raw = _as_vector(host.get("raw")), _as_vector(pi.get("raw"))
    if h_raw is not None and p_raw is not None:
        if h_raw.keys() != p_raw.keys():
            return math.inf, f"raw score keys differ: {sorted(h_raw)} vs {sorted(p_raw)}"
        worst = max((abs(h_raw[k] - p_raw[k]) for k in h_raw), default=0.0)
        return worst, (None if worst <= 1 else f"raw int8 scores differ by {worst:g} steps")
    h_p, p_p = _as_vector(host.get("probs")), _as_vector(pi.get("probs"))
    if h_p is None and p_p is None:
        return 0.0, None
    if h_p is None or p_p is None:
        return math.inf, "scores present on one side only"
    if h_p.keys() != p_p.keys():
        return math.inf, f"score labels differ: {sorted(h_p)} vs {sorted(p_p)}"
    step = _step(host, pi, override=step_override)
    worst = max((abs(h_p[k] - p_p[k]) for k in h_p), default=0.0)
    steps = worst / step
    if worst <= step + EPS:
        return steps, None
    return steps, f"scores differ by {steps:.2f} steps (step {step:g})"


def _is_scored(rec: dict[str, Any]) -> bool:
    return "label" in rec or "probs" in rec or "raw" in rec


def _key_predict(rec: dict[str, Any]) -> str:
    name = rec.get("file") or rec.get("path") or ""
    return PurePath(str(name)).name


def compare_predict(host: list[dict], pi: list[dict], step: float | None) -> list[str]:
    problems = []
    h = {_key_predict(r): r for r in host}
    p = {_key_predict(r): r for r in pi}
    if h.keys() != p.keys():
        problems.append(
            f"files differ: host only {sorted(h.keys() - p.keys())}, "
            f"pi only {sorted(p.keys() - h.keys())}"
        )
    print(f"{'file':<28} {'host':<12} {'arm64':<12} {'max diff (steps)':>16}")
    for name in sorted(h.keys() & p.keys()):
        hr, pr = h[name], p[name]
        h_err, p_err = hr.get("error"), pr.get("error")
        if h_err or p_err:
            verdict = "same error" if (h_err is not None) == (p_err is not None) else "ERROR"
            print(f"{name:<28} {str(h_err)[:12]:<12} {str(p_err)[:12]:<12} {verdict:>16}")
            if verdict == "ERROR":
                problems.append(f"{name}: error on one side only: host {h_err!r}, pi {p_err!r}")
            continue
        worst, why = compare_scores(hr, pr, step)
        same = hr.get("label") == pr.get("label")
        flag = "" if same and why is None else "  <-- differs"
        h_label, p_label = str(hr.get("label")), str(pr.get("label"))
        print(f"{name:<28} {h_label:<12} {p_label:<12} {worst:>16.2f}{flag}")
        if not same:
            problems.append(f"{name}: label {h_label!r} on the host, {p_label!r} on arm64")
        if why:
            problems.append(f"{name}: {why}")
    return problems


def compare_listen(host: list[dict], pi: list[dict], step: float | None) -> list[str]:
    problems = []
    h = [r for r in host if _is_scored(r)]
    p = [r for r in pi if _is_scored(r)]
    if not h:
        problems.append("the host printed no window events")
    if len(h) != len(p):
        problems.append(f"{len(h)} window events on the host, {len(p)} on arm64")
    worst_all, labels_same = 0.0, 0
    for i, (hr, pr) in enumerate(zip(h, p)):
        for key in TIME_KEYS:
            if key in hr and key in pr and hr[key] != pr[key]:
                problems.append(f"window {i}: {key} {hr[key]!r} on the host, {pr[key]!r} on arm64")
        worst, why = compare_scores(hr, pr, step)
        worst_all = max(worst_all, worst)
        if hr.get("label") == pr.get("label"):
            labels_same += 1
        else:
            problems.append(
                f"window {i}: label {hr.get('label')!r} on the host, {pr.get('label')!r} on arm64"
            )
        if why:
            problems.append(f"window {i}: {why}")
    n = min(len(h), len(p))
    labels = ", ".join(str(r.get("label")) for r in h[:12]) + (" ..." if len(h) > 12 else "")
    print(
        f"{n} windows: {labels_same}/{n} labels the same, largest score difference "
        f"{worst_all:.2f} steps; host labels: {labels}"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("predict", "listen"), required=True)
    ap.add_argument(
        "--step",
        type=float,
        default=None,
        help="one output quantisation step (default: from the records, else 1/256)",
    )
    ap.add_argument("host")
    ap.add_argument("pi")
    args = ap.parse_args(argv)
    host, pi = read_jsonl(args.host), read_jsonl(args.pi)
    compare = compare_predict if args.mode == "predict" else compare_listen
    problems = compare(host, pi, args.step)
    if problems:
        for msg in problems:
            print(f"MISMATCH {msg}")
        return 1
    print(f"{args.mode}: host and arm64 agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
