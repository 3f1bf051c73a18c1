"""Audio input: read a file, downmix, resample to the model's rate. numpy only.

WAV (PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE) is parsed with the
standard library; other formats (FLAC, OGG, ...) go through ``soundfile`` when it is
installed. Every failure is an :class:`~edge.errors.AudioError` naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import AudioError

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as it is stored.

    Returns
    -------
    samples : np.ndarray [shape=(n_samples, n_channels)], float32 in [-1, 1]
    sample_rate : int, Hz
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{path}: no such file")
    if p.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise AudioError(f"{path}: cannot read ({e.strerror})") from None
    if len(head) == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return _read_wav(p)
    return _read_with_soundfile(p)


@dataclass(frozen=True)
class _WavLayout:
    """Where a WAV file's samples are and how they are encoded."""

    tag: int
    channels: int
    rate: int
    bits: int
    data_offset: int
    data_bytes: int
    """Bytes of sample data the file really holds (a truncated file: what is there)."""

    @property
    def frame_bytes(self) -> int:
        return self.bits // 8 * self.channels


def _wav_layout(path: Path, f) -> _WavLayout:
    """Parse the RIFF chunks up to ``data`` from an open file, reading headers only."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    if f.read(4) != b"RIFF":
        f.seek(0)
        raise AudioError(f"{path}: {f.read(4).decode('latin-1')} WAV files are not"
                         " supported; convert to a standard little-endian RIFF WAV")
    f.seek(12)
    fmt = None
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        if chunk_id == b"fmt ":
            fmt = f.read(min(chunk_size, 64))
        elif chunk_id == b"data":
            if fmt is None or len(fmt) < 16:
                break
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
            if tag == _EXTENSIBLE and len(fmt) >= 26:
                (tag,) = struct.unpack("<H", fmt[24:26])  # first two bytes of the GUID
            if channels == 0 or rate == 0:
                raise AudioError(f"{path}: corrupt WAV header ({channels} channels at"
                                 f" {rate} Hz)")
            if not ((tag == _PCM and bits in (8, 16, 24, 32))
                    or (tag == _FLOAT and bits in (32, 64))):
                kind = {_PCM: "PCM", _FLOAT: "float"}.get(tag, f"format tag 0x{tag:04x}")
                raise AudioError(f"{path}: unsupported WAV encoding ({kind}, {bits} bits);"
                                 " use 8/16/24/32-bit PCM or 32/64-bit float")
            # a truncated file (or a streamed one with a 0/-1 size) holds what is there
            available = size - (pos + 8)
            data_bytes = available if chunk_size in (0, 0xFFFFFFFF) else \
                min(chunk_size, available)
            return _WavLayout(tag, channels, int(rate), bits, pos + 8, max(0, data_bytes))
        pos += 8 + chunk_size + (chunk_size & 1)
    if fmt is None or len(fmt) < 16:
        raise AudioError(f"{path}: truncated or corrupt WAV (no 'fmt ' chunk)")
    raise AudioError(f"{path}: truncated or corrupt WAV (no 'data' chunk)")


def _decode(payload: bytes, layout: _WavLayout) -> np.ndarray:
    """Whole frames of ``payload`` as float32 ``(n, channels)`` in [-1, 1]."""
    n = len(payload) // layout.frame_bytes * layout.frame_bytes
    bits, width = layout.bits, layout.bits // 8
    if layout.tag == _FLOAT:
        x = np.frombuffer(payload[:n], dtype=f"<f{width}").astype(np.float32)
    elif bits == 8:
        x = (np.frombuffer(payload[:n], dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 24:
        b = np.frombuffer(payload[:n], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        x = ints.astype(np.float32) / 2.0**23
    else:
        ints = np.frombuffer(payload[:n], dtype=f"<i{width}")
        x = ints.astype(np.float32) / float(2 ** (bits - 1))
    return x.reshape(-1, layout.channels)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with open(path, "rb") as f:
        layout = _wav_layout(path, f)
        f.seek(layout.data_offset)
        payload = f.read(layout.data_bytes)
    return _decode(payload, layout), layout.rate


class AudioStream:
    """A recording read block by block, so memory stays bounded whatever its length.

    WAV is read with the standard library; other formats through ``soundfile``'s block
    reading. Iterate for float32 blocks ``(n, channels)`` of at most ``block_frames`` frames.
    Use as a context manager (or call :meth:`close`).
    """

    def __init__(self, path: str | os.PathLike, *, block_frames: int = 16000) -> None:
        self.path = p = Path(path)
        self.block_frames = max(1, int(block_frames))
        _check_file(p)
        try:
            self._file = open(p, "rb")  # noqa: SIM115 (owned until close())
        except OSError as e:
            raise AudioError(f"{path}: cannot read ({e.strerror})") from None
        head = self._file.read(12)
        self._sf = None
        self._layout = None
        try:
            if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
                self._layout = _wav_layout(p, self._file)
                self.sample_rate = self._layout.rate
                self.channels = self._layout.channels
                self.frames = self._layout.data_bytes // self._layout.frame_bytes
            else:
                self._file.close()
                self._sf = _open_soundfile(p)
                self.sample_rate = int(self._sf.samplerate)
                self.channels = int(self._sf.channels)
                self.frames = int(self._sf.frames)
        except BaseException:
            self.close()
            raise

    def __iter__(self):
        if self._sf is not None:
            try:
                yield from self._sf.blocks(blocksize=self.block_frames, dtype="float32",
                                           always_2d=True)
            except Exception as e:  # libsndfile errors mid-file
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise AudioError(f"{self.path}: unreadable audio ({reason})") from None
            return
        layout = self._layout
        self._file.seek(layout.data_offset)
        left = layout.data_bytes // layout.frame_bytes * layout.frame_bytes
        step = self.block_frames * layout.frame_bytes
        while left > 0:
            payload = self._file.read(min(step, left))
            if not payload:
                return
            left -= len(payload)
            yield _decode(payload, layout)

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_file(p: Path) -> None:
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    try:
        if p.stat().st_size == 0:
            raise AudioError(f"{p}: empty file (0 bytes)")
    except OSError as e:
        raise AudioError(f"{p}: cannot read ({e.strerror})") from None


class WavWriter:
    """A mono WAV written block by block (a recording of a live stream): 32-bit IEEE float,
    so that what is read back is exactly what was written. The sizes in the header are
    brought up to date about once a second of audio (and at :meth:`close`), so a killed
    process leaves a valid file missing at most its last second. An existing file is never
    overwritten; a WAV holds at most 4 GiB (18 h at 16 kHz): beyond that :meth:`write`
    returns False and keeps nothing more."""

    LIMIT_BYTES = 0xFFFFFFFF - 36

    def __init__(self, path: str | os.PathLike, rate: int) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "xb")  # noqa: SIM115 (owned until close())
        except FileExistsError:
            raise AudioError(f"{path}: exists; choose another file name to record to (it is"
                             " never overwritten)") from None
        except OSError as e:
            raise AudioError(f"{path}: cannot write ({e.strerror})") from None
        self.rate = int(rate)
        self.frames = 0
        self.full = False
        self._since_header = 0
        self._header()

    def _failed(self, e: OSError) -> AudioError:
        return AudioError(f"{self.path}: cannot write the recording"
                          f" ({e.strerror or type(e).__name__})")

    def _header(self) -> None:
        data = self.frames * 4
        fmt = struct.pack("<HHIIHH", _FLOAT, 1, self.rate, self.rate * 4, 4, 32)
        try:
            self._file.seek(0)
            self._file.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt "
                             + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data))
            self._file.seek(0, os.SEEK_END)
            self._file.flush()
        except OSError as e:
            raise self._failed(e) from None
        self._since_header = 0

    def write(self, block: np.ndarray) -> bool:
        """Append mono float samples; False once the file is full (the block is dropped).
        A failed write (disk full) is an :class:`AudioError`."""
        if self.full:
            return False
        x = np.asarray(block, dtype="<f4").ravel()
        room = (self.LIMIT_BYTES - self.frames * 4) // 4
        if x.size > room:
            x, self.full = x[:room], True
        try:
            self._file.write(x.tobytes())
        except OSError as e:
            raise self._failed(e) from None
        self.frames += x.size
        self._since_header += x.size
        if self._since_header >= self.rate or self.full:
            self._header()
        return not self.full

    def close(self) -> None:
        """Bring the header up to date and close (a second failure is not raised again)."""
        if not self._file.closed:
            try:
                self._header()
            finally:
                with contextlib.suppress(OSError):
                    self._file.close()


def _open_soundfile(path: Path):
    try:
        import soundfile
    except ImportError:
        raise AudioError(
            f"{path}: not a WAV file; reading {path.suffix or 'this format'} needs soundfile"
            " (pip install soundfile), or convert it to WAV"
        ) from None
    try:
        return soundfile.SoundFile(str(path))
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{path}: not a readable audio file ({reason})") from None


def write_wav(path: str | os.PathLike, x: np.ndarray, rate: int) -> Path:
    """Write mono float samples as a 16-bit PCM WAV (standard library only).

    ``q = round(x * 32768)`` clipped to int16: the exact inverse of :func:`read_audio` for
    samples already on the 16-bit grid. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    import wave

    ints = np.clip(np.round(np.asarray(x, dtype=np.float64).ravel() * 32768), -32768, 32767)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(ints.astype("<i2").tobytes())
    return Path(path)


