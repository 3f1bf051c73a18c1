"""The README's benchmark tables, generated from a ``benchmark.json`` (``ser-bench --readme``).

Two tables: accuracy (clean, interim, the room conditions, every other corpus, int8/float
agreement, live) and the device figures (size, invoke, the per-hop cost, ``listen``'s RTF and
memory, start to the first result). Held-out figures come first: a model's own on ``--data``
when it never heard those speakers, else its pooled folds' (``--folds``); figures on
training speakers are marked.
"""

from __future__ import annotations

from typing import Any

from benchmarks.formatting import (
    agreement_of,
    f_,
    kb,
    latency_row,
    machine_line,
    mb,
    models,
    params,
    table,
)
from train.conditions import NAMES as CONDITIONS

HELD = "held-out speakers"
FOLDS_NOTE = ("² held-out speakers, {n}-fold cross-validation of the same recipe: each"
              " recording scored by the fold model (Keras, and its int8/float32 conversion as"
              " `ser-export` makes it) that never heard its speaker.")


def _source(r: dict[str, Any], x: dict[str, Any], footnotes: list[str]
            ) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """Where a row's primary-corpus figures come from: the model's own entry or its pooled
    folds', the footnote mark, and the int8/float comparison that goes with them."""
    a = x.get("accuracy") or {}
    if a.get("headline") == HELD:
        return x, "", agreement_of(r, x["name"])
    folds = next((m for m in models(r) if m["name"] == x.get("held_out_by")), None)
    if folds and (folds.get("accuracy") or {}).get("headline") == HELD:
        note = FOLDS_NOTE.format(n=len(folds.get("pooled_folds") or []))
        if note not in footnotes:
            footnotes.append(note)
        return folds, "²", agreement_of(r, folds["name"])
    if a.get("accuracy") is not None:
        _training_note(r, a, footnotes)
        return x, "¹", agreement_of(r, x["name"])
    return x, "", None


def _training_note(r: dict[str, Any], a: dict[str, Any], footnotes: list[str]) -> None:
    """The ¹ footnote: which corpus, and that its speakers trained the model."""
    d = next((d for d in r.get("data") or [] if d["name"] == a.get("corpus")), {})
    note = (f"¹ {a['headline']}: on `{d.get('dir')}` ({d.get('clips')} clips of"
            f" {len(d.get('speakers') or [])} speakers), speakers the model was trained on.")
    if note not in footnotes:
        footnotes.append(note)


def _held_agreement(comp: dict | None, mark: str) -> str:
    if not comp:
        return ""
    value = comp.get("agreement_held_out")
    if value is None and mark == "¹":
        value = comp.get("agreement")
    return f_(value) + (mark if value is not None else "")


def accuracy_table(r: dict[str, Any], footnotes: list[str]) -> list[str]:
    names = [c for c in CONDITIONS if any(c in (m.get("conditions") or {}) for m in models(r))]
    others = [d["name"] for d in (r.get("data") or [])[1:]]
    header = ["model", "accuracy", "macro-F1", "interim", *names, *others,
              "int8/float agreement", "live (listen / predict)"]
    rows = []
    for x in models(r):
        if x.get("pooled_folds"):
            continue
        if x.get("latency_only"):
            continue
        src, mark, comp = _source(r, x, footnotes)
        a = src.get("accuracy") or {}
        cells = [x["name"], f_(a.get("accuracy")) + (mark if a.get("accuracy") is not None
                                                     else ""),
                 f_(a.get("macro_f1"))]
        interim = (a.get("interim") or {}).get("accuracy")
        cells.append(f_(interim) + (mark if interim is not None else ""))
        for n in names:
            c = (src.get("conditions") or {}).get(n) or {}
            cells.append(f_(c.get("accuracy")) + (mark if c.get("accuracy") is not None
                                                  else ""))
        for n in others:
            c = (x.get("corpora") or {}).get(n) or {}
            own = "" if c.get("headline") in (None, HELD) else "¹"
            if own:
                _training_note(r, c, footnotes)
            cells.append(f_(c.get("accuracy")) + (own if c.get("accuracy") is not None else ""))
        cells.append(_held_agreement(comp, mark) if x["quantization"] == "int8" else "")
        live = x.get("live") or {}
        if live:
            mark3 = "" if live.get("speakers_label") == HELD else "³"
            if mark3 and "³ live on training speakers (no held-out clips in --data)." \
                    not in footnotes:
                footnotes.append("³ live on training speakers (no held-out clips in --data).")
            cells.append(f"{f_(live.get('live_accuracy'))} / {f_(live.get('file_accuracy'))}"
                         + mark3)
        else:
            cells.append("")
        rows.append(cells)
    return table(header, sorted(rows, key=lambda row: "1" if "keras" in row[0] else "0"))


