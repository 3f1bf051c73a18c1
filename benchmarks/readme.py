"""The README's and docs' tables, generated from a ``benchmark.json`` (``ser-bench --readme``,
``python -m benchmarks.readme --update PAGE``, ``make docs``).

Two tables: accuracy (clean, interim, the room conditions, every other corpus, int8/float
agreement, live) and the device figures (size, invoke, the per-hop cost, ``listen``'s RTF and
memory, start to the first result). Held-out figures come first: a model's own on ``--data``
when it never heard those speakers, else its pooled folds' (``--folds``); figures on
training speakers are marked.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from benchmarks import seed_models
from benchmarks.formatting import (
    agreement_of,
    f_,
    kb,
    latency_row,
    machine_line,
    mb,
    models,
    params,
    read_report,
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


# --------------------------------------------------------------------------------------
# Generated sections of README.md and docs/*.md
# --------------------------------------------------------------------------------------
#
# A generated section sits between two comment lines, written and checked by this module:
#
#   <!-- generated: shipped (python -m benchmarks.readme --update FILE; do not edit) -->
#   ...
#   <!-- end generated: shipped -->
#
# `make docs` rewrites every section from reports/benchmark.json and the shipped default
# (edge/models/DEFAULT); tests/test_docs.py fails when a committed section differs.

REPORT = "reports/benchmark.json"
BEGIN = "<!-- generated: {name} (python -m benchmarks.readme --update FILE; do not edit) -->"
END = "<!-- end generated: {name} -->"
_SECTION = re.compile(r"^<!-- generated: ([\w-]+) \(.*?\) -->\n(.*?)^<!-- end generated: \1 -->$",
                      re.M | re.S)


def _shipped(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's entries of the bundles shipped in ``edge/models/``."""
    return [x for x in models(r) if not x.get("pooled_folds")
            and Path(x.get("path") or "").parent.as_posix() == "edge/models"]


def _default_name(r: dict[str, Any], default: str) -> str:
    """The report's name of the default bundle (its file name without ``.tflite``)."""
    stem = Path(default).stem
    if not any(x["name"] == stem for x in _shipped(r)):
        raise ValueError(f"{REPORT} has no entry for the default bundle {default}: run"
                         " ser-bench on the shipped bundles again (make bench)")
    return stem


def shipped_table(r: dict[str, Any], default: str) -> str:
    """The README's short table: each shipped bundle's accuracy on unseen speakers (± its
    standard error), interim accuracy, size and per-hop cost; the default first."""
    from benchmarks.latency import INTERIM_HOP

    name = _default_name(r, default)
    t1 = min((r.get("settings") or {}).get("threads") or [1])
    header = ["bundle", "accuracy, unseen speakers", "interim", "size",
              f"ms per hop while speaking ({t1} thread)"]
    rows, notes, from_metadata = [], [], False
    for x in sorted(_shipped(r), key=lambda x: (x["name"] != name, x["quantization"] != "int8",
                                                x["name"])):
        src, mark, _ = _source(r, x, notes)
        a = src.get("accuracy") or {}
        se = a.get("accuracy_se")
        accuracy = f_(a.get("accuracy")) + (f" ± {se:.3f}" if se is not None else "")
        interim = f_((a.get("interim") or {}).get("accuracy"))
        if mark == "¹":  # only its training speakers here: never shown as unseen speakers
            accuracy, interim = _metadata_figures(x)
            from_metadata = True
        hop = latency_row(r, INTERIM_HOP, x["name"], t1)
        rows.append([f"`{x['name']}`" + (" (default)" if x["name"] == name else ""),
                     accuracy, interim, kb(x["size_bytes"]),
                     f"{hop['median_ms']:.2f}" if hop else "-"])
    d = (r.get("data") or [{}])[0]
    m = r.get("machine") or {}
    held = next((x for x in models(r) if x["name"] ==
                 next((y.get("held_out_by") for y in models(r) if y["name"] == name), None)),
                {})
    n_held = (held.get("accuracy") or {}).get("n")
    note = (f"Accuracy: recordings of `{d.get('name')}` scored by a model that never heard"
            f" their speaker ({n_held} recordings: "
            f"{', '.join(Path(f).name for f in _folds_of(r, name))} of the bundle's recipe's"
            " cross-validation), as `edge-ser predict` scores a file; ± one standard error"
            " over the recordings. Interim: the utterance so far, every hop, as `listen`"
            " shows it live. Per hop: the median of `Recognizer.push` while an utterance is"
            f" under way, on {m.get('cpu')} ({m.get('cores')} cores), not a Raspberry Pi;"
            f" `ser-bench`, {r['created'][:10]}.")
    if from_metadata:
        note += (" ³ Not scored on unseen speakers in this run (no fold models of its recipe"
                 " here): the figure its export measured on its own cross-validation's held-out"
                 " speakers, from the bundle's metadata (`edge-ser info`).")
    return "\n".join(table(header, rows) + ["", note]) + "\n"


