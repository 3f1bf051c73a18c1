"""Figures that need a fresh process: streaming real-time factor, peak RSS, start-up time.

Each measurement starts the command a user would type (``edge-ser listen``, ``edge-ser
predict``) or a minimal loader (``python -m benchmarks.probe``) as a child process, reads its
stdout as it arrives (the time of the first line is the time to the first prediction) and
collects the child's own resource usage with ``os.wait4`` in a tiny launcher process:
``ru_maxrss`` is that one process's peak resident set size. No ``/usr/bin/time`` needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contenders import KERAS, Contender


@dataclass
class ProcessRun:
    """One finished child process."""

    command: list[str]
    returncode: int
    wall_seconds: float
    """Spawn to exit."""
    first_line_seconds: float | None
    """Spawn to the first line on stdout."""
    max_rss_bytes: int | None
    stdout_lines: list[str] = field(default_factory=list)
    stderr: str = ""

    def json_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stdout_lines:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def failure(self) -> str | None:
        """One line saying why the run failed, or None."""
        if self.returncode == 0:
            return None
        last = (self.stderr.strip().splitlines() or ["(no message)"])[-1]
        return f"`{' '.join(self.command[-6:])}` exited {self.returncode}: {last}"


# A small launcher between ser-bench and the measured command. ``ru_maxrss`` of a child
# starts from its parent's resident size at fork (Linux copies the high-water mark), so a
# child of a big ser-bench process (TensorFlow loaded) would report ser-bench's size. The
# launcher is a bare ``python -S`` of a few MB: the command's own peak dominates. It records
# when it spawned the command (CLOCK_MONOTONIC, shared by all processes) and the command's
# peak RSS and exit status, in a JSON file.
_LAUNCHER = r"""
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
spawned = time.monotonic()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
with open(out, "w") as f:
    json.dump({"spawned": spawned, "max_rss_bytes": rss,
               "returncode": os.waitstatus_to_exitcode(status)}, f)
"""


def run_measured(command: list[str], *, timeout: float = 600.0,
                 env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``command``; its wall time, time to the first stdout line and peak RSS."""
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="ser-bench-run-") as tmp:
        record = Path(tmp) / "launcher.json"
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, str(record)]
        proc = subprocess.Popen(launcher + command, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                env=child_env)
        lines: list[str] = []
        first: list[float] = []
        err: list[str] = []

        def read_out() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not first:
                    first.append(time.monotonic())
                lines.append(line.rstrip("\n"))

        def read_err() -> None:
            assert proc.stderr is not None
            err.append(proc.stderr.read())

        readers = [threading.Thread(target=read_out, daemon=True),
                   threading.Thread(target=read_err, daemon=True)]
        for r in readers:
            r.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        ended = time.monotonic()
        for r in readers:
            r.join(timeout=10)
        try:
            info = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
    spawned = info.get("spawned")
    returncode = info.get("returncode", proc.returncode if proc.returncode else 1)
    stderr = "".join(err)
    if spawned is None:  # the launcher itself failed (or the command could not start)
        return ProcessRun(command, returncode or 1, 0.0, None, None, lines, stderr)
    return ProcessRun(command, int(returncode), ended - spawned,
                      first[0] - spawned if first else None, info.get("max_rss_bytes"),
                      lines, stderr)


