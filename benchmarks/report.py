"""``benchmark.json`` -> ``benchmark.md`` and the README's table.

Everything printed here is read from the JSON, so the README table can be regenerated from a
report at any time (``ser-bench --readme reports/benchmark.json``) and checked against it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError

JSON_NAME = "benchmark.json"
MD_NAME = "benchmark.md"
FORMAT = "edge-ser-benchmark"


def slug(name: str) -> str:
    """A file-name-safe version of a model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays and non-finite floats made JSON-safe."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """Write ``benchmark.json`` and ``benchmark.md`` into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    data = jsonable(result)
    json_path = out / JSON_NAME
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    md_path = out / MD_NAME
    md_path.write_text(to_markdown(data))
    return [json_path, md_path]


def read_report(path: Path) -> dict[str, Any]:
    """A ``benchmark.json``; ConfigError when it is missing or not one."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"{path}: not JSON; pass a benchmark.json written by ser-bench"
                          ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a ser-bench report (no \"format\": \"{FORMAT}\")")
    return data


STEPS = (
    ("front end, per window", "MFCC of a whole window plus deltas"
     " (`edge.features.signal_input`), as `edge-ser predict` does per file"),
    ("front end, per hop", "`MfccStream.push` of one hop of new audio plus the window's"
     " deltas, as `edge-ser listen` does per hop"),
    ("invoke", "the interpreter wrapper's `invoke` on one normalised, quantised window"),
    ("end to end, per hop", "`Recognizer.push` of one hop into a running recogniser: front"
     " end, frame levels, normalisation and quantisation, invoke, speech gate, smoothing"),
    ("Keras predict, one window", "`model.predict` of the float Keras model on one window"
     " (TensorFlow's own thread pool), next to the 1-thread invoke it is compared with"),
)
"""What each latency step times (for the report's legend)."""


# --------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------


def _f(value: Any, fmt: str = ".3f", missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, fmt)


def _mb(value: Any) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MB"


def _kb(value: Any) -> str:
    return "-" if value is None else f"{value / 1024:.1f} KB"


def _spread(s: dict | None, fmt: str = ".3f", scale: float = 1.0, unit: str = "") -> str:
    """``median [min-max] (n=N)`` of a spread dict."""
    if not s or s.get("median") is None:
        return "-"
    med = format(s["median"] * scale, fmt)
    if s.get("n", 0) > 1:
        return (f"{med}{unit} [{format(s['min'] * scale, fmt)}-{format(s['max'] * scale, fmt)}]"
                f" n={s['n']}")
    return f"{med}{unit} n=1"


def _params(n: Any) -> str:
    if not n:
        return "-"
    return f"{n / 1000:.0f}k" if n >= 10000 else str(n)


def _machine_line(r: dict[str, Any]) -> str:
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


def _models(r: dict[str, Any]) -> list[dict[str, Any]]:
    return r.get("models") or []


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header))] + [_row(x) for x in rows]


def _latency(r: dict[str, Any], what: str, model: str | None, threads: int | None
             ) -> dict | None:
    for row in (r.get("latency") or {}).get("rows", []):
        if row["what"] == what and row["model"] == model and row["threads"] == threads:
            return row
    return None


def _agreement(r: dict[str, Any], name: str) -> dict | None:
    """The comparison of int8 ``name`` with its float counterpart, float32 TFLite first."""
    runtimes = {m["name"]: m["runtime"] for m in _models(r)}
    found = [c for c in r.get("comparisons") or [] if c["int8"] == name]
    found.sort(key=lambda c: runtimes.get(c["float"]) != "tflite")
    return found[0] if found else None


# --------------------------------------------------------------------------------------
# benchmark.md
# --------------------------------------------------------------------------------------