def _metadata_figures(x: dict[str, Any]) -> tuple[str, str]:
    """Held-out accuracy and interim accuracy a bundle's own metadata records (its export's
    and its training's cross-validation), marked ³; dashes when it has none."""
    from edge.bundle import load_bundle

    try:
        acc = load_bundle(x["path"]).metadata.accuracy
    except Exception:  # a missing or unreadable bundle: no figure rather than a wrong one
        return "- ³", "-"
    export, training = acc.get("export") or {}, acc.get("training") or {}
    interim = training.get("interim_accuracy_mean")
    return (f_(export.get("accuracy")) + " ³", f_(interim) + " ³" if interim else "-")


def _folds_of(r: dict[str, Any], name: str) -> list[str]:
    x = next((m for m in models(r) if m["name"] == name), {})
    folds = next((m for m in models(r) if m["name"] == x.get("held_out_by")), {})
    return list(folds.get("pooled_folds") or [])


def picture(r: dict[str, Any], default: str, root: str) -> str:
    """The default bundle's confusion matrix on unseen speakers (its folds'), as an image
    link relative to the page (``root``: the repository seen from the page)."""
    name = _default_name(r, default)
    x = next(m for m in models(r) if m["name"] == name)
    held = x.get("held_out_by") or name
    png = ((r.get("plots") or {}).get("confusion") or {}).get(held)
    if not png:
        raise ValueError(f"{REPORT} has no confusion matrix of {held}")
    a = (next(m for m in models(r) if m["name"] == held).get("accuracy") or {})
    return (f"![Confusion matrix of the default bundle, {name}, on {a.get('n')} recordings of"
            f" speakers it never heard]({root}reports/{png})\n")


def recall_table(r: dict[str, Any], default: str) -> str:
    """Per-class recall of the default bundle on unseen speakers, highest first."""
    name = _default_name(r, default)
    x = next(m for m in models(r) if m["name"] == name)
    src, _, _ = _source(r, x, [])
    recall = (src.get("accuracy") or {}).get("recall") or {}
    rows = [[label, f_(value)] for label, value in
            sorted(recall.items(), key=lambda kv: -kv[1])]
    return "\n".join([f"Recall per emotion of `{name}` on unseen speakers:", ""]
                     + table(["emotion", "recall"], rows)) + "\n"


QUICKSTART_CLIPS = ("Actor_01/03-01-05-02-01-01-01", "Actor_02/03-01-04-01-02-02-02")
"""The README's quickstart recordings: ``angry.wav`` is the first; ``two.wav`` the first, 2 s
of a quiet room (white noise at -60 dBFS, seed 0) and the second."""
QUICKSTART = {
    "quickstart-predict": [["predict", "angry.wav"], ["predict", "angry.wav", "--json"]],
    "quickstart-listen": [["listen", "--file", "two.wav", "--fast"]],
    "quickstart-json": [["listen", "--file", "two.wav", "--fast", "--json"]],
}
"""Generated console blocks: the commands, run now, and what they print."""


