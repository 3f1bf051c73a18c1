"""Keep the sound libraries' own chatter off stderr.

PortAudio's ALSA back end and ALSA itself write straight to file descriptor 2 from C
(``Expression '...' failed in 'src/hostapi/alsa/pa_linux_alsa.c'``, ``ALSA lib pcm.c:...``):
several lines of C source locations when a device is unplugged, or at every start on some
Raspberry Pi images. edge-ser says what happened in one line of its own, so while a microphone
is in use, fd 2 goes through a pipe whose reader thread drops those lines and passes
everything else on unchanged, in order.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

NATIVE_NOISE = re.compile(rb"^(Expression '.*' failed in '.*'|ALSA lib |"
                          rb"Cannot connect to server socket|jack server is not running|"
                          rb"JackShmReadWritePtr)")
"""Lines from PortAudio's and ALSA's C code (and JACK probing), not meant for users."""


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Inside the block, lines the C sound libraries write to fd 2 are dropped; everything
    else reaches stderr as before, in order."""
    saved = None
    try:
        sys.stderr.flush()
        saved = os.dup(2)  # the real stderr; closed only by the pump, which owns it
        read_end, write_end = os.pipe()
    except (OSError, ValueError):  # no fd 2 (a daemon without stderr): nothing to filter
        if saved is not None:
            os.close(saved)
        yield
        return
    os.dup2(write_end, 2, inheritable=False)  # children never hold the pipe open
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as pipe, os.fdopen(saved, "wb", 0) as out:
            broken = False  # the real stderr gone (EPIPE, EIO): keep draining, drop all

            def emit(data: bytes) -> None:
                nonlocal broken
                if not broken:
                    try:
                        out.write(data)
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
                    if not NATIVE_NOISE.match(line):
                        emit(line + b"\n")
            if pending and not NATIVE_NOISE.match(pending):
                emit(pending)

    restore = os.dup(saved)
    thread = threading.Thread(target=pump, name="edge-ser stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()
        os.dup2(restore, 2)  # closes the pipe's last write end: the pump drains and ends
        os.close(restore)
        thread.join(timeout=2.0)
