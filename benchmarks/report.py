"""``benchmark.json`` -> ``benchmark.md``.

Everything printed here is read from the JSON, so the report (and the README's tables,
:mod:`benchmarks.readme`) can be regenerated from it at any time and checked against it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.formatting import (  # noqa: F401  (FORMAT*, read_report: re-exported)
    FORMAT,
    FORMAT_VERSION,
    f_,
    interim_text,
    kb,
    machine_line,
    mb,
    models,
    params,
    read_report,
    spread_text,
    table,
)
from benchmarks.readme import readme_table
from train.conditions import DESCRIPTIONS as CONDITION_TEXT
from train.conditions import NAMES as CONDITIONS

JSON_NAME = "benchmark.json"
MD_NAME = "benchmark.md"


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


STEPS = (
    ("front end, per hop", "`MelStream.push` of one hop of new audio and the new frames'"
     " speech-band levels, as the recogniser does every hop"),
    ("endpointer, per hop", "`Endpointer.push` of one hop of frame levels"),
    ("utterance inputs, per window", "`utterance_inputs` of a real utterance of up to one"
     " window: level normalisation, floor, cepstra, deltas"),
    ("invoke", "the interpreter wrapper's `invoke` on one normalised, quantised window"),
    ("end to end, interim hop", "`Recognizer.push` of one hop while an utterance is under"
     " way: front end, endpointer, the newest window of the utterance so far through the"
     " model"),
    ("end to end, no-speech hop", "`Recognizer.push` of one hop outside speech"),
    ("end to end, hop with a final", "`Recognizer.push` of the hop in which an utterance"
     " ended: its final result from the whole utterance, then the hop's own"),
    ("Keras predict, one window", "`model.predict` of the float Keras model on one window"
     " (TensorFlow's own thread pool), next to the 1-thread invoke it is compared with"),
)
"""What each latency step times (for the report's legend)."""


# --------------------------------------------------------------------------------------
# benchmark.md
# --------------------------------------------------------------------------------------


def _accuracy_rows(r: dict[str, Any], key: str | None) -> tuple[list, list, list, list]:
    """Rows of the headline, training-speaker and recall tables of one corpus (``key``
    None: the primary corpus, else a name in each model's ``corpora``)."""
    rows, extra, recall, labels_seen = [], [], [], None
    for m in models(r):
        a = m.get("accuracy") if key is None else (m.get("corpora") or {}).get(key)
        if not a or a.get("accuracy") is None:
            continue
        merged = ", ".join(f"{k} as {v}" for k, v in (a.get("counted_as") or {}).items())
        rows.append([m["name"], f"{m['runtime']} {m['quantization']}", a["n"],
                     len(a["speakers_scored"]),
                     f"{a['accuracy']:.3f} ± {a['accuracy_se']:.3f}", f"{a['macro_f1']:.3f}",
                     f"{interim_text(a)} (n={(a.get('interim') or {}).get('n', 0)})",
                     a.get("no_result", 0),
                     (f"**{a['headline']}**" if a["headline"] != "held-out speakers"
                      else a["headline"]) + (f"; {merged}" if merged else "")])
        t = a.get("training_speakers")
        if t and a.get("held_out"):
            extra.append([m["name"], t["n"], f"{t['accuracy']:.3f}", f"{t['macro_f1']:.3f}",
                          interim_text(t)])
        labels_seen = labels_seen or m["labels"]
        recall.append([m["name"]] + [f_(a["recall"].get(lab), ".2f") for lab in labels_seen])
    return rows, extra, recall, labels_seen or []


ACCURACY_HEADER = ["model", "runs as", "clips", "speakers", "accuracy ± SE", "macro-F1",
                   "interim accuracy", "no result", "scored on"]


def _accuracy_section(r: dict[str, Any]) -> list[str]:
    d = r["data"][0]
    lines = ["## Accuracy", "",
             f"On `{d['dir']}` ({d['name']}). Each recording is scored as `edge-ser predict`"
             " scores a file: the endpointer's utterances, each utterance's windows"
             " averaged, the utterances averaged weighted by their speech. A recording with"
             " no utterance has no result and counts as wrong (\"no result\"). Interim: the"
             " share of interim results (the utterance so far at every hop during speech, as"
             " `edge-ser listen` shows it) with the recording's label; n = interim results.",
             ""]
    rows, extra, recall, labels = _accuracy_rows(r, None)
    if not rows:
        return lines + ["No model was scored.", ""]
    lines += table(ACCURACY_HEADER, rows)
    lines += ["", "SE: binomial standard error of the accuracy over the recordings scored.", ""]
    if extra:
        lines += ["Recordings of the models' own training speakers, scored separately (not a"
                  " generalisation figure):", ""]
        lines += table(["model", "clips", "accuracy", "macro-F1", "interim"], extra) + [""]
    lines += ["Per-class recall:", ""] + table(["model", *labels], recall) + [""]
    comps = [c for c in r.get("comparisons") or []]
    if comps:
        lines += ["int8 against its float counterpart, recording by recording (recordings both"
                  " gave a result for):", ""]
        lines += table(
            ["int8", "float", "corpus", "clips", "top-1 agreement",
             "agreement, held-out speakers", "accuracy gap (float - int8)", "macro-F1 gap"],
            [[c["int8"], c["float"], c.get("corpus", ""), c["clips"], f_(c.get("agreement")),
              f"{f_(c.get('agreement_held_out'))} (n={c.get('clips_held_out', 0)})",
              f_(c.get("accuracy_gap"), "+.3f"), f_(c.get("macro_f1_gap"), "+.3f")]
             for c in comps])
        lines.append("")
    conf = (r.get("plots") or {}).get("confusion") or {}
    if conf:
        lines += ["Confusion matrices:", ""]
        lines += [f"![{name}]({png})" for name, png in conf.items()] + [""]
    return lines


def _conditions_section(r: dict[str, Any]) -> list[str]:
    lines = ["## Room conditions", ""]
    names = [c for c in CONDITIONS if any(c in (m.get("conditions") or {}) for m in models(r))]
    if not names:
        note = next((n for n in r.get("notes", []) if n.startswith("room conditions")),
                    "not measured (--conditions none)")
        return lines + [note[0].upper() + note[1:] + ".", ""]
    lines += ["The primary corpus's held-out recordings under `train.augment.CONDITIONS`,"
              " each recording changed the same way `ser-train` scores it (seeded by the"
              " file's contents):", ""]
    lines += [f"- {n}: {CONDITION_TEXT.get(n, n)}" for n in names] + [""]
    rows = []
    for m in models(r):
        a = m.get("accuracy") or {}
        cond = m.get("conditions") or {}
        if not cond:
            continue
        cells = [m["name"], f"{f_(a.get('accuracy'))} (n={a.get('n', 0)})"]
        for n in names:
            c = cond.get(n) or {}
            cells.append(f"{f_(c.get('accuracy'))} ({c.get('no_result', 0)} no result)"
                         if c.get("accuracy") is not None else "-")
        cells.append(cond[names[0]].get("headline") or "")
        rows.append(cells)
    lines += table(["model", "clean", *names, "scored on"], rows) + [""]
    return lines


def _corpora_section(r: dict[str, Any]) -> list[str]:
    lines = []
    for d in (r.get("data") or [])[1:]:
        lines += [f"## Other corpus: {d['name']}", "",
                  f"`{d['dir']}` ({d.get('corpus', '?')}): {d['clips']} clips of"
                  f" {len(d['speakers'])} speakers, labels {', '.join(d['label_counts'])};"
                  " scored on its own, 8-class output (a label the model has no class for is"
                  " left out; without calm in the corpus, a predicted calm counts as"
                  " neutral).", ""]
        rows, _, recall, labels = _accuracy_rows(r, d["name"])
        if not rows:
            lines += ["No model was scored.", ""]
            continue
        lines += table(ACCURACY_HEADER, rows) + [""]
        lines += ["Per-class recall:", ""] + table(["model", *labels], recall) + [""]
    return lines


def _live_section(r: dict[str, Any]) -> list[str]:
    lines = ["## Live: a long recording through `edge-ser listen`", ""]
    rows = []
    for m in models(r):
        x = m.get("live")
        if not x:
            continue
        d = x["final_after_speech_end_s"]
        par = x.get("offline_vs_predict") or {}
        rows.append([
            m["name"], f"{x['corpus']} ({x['speakers_label']})", x["clips"],
            f"{(x.get('audio_seconds') or 0) / 60:.1f} min", f_(x["live_accuracy"]),
            f_(x.get("file_accuracy")), f_(x.get("live_equals_file")),
            f_(x.get("interim_accuracy")), x["clips_without_final"],
            f"{f_(x.get('pause_no_speech'))} (n={x['pause_results']})",
            f"{f_(d['median'], '.2f')} / {f_(d['p95'], '.2f')} / {f_(d['max'], '.2f')} s",
            f_(d.get("within_bound")), f_(x.get("hop_ms_mean"), ".2f"),
            f"{par.get('same_label', '-')}/{par.get('clips', '-')}"
            f" (max diff {f_(par.get('max_abs_prob_diff'), '.0e')})" if par else "-"])
    if not rows:
        note = next((n for n in r.get("notes", []) if n.startswith("live")), "not measured")
        return lines + [note[0].upper() + note[1:] + ".", ""]
    lines += ["Each int8 bundle's clips (speakers it never heard when `--data` has any) laid"
              " end to end with pauses of 1.5-5 s over a quiet room (pink noise, -60 dBFS),"
              " replayed through `edge-ser listen --file REC --fast --json`. A clip's live"
              " label is the speech-weighted average of the final results that overlap it;"
              " files: `edge-ser predict --json` on the same clips. Pauses: results from 1 s"
              " after a clip to the next clip that say no speech. Final latency: seconds of"
              " audio from the clip's speech end (its last frame within 40 dB of its loudest,"
              " on the clean clip) to its last final result (median / p95 / max; the issue's"
              " bound is 0.5 s). Offline = predict: the benchmark's own scoring of these clips"
              " against `edge-ser predict` (same label, largest probability difference; predict"
              " prints 4 digits).", ""]
    lines += table(["model", "clips of", "clips", "audio", "live accuracy", "files (predict)",
                    "live = file", "interim, live", "clips without final",
                    "pauses: no speech", "final after speech end", "within 0.5 s",
                    "ms per hop", "offline = predict"], rows) + [""]
    h = r.get("hour")
    if h:
        lines += [f"An hour-long recording ({h['audio_seconds'] / 60:.0f} min, {h['clips']}"
                  f" clips with pauses, {h['wav_bytes'] / 2**20:.0f} MB WAV) with"
                  f" {h['model']}: `edge-ser predict` peak RSS"
                  f" {mb(h['predict']['peak_rss_bytes'])} ({h['predict']['wall_seconds']:.0f} s,"
                  f" {h['predict']['utterances']} utterances), `edge-ser listen --file --fast`"
                  f" {mb(h['listen']['peak_rss_bytes'])} ({h['listen']['wall_seconds']:.0f} s,"
                  f" {h['listen']['finals']} finals, {h['listen']['overruns']} overruns);"
                  f" budget {mb(h['budget_bytes'])}.", ""]
    return lines


def _latency_section(r: dict[str, Any]) -> list[str]:
    lat = r.get("latency") or {}
    lines = ["## Latency", ""]
    if not lat:
        return lines
    lines += [f"Per call, on a {lat.get('stream_seconds', '?')} s recording of clips with"
              f" pauses over a quiet room ({lat['windows']} real utterances for the"
              f" per-window steps; hop {lat['hop_seconds']:g} s), all figures interleaved"
              " round robin in one run; MAD = median absolute deviation, n = timings; numpy's"
              f" BLAS threads: {(r.get('settings') or {}).get('blas_threads', 'default')}.", ""]
    lines += [f"- {what}: {text}" for what, text in STEPS] + [""]
    lines += table(["step", "model", "threads", "median ms", "p95 ms", "p99 ms", "MAD ms", "n"],
                   [[x["what"], x["model"] or "", x["threads"] or "", f"{x['median_ms']:.3f}",
                     f"{x['p95_ms']:.3f}", f"{x['p99_ms']:.3f}", f"{x['mad_ms']:.3f}", x["n"]]
                    for x in lat["rows"]])
    lines.append("")
    if lat.get("ratios"):
        lines += table(["ratio of medians (same run)", "x"],
                       [[x["ratio"], f"{x['value']:.2f}"] for x in lat["ratios"]])
        lines.append("")
    if (r.get("plots") or {}).get("latency"):
        lines += [f"![latency histograms]({r['plots']['latency']})", ""]
    return lines


def _instructions_section(r: dict[str, Any]) -> list[str]:
    from benchmarks.instructions import to_markdown as instructions_markdown

    ins = r.get("instructions")
    lines = ["## Instructions per hop and per file (callgrind), and a predicted Raspberry Pi",
             ""]
    if not ins:
        return []
    if "skipped" in ins:
        return lines + [f"Skipped: {ins['skipped']}.", ""]
    lines += [f"Instructions executed (x86-64, counted by `{ins.get('tool', 'valgrind')}"
              " --tool=callgrind`: the same on a busy machine, unlike the times above), split"
              " by stage: front end (`MelStream.push` and the new frames' levels), endpointer,"
              " model invoke (the interpreter wrapper's `invoke`), Python glue (everything"
              f" else `Recognizer.push` does). One continuous stretch of speech"
              f" ({ins.get('signal_seconds', '?')} s: clips cut to their utterances, end to end,"
              " after a second of near silence) pushed one hop at a time after a warm-up, so"
              " the utterance grows to its 6 s maximum; the interim hops nearest 1 s and 6 s"
              " into the utterance, the medians over all interim and no-speech hops, and one"
              " clip's decoded samples through a recogniser without interims (what `edge-ser"
              " predict` runs per file). Under callgrind the simulated CPU has AVX2 but not"
              " AVX-512, so numpy and XNNPACK run their AVX2 code.", ""]
    lines.append(instructions_markdown(ins))
    return lines


def _streaming_section(r: dict[str, Any]) -> list[str]:
    lines = ["## Streaming: `edge-ser listen --file F --fast --json`", ""]
    rows = []
    for m in models(r):
        s = m.get("streaming")
        if not s:
            continue
        if "error" in s:
            rows.append([m["name"], "error: " + s["error"]] + [""] * 7)
            continue
        rtf = (s.get("rtf_process") or {}).get("median")
        rows.append([m["name"], f"{s['audio_seconds']:.0f}",
                     f"{s['results']} ({s.get('utterances')} finals)",
                     spread_text(s["rtf_process"], ".4f"), spread_text(s["rtf_loop"], ".4f"),
                     f"{1 / rtf:.0f}x" if rtf else "-",
                     spread_text(s["peak_rss_bytes"], ".0f", 2**-20, " MB"),
                     spread_text(s["hop_ms_mean"], ".2f"),
                     spread_text(s.get("first_result_seconds"), ".2f", unit=" s")])
    if rows:
        sr = r.get("stream_recording") or {}
        lines += [f"A {sr.get('seconds', '?')} s recording ({sr.get('clips', '?')} clips with"
                  " pauses over a quiet room), replayed as fast as possible. RTF = processing"
                  " seconds / audio seconds (lower is better): whole process (start-up"
                  " included) and the listening loop alone (from the summary). First result:"
                  " process start to its first line. Values: median [min-max] over n runs.", ""]
        lines += table(["model", "audio s", "results", "RTF, process", "RTF, loop",
                        "faster than real time", "peak RSS", "ms per result (mean)",
                        "start to first result"], rows) + [""]
    return lines


def _memory_section(r: dict[str, Any]) -> list[str]:
    lines = ["## Size, start-up and memory", ""]
    rows = []
    for m in models(r):
        if m.get("pooled_folds"):
            continue
        fp, lo = m.get("first_prediction") or {}, m.get("load_only") or {}
        rows.append([m["name"], kb(m["size_bytes"]), params(m.get("parameters")),
                     spread_text(fp.get("seconds"), ".2f", unit=" s"),
                     spread_text(fp.get("peak_rss_bytes"), ".0f", 2**-20, " MB"),
                     spread_text(lo.get("peak_rss_bytes"), ".0f", 2**-20, " MB"),
                     spread_text(lo.get("load_seconds"), ".3f", unit=" s"),
                     (fp.get("command") or lo.get("command") or "")])
    base = r.get("baseline_process") or {}
    if base.get("peak_rss_bytes"):
        rows.append(["(baseline: Python + numpy + runtime, no model)", "", "", "", "",
                     spread_text(base["peak_rss_bytes"], ".0f", 2**-20, " MB"), "",
                     base.get("command", "")])
    lines += ["Start to first prediction: from spawning the process to its first line of"
              " output (imports, model load, reading the clip, its utterances through the"
              " model). Load-only: a process that loads the model and runs it once on one"
              " window of silence (`python -m benchmarks.probe`). Baseline: Python, numpy and"
              " the interpreter module, no model.", ""]
    lines += table(["model", "file size", "parameters", "start to first prediction",
                    "peak RSS of that process", "peak RSS, load-only", "model load",
                    "command"], rows)
    return lines + [""]


def to_markdown(r: dict[str, Any]) -> str:
    """The whole report for people."""

    lines = ["# edge-ser benchmark", ""]
    lines += [f"Command: `{r['command']}`  ", f"Date: {r['created']}, took {r['seconds']} s  ",
              f"Machine: {machine_line(r)}", ""]
    for d in r["data"]:
        lines.append(f"Data: `{d['dir']}` ({d.get('corpus', '?')}): {d['clips']} clips of"
                     f" {len(d['speakers'])} speakers, {d['utterances']} utterances found"
                     f" ({d['no_utterance']} clips without one), {d['interims']} interim hops."
                     + (f" {len(d['failed'])} unreadable clips were left out." if d.get("failed")
                        else "") + "  ")
    lines.append("")
    if r.get("notes") or r.get("errors"):
        lines += ["## Notes", ""]
        lines += [f"- {n}" for n in r.get("notes", [])]
        lines += [f"- error: {e}" for e in r.get("errors", [])]
        lines.append("")
    lines += _accuracy_section(r)
    lines += _conditions_section(r)
    lines += _corpora_section(r)
    lines += _live_section(r)
    lines += _latency_section(r)
    lines += _instructions_section(r)
    lines += _streaming_section(r)
    lines += _memory_section(r)
    lines += ["## Front end against its peers", ""]
    peer = r.get("frontend_peers") or {}
    if "skipped" in peer:
        lines += [f"Skipped: {peer['skipped']}.", ""]
    elif peer:
        from benchmarks.frontend import to_markdown as frontend_markdown

        lines += [frontend_markdown(peer), ""]
    lines += ["## README tables", "", readme_table(r)]
    return "\n".join(lines) + "\n"
