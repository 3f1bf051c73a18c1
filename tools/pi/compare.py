"""Compare `edge-ser ... --json` output from the host with the emulated Pi's.

    python tools/pi/compare.py --mode predict host.jsonl pi.jsonl
    python tools/pi/compare.py --mode listen  host.jsonl pi.jsonl
    python tools/pi/compare.py --mode info    host.jsonl pi.jsonl

Both files are JSON Lines. The two sides must give the same labels, and the int8 output
scores must agree within one quantisation step: XNNPACK's int8 kernels differ by one
step between ARM and x86, no more.

- predict: one record per file, matched by the file's base name; its per-window
  records (``windows``) are compared too.
- listen: the window events in order (records without a label or scores, such as a
  closing summary with timings, are not compared).
- info: the bundle's metadata, equal field by field but for its path.

In every record (and its nested ``window``): ``label`` and ``speech`` must be equal,
``t`` equal, and the raw int8 outputs (``scores``, or ``raw``) within one step. The
probabilities (``probs``, ``confidence``) are the dequantised int8 outputs
``(q - zero_point) * scale`` renormalised to sum to 1 (then averaged or smoothed), so one
step ``s`` of every output moves p_i by at most ``s * (1 + n * p_i) / (1 - 2 * n * s)``
for n classes; that bound, plus the JSON rounding (``--digits``, 4), is their tolerance
(``--step``: s, default 1/256). A label that differs where the two labels are within that
bound of each other on both sides is reported as a tie; ``--allow-ties`` lets it pass.
Other fields that differ are listed as notes, not failed.

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
RAW_KEYS = ("scores", "raw")
PROB_KEYS = ("probs",)
EQUAL_KEYS = ("label", "speech", "mode")
TIME_KEY = "t"
IGNORED = {"file", "path", "windows", "window", "confidence", "type"}


class Tolerance:
    def __init__(self, step: float, digits: int, n_classes: int = 8) -> None:
        self.step = step
        self.n = n_classes
        # both sides were rounded to `digits` places before printing
        self.rounding = 10.0**-digits + 1e-9

    def prob(self, p: float) -> float:
        """Largest difference one step of every int8 output makes to a renormalised p."""
        s, n = self.step, self.n
        return s * (1.0 + n * abs(p)) / max(1.0 - 2.0 * n * s, 0.5) + self.rounding


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
                    print(
                        f"compare: {path}:{n}: not JSON ({e.msg}): {line[:80]!r}", file=sys.stderr
                    )
                    raise SystemExit(2) from None
                if isinstance(rec, dict):
                    records.append(rec)
    except OSError as e:
        print(f"compare: {path}: cannot read ({e.strerror})", file=sys.stderr)
        raise SystemExit(2) from None
    return records


def _numbers(value: Any) -> dict[str, float] | None:
    """A score container (dict label->number, or list of numbers) as a dict, else None."""
    if isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
        return {str(i): float(v) for i, v in enumerate(value)}
    return None


class Comparison:
    """Collects failures (which fail the check) and notes (which do not)."""

    def __init__(self, tol: Tolerance, allow_ties: bool = False) -> None:
        self.tol = tol
        self.allow_ties = allow_ties
        self.ties: list[str] = []
        self.label_differences = 0
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.worst_raw = 0.0  # steps
        self.worst_prob = 0.0  # steps
        self.records = 0

    def vector(self, where: str, key: str, h: Any, p: Any) -> None:
        hv, pv = _numbers(h), _numbers(p)
        if hv is None and pv is None:
            if h != p:
                self.failures.append(f"{where}: {key} {h!r} on the host, {p!r} on arm")
            return
        if hv is None or pv is None or hv.keys() != pv.keys():
            self.failures.append(f"{where}: {key} do not match in shape: {h!r} vs {p!r}")
            return
        if key in RAW_KEYS:
            worst = max((abs(hv[k] - pv[k]) for k in hv), default=0.0)
            self.worst_raw = max(self.worst_raw, worst)
            if worst > 1:
                self.failures.append(f"{where}: raw int8 {key} differ by {worst:g} steps")
            return
        self.tol.n = len(hv)
        steps = max((abs(hv[k] - pv[k]) / self.tol.step for k in hv), default=0.0)
        self.worst_prob = max(self.worst_prob, steps)
        over = [k for k in hv if abs(hv[k] - pv[k]) > self.tol.prob(max(hv[k], pv[k]))]
        if over:
            k = over[0]
            self.failures.append(
                f"{where}: {key}[{k}] {hv[k]:g} on the host, {pv[k]:g} on arm: more than one"
                f" int8 step of the outputs explains ({self.tol.prob(max(hv[k], pv[k])):.4f})"
            )

    def label(self, where: str, h: dict[str, Any], p: dict[str, Any]) -> None:
        hl, pl = h.get("label"), p.get("label")
        if hl == pl:
            return
        hp, pp = _numbers(h.get("probs")), _numbers(p.get("probs"))
        tie = (
            hp is not None
            and pp is not None
            and {hl, pl} <= hp.keys()
            and {hl, pl} <= pp.keys()
            and hp[hl] - hp[pl] <= self.tol.prob(hp[hl])
            and pp[pl] - pp[hl] <= self.tol.prob(pp[pl])
        )
        self.label_differences += 1
        msg = f"{where}: label {hl!r} on the host, {pl!r} on arm"
        if tie:
            msg += f" (a tie: the two within one int8 step on both sides: {hp[hl]:g}/{hp[pl]:g}"
            msg += f" on the host, {pp[hl]:g}/{pp[pl]:g} on arm)"
            self.ties.append(msg)
            if self.allow_ties:
                return
        self.failures.append(msg)

    def record(self, where: str, h: dict[str, Any], p: dict[str, Any]) -> None:
        self.records += 1
        self.label(where, h, p)
        for key in EQUAL_KEYS:
            if key == "label":
                continue
            if (key in h or key in p) and h.get(key) != p.get(key):
                self.failures.append(
                    f"{where}: {key} {h.get(key)!r} on the host, {p.get(key)!r} on arm"
                )
        if TIME_KEY in h or TIME_KEY in p:
            ht, pt = h.get(TIME_KEY), p.get(TIME_KEY)
            if not (isinstance(ht, (int, float)) and isinstance(pt, (int, float))) or not (
                math.isclose(ht, pt, abs_tol=1e-6)
            ):
                self.failures.append(f"{where}: t {ht!r} on the host, {pt!r} on arm")
        for key in RAW_KEYS + PROB_KEYS:
            if key in h or key in p:
                self.vector(where, key, h.get(key), p.get(key))
        hc, pc = h.get("confidence"), p.get("confidence")
        if isinstance(hc, (int, float)) and isinstance(pc, (int, float)):
            if h.get("label") == p.get("label") and abs(hc - pc) > self.tol.prob(max(hc, pc)):
                steps = abs(hc - pc) / self.tol.step
                self.failures.append(f"{where}: confidence differs by {steps:.2f} steps")
        elif hc != pc:
            self.failures.append(f"{where}: confidence {hc!r} on the host, {pc!r} on arm")
        if isinstance(h.get("window"), dict) and isinstance(p.get("window"), dict):
            self.record(f"{where} (window alone)", h["window"], p["window"])
        for key in sorted((h.keys() | p.keys()) - IGNORED - set(EQUAL_KEYS) - set(RAW_KEYS)):
            if key in PROB_KEYS or key == TIME_KEY:
                continue
            if h.get(key) != p.get(key):
                self.notes.append(
                    f"{where}: {key} {h.get(key)!r} on the host, {p.get(key)!r} on arm"
                )

    def windows(self, where: str, h: list[dict[str, Any]], p: list[dict[str, Any]]) -> None:
        if len(h) != len(p):
            self.failures.append(f"{where}: {len(h)} windows on the host, {len(p)} on arm")
        for i, (hw, pw) in enumerate(zip(h, p)):
            self.record(f"{where} window {i}", hw, pw)


def _file_key(rec: dict[str, Any]) -> str:
    return PurePath(str(rec.get("file") or rec.get("path") or "")).name


def compare_predict(host: list[dict], pi: list[dict], cmp: Comparison) -> None:
    h = {_file_key(r): r for r in host}
    p = {_file_key(r): r for r in pi}
    if not h:
        cmp.failures.append("the host printed no predictions")
    if h.keys() != p.keys():
        cmp.failures.append(
            f"files differ: host only {sorted(h.keys() - p.keys())}, "
            f"arm only {sorted(p.keys() - h.keys())}"
        )
    print(f"  {'file':<26} {'host':<10} {'arm':<10} {'conf host/arm':<14} scores max |diff|")
    for name in sorted(h.keys() & p.keys()):
        hr, pr = h[name], p[name]
        before = len(cmp.failures)
        cmp.record(name, hr, pr)
        if isinstance(hr.get("windows"), list) and isinstance(pr.get("windows"), list):
            cmp.windows(name, hr["windows"], pr["windows"])
        raw_h, raw_p = _numbers(hr.get("scores")), _numbers(pr.get("scores"))
        diff = (
            f"{max(abs(raw_h[k] - raw_p[k]) for k in raw_h):.0f}"
            if raw_h and raw_p and raw_h.keys() == raw_p.keys()
            else "-"
        )
        conf = f"{hr.get('confidence')}/{pr.get('confidence')}"
        flag = "" if len(cmp.failures) == before else "  <-- differs"
        print(
            f"  {name:<26} {str(hr.get('label')):<10} {str(pr.get('label')):<10} "
            f"{conf:<14} {diff}{flag}"
        )


def _scored(rec: dict[str, Any]) -> bool:
    return any(k in rec for k in ("label", *PROB_KEYS, *RAW_KEYS))


def compare_listen(host: list[dict], pi: list[dict], cmp: Comparison) -> None:
    h = [r for r in host if _scored(r)]
    p = [r for r in pi if _scored(r)]
    if not h:
        cmp.failures.append("the host printed no window events")
    cmp.windows("listen", h, p)
    labels = [str(r.get("label")) for r in h]
    shown = ", ".join(labels[:10]) + (" ..." if len(labels) > 10 else "")
    print(f"  {len(h)} windows on the host, {len(p)} on arm; host labels: {shown}")


def compare_info(host: list[dict], pi: list[dict], cmp: Comparison) -> None:
    if len(host) != 1 or len(pi) != 1:
        cmp.failures.append(f"info: {len(host)} records on the host, {len(pi)} on arm (want 1)")
        return
    h, p = host[0], pi[0]
    cmp.records += 1
    for key in sorted((h.keys() | p.keys()) - {"path"}):
        if h.get(key) != p.get(key):
            cmp.failures.append(f"info: {key} {h.get(key)!r} on the host, {p.get(key)!r} on arm")
    print(f"  model {PurePath(str(h.get('path'))).name}: labels {h.get('labels')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("predict", "listen", "info"), required=True)
    ap.add_argument(
        "--step", type=float, default=DEFAULT_STEP, help="one output quantisation step (1/256)"
    )
    ap.add_argument("--digits", type=int, default=4, help="decimals the JSON probabilities keep")
    ap.add_argument(
        "--allow-ties",
        action="store_true",
        help="pass a label that differs where the two labels are within one step (a tie)",
    )
    ap.add_argument("host")
    ap.add_argument("pi")
    args = ap.parse_args(argv)
    host, pi = read_jsonl(args.host), read_jsonl(args.pi)
    cmp = Comparison(Tolerance(args.step, args.digits), allow_ties=args.allow_ties)
    compare = {"predict": compare_predict, "listen": compare_listen, "info": compare_info}
    compare[args.mode](host, pi, cmp)
    for msg in cmp.notes[:20]:
        print(f"  note: {msg}")
    if len(cmp.notes) > 20:
        print(f"  note: ... {len(cmp.notes) - 20} more")
    if cmp.allow_ties:
        for msg in cmp.ties:
            print(f"  tie (allowed): {msg}")
    summary = (
        f"{args.mode}: {cmp.records} records compared; {cmp.label_differences} with another"
        f" label; largest differences: raw int8 "
        f"{cmp.worst_raw:.0f} step(s), probabilities {cmp.worst_prob:.2f} step(s)"
        f"{f'; {len(cmp.ties)} tie(s)' if cmp.ties else ''}"
    )
    if cmp.failures:
        for msg in cmp.failures:
            print(f"  MISMATCH {msg}")
        print(f"{summary}; {len(cmp.failures)} mismatch(es)")
        return 1
    print(f"{summary}; host and arm agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