def quickstart(data: Path) -> dict[str, str]:
    """The README's console blocks: each command run on the quickstart recordings (made from
    RAVDESS under ``data`` in a temporary directory) with the shipped default model, and its
    output (stderr with it for the text view; only the finals of ``--json``)."""
    import subprocess
    import tempfile

    import numpy as np

    from edge.audio import load, write_wav

    edge_ser = Path(sys.executable).with_name("edge-ser")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = []
        for name in QUICKSTART_CLIPS:
            found = sorted(data.glob(f"{name}.*"))
            if not found:
                raise ValueError(f"{name} not found under {data} (set SER_DATA)")
            clips.append(load(found[0], 16000))
        pause = np.random.default_rng(0).standard_normal(2 * 16000) * 10 ** (-60 / 20)
        write_wav(Path(tmp) / "angry.wav", clips[0], 16000)
        write_wav(Path(tmp) / "two.wav", np.concatenate([clips[0], pause, clips[1]]), 16000)
        env = {k: v for k, v in os.environ.items() if k != "EDGE_SER_MODEL"}
        for section, commands in QUICKSTART.items():
            lines = ["```console"]
            for args in commands:
                done = subprocess.run([str(edge_ser), *args], cwd=tmp, env=env, text=True,
                                      stdout=subprocess.PIPE, timeout=300,
                                      stderr=subprocess.DEVNULL if "--json" in args
                                      else subprocess.STDOUT)
                if done.returncode != 0:
                    raise ValueError(f"edge-ser {' '.join(args)}: exit {done.returncode}")
                printed = done.stdout.splitlines()
                if section == "quickstart-json":
                    printed = [x for x in printed if '"event": "final"' in x]
                    lines.append(f"$ edge-ser {' '.join(args)} | grep '\"final\"'")
                else:
                    lines.append(f"$ edge-ser {' '.join(args)}")
                lines += printed
            out[section] = "\n".join(lines + ["```"]) + "\n"
    return out


def sections(r: dict[str, Any], default: str, root: str,
             data: Path | None = None) -> dict[str, str]:
    """name -> body of every generated section, for a page at ``root`` from the repository
    (the quickstart's too when ``data``, the RAVDESS directory, is given)."""
    out = {"shipped": shipped_table(r, default), "picture": picture(r, default, root),
           "benchmark": readme_table(r), "recall": recall_table(r, default)}
    figures = Path(__file__).resolve().parents[1] / seed_models.FIGURES
    if figures.is_file():  # every model kind on the same folds (issue 23)
        out["seed-models"] = seed_models.readme_table(json.loads(figures.read_text()))
    if data is not None:
        out.update(quickstart(data))
    return out


def _root_of(page: Path, repo: Path) -> str:
    depth = len(page.resolve().relative_to(repo.resolve()).parts) - 1
    return "../" * depth


def regenerate(text: str, bodies: dict[str, str]) -> str:
    """``text`` with every generated section's body replaced; ValueError for an unknown one."""
    def body(m: re.Match) -> str:
        name = m.group(1)
        if name in QUICKSTART and name not in bodies:  # not regenerated without the data
            return m.group(0)
        if name not in bodies:
            raise ValueError(f"unknown generated section {name!r} (known: {sorted(bodies)})")
        return f"{BEGIN.format(name=name)}\n{bodies[name]}{END.format(name=name)}"

    return _SECTION.sub(body, text)


def stale(pages: list[Path], repo: Path, data: Path | None = None) -> list[str]:
    """The pages whose generated sections differ from the committed reports (and, with
    ``data``, from what the quickstart's commands print now); empty: all current."""
    r, default = _inputs(repo, None, None)
    quick = quickstart(data) if data is not None else {}
    out = []
    for p in pages:
        bodies = {**sections(r, default, _root_of(p, repo)), **quick}
        if regenerate(p.read_text(), bodies) != p.read_text():
            out.append(str(p))
    return out


def _inputs(repo: Path, report: dict[str, Any] | None, default: str | None
            ) -> tuple[dict[str, Any], str]:
    r = report if report is not None else read_report(repo / REPORT)
    if default is None:
        default = (repo / "edge" / "models" / "DEFAULT").read_text().strip()
    return r, default


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.readme --update|--check PAGE...``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme",
                                     description="Rewrite or check the generated sections of"
                                     " README.md and docs/*.md from reports/benchmark.json.")
    parser.add_argument("--update", action="store_true", help="rewrite the pages")
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=None,
                        help="RAVDESS directory for the quickstart's recordings ($SER_DATA)")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    r, default = _inputs(repo, None, None)
    data = args.data or (Path(os.environ["SER_DATA"]) if os.environ.get("SER_DATA") else None)
    quick = quickstart(data) if data is not None else {}
    changed = []
    for page in args.pages:
        text = page.read_text()
        new = regenerate(text, {**sections(r, default, _root_of(page, repo)), **quick})
        if new != text:
            changed.append(str(page))
            if args.update:
                page.write_text(new)
    verb = "updated" if args.update else "stale (make docs)"
    for page in changed:
        print(f"{verb}: {page}", file=sys.stderr)
    return 0 if args.update or not changed else 1


if __name__ == "__main__":
    sys.exit(main())
