"""Keep native libraries' chatter off stderr, and pass everything else on as it arrives.

C and C++ code writes straight to file descriptor 2, past Python's ``sys.stderr``:
PortAudio's ALSA back end and ALSA itself (``Expression '...' failed in
'src/hostapi/alsa/pa_linux_alsa.c'``, ``ALSA lib pcm.c:...``: several lines of C source
locations when a device is unplugged, or at every start on some Raspberry Pi images), the
TFLite runtime's XNNPACK banner, and the TensorFlow converter's absl log lines. edge-ser says
what happened in one line of its own, so around such calls fd 2 goes through a pipe whose
reader thread drops the lines of :data:`NATIVE_NOISE` and passes every other line on
unchanged, in order, as it arrives: a native abort's last words still reach the terminal,
and other threads' stderr is not held back or reordered. The one helper for all of it is
:func:`filtered_stderr`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

NATIVE_NOISE = re.compile(
    rb"^(Expression '.*' failed in '.*'|ALSA lib |Cannot connect to server socket|"
    rb"jack server is not running|JackShmReadWritePtr"          # PortAudio, ALSA, JACK probing
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate"          # the TFLite runtime's banner
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"  # TensorFlow's absl logging
    rb"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\]"                         # absl INFO / WARNING lines
    rb"|fully_quantize: |Estimated count of arithmetic ops"       # the TFLite converter
    rb"|loc\(|<unknown>:0: )"                                     # MLIR diagnostics (logged)
)
"""Lines native code writes to fd 2 that are not meant for users: PortAudio, ALSA and JACK
probing, the TFLite runtime's INFO banner, TensorFlow's absl INFO/WARNING lines and the
converter's MLIR diagnostics (which :func:`filtered_stderr` can keep in a log, for the one
line an error message makes of them). Errors and fatal messages (``E...``, ``F...``, an
abort's text) are not noise."""


@contextlib.contextmanager
def filtered_stderr(log: list[str] | None = None, noise: re.Pattern[bytes] = NATIVE_NOISE
                    ) -> Iterator[None]:
    """Inside the block, what anyone writes to fd 2 goes through a pipe: lines matching
    ``noise`` are dropped, every other line reaches the real stderr as soon as it is
    complete, in order. With ``log``, every line (noise or not, decoded, without its newline)
    is also appended to it; it is complete when the block ends.

    Without a usable fd 2 (a daemon without stderr) nothing is filtered or logged.
    """
    saved = None
    try:
        sys.stderr.flush()
        saved = os.dup(2)  # the real stderr; closed only by the pump, which owns it
        read_end, write_end = os.pipe()
    except (OSError, ValueError, AttributeError):  # no fd 2: nothing to filter
        if saved is not None:
            os.close(saved)
        yield
        return
    os.dup2(write_end, 2, inheritable=False)  # children never hold the pipe open
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as pipe, os.fdopen(saved, "wb", 0) as out:
            broken = False  # the real stderr gone (EPIPE, EIO): keep draining, drop all

            def emit(line: bytes) -> None:
                nonlocal broken
                if log is not None:
                    log.append(line.rstrip(b"\n").decode("utf-8", "replace"))
                if broken or noise.match(line):
                    return
                try:
                    out.write(line)
                except OSError:
                    broken = True

            pending = b""
            while True:
                chunk = pipe.read(4096)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    emit(line + b"\n")
            if pending:
                emit(pending)

    restore = os.dup(saved)
    thread = threading.Thread(target=pump, name="edge-ser stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            sys.stderr.flush()
        os.dup2(restore, 2)  # closes the pipe's last write end: the pump drains and ends
        os.close(restore)
        thread.join(timeout=5.0)
