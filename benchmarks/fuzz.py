"""Damaged copies of model bundles through ``edge-ser predict``: refused, accepted or crashed?

::

    python -m benchmarks.fuzz                       # 500 mutants of every shipped bundle
    python -m benchmarks.fuzz --models edge/models/cnn-int8.tflite --mutants 2000 --seed 3
    python -m benchmarks.fuzz --restamp             # also: damage the checksum cannot see

Each mutant is one kind of damage (:data:`KINDS`: bit flips, random bytes, a zeroed block, a
truncation, appended or inserted garbage) in one part of the file (:data:`REGIONS`: the
flatbuffer header, its tables, the edge-ser metadata, the weights). Every mutant goes through
``edge-ser predict --json --model MUTANT CLIP``: a share of them through the installed console
script, one process each, the rest through :func:`worker`, which runs the same click command
in-process for many mutants in a row (much faster; a signal death still ends the process, is
recorded against the mutant that caused it, and the worker is restarted after it).

Outcomes (:func:`classify`): ``refused`` (exit 2, nothing on stdout, one line on stderr
``edge-ser: MUTANT: ...``), ``accepted`` (exit 0: a damaged model ran), ``crashed`` (killed by
a signal), ``traceback`` (an exception escaped), ``unclear`` (anything else).

``--restamp`` adds a second population: the same kinds of damage with the checksum then
recomputed, as if the file had been damaged before it was stamped. The checksum cannot see
those; they measure what the structural check (:func:`edge.flatbuffer.check_model`) and the
interpreter do with a malformed but checksum-valid model. Accepted ones there are expected
(a changed weight is still a model); crashes are not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REGIONS = ("header", "tables", "metadata", "weights")
KINDS = ("flip", "bytes", "zero", "truncate", "append", "insert")
HEADER_BYTES = 64
"""The root offset, the ``TFL3`` identifier and the root table's vtable live here."""
OUTCOMES = ("refused", "accepted", "crashed", "traceback", "unclear")
PROG = "edge-ser"


@dataclass(frozen=True)
class Mutant:
    """One damaged copy of a bundle."""

    name: str
    kind: str
    region: str
    data: bytes


@dataclass(frozen=True)
class Outcome:
    """What ``edge-ser predict`` did with one mutant."""

    name: str
    kind: str
    region: str
    via: str
    """``cli`` (the console script, one process) or ``worker`` (in-process, many per run)."""
    status: str
    exit_code: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


# --------------------------------------------------------------------------------------
# Mutants
# --------------------------------------------------------------------------------------


