"""Live audio sources feeding a bounded ring buffer: a microphone, a file replay, raw stdin.

Every source is a producer: the PortAudio callback (microphone) or a small thread (file,
stdin) only copies blocks into a :class:`RingBuffer`; the consumer (the worker loop in
``edge-ser listen``) reads them and does all the computing. A full buffer drops the incoming
block and counts an overrun, as does a PortAudio overflow flag: overruns are reported, never
fatal. Replaying a file in real time goes through exactly the same path as a microphone;
``fast`` replay blocks the producer instead of dropping, so nothing is lost.

``sounddevice`` is imported only when a microphone is opened or listed.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from edge.audio import AudioStream, to_mono
from edge.errors import AudioError, DeviceError

COMMON_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000)
"""Rates ``edge-ser devices`` probes, Hz."""
STALL_SECONDS = 3.0
"""A microphone that delivers nothing for this long is taken as gone, seconds."""
NO_DEVICE_HINT = "use --file FILE to replay a recording, or `edge-ser devices` to list inputs"


class RingBuffer:
    """Bounded single-producer / single-consumer buffer of mono float32 samples.

    ``write`` never waits unless asked to (``block=True``); when a block does not fit it is
    dropped whole and counted in ``overruns`` and ``dropped_samples``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring buffer capacity {capacity}: must be >= 1")
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._start = 0  # index of the oldest sample
        self._size = 0
        self._cond = threading.Condition()
        self._closed = False
        self.overruns = 0
        self.dropped_samples = 0

    def __len__(self) -> int:
        return self._size

    def write(self, block: np.ndarray, *, block_until_space: bool = False) -> bool:
        """Copy ``block`` in; False (and an overrun counted) when it did not fit."""
        x = np.asarray(block, dtype=np.float32).ravel()
        with self._cond:
            if block_until_space:
                # a block larger than the whole buffer goes in as soon as the buffer is empty
                while (not self._closed and self._size + x.size > self.capacity
                       and self._size > 0):
                    self._cond.wait(0.1)
                if x.size > self.capacity:
                    x = x[-self.capacity:]
            if self._closed:
                return False
            if self._size + x.size > self.capacity:
                self.overruns += 1
                self.dropped_samples += x.size
                return False
            end = (self._start + self._size) % self.capacity
            first = min(x.size, self.capacity - end)
            self._data[end:end + first] = x[:first]
            self._data[:x.size - first] = x[first:]
            self._size += x.size
            self._cond.notify_all()
            return True

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        """Everything buffered, oldest first; waits up to ``timeout`` seconds for something.

        Returns an empty array on timeout, None once the buffer is closed and empty.
        """
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._size == 0 and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return np.zeros(0, dtype=np.float32)
                self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))
            if self._size == 0:
                return None
            idx = (self._start + np.arange(self._size)) % self.capacity
            out = self._data[idx]
            self._start, self._size = 0, 0
            self._cond.notify_all()
            return out

    def close(self) -> None:
        """No more writes: readers get what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass(frozen=True)
class SourceInfo:
    """What a source delivers."""

    name: str
    sample_rate: int
    """Rate of the delivered samples, Hz (the recogniser resamples if needed)."""


class Source:
    """Base class: ``start(ring)`` begins producing into ``ring``; ``stop()`` ends it.

    A source that reaches its end (a file, stdin) closes the ring. ``overruns`` counts
    device-side overflows (PortAudio status flags); ring-side drops are the ring's own.
    """

    info: SourceInfo
    overruns = 0

    def start(self, ring: RingBuffer) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def error(self) -> BaseException | None:
        """An exception the producer thread ended with, if any."""
        return None

    def lost(self) -> str | None:
        """Why a live source stopped delivering audio (a device removed), or None."""
        return None


class _ThreadSource(Source):
    """A producer thread writing blocks of ``block_seconds`` into the ring."""

    def __init__(self, block_seconds: float) -> None:
        self.block_seconds = block_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, ring: RingBuffer) -> None:
        self._thread = threading.Thread(target=self._guarded, args=(ring,), daemon=True,
                                        name=f"edge-ser {self.info.name}")
        self._thread.start()

    def _guarded(self, ring: RingBuffer) -> None:
        try:
            self._produce(ring)
        except BaseException as e:  # reported to the consumer through error()
            self._error = e
        finally:
            ring.close()

    def _produce(self, ring: RingBuffer) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def error(self) -> BaseException | None:
        return self._error


class FileSource(_ThreadSource):
    """Replays a recording as a live source at its own rate, read block by block (memory
    stays bounded whatever its length).

    ``realtime=True`` paces blocks by the wall clock (like a microphone, drops counted when the
    consumer falls behind); ``False`` delivers as fast as the consumer takes them, losing
    nothing.
    """

    def __init__(self, path: str | os.PathLike, *, realtime: bool = True,
                 block_seconds: float = 0.032, min_seconds: float = 0.0) -> None:
        super().__init__(block_seconds)
        self._stream = AudioStream(path)  # refuses a missing, empty or non-audio file now
        rate = self._stream.sample_rate
        if self._stream.frames < max(1, int(np.ceil(min_seconds * rate))):
            self._stream.close()
            raise AudioError(f"{path}: too short ({self._stream.frames} samples at {rate} Hz;"
                             f" need at least {min_seconds * 1000:.0f} ms)")
        self._stream.block_frames = max(1, int(round(block_seconds * rate)))
        self.info = SourceInfo(str(path), rate)
        self.realtime = realtime

    def _produce(self, ring: RingBuffer) -> None:
        started = time.monotonic()
        done = 0
        with self._stream:
            for block in self._stream:
                if self._stop.is_set():
                    return
                if self.realtime:
                    delay = started + done / self.info.sample_rate - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                x = to_mono(block)
                if not np.isfinite(x).all():
                    raise AudioError(f"{self.info.name}: NaN or infinite samples at"
                                     f" {done / self.info.sample_rate:.1f} s; the recording is"
                                     " corrupt")
                done += x.size
                ring.write(x, block_until_space=not self.realtime)


class RawStreamSource(_ThreadSource):
    """Raw PCM from a byte stream (stdin): signed 16-bit little-endian mono at ``rate``."""

    def __init__(self, stream: BinaryIO, rate: int, *, name: str = "stdin",
                 block_seconds: float = 0.032) -> None:
        super().__init__(block_seconds)
        if rate <= 0:
            raise AudioError(f"raw stream rate {rate} Hz: must be > 0")
        self.stream = stream
        self.info = SourceInfo(name, int(rate))

    def _produce(self, ring: RingBuffer) -> None:
        block_bytes = 2 * max(1, int(round(self.block_seconds * self.info.sample_rate)))
        carry = b""
        fd = _fileno(self.stream)
        while not self._stop.is_set():
            if fd is not None:
                # wait for data a little at a time, so that stop() (SIGTERM, Ctrl-C) is never
                # stuck behind a blocking read of an idle pipe
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(fd, block_bytes)
            else:
                chunk = self.stream.read1(block_bytes) if hasattr(self.stream, "read1") else \
                    self.stream.read(block_bytes)
            if not chunk:
                return
            data = carry + chunk
            usable = len(data) - len(data) % 2
            carry = data[usable:]
            if usable:
                x = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
                ring.write(x, block_until_space=True)


def _fileno(stream: BinaryIO) -> int | None:
    """The OS file descriptor behind ``stream`` when it has one that ``select`` takes."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if os.name == "posix" else None