def device_table(r: dict[str, Any]) -> list[str]:
    from benchmarks.latency import INTERIM_HOP, INVOKE, KERAS_PREDICT

    t1 = min((r.get("settings") or {}).get("threads") or [1])
    header = ["model", "size", "params", f"invoke ms, {t1} thread (p95)",
              "interim hop ms (p95)", "listen RTF", "listen peak RSS",
              "start to first result"]
    rows = []
    for x in models(r):
        if x.get("pooled_folds"):
            continue
        inv = latency_row(r, INVOKE, x["name"], t1) or latency_row(r, KERAS_PREDICT,
                                                                   x["name"], None)
        hop = latency_row(r, INTERIM_HOP, x["name"], t1)
        s = x.get("streaming") or {}
        fp = (s.get("first_result_seconds") or
              (x.get("first_prediction") or {}).get("seconds") or {})
        rows.append([
            x["name"], kb(x["size_bytes"]), params(x.get("parameters")),
            (f"{inv['median_ms']:.2f} ({inv['p95_ms']:.2f})"
             + (" Keras predict" if inv["what"] == KERAS_PREDICT else "")) if inv else "-",
            f"{hop['median_ms']:.2f} ({hop['p95_ms']:.2f})" if hop else "-",
            f_((s.get("rtf_process") or {}).get("median"), ".4f"),
            mb((s.get("peak_rss_bytes") or {}).get("median")),
            f"{fp['median']:.2f} s" if fp.get("median") is not None else "-",
        ])
    return table(header, sorted(rows, key=lambda row: "1" if "keras" in row[0] else "0"))


def readme_table(r: dict[str, Any]) -> str:
    """The README's benchmark section body: where and how it was measured, the two tables,
    and the notes under them."""
    from benchmarks.latency import FRONTEND_HOP, INTERIM_HOP

    out = [f"Measured with `{r['command']}` on {machine_line(r)} ({r['created'][:10]})."
           " Published figures come from this machine, not from a Raspberry Pi, until"
           " measured on one.", ""]
    footnotes: list[str] = []
    out += accuracy_table(r, footnotes) + [""]
    out += device_table(r)
    extras = []
    extras.append("Accuracy: per recording as `edge-ser predict` gives it (a recording without"
                  " an utterance counts as wrong); interim: the interim results during speech;"
                  " quiet / reverb / noise / combined: the same held-out recordings under"
                  " `train.augment.CONDITIONS`"
                  + (f"; {', '.join(d['name'] for d in r['data'][1:])}: other corpora, scored"
                     " on their own (a predicted calm counts as neutral where the corpus has"
                     " no calm)" if len(r.get("data") or []) > 1 else "")
                  + "; live: clips with pauses through `edge-ser listen --file --fast` (label"
                  " from the finals overlapping each clip) / the same clips through"
                  " `edge-ser predict`.")
    fh = latency_row(r, FRONTEND_HOP, None, None)
    if fh:
        extras.append(f"Front end: {fh['median_ms']:.2f} ms per {r['latency']['hop_seconds']:g}"
                      " s hop (median).")
    t1 = min((r.get("settings") or {}).get("threads") or [1])
    hops = [x for x in (r.get("latency") or {}).get("rows", [])
            if x["what"] == INTERIM_HOP and x["threads"] == t1]
    if hops:
        worst = max(hops, key=lambda x: x["p95_ms"])
        extras.append(f"Per hop while someone speaks (front end, endpointer, the utterance so"
                      f" far through the model), {t1} interpreter thread: at most"
                      f" {worst['median_ms']:.2f} ms median, {worst['p95_ms']:.2f} ms p95"
                      f" ({worst['model']}); the budget is 5 ms.")
    h = r.get("hour")
    if h:
        extras.append(f"An hour ({h['audio_seconds'] / 60:.0f} min) of clips and pauses with"
                      f" {h['model']}: peak RSS {mb(h['predict']['peak_rss_bytes'])} through"
                      f" `edge-ser predict`, {mb(h['listen']['peak_rss_bytes'])} through"
                      " `edge-ser listen --file --fast` (budget 100 MB).")
    peer = r.get("frontend_peers") or {}
    ratios = peer.get("ratios") or {}
    if ratios:
        extras.append(
            f"librosa.feature.mfcc takes {ratios['librosa / edge']:.1f}x and"
            f" python_speech_features.mfcc"
            f" {ratios['python_speech_features / edge (psf convention)']:.1f}x our MFCC's time"
            " on the same clips.")
    by_keras: dict[str, list[str]] = {}
    for x in (r.get("latency") or {}).get("ratios", []):
        if "keras" in x:
            by_keras.setdefault(x["keras"], []).append(f"{x['value']:.0f}x the {x['tflite']}")
    for name, parts in by_keras.items():
        extras.append(f"Keras `predict` of {name} on one window takes {', '.join(parts)}"
                      " invoke (same run).")
    settings = r.get("settings") or {}
    extras.append(f"Latency: medians (p95) over {settings.get('repeats')} interleaved timings"
                  + (", numpy's BLAS on one thread" if settings.get("blas_threads") == 1 else "")
                  + "; RTF = processing seconds / audio seconds of `edge-ser listen --file F"
                  f" --fast` on a {settings.get('stream_seconds', 0):g} s recording, start-up"
                  " included; RSS = peak resident memory of that process; first result: process"
                  " start to its first line.")
    out += [""] + [f"- {line}" for line in sorted(footnotes) + extras]
    return "\n".join(out) + "\n"
