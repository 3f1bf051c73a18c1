"""The streaming recogniser: audio blocks of any size in, utterance results out.

This is the object ``edge-ser listen`` and ``edge-ser predict`` run, and the one to embed in
a program::

    from edge.recognizer import Recognizer

    rec = Recognizer.from_model()              # the default shipped model
    for block in blocks:                       # float32 mono blocks, any size
        for r in rec.push(block):
            if r.event == "final":
                print(r.start, r.end, r.label, r.confidence)
    for r in rec.finish():                     # end of the stream: the last utterance
        ...

In the micro_speech order: the audio (resampled to the model's rate when needed) goes
through the front end (:class:`~edge.frontend.MelStream`: only the new frames), their
levels through the endpointer (:mod:`edge.endpoint`), and each utterance through the
classifier exactly as :mod:`edge.utterance` defines it. Three kinds of result:

* ``interim``: every hop while an utterance is under way, from the newest window of the
  utterance so far (:func:`edge.utterance.interim_inputs`: one model run per hop, whatever
  the utterance's length);
* ``final``: once, when the utterance has ended (at most ``min_silence_ms`` after its last
  speech frame), from the whole utterance;
* ``no_speech``: every hop outside an utterance.

Hops are counted in frames from the start of the stream and everything depends on frames
alone, so the same audio cut into different blocks gives identical results. Memory is
bounded: the last ``max_speech_s`` (plus the onset look-back) of frames, whatever the length
of the stream.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from edge.audio import Resampler, to_mono
from edge.bundle import Bundle
from edge.classifier import Classifier, UtteranceScores
from edge.endpoint import EndpointConfig, Endpointer, EndpointEvent, Segment
from edge.errors import ConfigError
from edge.frontend import MelStream
from edge.levels import frame_levels
from edge.shipped import load_model_bundle
from edge.utterance import interim_inputs

Event = Literal["interim", "final", "no_speech"]


@dataclass(frozen=True)
class Result:
    """One result of the recogniser."""

    event: Event
    t: float
    """When it was decided: seconds of audio since the start of the stream."""
    utterance: int | None
    """Number of the utterance in the stream (0, 1, ...); None for ``no_speech``."""
    start: float | None
    """Start of the utterance (its first frame), seconds since the start of the stream."""
    end: float | None
    """End of the utterance (final) or of its audio so far (interim), seconds."""
    label: str | None
    """Most probable emotion; None for ``no_speech``."""
    confidence: float | None
    probs: dict[str, float]
    uncertain: bool
    """The top probability is below the threshold."""
    scores: list[list[int]] | None
    """Raw int8 outputs of each of the utterance's windows; None for float models and for
    ``no_speech``."""
    speech_seconds: float
    """Speech frames in the utterance (so far), seconds."""
    noise_floor_db: float

    @property
    def speech(self) -> bool:
        return self.event != "no_speech"

    @property
    def final(self) -> bool:
        return self.event == "final"

    def to_dict(self, *, digits: int = 4) -> dict[str, Any]:
        """JSON-ready dict (the ``--json`` line); probabilities rounded to ``digits``."""
        def r(v: float | None, n: int = digits) -> float | None:
            return None if v is None else round(float(v), n)

        return {
            "event": self.event, "t": r(self.t, 3), "utterance": self.utterance,
            "start": r(self.start, 3), "end": r(self.end, 3), "speech": self.speech,
            "label": self.label, "confidence": r(self.confidence),
            "uncertain": self.uncertain,
            "probs": {k: round(v, digits) for k, v in self.probs.items()},
            "scores": self.scores, "speech_seconds": r(self.speech_seconds, 3),
            "noise_floor_db": (None if not np.isfinite(self.noise_floor_db)
                               else round(self.noise_floor_db, 1)),
        }


@dataclass
class Stats:
    """Running totals of a recogniser, for summaries."""

    samples: int = 0
    """Samples received at the model's rate."""
    bad_samples: int = 0
    """NaN or infinite input samples replaced by zeros."""
    hops: int = 0
    no_speech_hops: int = 0
    interims: int = 0
    utterances: int = 0
    uncertain_utterances: int = 0
    speech_seconds: float = 0.0
    labels: Counter = field(default_factory=Counter)
    """Final labels of the utterances."""

    def shares(self) -> dict[str, float]:
        """Fraction of utterances per final label, largest first."""
        total = sum(self.labels.values())
        return {k: v / total for k, v in self.labels.most_common()} if total else {}