def regions(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges ``[start, end)`` of each :data:`REGIONS` part of a bundle."""
    from edge.bundle import METADATA_NAME, metadata_extents
    from edge.flatbuffer import buffer_extent, model_root

    fb, root = model_root(data, "bundle")
    meta = metadata_extents(data)
    start, n = meta[METADATA_NAME]
    metadata = [(start, start + n)]
    others = {extent for extent in meta.values()}
    weights = sorted((s, s + k) for s, k in (buffer_extent(fb, b) for b in fb.tables(root, 4))
                     if k and (s, k) not in others)
    taken = np.zeros(len(data), dtype=bool)
    taken[:HEADER_BYTES] = True
    for s, e in metadata + weights:
        taken[s:e] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[1], taken.astype(np.int8), [1]])))
    tables = [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2])]
    return {"header": [(0, HEADER_BYTES)], "tables": tables, "metadata": metadata,
            "weights": weights}


def _position(rng: np.random.Generator, spans: list[tuple[int, int]]) -> int:
    """A random byte position inside ``spans``, weighted by their lengths."""
    lengths = np.array([e - s for s, e in spans], dtype=np.float64)
    s, e = spans[int(rng.choice(len(spans), p=lengths / lengths.sum()))]
    return int(rng.integers(s, e))


def mutate(data: bytes, spans: list[tuple[int, int]], kind: str,
           rng: np.random.Generator) -> bytes:
    """``data`` with one ``kind`` of damage at positions inside ``spans``."""
    out = bytearray(data)
    if kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            out[_position(rng, spans)] ^= 1 << int(rng.integers(0, 8))
    elif kind == "bytes":
        for _ in range(int(rng.integers(1, 9))):
            out[_position(rng, spans)] = int(rng.integers(0, 256))
    elif kind == "zero":
        at = _position(rng, spans)
        end = min(len(out), at + int(rng.integers(4, 4097)))
        out[at:end] = bytes(end - at)
    elif kind == "truncate":
        out = out[:_position(rng, spans)]
    elif kind == "append":
        size = int(rng.integers(1, 4097))
        tail = bytes(size) if rng.random() < 0.3 else rng.integers(0, 256, size, np.uint8).tobytes()
        out += tail
    elif kind == "insert":
        at = _position(rng, spans)
        out[at:at] = rng.integers(0, 256, int(rng.integers(1, 65)), np.uint8).tobytes()
    else:
        raise ValueError(f"unknown mutation kind {kind!r}")
    return bytes(out)


def mutants(data: bytes, n: int, *, seed: int, prefix: str = "") -> list[Mutant]:
    """``n`` mutants of ``data``, every (kind, region) pair in turn, each different from
    ``data`` (a mutation that changed nothing is drawn again)."""
    spans = regions(data)
    rng = np.random.default_rng(seed)
    pairs = [(k, r) for k in KINDS for r in REGIONS if k != "append" or r == "weights"]
    out = []
    for i in range(n):
        kind, region = pairs[i % len(pairs)]
        region_name = "end" if kind == "append" else region
        while True:
            damaged = mutate(data, spans[region], kind, rng)
            if damaged != data:
                break
        out.append(Mutant(f"{prefix}{i:04d}-{kind}-{region_name}", kind, region_name, damaged))
    return out


def restamped(data: bytes) -> bytes | None:
    """``data`` with its checksum recomputed over its damage (None when its metadata can no
    longer be found): damage the checksum cannot detect."""
    from edge import integrity
    from edge.bundle import metadata_document
    from edge.errors import ModelError

    try:
        start, payload, document = metadata_document(data, "mutant")
    except ModelError:
        return None
    record = document.get("integrity")
    digest = record.get(integrity.ALGORITHM) if isinstance(record, dict) else None
    if not integrity.is_digest(digest):
        return None
    position = integrity.digest_position(payload, digest)
    if position is None:
        return None
    at = start + position
    zeroed = data[:at] + integrity.PLACEHOLDER.encode() + data[at + integrity.DIGEST_LENGTH:]
    return integrity.stamp(zeroed, at)


# --------------------------------------------------------------------------------------
# Running them
# --------------------------------------------------------------------------------------


def classify(exit_code: int | None, stdout: str, stderr: str, path: str,
             escaped: str | None = None) -> tuple[str, str]:
    """(outcome, first stderr line) of one ``predict`` run on the mutant at ``path``."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    first = lines[0][:300] if lines else ""
    if exit_code is not None and exit_code < 0:
        return "crashed", f"signal {-exit_code}"
    if escaped or "Traceback" in stderr:
        return "traceback", escaped or (lines[-1][:300] if lines else "")
    if exit_code == 0:
        return "accepted", stdout.strip()[:200]
    if (exit_code == 2 and not stdout.strip() and len(lines) == 1
            and first.startswith(f"{PROG}: {path}")):
        return "refused", first
    return "unclear", f"exit {exit_code}: {first}"


def console_script() -> list[str]:
    """The ``edge-ser`` command beside this Python (the installed console script)."""
    script = Path(sys.executable).with_name(PROG)
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from edge.cli import main; main()"]


def run_cli(mutant: Mutant, path: Path, clip: Path, *, timeout: float = 120) -> Outcome:
    """``edge-ser predict --json --model PATH CLIP`` in its own process."""
    try:
        done = subprocess.run([*console_script(), "predict", "--json", "--model", str(path),
                               str(clip)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(mutant.name, mutant.kind, mutant.region, "cli", "unclear", None,
                       f"no answer in {timeout:g} s")
    status, message = classify(done.returncode, done.stdout, done.stderr, str(path))
    return Outcome(mutant.name, mutant.kind, mutant.region, "cli", status, done.returncode,
                   message)


def run_worker(batch: list[tuple[Mutant, Path]], clip: Path, *,
               timeout: float = 600) -> list[Outcome]:
    """The mutants of ``batch`` through :func:`worker` processes; a worker killed by a signal
    is charged to the mutant it was on and a new one takes the rest."""
    out: list[Outcome] = []
    todo = list(batch)
    while todo:
        done = subprocess.run([sys.executable, "-m", "benchmarks.fuzz", "--worker", str(clip),
                               *(str(p) for _, p in todo)], capture_output=True, text=True,
                              timeout=timeout)
        results = [json.loads(line) for line in done.stdout.splitlines()
                   if line.startswith("{")]
        for (mutant, path), r in zip(todo, results):
            status, message = classify(r["exit_code"], r["stdout"], r["stderr"], str(path),
                                       r["escaped"])
            out.append(Outcome(mutant.name, mutant.kind, mutant.region, "worker", status,
                               r["exit_code"], message))
        todo = todo[len(results):]
        if not todo:
            break
        if done.returncode == 0:  # finished without answering for these: should not happen
            raise RuntimeError(f"fuzz worker stopped early: {done.stderr[-2000:]}")
        mutant, path = todo.pop(0)
        code = done.returncode if done.returncode < 0 else None
        status = "crashed" if code is not None else "unclear"
        last = (done.stderr.strip().splitlines() or [""])[-1][:300]
        out.append(Outcome(mutant.name, mutant.kind, mutant.region, "worker", status,
                           done.returncode, f"worker died ({done.returncode}): {last}"))
    return out


def worker(clip: str, paths: list[str]) -> None:
    """For each path, ``edge-ser predict --json --model PATH CLIP`` through click in this
    process; one JSON line per path on stdout, flushed before the next starts."""
    from click.testing import CliRunner

    from edge.cli import cli

    runner = CliRunner()
    for path in paths:
        result = runner.invoke(cli, ["predict", "--json", "--model", path, clip],
                               prog_name=PROG)
        escaped = None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            escaped = f"{type(result.exception).__name__}: {result.exception}"[:300]
        sys.stdout.write(json.dumps({"path": path, "exit_code": result.exit_code,
                                     "stdout": result.stdout, "stderr": result.stderr,
                                     "escaped": escaped}) + "\n")
        sys.stdout.flush()


def run_mutants(items: list[Mutant], clip: Path, directory: Path, *, cli_every: int = 10,
                jobs: int = 2, batch: int = 100) -> list[Outcome]:
    """Write the mutants into ``directory`` and run them: every ``cli_every``-th through the
    console script, the rest through workers; ``jobs`` processes at a time."""
    paths = []
    for m in items:
        path = directory / f"{m.name}.tflite"
        path.write_bytes(m.data)
        paths.append((m, path))
    by_cli = [p for i, p in enumerate(paths) if cli_every and i % cli_every == 0]
    rest = [p for i, p in enumerate(paths) if not (cli_every and i % cli_every == 0)]
    chunk = max(1, min(batch, -(-len(rest) // max(jobs, 1))))
    batches = [rest[i:i + chunk] for i in range(0, len(rest), chunk)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        cli_runs = [pool.submit(run_cli, m, p, clip) for m, p in by_cli]
        worker_runs = [pool.submit(run_worker, b, clip) for b in batches]
        outcomes = [f.result() for f in cli_runs]
        for f in worker_runs:
            outcomes += f.result()
    order = {m.name: i for i, m in enumerate(items)}
    return sorted(outcomes, key=lambda o: order[o.name])


def speech_like_clip(path: Path, *, seconds: float = 2.5, rate: int = 16000) -> Path:
    """A WAV of voiced, vowel-like sound (a gliding 120-220 Hz pulse train through three
    formant resonances, syllable envelope) between short silences; no recording needed."""
    from edge.audio import write_wav

    rng = np.random.default_rng(0)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 150 + 50 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    spectrum = np.fft.rfft(source)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    gain = sum(1 / (1 + ((freqs - f) / bw) ** 2) for f, bw in ((700, 90), (1200, 110),
                                                               (2500, 160)))
    voiced = np.fft.irfft(spectrum * gain, n)
    envelope = np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 0.5
    envelope[(t < 0.3) | (t > seconds - 0.3)] = 0
    x = voiced * envelope
    x = 0.3 * x / np.abs(x).max() + 1e-3 * rng.standard_normal(n)
    return write_wav(path, x.astype(np.float32), rate)


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Counts by outcome, and by kind and region, with the non-refused ones listed."""
    counts = Counter(o.status for o in outcomes)
    return {
        "mutants": len(outcomes),
        **{s: counts.get(s, 0) for s in OUTCOMES},
        "via": dict(Counter(o.via for o in outcomes)),
        "by_kind": {k: dict(Counter(o.status for o in outcomes if o.kind == k)) for k in KINDS},
        "by_region": {r: dict(Counter(o.status for o in outcomes if o.region == r))
                      for r in (*REGIONS, "end")},
        "not_refused": [o.to_dict() for o in outcomes if o.status != "refused"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs="+", metavar=("CLIP", "MUTANT"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="+", type=Path,
                        help="bundles to damage [default: every shipped bundle]")
    parser.add_argument("--mutants", type=int, default=500, help="per bundle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli-every", type=int, default=10,
                        help="every N-th mutant through the console script (0: none)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--restamp", action="store_true",
                        help="also run mutants whose checksum was recomputed")
    parser.add_argument("--clip", type=Path, help="a WAV to predict [default: synthetic]")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1:])
        return 0

    from edge.shipped import shipped_models

    models = args.models or shipped_models()
    report: dict[str, Any] = {"seed": args.seed, "mutants_per_bundle": args.mutants,
                              "bundles": {}}
    started = time.perf_counter()
    bad = 0
    with tempfile.TemporaryDirectory(prefix="edge-ser-fuzz-") as tmp:
        clip = args.clip or speech_like_clip(Path(tmp) / "clip.wav")
        for k, model in enumerate(models):
            data = Path(model).read_bytes()
            entry: dict[str, Any] = {}
            populations = {"damaged": mutants(data, args.mutants, seed=args.seed + k)}
            if args.restamp:
                stamped = [Mutant(m.name + "-restamped", m.kind, m.region, d)
                           for m in populations["damaged"]
                           if (d := restamped(m.data)) is not None and d != data]
                populations["restamped"] = stamped
            for name, items in populations.items():
                directory = Path(tmp) / f"{Path(model).stem}-{name}"
                directory.mkdir()
                outcomes = run_mutants(items, clip, directory, cli_every=args.cli_every,
                                       jobs=args.jobs)
                entry[name] = summarize(outcomes)
                s = entry[name]
                print(f"{Path(model).name} {name}: {s['mutants']} mutants ({s['via']}):"
                      f" {s['refused']} refused, {s['accepted']} accepted, {s['crashed']}"
                      f" crashed, {s['traceback']} tracebacks, {s['unclear']} unclear",
                      flush=True)
                if name == "damaged":
                    bad += s["mutants"] - s["refused"]
                else:
                    bad += s["crashed"] + s["traceback"] + s["unclear"]
            report["bundles"][str(model)] = entry
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{report['seconds']:.0f} s; {bad} outcomes that are not what they must be"
          " (damaged: refused; restamped: refused or accepted, never a crash or traceback)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