def stdin_source(rate: int) -> RawStreamSource:
    return RawStreamSource(sys.stdin.buffer, rate)


# --------------------------------------------------------------------------------------
# Microphone (sounddevice / PortAudio), imported only here and only when used
# --------------------------------------------------------------------------------------


def import_sounddevice() -> Any:
    """``sounddevice``, or a :class:`DeviceError` saying what to install."""
    try:
        import sounddevice
    except ImportError:
        raise DeviceError("microphone input needs sounddevice: pip install sounddevice"
                          f" (or './edge-ser[mic]'); or {NO_DEVICE_HINT}") from None
    except OSError as e:  # sounddevice is there but the PortAudio library is not
        raise DeviceError(f"PortAudio is missing ({e}); on Debian/Raspberry Pi OS:"
                          f" sudo apt-get install libportaudio2; or {NO_DEVICE_HINT}") from None
    return sounddevice


def input_devices() -> list[dict[str, Any]]:
    """Input devices with the rates each accepts (mono float32) among :data:`COMMON_RATES`."""
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as e:
        raise DeviceError(f"cannot list audio devices ({e}); {NO_DEVICE_HINT}") from None
    found = []
    for index, dev in enumerate(devices):
        if dev["max_input_channels"] < 1:
            continue
        rates = []
        for rate in COMMON_RATES:
            try:
                sd.check_input_settings(device=index, channels=1, dtype="float32",
                                        samplerate=rate)
                rates.append(rate)
            except Exception:  # PortAudioError or ValueError: rate not accepted
                continue
        found.append({
            "index": index,
            "name": dev["name"],
            "hostapi": hostapis[dev["hostapi"]]["name"],
            "channels": int(dev["max_input_channels"]),
            "default_rate": int(dev["default_samplerate"]),
            "rates": rates,
            "default": index == default_in,
        })
    return found


