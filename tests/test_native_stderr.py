"""edge.native_stderr.filtered_stderr: native noise dropped, every other line passed on as it
arrives, in order, and kept in a log when asked; a native abort's last words survive."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from edge.native_stderr import NATIVE_NOISE, filtered_stderr

NOISE = [
    b"ALSA lib pcm.c:2664:(snd_pcm_open_noupdate) Unknown PCM cards.pcm.rear",
    b"Expression 'alsa_snd_pcm_hw_params' failed in 'src/hostapi/alsa/pa_linux_alsa.c',"
    b" line: 924",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1796664749.690926    6314 port.cc:153] oneDNN custom operations are on.",
    b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8",
]
KEPT = [
    b"E0000 00:00:1796664749.690926    6314 tflite.cc:1] a real error",
    b"F0000 00:00:1796664749.690926    6314 check.cc:9] Check failed: x == y",
    b"a message of edge-ser's own",
]


def test_the_noise_list_tells_noise_from_messages():
    assert all(NATIVE_NOISE.match(line) for line in NOISE)
    assert not any(NATIVE_NOISE.match(line) for line in KEPT)


def test_noise_is_dropped_the_rest_passes_in_order_and_is_logged(capfd):
    log: list[str] = []
    with filtered_stderr(log):
        for noise, kept in zip(NOISE, KEPT * 2):
            os.write(2, noise + b"\n")
            os.write(2, kept + b"\n")
        os.write(2, b"no newline at the end")
    err = capfd.readouterr().err.encode()
    assert err == b"".join(k + b"\n" for k in (KEPT * 2)[:len(NOISE)]) \
        + b"no newline at the end"
    assert len(log) == 2 * len(NOISE) + 1 and log[0] == NOISE[0].decode()
    os.write(2, NOISE[0] + b"\n")  # after the block, fd 2 is the real stderr again
    assert capfd.readouterr().err.encode() == NOISE[0] + b"\n"


def test_a_line_reaches_stderr_while_the_block_is_still_open(capfd):
    """Passed on as it arrives, not when the block ends (a temporary file would hold it)."""
    with filtered_stderr():
        os.write(2, b"first line\n")
        deadline = time.monotonic() + 5.0
        seen = ""
        while "first line" not in seen and time.monotonic() < deadline:
            time.sleep(0.02)
            seen += capfd.readouterr().err
        assert "first line" in seen


def test_a_native_abort_keeps_its_message():
    """A process that dies inside the block (a native abort) still showed its message."""
    code = ("import os, time\n"
            "from edge.native_stderr import filtered_stderr\n"
            "with filtered_stderr():\n"
            "    os.write(2, b'ALSA lib noise\\nF0000 fatal: the reason\\n')\n"
            "    time.sleep(0.5)\n"
            "    os.abort()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert run.returncode != 0
    assert run.stderr == b"F0000 fatal: the reason\n"
