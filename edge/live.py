"""The ``listen`` loop: a source fills the ring buffer, this worker does everything else.

:class:`Listener` reads what the source produced, pushes it through the recogniser and hands
each result to a callback; Ctrl-C ends it cleanly. :class:`LiveView` shows results on a
terminal (a live line) or as JSON Lines. :class:`Summary` is the closing report.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

import numpy as np

from edge.errors import DeviceLost, EdgeSerError
from edge.recognizer import Recognizer, Result
from edge.sources import RingBuffer, Source

RING_SECONDS = 4.0
"""Audio the ring buffer holds before it drops (and counts) a block, seconds."""
BAR_WIDTH = 10


@dataclass(frozen=True)
class Summary:
    """What a listening session did."""

    audio_seconds: float
    wall_seconds: float
    utterances: int
    uncertain_utterances: int
    speech_seconds: float
    hops: int
    no_speech_hops: int
    shares: dict[str, float]
    """Fraction of utterances per final emotion."""
    overruns: int
    """Device overflows plus blocks dropped because the ring buffer was full."""
    dropped_seconds: float
    first_result_seconds: float | None
    """From process start (or the listener's ``started``) to the first result, seconds."""
    hop_ms_mean: float | None
    """Processing time per result (front end, endpointer, model), milliseconds."""
    hop_ms_max: float | None
    interrupted: bool
    source: str
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One human line: duration, utterances, emotion shares, overruns."""
        shares = ", ".join(f"{k} {v:.0%}" for k, v in self.shares.items()) or "no emotion"
        end = "stopped" if self.interrupted else "done"
        return (f"{end}: {self.audio_seconds:.1f} s of audio, {self.utterances} utterances"
                f" ({self.speech_seconds:.1f} s of speech, {self.uncertain_utterances}"
                f" uncertain); {shares}; {self.overruns} overruns")

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None, n: int = 3) -> float | None:
            return None if v is None else round(v, n)

        return {
            "audio_seconds": r(self.audio_seconds), "wall_seconds": r(self.wall_seconds),
            "utterances": self.utterances, "uncertain_utterances": self.uncertain_utterances,
            "speech_seconds": r(self.speech_seconds), "hops": self.hops,
            "no_speech_hops": self.no_speech_hops,
            "shares": {k: round(v, 4) for k, v in self.shares.items()},
            "overruns": self.overruns, "dropped_seconds": r(self.dropped_seconds),
            "first_result_seconds": r(self.first_result_seconds),
            "hop_ms_mean": r(self.hop_ms_mean), "hop_ms_max": r(self.hop_ms_max),
            "interrupted": self.interrupted, "source": self.source, **self.extra,
        }


class Listener:
    """Runs ``source`` through ``recognizer`` until the source ends or Ctrl-C.

    Parameters
    ----------
    on_result : callable
        Called with each :class:`~edge.recognizer.Result`, in the worker thread.
    started : float or None
        ``time.monotonic()`` at process start, for the time to the first result.
    max_seconds : float or None
        Stop (normally) after this much audio, seconds at the model's rate.
    record : callable or None
        Called with every block of source audio (at the source's rate) before it is
        processed, e.g. :meth:`edge.audio.WavWriter.write`.
    """

    def __init__(self, recognizer: Recognizer, source: Source, *,
                 on_result: Callable[[Result], None], started: float | None = None,
                 ring_seconds: float = RING_SECONDS, max_seconds: float | None = None,
                 record: Callable[[np.ndarray], None] | None = None) -> None:
        self.recognizer = recognizer
        self.source = source
        self.on_result = on_result
        self.record = record
        self.started = time.monotonic() if started is None else started
        self.ring = RingBuffer(int(ring_seconds * source.info.sample_rate))
        self.max_samples = (None if max_seconds is None
                            else int(round(max_seconds * recognizer.sample_rate)))
        self._first_result: float | None = None
        self._hop_ms: list[float] = []
        self._run_started: float | None = None
        self._run_ended: float | None = None
        self.stopped_by: str | None = None
        """``SIGINT`` or ``SIGTERM`` when a signal ended the run."""
        self.stop_requested: str | None = None

    def request_stop(self, why: str) -> None:
        """Stop at the next block (safe from a signal handler): what was heard is finished
        and summarised as after the end of the source; ``why`` becomes ``stopped_by``."""
        self.stop_requested = why

    def run(self) -> bool:
        """Process until the source ends (False) or Ctrl-C / SIGTERM (True; which one is
        ``stopped_by``). A microphone that goes away raises :class:`DeviceLost` once what it
        delivered is processed (the summary is still there)."""
        self._run_started = time.monotonic()
        interrupted = False
        self.source.start(self.ring)
        try:
            while self.stop_requested is None:
                block = self.ring.read(timeout=0.5)
                if block is None:
                    break
                if not block.size:  # nothing for 0.5 s: is the source still there?
                    lost = self.source.lost()
                    if lost is not None:
                        self._process(lambda _: self.recognizer.finish(), None)
                        raise DeviceLost(lost)
                if self.max_samples is not None:
                    block = block[:self._remaining_input()]
                if block.size:
                    if self.record is not None:
                        self.record(block)
                    self._process(self.recognizer.push, block)
                if self.max_samples is not None and self._remaining_input() == 0:
                    break
            self._process(lambda _: self.recognizer.finish(), None)
        except KeyboardInterrupt:  # Ctrl-C without the CLI's handler, or a second signal
            interrupted = True
            self.stopped_by = self.stop_requested or "SIGINT"
        finally:
            self.ring.close()  # releases a producer waiting for space
            self.source.stop()
            self._run_ended = time.monotonic()
        if self.stop_requested is not None:
            interrupted, self.stopped_by = True, self.stop_requested
        error = self.source.error()
        if error is not None and not interrupted:
            if isinstance(error, EdgeSerError):
                raise error
            raise EdgeSerError(f"{self.source.info.name}: {error}") from error
        return interrupted

    def _remaining_input(self) -> int:
        """Input samples (at the source's rate) still wanted under ``max_seconds``."""
        left = max(0, self.max_samples - self.recognizer.stats.samples)
        rate = self.recognizer.input_rate / self.recognizer.sample_rate
        return int(np.ceil(left * rate))

    def _process(self, push: Callable[[Any], list[Result]], block: Any) -> None:
        t0 = time.perf_counter()
        results = push(block)
        if results:
            spent = (time.perf_counter() - t0) * 1000.0
            self._hop_ms.extend([spent / len(results)] * len(results))
            if self._first_result is None:
                self._first_result = time.monotonic() - self.started
        for result in results:
            self.on_result(result)

    def summary(self, *, interrupted: bool) -> Summary:
        stats = self.recognizer.stats
        rate = self.recognizer.sample_rate
        ms = self._hop_ms
        wall = (self._run_ended or time.monotonic()) - (self._run_started or self.started)
        return Summary(
            audio_seconds=stats.samples / rate, wall_seconds=wall,
            utterances=stats.utterances, uncertain_utterances=stats.uncertain_utterances,
            speech_seconds=stats.speech_seconds, hops=stats.hops,
            no_speech_hops=stats.no_speech_hops,
            shares=stats.shares(), overruns=self.source.overruns + self.ring.overruns,
            dropped_seconds=self.ring.dropped_samples / self.source.info.sample_rate,
            first_result_seconds=self._first_result,
            hop_ms_mean=sum(ms) / len(ms) if ms else None, hop_ms_max=max(ms) if ms else None,
            interrupted=interrupted, source=self.source.info.name,
            extra={"bad_samples": stats.bad_samples, "stopped_by": self.stopped_by},
        )


class LiveView:
    """Shows results: JSON Lines, or on a terminal a live line for the utterance under way
    (its interim result, redrawn every hop) and one kept line per finished utterance; on a
    pipe or file, only the finished utterances."""

    def __init__(self, *, as_json: bool, labels: tuple[str, ...],
                 out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.as_json = as_json
        self.tty = not as_json and self.out.isatty()
        self.width = max(len(label) for label in labels)
        self._live = False  # a live line is on screen, not yet ended with a newline

    def show(self, r: Result) -> None:
        if self.as_json:
            self.out.write(json.dumps(r.to_dict()) + "\n")
        elif r.event == "final":
            self.out.write(("\r" if self.tty else "") + self.format(r)
                           + ("\x1b[K" if self.tty else "") + "\n")
            self._live = False
        elif self.tty:
            self.out.write("\r" + self.format(r) + "\x1b[K")
            self._live = True
        self.out.flush()

    def format(self, r: Result) -> str:
        """``   3.1-  5.4 s  angry      0.72 #######---  then happy 0.12`` for a finished
        utterance; ``   3.1-  4.5 s  angry?  ... (speaking)`` while it goes on."""
        if not r.speech or r.label is None:
            return f"{r.t:7.1f} s         (no speech)"
        head = f"{r.start:7.1f}-{r.end:6.1f} s  "
        conf = r.confidence or 0.0
        filled = int(round(conf * BAR_WIDTH))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        ranked = sorted(r.probs.items(), key=lambda kv: -kv[1])
        runner = next(((k, v) for k, v in ranked if k != r.label), None)
        label = r.label + ("?" if r.uncertain else "")
        text = f"{head}{label:<{self.width + 1}} {conf:4.2f} {bar}"
        if runner is not None:
            text += f"  then {runner[0]} {runner[1]:.2f}"
        return text + ("" if r.final else "  (speaking)")

    def close(self) -> None:
        if self._live:
            self.out.write("\n")
            self.out.flush()
            self._live = False