class Recognizer:
    """Streaming speech emotion recognition with one bundle.

    Parameters
    ----------
    bundle : Bundle
        A loaded model bundle (:func:`edge.bundle.load_bundle`).
    input_rate : int or None
        Rate of the blocks that will be pushed, Hz; resampled to the model's rate when it
        differs. None: the model's rate.
    hop_seconds : float or None
        Time between interim / no-speech results, seconds, rounded to whole frames; None:
        the bundle's.
    threshold : float
        A result whose top probability is below this is ``uncertain``.
    endpoint : EndpointConfig or None
        Override the bundle's endpointer (the model was trained with the bundle's).
    threads : int
        Interpreter threads.
    classifier : Classifier or None
        Share one already built from ``bundle`` (e.g. across files) instead of building one.
    interims : bool
        False: no interim results (the model runs only for finals and the finals are the
        same); what a caller that keeps only finals, like ``predict``, wants.
    """

    def __init__(self, bundle: Bundle, *, input_rate: int | None = None,
                 hop_seconds: float | None = None, threshold: float = 0.5,
                 endpoint: EndpointConfig | None = None, threads: int = 1,
                 classifier: Classifier | None = None, interims: bool = True) -> None:
        self.bundle = bundle
        self.interims = interims
        self.classifier = classifier or Classifier(bundle, threads=threads)
        self.spec = bundle.metadata.features
        self.labels = bundle.metadata.labels
        frontend = self.spec.frontend
        self.sample_rate = frontend.sample_rate
        self.input_rate = int(input_rate or self.sample_rate)
        hop = bundle.metadata.hop_seconds if hop_seconds is None else hop_seconds
        if not hop > 0:
            raise ConfigError(f"hop={hop!r} seconds: must be > 0")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold={threshold!r}: must be in [0, 1]")
        self.threshold = threshold
        fps = self.spec.frames_per_second
        self.hop_frames = self.spec.hop_frames(hop)
        self.hop_seconds = self.hop_frames / fps
        self.endpoint_config = endpoint or self.spec.endpoint
        self._endpointer = Endpointer(self.endpoint_config, fps)
        c = self.endpoint_config
        # frames kept: the longest utterance plus the onset look-back and pad before it, plus
        # one hop (a chunk is stored before the endpointer decides the end inside it)
        self._capacity = int(np.ceil((c.max_speech_s + (c.onset_lookback_ms + c.speech_pad_ms)
                                      / 1000.0) * fps)) + self.hop_frames + 2
        self._mel_stream = MelStream(frontend)
        self._resampler = (Resampler(self.input_rate, self.sample_rate)
                           if self.input_rate != self.sample_rate else None)
        self.reset()

    @classmethod
    def from_model(cls, model: str | os.PathLike | None = None, **kwargs: Any) -> Recognizer:
        """A recogniser for a model path or shipped name (None: the default shipped model)."""
        return cls(load_model_bundle(model), **kwargs)

    def reset(self) -> None:
        """Forget all audio and history: the next block starts a new stream at t = 0."""
        self._mel_stream.reset()
        self._endpointer.reset()
        if self._resampler is not None:
            self._resampler.reset()
        n_mels = self.spec.frontend.n_mels
        self._mel = np.zeros((self._capacity, n_mels), dtype=np.float32)
        self._levels = np.zeros(self._capacity, dtype=np.float64)
        self._frames = 0  # frames consumed
        self._utterances = 0
        self.stats = Stats()

    @property
    def frames_seen(self) -> int:
        return self._frames

    def push(self, block: np.ndarray) -> list[Result]:
        """Add audio at ``input_rate``: float samples, shape ``(n,)`` or ``(n, channels)``
        (averaged to mono), any length. Returns the results it completes, in time order.

        NaN or infinite samples (a glitching device) are replaced by zeros and counted in
        ``stats.bad_samples``; they never poison later results.
        """
        x = to_mono(np.asarray(block, dtype=np.float32))
        if x.ndim != 1:
            raise ConfigError(f"audio block has shape {np.shape(block)}; need (n,) or"
                              " (n, channels)")
        finite = np.isfinite(x)
        if not finite.all():
            self.stats.bad_samples += int(x.size - np.count_nonzero(finite))
            x = np.where(finite, x, np.float32(0.0))
        if self._resampler is not None:
            x = self._resampler.process(x)
        return self._push_model_rate(x)

    def finish(self) -> list[Result]:
        """End of the stream: the resampler's last samples, then the final result of an
        utterance still under way."""
        results = [] if self._resampler is None else \
            self._push_model_rate(self._resampler.flush())
        for event in self._endpointer.finish():
            results.append(self._final(event))
        return results

    # ----------------------------------------------------------------------------------

    def _push_model_rate(self, x: np.ndarray) -> list[Result]:
        self.stats.samples += x.size
        mel = self._mel_stream.push(x)
        if not len(mel):
            return []
        levels = frame_levels(mel, self.spec.frontend)
        results: list[Result] = []
        # walk the new frames up to each hop boundary, so every decision sees exactly the
        # frames up to its own time, whatever the block size
        start = 0
        while start < len(mel):
            due = self.hop_frames - self._frames % self.hop_frames
            take = min(len(mel) - start, due)
            self._store(mel[start:start + take], levels[start:start + take])
            for event in self._endpointer.push(levels[start:start + take]):
                if event.kind == "end":
                    results.append(self._final(event))
            start += take
            if self._frames % self.hop_frames == 0:
                hop = self._hop()
                if hop is not None:
                    results.append(hop)
        return results

    def _store(self, mel: np.ndarray, levels: np.ndarray) -> None:
        idx = (self._frames + np.arange(len(mel))) % self._capacity
        self._mel[idx] = mel
        self._levels[idx] = levels
        self._frames += len(mel)

    def _frames_of(self, segment: Segment, end: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        end = segment.end if end is None else end
        start = max(segment.start, end - self._capacity, self._frames - self._capacity)
        idx = np.arange(start, end) % self._capacity
        return self._mel[idx], self._levels[idx]

    def _interim_frames(self, segment: Segment) -> tuple[np.ndarray, np.ndarray]:
        """The levels of the utterance so far and the mel frames of its newest window only
        (what :func:`edge.utterance.interim_inputs` needs; all of them for a model that
        removes the utterance's mean)."""
        start = max(segment.start, segment.end - self._capacity,
                    self._frames - self._capacity)
        idx = np.arange(start, segment.end) % self._capacity
        frames = idx if self.spec.utterance_mean else idx[-self.spec.window_frames:]
        return self._mel[frames], self._levels[idx]

    def _hop(self) -> Result | None:
        self.stats.hops += 1
        active = self._endpointer.active
        if active is None:
            self.stats.no_speech_hops += 1
            return Result("no_speech", self._seconds_at(self._frames), None, None, None, None,
                          None, {}, False, None, 0.0, self._endpointer.noise_floor_db)
        if not self.interims:
            return None
        self.stats.interims += 1
        mel, levels = self._interim_frames(active)
        scores = self.classifier.classify_inputs(interim_inputs(mel, self.spec, levels=levels))
        return self._result("interim", self._seconds_at(self._frames), self._utterances,
                            active, scores)

    def _final(self, event: EndpointEvent) -> Result:
        seg = event.segment
        scores = self.classifier.classify_utterance(*self._frames_of(seg))
        result = self._result("final", self._seconds_at(event.frame), self._utterances, seg,
                              scores, event.noise_floor_db)
        self._utterances += 1
        self.stats.utterances += 1
        self.stats.uncertain_utterances += result.uncertain
        self.stats.speech_seconds += seg.speech_frames / self.spec.frames_per_second
        self.stats.labels[result.label] += 1
        return result

    def _result(self, event: Event, t: float, number: int, seg: Segment,
                scores: UtteranceScores, noise_floor_db: float | None = None) -> Result:
        top = int(np.argmax(scores.probs))
        confidence = float(scores.probs[top])
        return Result(
            event=event, t=t, utterance=number,
            start=seg.start / self.spec.frames_per_second, end=self._seconds_at(seg.end),
            label=self.labels[top], confidence=confidence,
            probs={k: float(p) for k, p in zip(self.labels, scores.probs)},
            uncertain=confidence < self.threshold,
            scores=None if scores.scores is None else [[int(v) for v in s]
                                                       for s in scores.scores],
            speech_seconds=seg.speech_frames / self.spec.frames_per_second,
            noise_floor_db=(self._endpointer.noise_floor_db if noise_floor_db is None
                            else noise_floor_db),
        )

    def _seconds_at(self, frames: int) -> float:
        """End of the audio of the first ``frames`` frames, seconds."""
        c = self.spec.frontend
        return c.samples_for(frames) / c.sample_rate