def _read_with_soundfile(path: Path) -> tuple[np.ndarray, int]:
    with _open_soundfile(path) as f:
        try:
            return f.read(dtype="float32", always_2d=True), int(f.samplerate)
        except Exception as e:  # libsndfile errors mid-file
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise AudioError(f"{path}: not a readable audio file ({reason})") from None


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels: ``(n_samples, n_channels)`` -> ``(n_samples,)`` float32."""
    x = np.asarray(samples, dtype=np.float32)
    return x if x.ndim == 1 else x.mean(axis=1, dtype=np.float32)


def check_samples(x: np.ndarray, *, name: str, min_samples: int = 1) -> np.ndarray:
    """Refuse audio a model cannot use: empty, shorter than ``min_samples``, NaN or inf."""
    if x.size == 0:
        raise AudioError(f"{name}: no audio samples (empty recording)")
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(f"{name}: {bad} NaN or infinite samples; the recording is corrupt")
    if x.size < min_samples:
        raise AudioError(f"{name}: too short ({x.size} samples, need at least {min_samples})")
    return x


def load(path: str | os.PathLike, sample_rate: int, *, min_samples: int = 1) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate`` Hz, resampling only if needed.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32, nominally in [-1, 1]
    """
    samples, rate = read_audio(path)
    x = check_samples(to_mono(samples), name=str(path))
    if rate != sample_rate:
        x = resample(x, rate, sample_rate)
    return check_samples(x, name=str(path), min_samples=min_samples)


