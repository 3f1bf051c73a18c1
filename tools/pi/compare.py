"""Compare `edge-ser ... --json` output from the host with the emulated Pi's.

    python tools/pi/compare.py --mode predict host.jsonl pi.jsonl
    python tools/pi/compare.py --mode listen  host.jsonl pi.jsonl
    python tools/pi/compare.py --mode info    host.jsonl pi.jsonl

Both files are JSON Lines. The two sides must cut the audio into the same utterances at
the same frames and give the same labels, and the int8 output scores must agree within
one quantisation step: XNNPACK's int8 kernels differ by one step between ARM and x86, no
more.

- predict: one record per file, matched by the file's base name: its ``label``,
  ``speech``, ``duration``, ``probs`` and ``confidence``, then its ``utterances`` one by
  one (the same number on both sides): ``utterance``, ``start``, ``end`` and
  ``speech_seconds`` equal, ``label``, ``probs``, ``confidence`` and ``scores``.
- listen: the results in order (``event`` "final", "interim" or "no_speech"): ``event``,
  ``t``, ``utterance``, ``start``, ``end``, ``speech`` and ``speech_seconds`` equal,
  ``label``, ``probs``, ``confidence`` and ``scores``; a ``no_speech`` result has no label
  and no scores on either side. Where the two sequences part (another event, another
  time: the endpointer decided differently) that is one mismatch and the rest is not
  paired up. The host's results must include two finals or more, interim and no_speech
  ones (else the recording checks too little).
  The closing ``{"summary": ...}``: its counts (audio and speech seconds, utterances, hops,
  no-speech hops) equal; its timings are not compared.
- info: the bundle's metadata, equal field by field but for its path (and the licence
  notice's path, compared from the package's ``edge/`` on).

``scores`` are the raw int8 outputs, a list per window of the utterance (``null`` for float
models and for no_speech): the same number of windows, each output within one step. The
probabilities (``probs``, ``confidence``) are the dequantised int8 outputs
``(q - zero_point) * scale`` renormalised to sum to 1, then averaged over windows and
utterances, so one step ``s`` of every output moves p_i by at most
``s * (1 + n * p_i) / (1 - 2 * n * s)`` for n classes; that bound, plus the JSON rounding
(``--digits``, 4), is their tolerance (``--step``: s, default 1/256). A label that differs
where the two labels are within that bound of each other on both sides is reported as a
tie; ``--allow-ties`` lets it pass. Fields not named here (``uncertain``,
``noise_floor_db``, ...) that differ are listed as notes, not failed.

Exit status: 0 when everything agrees, 1 when something does not, 2 for unreadable input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import PurePath
from typing import Any

DEFAULT_STEP = 1.0 / 256.0
# listen results and predict utterances
TIMES = ("t", "start", "end", "speech_seconds")
EQUAL = ("event", "utterance", "speech")
# compared by their own rules, or never (the file name is the key)
HANDLED = {"label", "probs", "confidence", "scores", "utterances", "file", *TIMES, *EQUAL}
FILE_TIMES = ("duration",)
# listen's closing summary: counts that must agree; wall-clock timings that cannot
SUMMARY_EQUAL = ("audio_seconds", "speech_seconds", "utterances", "hops", "no_speech_hops")
SUMMARY_IGNORED = {"wall_seconds", "first_result_seconds", "hop_ms_mean", "hop_ms_max"}
MAX_MESSAGES = 40


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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _probs(value: Any) -> dict[str, float] | None:
    """A probability dict (label -> number) as floats, else None."""
    if isinstance(value, dict) and all(_is_number(v) for v in value.values()):
        return {str(k): float(v) for k, v in value.items()}
    return None


def _windows(value: Any) -> list[list[float]] | None:
    """``scores`` as a list of windows of numbers (a flat list is one window), else None."""
    if not isinstance(value, list):
        return None
    if all(_is_number(v) for v in value) and value:
        return [[float(v) for v in value]]
    if all(isinstance(w, list) and all(_is_number(v) for v in w) for w in value):
        return [[float(v) for v in w] for w in value]
    return None


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if _is_number(v) else str(v)


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
        self.counts: Counter[str] = Counter()  # what was compared, by kind
        self.windows = 0

    def fail(self, msg: str) -> None:
        self.failures.append(msg)

    # ---------------------------------------------------------------- fields
    def equal(self, where: str, key: str, h: dict[str, Any], p: dict[str, Any]) -> None:
        if (key in h or key in p) and h.get(key) != p.get(key):
            self.fail(f"{where}: {key} {h.get(key)!r} on the host, {p.get(key)!r} on arm")

    def time(self, where: str, key: str, h: dict[str, Any], p: dict[str, Any]) -> None:
        if key not in h and key not in p:
            return
        ht, pt = h.get(key), p.get(key)
        if ht is None and pt is None:
            return
        if not (_is_number(ht) and _is_number(pt) and math.isclose(ht, pt, abs_tol=1e-6)):
            self.fail(f"{where}: {key} {ht!r} on the host, {pt!r} on arm")

    def scores(self, where: str, h: Any, p: Any) -> float | None:
        """Raw int8 scores, window by window; returns the largest difference in steps."""
        if h is None and p is None:
            return None
        hw, pw = _windows(h), _windows(p)
        if hw is None or pw is None:
            self.fail(f"{where}: scores {str(h)[:60]} on the host, {str(p)[:60]} on arm")
            return None
        if len(hw) != len(pw):
            self.fail(f"{where}: scores for {len(hw)} window(s) on the host, {len(pw)} on arm")
            return None
        worst = 0.0
        for i, (a, b) in enumerate(zip(hw, pw)):
            self.windows += 1
            if len(a) != len(b):
                self.fail(f"{where}: window {i}: {len(a)} scores on the host, {len(b)} on arm")
                continue
            d = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
            worst = max(worst, d)
            if d > 1:
                self.fail(
                    f"{where}: window {i}: raw int8 scores differ by {d:g} steps"
                    f" ({[int(x) for x in a]} on the host, {[int(y) for y in b]} on arm)"
                )
        self.worst_raw = max(self.worst_raw, worst)
        return worst

    def probs(self, where: str, h: Any, p: Any) -> None:
        hv, pv = _probs(h), _probs(p)
        if hv is None or pv is None or hv.keys() != pv.keys():
            if h != p:
                self.fail(f"{where}: probs do not match in shape: {h!r} vs {p!r}")
            return
        if not hv:
            return
        self.tol.n = len(hv)
        steps = max(abs(hv[k] - pv[k]) / self.tol.step for k in hv)
        self.worst_prob = max(self.worst_prob, steps)
        over = [k for k in hv if abs(hv[k] - pv[k]) > self.tol.prob(max(hv[k], pv[k]))]
        if over:
            k = over[0]
            self.fail(
                f"{where}: probs[{k}] {hv[k]:g} on the host, {pv[k]:g} on arm: more than one"
                f" int8 step of the outputs explains ({self.tol.prob(max(hv[k], pv[k])):.4f})"
            )

    def label(self, where: str, h: dict[str, Any], p: dict[str, Any]) -> None:
        hl, pl = h.get("label"), p.get("label")
        if hl == pl:
            return
        hp, pp = _probs(h.get("probs")), _probs(p.get("probs"))
        if hp:
            self.tol.n = len(hp)
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
        self.fail(msg)

    def confidence(self, where: str, h: dict[str, Any], p: dict[str, Any]) -> None:
        hc, pc = h.get("confidence"), p.get("confidence")
        if _is_number(hc) and _is_number(pc):
            if h.get("label") == p.get("label") and abs(hc - pc) > self.tol.prob(max(hc, pc)):
                steps = abs(hc - pc) / self.tol.step
                self.fail(f"{where}: confidence differs by {steps:.2f} steps")
        elif hc != pc:
            self.fail(f"{where}: confidence {hc!r} on the host, {pc!r} on arm")

    def others(self, where: str, h: dict[str, Any], p: dict[str, Any], done: set[str]) -> None:
        for key in sorted((h.keys() | p.keys()) - done):
            if h.get(key) != p.get(key):
                self.notes.append(
                    f"{where}: {key} {h.get(key)!r} on the host, {p.get(key)!r} on arm"
                )

    # ---------------------------------------------------------------- records
    def result(self, where: str, h: dict[str, Any], p: dict[str, Any], kind: str) -> float | None:
        """One listen result or one predict utterance; returns its largest score difference."""
        self.records += 1
        self.counts[kind] += 1
        for key in EQUAL:
            self.equal(where, key, h, p)
        for key in TIMES:
            self.time(where, key, h, p)
        self.label(where, h, p)
        self.probs(where, h.get("probs"), p.get("probs"))
        self.confidence(where, h, p)
        if kind == "no_speech":
            for side, rec in (("the host", h), ("arm", p)):
                for key in ("scores", "label"):
                    if rec.get(key) is not None:
                        self.fail(f"{where}: a no_speech result with {key} on {side}")
        worst = self.scores(where, h.get("scores"), p.get("scores"))
        self.others(where, h, p, HANDLED)
        return worst

    def file(self, name: str, h: dict[str, Any], p: dict[str, Any]) -> tuple[float | None, int]:
        """One predict record and its utterances; returns (largest score difference, windows)."""
        self.records += 1
        self.counts["files"] += 1
        self.equal(name, "speech", h, p)
        for key in FILE_TIMES:
            self.time(name, key, h, p)
        self.label(name, h, p)
        self.probs(name, h.get("probs"), p.get("probs"))
        self.confidence(name, h, p)
        self.others(name, h, p, HANDLED | set(FILE_TIMES))
        hu, pu = h.get("utterances"), p.get("utterances")
        if not isinstance(hu, list) or not isinstance(pu, list):
            if hu != pu:
                self.fail(f"{name}: utterances {hu!r} on the host, {pu!r} on arm")
            return None, 0
        if len(hu) != len(pu):
            spans = [[(u.get("start"), u.get("end")) for u in x] for x in (hu, pu)]
            self.fail(
                f"{name}: {len(hu)} utterance(s) on the host {spans[0]},"
                f" {len(pu)} on arm {spans[1]}"
            )
        worst: float | None = None
        before = self.windows
        for i, (a, b) in enumerate(zip(hu, pu)):
            d = self.result(f"{name} utterance {i}", a, b, "utterances")
            if d is not None:
                worst = max(worst or 0.0, d)
        return worst, self.windows - before

    def summary(self, h: dict[str, Any], p: dict[str, Any]) -> None:
        self.records += 1
        self.counts["summary"] += 1
        for key in SUMMARY_EQUAL:
            if _is_number(h.get(key)) or _is_number(p.get(key)):
                self.time("summary", key, h, p)
            else:
                self.equal("summary", key, h, p)
        self.others("summary", h, p, set(SUMMARY_EQUAL) | SUMMARY_IGNORED)


def _file_key(rec: dict[str, Any]) -> str:
    return PurePath(str(rec.get("file") or rec.get("path") or "")).name


def compare_predict(host: list[dict], pi: list[dict], cmp: Comparison) -> None:
    h = {_file_key(r): r for r in host}
    p = {_file_key(r): r for r in pi}
    if not h:
        cmp.fail("the host printed no predictions")
    if h.keys() != p.keys():
        cmp.fail(
            f"files differ: host only {sorted(h.keys() - p.keys())}, "
            f"arm only {sorted(p.keys() - h.keys())}"
        )
    print(
        f"  {'file':<34} {'host':<10} {'arm':<10} {'conf host/arm':<15} "
        f"{'utts':>4} {'wins':>4}  scores max |diff|"
    )
    for name in sorted(h.keys() & p.keys()):
        hr, pr = h[name], p[name]
        before = len(cmp.failures)
        worst, windows = cmp.file(name, hr, pr)
        conf = f"{_fmt(hr.get('confidence'))}/{_fmt(pr.get('confidence'))}"
        n_utts = len(hr.get("utterances") or [])
        flag = "" if len(cmp.failures) == before else "  <-- differs"
        print(
            f"  {name:<34} {str(hr.get('label')):<10} {str(pr.get('label')):<10} {conf:<15} "
            f"{n_utts:>4} {windows:>4}  {_fmt(worst)}{flag}"
        )


def _describe(r: dict[str, Any]) -> str:
    if r.get("utterance") is None:
        return f"{r.get('event')} t={_fmt(r.get('t'))}"
    return (
        f"{r.get('event')} t={_fmt(r.get('t'))} utterance={_fmt(r.get('utterance'))}"
        f" {_fmt(r.get('start'))}-{_fmt(r.get('end'))} {r.get('label')}"
    )


def compare_listen(host: list[dict], pi: list[dict], cmp: Comparison) -> None:
    h = [r for r in host if "event" in r]
    p = [r for r in pi if "event" in r]
    if not h:
        cmp.fail("the host printed no results")
    parted = None
    for i, (a, b) in enumerate(zip(h, p)):
        if a.get("event") != b.get("event") or not math.isclose(
            float(a.get("t") or 0.0), float(b.get("t") or 0.0), abs_tol=1e-6
        ):
            parted = i
            break
        cmp.result(
            f"listen result {i} ({a.get('event')} t={_fmt(a.get('t'))})", a, b, str(a.get("event"))
        )
    if parted is not None:
        cmp.fail(
            f"listen: the results part at {parted}: host {_describe(h[parted])},"
            f" arm {_describe(p[parted])}; the rest ({len(h) - parted} on the host,"
            f" {len(p) - parted} on arm) not compared"
        )
    elif len(h) != len(p):
        longer, side = (h, "the host") if len(h) > len(p) else (p, "arm")
        extra = longer[min(len(h), len(p))]
        cmp.fail(
            f"listen: {len(h)} results on the host, {len(p)} on arm; {side} goes on with"
            f" {_describe(extra)}"
        )
    hs = [r["summary"] for r in host if isinstance(r.get("summary"), dict)]
    ps = [r["summary"] for r in pi if isinstance(r.get("summary"), dict)]
    if len(hs) != 1 or len(ps) != 1:
        cmp.fail(f"listen: {len(hs)} summary record(s) on the host, {len(ps)} on arm (want 1)")
    else:
        cmp.summary(hs[0], ps[0])
    for side, rs in (("host", h), ("arm", p)):
        events = Counter(str(r.get("event")) for r in rs)
        shown = ", ".join(f"{events[e]} {e}" for e in ("final", "interim", "no_speech"))
        print(f"  {side}: {len(rs)} results ({shown})")
    finals = [(a, b) for a, b in zip(h[:parted], p[:parted]) if a.get("event") == "final"]
    for a, b in finals:
        n_w = len(_windows(a.get("scores")) or [])
        print(
            f"  final utterance {_fmt(a.get('utterance'))}: {_fmt(a.get('start'))}-"
            f"{_fmt(a.get('end'))} s, {n_w} window(s): {a.get('label')} on the host,"
            f" {b.get('label')} on arm"
        )
    host_events = Counter(str(r.get("event")) for r in h)
    if host_events["final"] < 2 or not host_events["interim"] or not host_events["no_speech"]:
        cmp.fail(
            f"listen: the recording checks too little: {dict(host_events)} on the host; it must"
            " give several utterances (finals), interim results and no_speech pauses"
        )


def _in_package(info: dict) -> dict:
    """``info --json`` with the licence notice's path cut to its place in the package
    (``edge/models/NOTICE``): the host and the Pi install the package in different places."""
    licence = info.get("licence")
    if not isinstance(licence, dict) or "notice" not in licence:
        return info
    parts = PurePath(str(licence["notice"])).parts
    tail = parts[len(parts) - 1 - parts[::-1].index("edge"):] if "edge" in parts else parts
    return {**info, "licence": {**licence, "notice": "/".join(tail)}}


def compare_info(host: list[dict], pi: list[dict], cmp: Comparison) -> None:
    if len(host) != 1 or len(pi) != 1:
        cmp.fail(f"info: {len(host)} records on the host, {len(pi)} on arm (want 1)")
        return
    h, p = (_in_package(r) for r in (host[0], pi[0]))
    cmp.records += 1
    cmp.counts["bundle"] += 1
    for key in sorted((h.keys() | p.keys()) - {"path"}):
        if h.get(key) != p.get(key):
            cmp.fail(f"info: {key} {h.get(key)!r} on the host, {p.get(key)!r} on arm")
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
    what = ", ".join(f"{n} {kind}" for kind, n in cmp.counts.items())
    if cmp.windows:
        what += f"; {cmp.windows} windows of scores"
    summary = f"{args.mode}: {cmp.records} records compared ({what})"
    if args.mode != "info":
        summary += (
            f"; {cmp.label_differences} with another label; largest differences: raw int8"
            f" {f'{cmp.worst_raw:.0f} step(s)' if cmp.windows else '- (no int8 scores)'},"
            f" probabilities {cmp.worst_prob:.2f} step(s)"
            f"{f'; {len(cmp.ties)} tie(s)' if cmp.ties else ''}"
        )
    if cmp.failures:
        for msg in cmp.failures[:MAX_MESSAGES]:
            print(f"  MISMATCH {msg}")
        if len(cmp.failures) > MAX_MESSAGES:
            print(f"  MISMATCH ... {len(cmp.failures) - MAX_MESSAGES} more")
        print(f"{summary}; {len(cmp.failures)} mismatch(es)")
        return 1
    print(f"{summary}; host and arm agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
