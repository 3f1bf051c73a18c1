"""A real input device for tests: a private PulseAudio daemon with a null sink ``vmic`` whose
monitor is the default source, started by ``tools/pulse.sh`` (see there for how and why).

Sound played into the sink with ``paplay`` is what PortAudio/sounddevice records from the
``default`` (or ``pulse``) ALSA device. Run the programs under test in subprocesses with
:attr:`VirtualMic.env`: PortAudio lists devices once, when sounddevice is imported, so a
process that imported it before the daemon started never sees the device.

Missing PulseAudio tools skip these tests, or fail them when ``CI`` is set (CI installs them:
``tools/sysdeps.sh``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[1]
PULSE_SH = REPO / "tools" / "pulse.sh"
TOOLS = ("pulseaudio", "pactl", "paplay", "parec")
PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"
PLAY_LATENCY_MSEC = 500
"""paplay's buffer: how far ahead of the sink it may write. The sink itself runs at the 20 ms
the keeper asks for, so sound still starts about 10 ms after paplay does (measured: 9-12 ms
with 500, the same as with 20 when idle). What the buffer changes is underruns: the null
sink catches up in one go after the VM stalls it, and a 20 ms buffer then runs dry (41-136
underruns, each a gap in the speech, in 25 s on 2 cores at load 7, even with paplay at
real-time priority); 500 ms: 0-1."""


@dataclass(frozen=True)
class VirtualMic:
    """A running daemon: its directory and the environment that reaches it."""

    directory: Path
    env: dict[str, str]
    """``os.environ`` plus PULSE_SERVER, PULSE_COOKIE, PULSE_RUNTIME_PATH, XDG_RUNTIME_DIR."""

    def play(self, wav: Path, *, latency_msec: int = PLAY_LATENCY_MSEC,
             timeout: float = 120.0) -> int:
        """Play ``wav`` into the virtual microphone; returns, when it has been played, the
        number of underruns ``paplay`` reported (each one is a short gap in the audio)."""
        run = subprocess.run(["paplay", "-v", f"--latency-msec={latency_msec}", "-d", "vmic",
                              str(wav)], env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if run.returncode != 0:
            raise AssertionError(f"paplay failed: {run.stderr.strip()[-500:]}")
        return run.stderr.count("Stream underrun")


def require_pulse() -> None:
    """Skip (fail under CI) when the PulseAudio tools are not installed."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        message = (f"PulseAudio tools missing ({', '.join(missing)});"
                   f" apt-get install {PACKAGES} (make test does: tools/sysdeps.sh)")
        skip_or_fail(message)


def parse_exports(text: str) -> dict[str, str]:
    """``export NAME=value`` lines (as printed by ``pulse.sh start``) -> a dict."""
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


@contextmanager
def virtual_microphone() -> Iterator[VirtualMic]:
    """Start the daemon (about 1-2 s), yield it, stop it by its PIDs."""
    require_pulse()
    started = subprocess.run(["bash", str(PULSE_SH), "start"], capture_output=True, text=True,
                             timeout=60)
    if started.returncode != 0:
        pytest.fail(f"tools/pulse.sh start failed: {started.stderr.strip()}")
    exports = parse_exports(started.stdout)
    directory = Path(exports["EDGE_SER_PULSE_DIR"])
    try:
        yield VirtualMic(directory, {**os.environ, **exports})
    finally:
        subprocess.run(["bash", str(PULSE_SH), "stop", str(directory)], timeout=60,
                       check=False)
