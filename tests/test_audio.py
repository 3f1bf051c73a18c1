"""Audio input: WAV parsing, soundfile fallback, downmix, resampling, and bad files."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge.audio import Resampler, check_samples, load, read_audio, resample
from edge.errors import AudioError

SR = 16000


def write_pcm_wav(path: Path, x: np.ndarray, rate: int, width: int) -> Path:
    """x: (n, channels) float in [-1, 1] -> integer PCM WAV through the stdlib."""
    x = np.atleast_2d(x.T).T
    if width == 1:
        data = np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        scale = 2 ** (8 * width - 1) - 1
        ints = np.clip(np.round(x * scale), -scale, scale).astype(np.int64)
        data = b"".join(int(v).to_bytes(width, "little", signed=True) for v in ints.ravel())
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def write_float_wav(path: Path, x: np.ndarray, rate: int, extensible: bool = False) -> Path:
    x = np.atleast_2d(x.T).T.astype("<f4")
    channels = x.shape[1]
    data = x.tobytes()
    if extensible:
        fmt = struct.pack("<HHIIHHHHIH14s", 0xFFFE, channels, rate, rate * 4 * channels,
                          4 * channels, 32, 22, 32, 0, 3, b"\x00\x00\x00\x00\x10\x00\x80\x00"
                          b"\x00\xaa\x00\x38\x9b\x71")
    else:
        fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("width, tol", [(1, 1 / 100), (2, 1e-4), (3, 1e-6), (4, 1e-8)])
def test_reads_integer_pcm_wav(tmp_path, width, tol):
    x = tone(440, SR)
    samples, rate = read_audio(write_pcm_wav(tmp_path / "a.wav", x, SR, width))
    assert rate == SR and samples.shape == (SR, 1) and samples.dtype == np.float32
    np.testing.assert_allclose(samples[:, 0], x, atol=tol)


@pytest.mark.parametrize("extensible", [False, True])
def test_reads_float_wav(tmp_path, extensible):
    x = tone(300, SR)
    samples, _ = read_audio(write_float_wav(tmp_path / "f.wav", x, SR, extensible))
    np.testing.assert_allclose(samples[:, 0], x, atol=1e-7)


def test_stereo_is_downmixed(tmp_path):
    left, right = tone(440, SR), tone(440, SR, amp=0.1)
    path = write_pcm_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), SR, 2)
    np.testing.assert_allclose(load(path, SR), (left + right) / 2, atol=1e-4)


def test_wav_parser_and_soundfile_fallback_agree_with_libsndfile(tmp_path):
    x = tone(700, SR)
    for name, subtype in [("a.wav", "PCM_16"), ("b.wav", "PCM_24"), ("c.wav", "FLOAT"),
                          ("d.flac", "PCM_16")]:
        soundfile.write(tmp_path / name, x, SR, subtype=subtype)
        ref, _ = soundfile.read(tmp_path / name, dtype="float32")
        np.testing.assert_array_equal(load(tmp_path / name, SR), ref, err_msg=name)


def test_load_resamples_only_when_the_rate_differs(tmp_path):
    x = tone(1000, 48000)
    y = load(write_float_wav(tmp_path / "t.wav", x, 48000), SR)
    assert y.shape == (SR,)
    t = np.arange(SR) / SR
    np.testing.assert_allclose(y[800:-800], 0.5 * np.sin(2 * np.pi * 1000 * t)[800:-800],
                               atol=1e-4)
    same = load(write_float_wav(tmp_path / "u.wav", tone(1000, SR), SR), SR)
    np.testing.assert_array_equal(same, tone(1000, SR).astype(np.float32))


# ------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("orig, target", [(48000, 16000), (44100, 16000), (22050, 16000),
                                          (8000, 16000), (16000, 48000), (32000, 16000)])
def test_resampled_tone_matches_the_ideal_tone(orig, target):
    y = resample(tone(1000, orig), orig, target)
    assert y.shape == (target,) and y.dtype == np.float32
    ideal = tone(1000, target)
    edge = target // 20  # the filter sees zeros before the start and after the end
    np.testing.assert_allclose(y[edge:-edge], ideal[edge:-edge], atol=1e-4)


@pytest.mark.parametrize("orig", [48000, 44100])
def test_resampling_rejects_frequencies_above_the_new_nyquist(orig):
    # 10 kHz cannot exist at 16 kHz: a naive decimator would fold it to 6 kHz
    y = resample(tone(10000, orig, amp=1.0), orig, SR)
    rms_db = 20 * np.log10(np.sqrt(np.mean(y[1000:-1000] ** 2)) / np.sqrt(0.5))
    assert rms_db < -70


def test_streaming_resampler_equals_one_shot():
    x = np.random.default_rng(3).standard_normal(44100 * 2)
    whole = resample(x, 44100, SR)
    rng = np.random.default_rng(4)
    r, pieces, start = Resampler(44100, SR), [], 0
    while start < x.size:
        size = int(rng.integers(0, 3000))
        pieces.append(r.process(x[start:start + size]))
        start += size
    pieces.append(r.flush())
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


# ---------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load(tmp_path / "nope.wav", SR)


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        load(tmp_path, SR)


def test_empty_file(tmp_path):
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        load(tmp_path / "e.wav", SR)


def test_not_audio(tmp_path):
    (tmp_path / "notes.wav").write_text("these are not samples\n" * 50)
    with pytest.raises(AudioError, match="not a readable audio file"):
        load(tmp_path / "notes.wav", SR)


def test_wav_without_samples(tmp_path):
    path = write_pcm_wav(tmp_path / "z.wav", np.zeros(0), SR, 2)
    with pytest.raises(AudioError, match="no audio samples"):
        load(path, SR)


def test_truncated_wav_keeps_what_is_there_or_says_corrupt(tmp_path):
    path = write_pcm_wav(tmp_path / "t.wav", tone(440, SR), SR, 2)
    data = path.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2 + 1])  # odd cut mid-sample
    y = load(tmp_path / "cut.wav", SR)
    assert 0 < y.size < SR
    (tmp_path / "head.wav").write_bytes(data[:30])  # header cut inside the fmt chunk
    with pytest.raises(AudioError, match="truncated or corrupt"):
        load(tmp_path / "head.wav", SR)


def test_unsupported_encoding(tmp_path):
    path = write_pcm_wav(tmp_path / "a.wav", tone(440, SR), SR, 2)
    data = bytearray(path.read_bytes())
    data[20:22] = struct.pack("<H", 2)  # format tag 2: Microsoft ADPCM
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="unsupported WAV encoding"):
        load(path, SR)


def test_nan_samples(tmp_path):
    x = tone(440, SR)
    x[100] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite"):
        load(write_float_wav(tmp_path / "n.wav", x, SR), SR)


def test_too_short(tmp_path):
    path = write_pcm_wav(tmp_path / "s.wav", tone(440, SR, seconds=0.01), SR, 2)
    with pytest.raises(AudioError, match="too short"):
        load(path, SR, min_samples=512)


def test_check_samples_names_the_source():
    with pytest.raises(AudioError, match="^mic: no audio samples"):
        check_samples(np.zeros(0, dtype=np.float32), name="mic")


def test_write_wav_round_trips_through_the_reader(tmp_path):
    from edge.audio import write_wav

    x = np.round(tone(440, SR) * 32768) / 32768  # on the 16-bit grid
    path = write_wav(tmp_path / "w.wav", x, SR)
    samples, rate = read_audio(path)
    assert rate == SR and samples.shape == (SR, 1)
    np.testing.assert_array_equal(samples[:, 0], x.astype(np.float32))
    write_wav(tmp_path / "loud.wav", np.array([2.0, -2.0]), SR)  # clipped, not wrapped
    np.testing.assert_array_equal(read_audio(tmp_path / "loud.wav")[0][:, 0],
                                  [32767 / 32768, -1.0])


def test_wav_writer_round_trips_keeps_the_header_current_and_never_overwrites(tmp_path):
    from edge.audio import AudioStream, WavWriter

    path = tmp_path / "rec.wav"
    w = WavWriter(path, 16000)
    x = np.random.default_rng(0).standard_normal(40000).astype(np.float32) * 0.1
    for block in np.array_split(x, 7):
        assert w.write(block)
    # killed now: the header already counts all but (at most) the last second
    with AudioStream(path) as s:
        assert s.frames >= x.size - 16000
    w.close()
    samples, rate = read_audio(path)
    assert rate == 16000
    np.testing.assert_array_equal(samples[:, 0], x)
    with pytest.raises(AudioError, match="exists"):
        WavWriter(path, 16000)
    w = WavWriter(tmp_path / "full.wav", 8000)
    w.LIMIT_BYTES = 400  # a tiny limit stands in for 4 GiB
    assert w.write(np.zeros(60, np.float32)) and not w.write(np.zeros(60, np.float32))
    w.close()
    assert read_audio(tmp_path / "full.wav")[0].shape == (100, 1)
