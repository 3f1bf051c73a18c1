"""Formatting helpers shared by ``benchmark.md`` (:mod:`benchmarks.report`) and the README
tables (:mod:`benchmarks.readme`): numbers, sizes, table rows, and look-ups into a report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

FORMAT = "edge-ser-benchmark"
FORMAT_VERSION = 2
"""What ``benchmark.json`` says it is, and the version of its layout."""


def f_(value: Any, fmt: str = ".3f", missing: str = "-") -> str:
    """``value`` formatted, or ``missing`` for None / NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, fmt)


def mb(value: Any) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MB"


def kb(value: Any) -> str:
    return "-" if value is None else f"{value / 1024:.1f} KB"


def spread_text(s: dict | None, fmt: str = ".3f", scale: float = 1.0, unit: str = "") -> str:
    """``median [min-max] n=N`` of a spread dict."""
    if not s or s.get("median") is None:
        return "-"
    med = format(s["median"] * scale, fmt)
    if s.get("n", 0) > 1:
        return (f"{med}{unit} [{format(s['min'] * scale, fmt)}-{format(s['max'] * scale, fmt)}]"
                f" n={s['n']}")
    return f"{med}{unit} n=1"


def params(n: Any) -> str:
    if not n:
        return "-"
    return f"{n / 1000:.0f}k" if n >= 10000 else str(n)


def machine_line(r: dict[str, Any]) -> str:
    m = r["machine"]
    load = r.get("load_average") or {}
    start, end = load.get("start"), load.get("end")
    load_text = ""
    if start or end:
        load_text = (f"; load average (1/5/15 min) {'/'.join(map(str, start or []))} at the"
                     f" start, {'/'.join(map(str, end or []))} at the end")
    tf = m.get("tensorflow")
    return (f"{m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']},"
            f" numpy {m['numpy']}, {m.get('runtime') or 'no TFLite runtime'}"
            f" {m.get('runtime_version') or ''}".rstrip()
            + (f", TensorFlow {tf}" if tf else ", no TensorFlow") + load_text)


def models(r: dict[str, Any]) -> list[dict[str, Any]]:
    return r.get("models") or []


def row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [row(header), row(["---"] * len(header))] + [row(x) for x in rows]


def latency_row(r: dict[str, Any], what: str, model: str | None, threads: int | None
                ) -> dict | None:
    for x in (r.get("latency") or {}).get("rows", []):
        if x["what"] == what and x["model"] == model and x["threads"] == threads:
            return x
    return None


def agreement_of(r: dict[str, Any], name: str) -> dict | None:
    """The primary corpus's clean comparison of int8 ``name`` with its float counterpart,
    float32 TFLite first."""
    runtimes = {m["name"]: m["runtime"] for m in models(r)}
    primary = (r.get("data") or [{}])[0].get("name")
    found = [c for c in r.get("comparisons") or [] if c["int8"] == name
             and c.get("corpus") == primary]
    found.sort(key=lambda c: runtimes.get(c["float"]) != "tflite")
    return found[0] if found else None


def interim_text(a: dict | None) -> str:
    i = (a or {}).get("interim") or {}
    return f_(i.get("accuracy"))


def read_report(path: Path) -> dict[str, Any]:
    """A ``benchmark.json``; ConfigError when it is missing or not one this version reads."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"{path}: not JSON; pass a benchmark.json written by ser-bench"
                          ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a ser-bench report (no \"format\": \"{FORMAT}\")")
    if data.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path}: a ser-bench report of format {data.get('format_version')},"
                          f" this ser-bench reads {FORMAT_VERSION}; run ser-bench again")
    return data