def edge_ser() -> list[str]:
    """How to start ``edge-ser``: the console script beside this Python, else the module."""
    script = Path(sys.executable).parent / "edge-ser"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("edge-ser")
    if found:
        return [found]
    return [sys.executable, "-c", "from edge.cli import main; main()"]


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max and count of repeated measurements."""
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": int(a.size), "median": float(np.median(a)), "min": float(a.min()),
            "max": float(a.max())}


def streaming(contender: Contender, recording: Path, audio_seconds: float, *,
              threads: int = 1, repeats: int = 1, hop_seconds: float | None = None
              ) -> dict[str, Any]:
    """``edge-ser listen --file REC --fast --json``: real-time factor and peak RSS."""
    command = edge_ser() + ["listen", "--file", str(recording), "--fast", "--json",
                            "--model", str(contender.path), "--threads", str(threads)]
    if hop_seconds is not None:
        command += ["--hop", f"{hop_seconds:g}"]
    runs = [run_measured(command) for _ in range(repeats)]
    failed = [r.failure() for r in runs if r.failure()]
    if failed:
        return {"error": failed[0], "command": shown(command)}
    summaries = [next((o["summary"] for o in r.json_lines() if "summary" in o), {})
                 for r in runs]
    events = [sum(1 for o in r.json_lines() if "event" in o) for r in runs]
    loop_rtf = [s["wall_seconds"] / s["audio_seconds"] for s in summaries
                if s.get("wall_seconds") and s.get("audio_seconds")]
    return {
        "command": shown(command),
        "audio_seconds": audio_seconds,
        "threads": threads,
        "results": events[0],
        "utterances": summaries[0].get("utterances"),
        "hops": summaries[0].get("hops"),
        "no_speech_hops": summaries[0].get("no_speech_hops"),
        "rtf_process": spread([r.wall_seconds / audio_seconds for r in runs]),
        "rtf_loop": spread(loop_rtf),
        "wall_seconds": spread([r.wall_seconds for r in runs]),
        "first_result_seconds": spread([r.first_line_seconds for r in runs]),
        "first_result_in_process_seconds": spread([s.get("first_result_seconds")
                                                   for s in summaries]),
        "hop_ms_mean": spread([s.get("hop_ms_mean") for s in summaries]),
        "hop_ms_max": spread([s.get("hop_ms_max") for s in summaries]),
        "overruns": [s.get("overruns") for s in summaries],
        "peak_rss_bytes": spread([r.max_rss_bytes for r in runs]),
    }


def first_prediction(contender: Contender, clip: Path, *, repeats: int = 3) -> dict[str, Any]:
    """Process start to the first prediction: ``edge-ser predict --json`` on one clip (a
    TFLite bundle) or the probe's Keras path (a RUN_DIR), repeated; and peak RSS."""
    if contender.runtime == KERAS:
        command = probe_command(contender, clip)
    else:
        command = edge_ser() + ["predict", "--json", "--model", str(contender.path), str(clip)]
    runs = [run_measured(command) for _ in range(repeats)]
    failed = [r.failure() for r in runs if r.failure()]
    if failed:
        return {"error": failed[0], "command": shown(command)}
    return {
        "command": shown(command),
        "seconds": spread([r.first_line_seconds for r in runs]),
        "peak_rss_bytes": spread([r.max_rss_bytes for r in runs]),
    }


def probe_command(contender: Contender | None, clip: Path | None = None) -> list[str]:
    """``python -m benchmarks.probe``: load one model and run it once (or nothing at all for
    the baseline)."""
    command = [sys.executable, "-m", "benchmarks.probe"]
    if contender is None:
        return command + ["--baseline"]
    command += ["--keras" if contender.runtime == KERAS else "--tflite", str(contender.path)]
    if clip is not None:
        command += ["--clip", str(clip)]
    return command


def load_only(contender: Contender | None, clip: Path | None, *, repeats: int = 1
              ) -> dict[str, Any]:
    """Peak RSS of a process that only loads the model and runs it once (``None``: the
    baseline of Python + numpy + the interpreter module, no model)."""
    command = probe_command(contender, clip)
    runs = [run_measured(command) for _ in range(repeats)]
    failed = [r.failure() for r in runs if r.failure()]
    if failed:
        return {"error": failed[0], "command": shown(command)}
    reports = [next(iter(r.json_lines()), {}) for r in runs]
    return {
        "command": shown(command),
        "peak_rss_bytes": spread([r.max_rss_bytes for r in runs]),
        "vm_hwm_bytes": spread([p.get("vm_hwm_bytes") for p in reports]),
        "import_seconds": spread([p.get("import_seconds") for p in reports]),
        "load_seconds": spread([p.get("load_seconds") for p in reports]),
        "first_run_seconds": spread([p.get("first_run_seconds") for p in reports]),
        "backend": reports[0].get("backend"),
    }


def shown(command: list[str]) -> str:
    """The command as a person would type it (the interpreter path shortened)."""
    parts = list(command)
    if parts and parts[0] == sys.executable:
        parts[0] = "python"
    elif parts:
        parts[0] = Path(parts[0]).name
    return " ".join(parts)