def to_markdown(r: dict[str, Any]) -> str:
    """The whole report for people."""
    lines = ["# edge-ser benchmark", ""]
    lines += [f"Command: `{r['command']}`  ", f"Date: {r['created']}, took {r['seconds']} s  ",
              f"Machine: {_machine_line(r)}", ""]
    d = r["data"]
    lines += [f"Data: `{d['dir']}` ({d.get('corpus', '?')}): {d['clips']} clips of"
              f" {len(d['speakers'])} speakers ({', '.join(d['speakers'])})."
              + (f" {len(d['failed'])} unreadable clips were left out." if d.get("failed")
                 else ""), ""]
    if r.get("notes") or r.get("errors"):
        lines += ["## Notes", ""]
        lines += [f"- {n}" for n in r.get("notes", [])]
        lines += [f"- error: {e}" for e in r.get("errors", [])]
        lines.append("")

    # accuracy -----------------------------------------------------------------------
    lines += ["## Accuracy", ""]
    rows, recall_rows, labels_seen = [], [], None
    for m in _models(r):
        a = m.get("accuracy")
        if not a or a.get("accuracy") is None:
            continue
        rows.append([m["name"], f"{m['runtime']} {m['quantization']}", a["n"],
                     len(a["speakers_scored"]),
                     f"{a['accuracy']:.3f} ± {a['accuracy_se']:.3f}", f"{a['macro_f1']:.3f}",
                     f"**{a['headline']}**" if a["headline"] != "held-out speakers"
                     else a["headline"]])
        labels_seen = labels_seen or m["labels"]
        recall_rows.append([m["name"]] + [_f(a["recall"].get(lab), ".2f")
                                          for lab in labels_seen])
    if rows:
        lines += _table(["model", "runs as", "clips", "speakers", "accuracy ± SE",
                         "macro-F1", "scored on"], rows)
        lines += ["", "SE: binomial standard error of the accuracy over the clips scored.", ""]
        extra = []
        for m in _models(r):
            a = m.get("accuracy") or {}
            t = a.get("training_speakers")
            if t and a.get("held_out"):
                extra.append([m["name"], t["n"], f"{t['accuracy']:.3f}", f"{t['macro_f1']:.3f}"])
        if extra:
            lines += ["Clips of the models' own training speakers, scored separately (not a"
                      " generalisation figure):", ""]
            lines += _table(["model", "clips", "accuracy", "macro-F1"], extra) + [""]
        lines += ["Per-class recall:", ""]
        lines += _table(["model", *labels_seen], recall_rows) + [""]
    else:
        lines += ["No model was scored.", ""]
    comps = r.get("comparisons") or []
    if comps:
        lines += ["int8 against its float counterpart, clip by clip on the same clips:", ""]
        lines += _table(
            ["int8", "float", "clips", "top-1 agreement", "agreement, held-out speakers",
             "accuracy gap (float - int8)", "macro-F1 gap"],
            [[c["int8"], c["float"], c["clips"], _f(c.get("agreement")),
              _f(c.get("agreement_held_out")), _f(c.get("accuracy_gap"), "+.3f"),
              _f(c.get("macro_f1_gap"), "+.3f")] for c in comps])
        lines.append("")
    conf = (r.get("plots") or {}).get("confusion") or {}
    if conf:
        lines += ["Confusion matrices:", ""]
        lines += [f"![{name}]({png})" for name, png in conf.items()] + [""]

    # latency ------------------------------------------------------------------------
    lat = r.get("latency") or {}
    lines += ["## Latency", ""]
    if lat:
        lines += [f"Per call, over real audio ({lat['windows']} windows of"
                  f" {lat['window_seconds']:g} s, hop {lat['hop_seconds']:g} s), all figures"
                  " interleaved round robin in one run; MAD = median absolute deviation, n ="
                  " timings; numpy's BLAS threads:"
                  f" {(r.get('settings') or {}).get('blas_threads', 'default')}.", ""]
        lines += [f"- {what}: {text}" for what, text in STEPS] + [""]
        lines += _table(["step", "model", "threads", "median ms", "p95 ms", "p99 ms",
                         "MAD ms", "n"],
                        [[x["what"], x["model"] or "", x["threads"] or "",
                          f"{x['median_ms']:.3f}", f"{x['p95_ms']:.3f}", f"{x['p99_ms']:.3f}",
                          f"{x['mad_ms']:.3f}", x["n"]] for x in lat["rows"]])
        lines.append("")
        if lat.get("ratios"):
            lines += _table(["ratio of medians (same run)", "x"],
                            [[x["ratio"], f"{x['value']:.2f}"] for x in lat["ratios"]])
            lines.append("")
        if (r.get("plots") or {}).get("latency"):
            lines += [f"![latency histograms]({r['plots']['latency']})", ""]

    # streaming ----------------------------------------------------------------------
    lines += ["## Streaming: `edge-ser listen --file F --fast --json`", ""]
    srows = []
    for m in _models(r):
        s = m.get("streaming")
        if not s:
            continue
        if "error" in s:
            srows.append([m["name"], "error: " + s["error"]] + [""] * 6)
            continue
        rtf = (s.get("rtf_process") or {}).get("median")
        srows.append([m["name"], f"{s['audio_seconds']:.0f}", s["results"],
                      _spread(s["rtf_process"], ".4f"), _spread(s["rtf_loop"], ".4f"),
                      f"{1 / rtf:.0f}x" if rtf else "-",
                      _spread(s["peak_rss_bytes"], ".0f", 2**-20, " MB"),
                      _spread(s["hop_ms_mean"], ".2f")])
    if srows:
        lines += ["A recording of whole clips back to back, replayed as fast as possible."
                  " RTF = processing seconds / audio seconds (lower is better): whole"
                  " process (start-up included) and the listening loop alone (from the"
                  " summary). Values: median [min-max] over n runs.", ""]
        lines += _table(["model", "audio s", "results", "RTF, process", "RTF, loop",
                         "faster than real time", "peak RSS", "ms per hop (mean)"], srows)
        lines.append("")

    # start-up and memory --------------------------------------------------------------
    lines += ["## Size, start-up and memory", ""]
    mrows = []
    for m in _models(r):
        if m.get("pooled_folds"):
            continue
        fp, lo = m.get("first_prediction") or {}, m.get("load_only") or {}
        mrows.append([m["name"], _kb(m["size_bytes"]), _params(m.get("parameters")),
                      _spread(fp.get("seconds"), ".2f", unit=" s"),
                      _spread(fp.get("peak_rss_bytes"), ".0f", 2**-20, " MB"),
                      _spread(lo.get("peak_rss_bytes"), ".0f", 2**-20, " MB"),
                      _spread(lo.get("load_seconds"), ".3f", unit=" s"),
                      (fp.get("command") or lo.get("command") or "")])
    base = r.get("baseline_process") or {}
    if base.get("peak_rss_bytes"):
        mrows.append(["(baseline: Python + numpy + runtime, no model)", "", "", "", "",
                      _spread(base["peak_rss_bytes"], ".0f", 2**-20, " MB"), "",
                      base.get("command", "")])
    lines += ["Start to first prediction: from spawning the process to its first line of"
              " output (imports, model load, reading the clip, one prediction). Load-only: a"
              " process that loads the model and runs it once on one window (front end and"
              " model, no audio file; `python -m benchmarks.probe`). Baseline: Python, numpy"
              " and the interpreter module, no model.", ""]
    lines += _table(["model", "file size", "parameters", "start to first prediction",
                     "peak RSS of that process", "peak RSS, load-only",
                     "model load", "command"], mrows)
    lines.append("")

    # front end ----------------------------------------------------------------------
    lines += ["## Front end against its peers", ""]
    peer = r.get("frontend_peers") or {}
    if "skipped" in peer:
        lines += [f"Skipped: {peer['skipped']}.", ""]
    elif peer:
        from benchmarks.frontend import to_markdown as frontend_markdown

        lines += [frontend_markdown(peer), ""]
    lines += ["## README table", "", readme_table(r)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# README table
# --------------------------------------------------------------------------------------


def _accuracy_cell(r: dict[str, Any], x: dict[str, Any], footnotes: list[str]
                   ) -> tuple[str, str, str]:
    """Accuracy, macro-F1 and int8/float agreement for the README: held-out figures first
    (the model's own on ``--data``, else its pooled folds'), training-speaker ones marked."""
    a = x.get("accuracy") or {}
    folds = next((m for m in _models(r) if m["name"] == x.get("held_out_by")), None)
    fa = (folds or {}).get("accuracy") or {}
    comp = _agreement(r, x["name"]) or {}
    if a.get("headline") == "held-out speakers":
        agree = comp.get("agreement_held_out")
        return f"{a['accuracy']:.3f}", f"{a['macro_f1']:.3f}", _f(agree)
    if fa.get("headline") == "held-out speakers":
        n = len(folds.get("pooled_folds") or [])
        note = (f"² held-out speakers, {n}-fold cross-validation of the same recipe: each clip"
                " scored by the fold model (Keras, and its int8/float32 conversion as"
                " `ser-export` makes it) that never heard its speaker.")
        if note not in footnotes:
            footnotes.append(note)
        fcomp = _agreement(r, folds["name"]) or {}
        return (f"{fa['accuracy']:.3f}²", f"{fa['macro_f1']:.3f}",
                _f(fcomp.get("agreement_held_out")) + ("²" if fcomp else ""))
    if a.get("accuracy") is not None:
        note = f"¹ {a['headline']}."
        if note not in footnotes:
            footnotes.append(note)
        return f"{a['accuracy']:.3f}¹", f"{a['macro_f1']:.3f}", _f(comp.get("agreement"))
    return ("n/a (untrained)" if x.get("latency_only") else "-"), "-", "-"


def readme_table(r: dict[str, Any]) -> str:
    """The README's benchmark section body: a sentence on where and how it was measured,
    one row per model (pooled fold figures folded into their model's row), and the
    reference ratios."""
    from benchmarks.latency import END_TO_END, FRONTEND_HOP, FRONTEND_WINDOW, INVOKE, KERAS_PREDICT

    t1 = min((r.get("settings") or {}).get("threads") or [1])
    out = [f"Measured with `{r['command']}` on {_machine_line(r)} ({r['created'][:10]})."
           f" Published figures come from this machine, not from a Raspberry Pi, until"
           f" measured on one.", ""]
    header = ["model", "size", "params", "accuracy", "macro-F1", "int8/float agreement",
              f"invoke ms, {t1} thread (p95)", "end to end per hop ms (p95)",
              "listen RTF", "listen peak RSS", "start to first prediction"]
    rows = []
    footnotes: list[str] = []
    for x in _models(r):
        if x.get("pooled_folds"):
            continue
        acc, f1, agree = _accuracy_cell(r, x, footnotes)
        inv = _latency(r, INVOKE, x["name"], t1) or _latency(r, KERAS_PREDICT, x["name"], None)
        e2e = _latency(r, END_TO_END, x["name"], t1)
        s = x.get("streaming") or {}
        fp = (x.get("first_prediction") or {}).get("seconds") or {}
        rows.append([
            x["name"], _kb(x["size_bytes"]), _params(x.get("parameters")), acc, f1,
            agree if x["quantization"] == "int8" else "",
            (f"{inv['median_ms']:.2f} ({inv['p95_ms']:.2f})"
             + (" Keras predict" if inv["what"] == KERAS_PREDICT else "")) if inv else "-",
            f"{e2e['median_ms']:.2f} ({e2e['p95_ms']:.2f})" if e2e else "-",
            _f((s.get("rtf_process") or {}).get("median"), ".4f"),
            _mb((s.get("peak_rss_bytes") or {}).get("median")),
            f"{fp['median']:.2f} s" if fp.get("median") is not None else "-",
        ])
    out += _table(header, sorted(rows, key=lambda row: "1" if "keras" in row[0] else "0"))
    fw = _latency(r, FRONTEND_WINDOW, None, None)
    fh = _latency(r, FRONTEND_HOP, None, None)
    extras = []
    d = r["data"]
    if any("¹" in row[3] for row in rows):
        extras.append(f"¹ on `{d['dir']}` ({d['clips']} clips of {len(d['speakers'])}"
                      " speakers), all of them speakers the model was trained on.")
    if fw and fh:
        extras.append(f"Front end: {fw['median_ms']:.2f} ms per {r['latency']['window_seconds']:g}"
                      f" s window, {fh['median_ms']:.2f} ms per"
                      f" {r['latency']['hop_seconds']:g} s hop (median).")
    peer = r.get("frontend_peers") or {}
    ratios = peer.get("ratios") or {}
    if ratios:
        extras.append(
            f"librosa.feature.mfcc takes {ratios['librosa / edge']:.1f}x and"
            f" python_speech_features.mfcc"
            f" {ratios['python_speech_features / edge (psf convention)']:.1f}x our time on the"
            f" same clips.")
    by_keras: dict[str, list[str]] = {}
    for x in (r.get("latency") or {}).get("ratios", []):
        if "keras" in x:
            by_keras.setdefault(x["keras"], []).append(f"{x['value']:.0f}x the {x['tflite']}")
    for name, parts in by_keras.items():
        extras.append(f"Keras `predict` of {name} on one window takes {', '.join(parts)}"
                      " invoke (same run).")
    blas = (r.get("settings") or {}).get("blas_threads")
    extras.append(f"Latency: medians (p95) over {(r.get('settings') or {}).get('repeats')}"
                  " interleaved timings"
                  + (", numpy's BLAS on one thread" if blas == 1 else "")
                  + "; RTF = processing seconds / audio seconds of"
                  " `edge-ser listen --file F --fast` on a"
                  f" {(r.get('settings') or {}).get('stream_seconds', 0):g} s recording,"
                  " start-up included; RSS = peak resident memory of that process.")
    out += [""] + [f"- {line}" for line in sorted(footnotes) + extras]
    return "\n".join(out) + "\n"