# --------------------------------------------------------------------------------------
# Band-limited resampling (windowed sinc, polyphase), one-shot and streaming
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _polyphase_table(up: int, down: int, zero_crossings: int, rolloff: float):
    """Kaiser-windowed sinc filters, one row per output phase: shape ``(up, n_taps)``."""
    cutoff = rolloff * min(1.0, up / down) / 2.0  # cycles per input sample
    half = int(math.ceil(zero_crossings / (2.0 * cutoff)))
    taps = np.arange(-half + 1, half + 1, dtype=np.float64)  # input index minus floor(t)
    frac = np.arange(up, dtype=np.float64) / up  # frac(t) for output phase (n * down) % up
    t = taps[None, :] - frac[:, None]  # tap position relative to the output time
    beta = 8.6
    kaiser = np.i0(beta * np.sqrt(1.0 - np.clip(t / half, -1.0, 1.0) ** 2)) / np.i0(beta)
    table = 2.0 * cutoff * np.sinc(2.0 * cutoff * t) * kaiser
    table.setflags(write=False)
    return table, half


class Resampler:
    """Streaming band-limited resampler from ``orig_rate`` to ``target_rate`` Hz.

    Output sample ``n`` is the signal at input time ``n * orig_rate / target_rate``,
    interpolated with a Kaiser-windowed sinc whose cutoff is 0.94 of the lower Nyquist
    frequency (stop-band below -80 dB). Samples before the start are zeros. Feeding the
    signal in any block sizes and then :meth:`flush` gives exactly :func:`resample`.
    """

    def __init__(self, orig_rate: int, target_rate: int, *, zero_crossings: int = 16,
                 rolloff: float = 0.94) -> None:
        if orig_rate <= 0 or target_rate <= 0:
            raise AudioError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
        g = math.gcd(int(orig_rate), int(target_rate))
        self.orig_rate, self.target_rate = int(orig_rate), int(target_rate)
        self.up, self.down = self.target_rate // g, self.orig_rate // g
        self._table, self._half = _polyphase_table(self.up, self.down, zero_crossings, rolloff)
        self.reset()

    def reset(self) -> None:
        self._history = np.zeros(self._half, dtype=np.float64)  # the zeros before time 0
        self._offset = -self._half  # input index of _history[0]
        self._n_out = 0  # output samples produced so far
        self._n_in = 0  # input samples received so far

    def _emit(self, buffer: np.ndarray, limit: int) -> np.ndarray:
        """Outputs whose filter support ends before input index ``limit``."""
        # output n needs inputs floor(n*down/up) - half + 1 ... floor(n*down/up) + half
        last = ((limit - self._half) * self.up - 1) // self.down  # last n, support < limit
        n = np.arange(self._n_out, max(self._n_out, last + 1))
        if n.size == 0:
            return np.zeros(0, dtype=np.float32)
        base = n * self.down // self.up
        phase = n * self.down % self.up
        idx = (base - self._offset)[:, None] + np.arange(-self._half + 1, self._half + 1)
        out = np.einsum("ij,ij->i", buffer[idx], self._table[phase])
        self._n_out = int(n[-1]) + 1
        return out.astype(np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample the next block (1-D float); returns the output samples it completes."""
        x = np.asarray(block, dtype=np.float64).ravel()
        buffer = np.concatenate((self._history, x))
        self._n_in += x.size
        out = self._emit(buffer, self._n_in)
        keep_from = (self._n_out * self.down // self.up) - self._half + 1 - self._offset
        keep_from = max(0, min(keep_from, buffer.size))
        self._history = buffer[keep_from:]
        self._offset += keep_from
        return out

    def flush(self) -> np.ndarray:
        """The remaining outputs of a finished signal (zeros after the end)."""
        total = -(-self._n_in * self.up // self.down)  # ceil(n_in * up / down)
        pad = np.zeros(2 * self._half + 1)
        buffer = np.concatenate((self._history, pad))
        out = self._emit(buffer, self._n_in + pad.size)
        return out[: max(0, total - (self._n_out - out.size))]


def resample(x: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling of a whole signal; ``ceil(len(x) * target / orig)`` samples.

    Returns
    -------
    np.ndarray [shape=(n_out,)], float32
    """
    if orig_rate == target_rate:
        return np.asarray(x, dtype=np.float32)
    r = Resampler(orig_rate, target_rate)
    return np.concatenate((r.process(x), r.flush()))
