"""The ring buffer between producers and the worker, and the file / raw-stream sources."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from conftest_edge import write_wav

from edge.errors import AudioError
from edge.sources import FileSource, RawStreamSource, RingBuffer


def test_ring_buffer_keeps_order_across_the_wrap():
    ring = RingBuffer(10)
    ring.write(np.arange(7))
    np.testing.assert_array_equal(ring.read(0), np.arange(7))
    ring.write(np.arange(7, 15))  # wraps around the end of the storage
    np.testing.assert_array_equal(ring.read(0), np.arange(7, 15))
    assert ring.read(0.01).size == 0  # nothing there: empty on timeout


def test_a_full_ring_drops_the_block_and_counts_an_overrun():
    ring = RingBuffer(10)
    assert ring.write(np.ones(8))
    assert not ring.write(np.ones(5))
    assert ring.overruns == 1 and ring.dropped_samples == 5
    assert ring.read(0).size == 8
    ring.close()
    assert ring.read(0.01) is None
    assert not ring.write(np.ones(1))


def test_blocking_write_waits_for_the_reader():
    ring = RingBuffer(100)
    x = np.arange(1000, dtype=np.float32)

    def produce():
        for i in range(0, x.size, 64):
            ring.write(x[i:i + 64], block_until_space=True)
        ring.close()

    thread = threading.Thread(target=produce)
    thread.start()
    got = []
    while (block := ring.read(1.0)) is not None:
        got.append(block)
    thread.join()
    np.testing.assert_array_equal(np.concatenate(got), x)
    assert ring.overruns == 0


def test_fast_file_replay_delivers_every_sample(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(22050)).astype(np.float32)
    path = write_wav(tmp_path / "a.wav", x, 22050)
    source = FileSource(path, realtime=False)
    assert source.info.sample_rate == 22050
    ring = RingBuffer(1000)  # far smaller than the file: the producer must wait
    source.start(ring)
    got = []
    while (block := ring.read(1.0)) is not None:
        got.append(block)
    source.stop()
    np.testing.assert_allclose(np.concatenate(got), x, atol=1 / 32768)
    assert ring.overruns == 0 and source.error() is None


def test_file_source_refuses_bad_files(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        FileSource(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        FileSource(tmp_path / "empty.wav")


def test_raw_stream_handles_odd_byte_splits():
    x = (np.arange(-3000, 3000, 7) * 5).astype("<i2")

    class Trickle(io.RawIOBase):
        """A pipe that delivers 1, 2, 3, ... bytes per read."""

        def __init__(self, data: bytes) -> None:
            self.data, self.n = data, 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.n = self.n % 5 + 1
            chunk, self.data = self.data[:self.n], self.data[self.n:]
            return chunk

    source = RawStreamSource(Trickle(x.tobytes()), 16000)
    ring = RingBuffer(100000)
    source.start(ring)
    got = []
    while (block := ring.read(1.0)) is not None:
        got.append(block)
    source.stop()
    np.testing.assert_array_equal(np.concatenate(got), x.astype(np.float32) / 32768)


def test_a_slow_worker_in_real_time_counts_overruns_and_carries_on(tmp_path):
    """Real-time replay with a consumer that stalls: blocks are dropped and counted, the
    listener still ends normally with a summary (overruns are never fatal)."""
    import time

    from conftest_edge import shipped

    from edge.bundle import load_bundle
    from edge.live import Listener
    from edge.recognizer import Recognizer

    rng = np.random.default_rng(0)
    path = write_wav(tmp_path / "noise.wav", 0.05 * rng.standard_normal(int(16000 * 3.5)), 16000)
    recognizer = Recognizer(load_bundle(shipped()), hop_seconds=0.1)
    listener = Listener(recognizer, FileSource(path, realtime=True),
                        on_result=lambda r: time.sleep(0.3), ring_seconds=0.1)
    assert listener.run() is False
    summary = listener.summary(interrupted=False)
    assert summary.overruns > 0 and summary.dropped_seconds > 0
    assert summary.audio_seconds + summary.dropped_seconds == pytest.approx(3.5, abs=0.05)
    assert summary.hops >= 1 and "overruns" in summary.line()
