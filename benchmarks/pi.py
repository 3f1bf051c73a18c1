"""A predicted Raspberry Pi time per hop, from the x86-64 instruction counts.

A prediction, not a measurement: ``ser-bench`` run on the Pi itself measures it. The model,
stage by stage (:data:`benchmarks.instructions.STAGES`)::

    seconds = sum over stages of  x86 instructions * arm64/x86 ratio  /  (IPC * clock)

The x86 counts are callgrind's (:mod:`benchmarks.instructions`): its simulated CPU has AVX2
but not AVX-512, so numpy runs its AVX2 loops and XNNPACK its AVX2 int8 kernels under it
(this host's native AVX-512 VNNI kernels would execute fewer instructions). Stated
assumptions:

* **arm64/x86 instruction ratio: 1.2 for the numpy and Python stages** (front end,
  endpointer, glue). AArch64 is a load/store architecture (no memory operands, simpler
  addressing), so the same C (CPython's interpreter loop, numpy's loops) compiles to somewhat
  more instructions, and numpy's NEON vectors hold 128 bits against AVX2's 256.
* **2 for the model invoke**: XNNPACK's AVX2 int8 kernels do 16 multiply-adds per
  instruction (``vpmaddwd`` on 256 bits); on a Cortex-A72 or A53 (Armv8.0-A, no dot-product
  instructions) its NEON kernels do 8 per ``SMLAL``.
* **IPC (instructions per cycle)**: Cortex-A72 (out of order, 3-wide) 1.0 on interpreter and
  numpy code and 2.0 in the int8 kernels; Cortex-A53 (in order, 2-wide) 0.6 and 1.0.
* **Clock: Pi 4 1.5 GHz (the 1.8 GHz boards are 20 % faster), Pi Zero 2 W 1.0 GHz**; one
  core, nothing else running, no thermal throttling.

The low / high bounds take the ratios 1.1 / 1.4 (numpy, Python) and 1.5 / 3 (invoke) and
every IPC 25 % higher / lower. The real-time factor is the predicted time of a hop over the
hop's audio (0.5 s for the shipped bundles).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STAGE_RATIO = {"front end": 1.2, "endpointer": 1.2, "Python glue": 1.2, "model invoke": 2.0}
"""arm64 instructions per x86-64 (AVX2) instruction, by stage (the central assumption)."""
RATIO_RANGE = {"front end": (1.1, 1.4), "endpointer": (1.1, 1.4), "Python glue": (1.1, 1.4),
               "model invoke": (1.5, 3.0)}
IPC_SPREAD = 0.25
"""The bounds take every IPC this much higher (low time) and lower (high time)."""


@dataclass(frozen=True)
class Board:
    name: str
    core: str
    clock_ghz: float
    ipc: dict[str, float] = field(default_factory=dict)
    """Instructions per cycle by stage."""


def _ipc(code: float, kernels: float) -> dict[str, float]:
    return {"front end": code, "endpointer": code, "Python glue": code, "model invoke": kernels}


BOARDS = (Board("Raspberry Pi 4", "Cortex-A72", 1.5, _ipc(1.0, 2.0)),
          Board("Raspberry Pi Zero 2 W", "Cortex-A53", 1.0, _ipc(0.6, 1.0)))


def predict_seconds(stages: dict[str, float], board: Board) -> dict[str, float]:
    """Predicted seconds (central, low, high) of a piece of work given its x86-64
    instructions per stage."""
    def at(ratios: dict[str, float], ipc_scale: float) -> float:
        cycles = sum(stages.get(s, 0.0) * r / (board.ipc[s] * ipc_scale)
                     for s, r in ratios.items())
        return cycles / (board.clock_ghz * 1e9)

    low = {s: r[0] for s, r in RATIO_RANGE.items()}
    high = {s: r[1] for s, r in RATIO_RANGE.items()}
    return {"seconds": at(STAGE_RATIO, 1.0), "low": at(low, 1 + IPC_SPREAD),
            "high": at(high, 1 - IPC_SPREAD)}


def predictions(summary: dict[str, Any], hop_seconds: float = 0.5) -> list[dict[str, Any]]:
    """Per board: the predicted median interim hop, the interim hop near 6 s, the median
    no-speech hop and one file, with real-time factors (seconds of work per second of
    audio)."""
    out = []
    for b in BOARDS:
        row: dict[str, Any] = {"board": b.name, "core": b.core, "clock_ghz": b.clock_ghz,
                               "ipc": dict(b.ipc)}
        for key, stages, audio in (
                ("interim_hop", summary.get("median_interim"), hop_seconds),
                ("interim_hop_6s", (summary.get("at") or [None])[-1], hop_seconds),
                ("no_speech_hop", summary.get("median_no_speech"), hop_seconds),
                ("file", summary.get("file"), summary.get("file_seconds"))):
            if stages:
                p = predict_seconds(stages, b)
                row[key] = {**p, "rtf": p["seconds"] / audio if audio else None}
        out.append(row)
    return out


def predict_table(summary: dict[str, Any], hop_seconds: float = 0.5) -> str:
    """Markdown table of :func:`predictions`."""
    lines = ["**Predicted, not measured**: a Raspberry Pi, one core, from the instruction counts"
             " above. Per stage, time = x86 instructions x arm64/x86 ratio (numpy and Python"
             " 1.2, model invoke 2) / (IPC x clock); the range takes the ratios 1.1-1.4 and"
             " 1.5-3 and IPC +-25 % (the assumptions and why: `benchmarks/pi.py`). RTF:"
             " predicted seconds per second of audio.", "",
             "| board | clock GHz | IPC (code / int8 kernels) | interim hop ms (range) | RTF |"
             " interim hop near 6 s ms | no-speech hop ms | one file ms |",
             "|---|---|---|---|---|---|---|---|"]

    def ms(p: dict | None, rng: bool = False) -> str:
        if not p:
            return "-"
        text = f"{p['seconds'] * 1e3:.2f}"
        return text + (f" ({p['low'] * 1e3:.2f}-{p['high'] * 1e3:.2f})" if rng else "")

    for r in predictions(summary, hop_seconds):
        hop = r.get("interim_hop")
        rtf = f"{hop['rtf']:.4f}" if hop and hop.get("rtf") is not None else "-"
        ipc = f"{r['ipc']['Python glue']:g} / {r['ipc']['model invoke']:g}"
        lines.append(f"| {r['board']} ({r['core']}) | {r['clock_ghz']:g} | {ipc} | "
                     f"{ms(hop, True)} | {rtf} | {ms(r.get('interim_hop_6s'))} | "
                     f"{ms(r.get('no_speech_hop'))} | {ms(r.get('file'))} |")
    return "\n".join(lines)
