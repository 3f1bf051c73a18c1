"""A listening session: what ``edge-ser listen`` does around the :class:`~edge.live.Listener`,
for any program that has a bundle and a source.

:class:`Session` makes the recogniser, records the audio it processed (``record``), publishes
to an MQTT broker (``mqtt``), lets Ctrl-C and SIGTERM finish what was heard, and ends with a
:class:`~edge.live.Summary` and the exit status ``listen`` uses: 0 at the end of the source and
after SIGTERM (systemd's stop), 130 after Ctrl-C, 1 when the microphone went away.

    from edge.session import Session
    from edge.shipped import load_model_bundle
    from edge.sources import FileSource

    outcome = Session(load_model_bundle(None), FileSource("talk.wav"),
                      on_result=print, record="heard.wav").run()
    print(outcome.summary.line(), outcome.exit_code)
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.bundle import Bundle
from edge.errors import EXIT_INTERRUPTED, DeviceLost
from edge.live import Listener, LiveView, Summary
from edge.recognizer import Recognizer, Result
from edge.sources import Source

if TYPE_CHECKING:
    from edge.audio import WavWriter
    from edge.mqtt.config import MqttConfig

EXIT_OK = 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Outcome:
    """How a session ended."""

    summary: Summary
    """What was heard; with MQTT, ``summary.extra["mqtt"]`` holds the sink's counts."""
    exit_code: int
    """0 (source ended, ``--duration`` reached, SIGTERM), 130 (Ctrl-C), or the failure's."""
    failure: DeviceLost | None = None
    """The microphone that went away, if it did."""


class Session:
    """One listening session over ``source`` with ``bundle``.

    Parameters
    ----------
    view : LiveView or None
        Shows every result (:meth:`~edge.live.LiveView.show`) and is closed when listening
        ends, before the summary lines.
    on_result : callable or None
        Also called with every :class:`~edge.recognizer.Result`, in the worker thread.
    hop_seconds, threshold, threads :
        As :class:`~edge.recognizer.Recognizer`'s (``None`` hop: the bundle's).
    max_seconds : float or None
        Stop after this much audio, seconds.
    record : path or None
        Also write the audio as processed (the source's rate, float WAV; NaN/inf as 0); a
        file to which nothing was written is removed when the session fails.
    mqtt : MqttConfig or None
        Also publish to this broker (:class:`edge.mqtt.sink.MqttSink`).
    warn : callable
        Takes one line for people (stderr by default): MQTT trouble, the recording full,
        the microphone gone, and the closing summary lines.
    announce : bool
        Also say where the session listens and publishes (off for ``--json``).
    started : float or None
        ``time.monotonic()`` at process start, for the time to the first result.
    """

    def __init__(self, bundle: Bundle, source: Source, *,
                 view: LiveView | None = None,
                 on_result: Callable[[Result], None] | None = None,
                 hop_seconds: float | None = None, threshold: float = 0.5, threads: int = 1,
                 max_seconds: float | None = None, record: str | Path | None = None,
                 mqtt: MqttConfig | None = None, warn: Callable[[str], None] = _stderr,
                 announce: bool = True, started: float | None = None) -> None:
        self.bundle = bundle
        self.source = source
        self.warn = warn
        self.announce = announce
        self.mqtt = mqtt
        self.view = view
        self._on_result = on_result
        self.recognizer = Recognizer(bundle, input_rate=source.info.sample_rate,
                                     hop_seconds=hop_seconds, threads=threads,
                                     threshold=threshold)
        self._recorder: WavWriter | None = None  # made last: nothing after it can fail
        if record is not None:
            from edge.audio import WavWriter

            self._recorder = WavWriter(record, source.info.sample_rate)
        self._full_said = False
        self.listener = Listener(self.recognizer, source, on_result=self._result,
                                 started=started, max_seconds=max_seconds,
                                 record=None if self._recorder is None else self._record)
        self.sink: Any = None

    # -- per result and per block (the worker thread) ----------------------------------

    def _result(self, result: Result) -> None:
        if self.view is not None:
            self.view.show(result)
        if self._on_result is not None:
            self._on_result(result)
        if self.sink is not None:
            self.sink.publish(result)

    def _record(self, block: np.ndarray) -> None:
        block = np.where(np.isfinite(block), block, np.float32(0.0))
        if not self._recorder.write(block) and not self._full_said:
            self.warn(f"--record {self._recorder.path}: a WAV holds at most 4 GiB; recording"
                      " stopped, listening goes on")
            self._full_said = True

    # -- the session -------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> Outcome:
        """Listen until the source ends, ``max_seconds``, Ctrl-C or SIGTERM (with
        ``handle_signals``, from the main thread only); the summary lines go to ``warn``.
        Bad input (a model, the source, MQTT options or credentials) raises the package's
        error; the recording is closed, or removed if it never started, either way."""
        try:
            return self._run(handle_signals)
        except BaseException:
            self._discard_empty_recording()
            raise
        finally:
            if self._recorder is not None:
                with contextlib.suppress(Exception):
                    self._recorder.close()

    def _run(self, handle_signals: bool) -> Outcome:
        if self.mqtt is not None:
            from edge.mqtt.sink import MqttSink

            self.sink = MqttSink(self.mqtt, labels=self.bundle.metadata.labels,
                                 model=self.bundle.path.stem, warn=self.warn)
            if self.sink.start() and self.announce:
                self.warn(f"mqtt: publishing to {self.mqtt.url} as"
                          f" {self.mqtt.topic('emotion')}")
        if self.announce:
            info, meta = self.source.info, self.bundle.metadata
            self.warn(f"listening to {info.name} at {info.sample_rate} Hz with"
                      f" {self.bundle.path.name} ({meta.kind}, {meta.quantization});"
                      " Ctrl-C to stop")
        failure = None
        signals = stop_on_signals(self.listener) if handle_signals else contextlib.nullcontext()
        try:
            with signals:
                try:
                    interrupted = self.listener.run()
                except DeviceLost as e:
                    interrupted, failure = False, e
        except BaseException:
            if self.sink is not None:  # a closed pipe, a failing source: still say `offline`
                self.sink.close()
            raise
        finally:
            if self.view is not None:
                self.view.close()
        summary = self.listener.summary(interrupted=interrupted)
        if self.sink is not None:
            summary.extra["mqtt"] = self.sink.close(summary.to_dict())
        if failure is not None:
            self.warn(str(failure))
        self.warn(summary.line())
        if self.sink is not None:
            self.warn(self.sink.summary_line())
        code = (failure.exit_code if failure is not None else
                EXIT_INTERRUPTED if interrupted and self.listener.stopped_by == "SIGINT" else
                EXIT_OK)
        return Outcome(summary, code, failure)

    def _discard_empty_recording(self) -> None:
        if self._recorder is not None and self._recorder.frames == 0:
            with contextlib.suppress(Exception):
                self._recorder.close()
            with contextlib.suppress(OSError):
                self._recorder.path.unlink()


@contextlib.contextmanager
def stop_on_signals(listener: Listener) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask the listener to stop at the next block: what it has heard is
    finished (the utterance under way gets its final) and summarised. SIGTERM then ends with
    0, the status systemd counts as a clean stop; Ctrl-C 130. A second signal stops at once.
    Outside the main thread (where Python cannot set handlers) nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
        if listener.stop_requested is not None:
            raise KeyboardInterrupt  # the second time: now
        listener.request_stop(name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