def _device_arg(device: str | int | None) -> str | int | None:
    if device is None:
        return None
    text = str(device)
    return int(text) if text.isdigit() else text


class MicSource(Source):
    """The microphone through a PortAudio input stream.

    Captures mono float32 at ``preferred_rate`` when the device accepts it, otherwise at the
    device's default rate (the recogniser resamples). The callback only copies into the ring.
    """

    def __init__(self, device: str | int | None = None, *, preferred_rate: int = 16000,
                 block_seconds: float = 0.032) -> None:
        self._sd = sd = import_sounddevice()
        self.device = _device_arg(device)
        try:
            info = sd.query_devices(self.device, kind="input")
        except (sd.PortAudioError, ValueError) as e:
            what = "no audio input device" if self.device is None else \
                f"no input device {device!r}"
            raise DeviceError(f"{what} ({e}); {NO_DEVICE_HINT}") from None
        self.channels, rate = _capture_settings(sd, self.device, info, preferred_rate)
        self.info = SourceInfo(str(info["name"]), rate)
        self.block_seconds = block_seconds
        self.overruns = 0
        self._stream = None
        self._last_callback = time.monotonic()

    def start(self, ring: RingBuffer) -> None:
        sd = self._sd
        self._last_callback = time.monotonic()

        def callback(indata, frames, time_info, status):  # PortAudio's thread: copy only
            self._last_callback = time.monotonic()
            if status.input_overflow:
                self.overruns += 1
            ring.write(indata[:, 0])  # the first channel

        try:
            # PortAudio's threads inherit this thread's signal mask: with SIGINT blocked
            # while they are created, Ctrl-C reaches only the main thread (and does not
            # interrupt a capture poll in the middle)
            with _sigint_blocked():
                self._stream = sd.InputStream(
                    device=self.device, channels=self.channels, dtype="float32",
                    samplerate=self.info.sample_rate,
                    blocksize=int(round(self.block_seconds * self.info.sample_rate)),
                    callback=callback,
                )
                self._stream.start()
        except (sd.PortAudioError, ValueError) as e:
            if self._stream is not None:  # opened, not started: let the device go
                with contextlib.suppress(Exception):
                    self._stream.close()
                self._stream = None
            raise DeviceError(f"cannot open input device {self.info.name!r} at"
                              f" {self.info.sample_rate} Hz ({e}); {NO_DEVICE_HINT}") from None

    def lost(self) -> str | None:
        """The stream stopped (PortAudio ended it) or no audio came for
        ``STALL_SECONDS``: the device was unplugged, its server went away, or it hung."""
        stream = self._stream
        if stream is None:
            return None
        silent = time.monotonic() - self._last_callback
        try:
            active = stream.active
        except self._sd.PortAudioError:  # the device is gone from under PortAudio
            active = False
        if not active or silent > STALL_SECONDS:
            why = "stopped" if not active else f"sent nothing for {silent:.0f} s"
            return (f"input device {self.info.name!r} {why} (unplugged, or its sound server"
                    " went away); listening ended")
        return None

    def stop(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with _sigint_blocked(), contextlib.suppress(self._sd.PortAudioError):
                stream.abort()  # drop what is in flight: the worker has stopped reading
                stream.close()


def _capture_settings(sd: Any, device: str | int | None, info: dict[str, Any],
                      preferred_rate: int) -> tuple[int, int]:
    """(channels, rate) to open ``device`` with: mono at the model's rate if it takes it, else
    its default rate; stereo (first channel used) only for devices that refuse mono."""
    rates = (preferred_rate, int(info["default_samplerate"]))
    for channels in sorted({1, max(1, min(2, int(info["max_input_channels"])))}):
        for rate in rates:
            try:
                sd.check_input_settings(device=device, channels=channels, dtype="float32",
                                        samplerate=rate)
                return channels, rate
            except Exception:  # PortAudioError or ValueError: not accepted
                continue
    raise DeviceError(f"input device {info['name']!r} accepts neither {preferred_rate} Hz nor"
                      f" its default {rates[1]} Hz (mono float32); {NO_DEVICE_HINT}")


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in the calling thread (and threads it starts) inside the block."""
    if not hasattr(signal, "pthread_sigmask") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
