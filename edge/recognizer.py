"""The streaming recogniser: audio blocks of any size in, one result per hop out.

This is the object ``edge-ser listen`` runs, and the one to embed in a program::

    from edge.recognizer import Recognizer

    rec = Recognizer.from_model()              # the default shipped model
    for block in blocks:                       # float32 mono blocks, any size
        for result in rec.push(block):
            print(result.t, result.label, result.confidence)

Per block: resample to the model's rate when the input rate differs, compute only the new
MFCC frames and frame levels; whenever a hop of frames is complete and a whole window is
available, the last window goes through the model, the speech gate and the smoother.
Results are placed by frame count alone, so the same audio cut into different blocks gives
identical results.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.audio import Resampler, to_mono
from edge.bundle import Bundle
from edge.classifier import Classifier, WindowScores
from edge.errors import ConfigError
from edge.frontend import MfccStream
from edge.gate import FrameLevels, GateConfig, GateDecision, SpeechGate
from edge.shipped import load_model_bundle
from edge.smoothing import Smoother, SmoothingConfig


@dataclass(frozen=True)
class Result:
    """The recogniser's output for one window (one hop)."""

    t: float
    """End of the window, seconds of audio since the start (or the last reset)."""
    label: str | None
    """Smoothed emotion; None when the window holds no speech."""
    confidence: float | None
    """Smoothed probability of ``label``."""
    probs: dict[str, float]
    """Smoothed probabilities (the window's own when there is no speech)."""
    speech: bool
    uncertain: bool
    """Speech, but the smoothed top probability is below the threshold (or too few windows)."""
    changed: bool
    """This window announces a new label."""
    window_label: str
    """Top label of this window alone, unsmoothed."""
    window_probs: dict[str, float]
    """This window's own probabilities."""
    scores: list[int] | None
    """Raw int8 model outputs of this window; None for float models."""
    speech_seconds: float
    noise_floor_db: float

    def to_dict(self, *, digits: int = 4) -> dict[str, Any]:
        """JSON-ready dict; probabilities rounded to ``digits``."""
        def r(p: dict[str, float]) -> dict[str, float]:
            return {k: round(v, digits) for k, v in p.items()}

        return {
            "t": round(self.t, 4),
            "label": self.label,
            "confidence": None if self.confidence is None else round(self.confidence, digits),
            "probs": r(self.probs),
            "speech": self.speech,
            "uncertain": self.uncertain,
            "changed": self.changed,
            "scores": self.scores,
            "window": {"label": self.window_label, "probs": r(self.window_probs)},
            "speech_seconds": round(self.speech_seconds, 3),
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
    windows: int = 0
    speech_windows: int = 0
    uncertain_windows: int = 0
    labels: Counter = field(default_factory=Counter)
    """Reported labels of speech windows (uncertain ones included)."""

    def shares(self) -> dict[str, float]:
        """Fraction of speech windows per reported label, largest first."""
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
        Time between results, seconds, rounded to whole frames; None: the bundle's.
    threads : int
        Interpreter threads.
    gate, smoothing : GateConfig, SmoothingConfig
    classifier : Classifier or None
        Share one already built from ``bundle`` (e.g. across files) instead of building one.
    """

    def __init__(self, bundle: Bundle, *, input_rate: int | None = None,
                 hop_seconds: float | None = None, threads: int = 1,
                 gate: GateConfig = GateConfig(), smoothing: SmoothingConfig = SmoothingConfig(),
                 classifier: Classifier | None = None) -> None:
        self.bundle = bundle
        self.classifier = classifier or Classifier(bundle, threads=threads)
        self.spec = bundle.metadata.features
        self.labels = bundle.metadata.labels
        frontend = self.spec.frontend
        self.sample_rate = frontend.sample_rate
        self.input_rate = int(input_rate or self.sample_rate)
        hop = bundle.metadata.hop_seconds if hop_seconds is None else hop_seconds
        if not hop > 0:
            raise ConfigError(f"hop={hop!r} seconds: must be > 0")
        self.hop_frames = max(1, int(round(hop * frontend.sample_rate / frontend.hop_length)))
        self.hop_seconds = self.hop_frames * frontend.hop_length / frontend.sample_rate
        self.window_frames = self.spec.window_frames
        self.gate_config = gate
        self.smoothing_config = smoothing
        self._mfcc = MfccStream(frontend)
        self._levels = FrameLevels(frontend)
        self._gate = SpeechGate(gate, frontend)
        self._smoother = Smoother(smoothing)
        self._resampler = (Resampler(self.input_rate, self.sample_rate)
                           if self.input_rate != self.sample_rate else None)
        self.reset()

    @classmethod
    def from_model(cls, model: str | os.PathLike | None = None, **kwargs: Any) -> Recognizer:
        """A recogniser for a model path or shipped name (None: the default shipped model)."""
        return cls(load_model_bundle(model), **kwargs)

    def reset(self) -> None:
        """Forget all audio and history: the next block starts a new stream at t = 0."""
        self._mfcc.reset()
        self._levels.reset()
        self._gate.reset()
        self._smoother.reset()
        if self._resampler is not None:
            self._resampler.reset()
        self._frames = np.zeros((0, self.spec.frontend.n_mfcc), dtype=np.float32)
        self._frames_seen = 0
        self._next_result_at = self.window_frames  # frames seen when the next result is due
        self.stats = Stats()

    @property
    def frames_seen(self) -> int:
        return self._frames_seen

    def push(self, block: np.ndarray) -> list[Result]:
        """Add audio at ``input_rate``: float samples, shape ``(n,)`` or ``(n, channels)``
        (averaged to mono), any length. Returns the results it completes.

        NaN or infinite samples (a glitching device) are replaced by zeros and counted in
        ``stats.bad_samples``; they never poison later windows.
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
        """End of the stream: the results of the resampler's last samples (if resampling)."""
        if self._resampler is None:
            return []
        return self._push_model_rate(self._resampler.flush())

    def _push_model_rate(self, x: np.ndarray) -> list[Result]:
        self.stats.samples += x.size
        new_frames = self._mfcc.push(x)
        new_levels = self._levels.push(x)
        results = []
        # walk the new frames in hop-sized steps so that each result sees exactly the frames
        # (and frame levels) up to its own end, whatever the block size
        start = 0
        while start < len(new_frames):
            due = self._next_result_at - self._frames_seen
            take = min(len(new_frames) - start, due)
            self._append(new_frames[start:start + take], new_levels[start:start + take])
            start += take
            if self._frames_seen == self._next_result_at:
                results.append(self._result())
                self._next_result_at += self.hop_frames
        return results

    def _append(self, frames: np.ndarray, levels: np.ndarray) -> None:
        self._frames = np.concatenate((self._frames, frames))[-self.window_frames:]
        self._gate.add(levels)
        self._frames_seen += len(frames)

    def _result(self) -> Result:
        scores = self.classifier.classify_frames(self._frames)
        decision = self._gate.decide(self.window_frames)
        c = self.spec.frontend
        t = c.samples_for(self._frames_seen) / c.sample_rate
        return self._make_result(t, scores, decision)

    def _make_result(self, t: float, scores: WindowScores, decision: GateDecision) -> Result:
        smoothed = self._smoother.update(t, scores.probs, speech=decision.speech)
        window_probs = _as_dict(self.labels, scores.probs)
        label = confidence = None
        uncertain = changed = False
        probs = window_probs
        if decision.speech and smoothed.index is not None:
            label = self.labels[smoothed.index]
            confidence = smoothed.confidence
            uncertain, changed = smoothed.uncertain, smoothed.changed
            probs = _as_dict(self.labels, smoothed.probs)
        self.stats.windows += 1
        if label is not None:
            self.stats.speech_windows += 1
            self.stats.uncertain_windows += uncertain
            self.stats.labels[label] += 1
        return Result(
            t=t, label=label, confidence=confidence, probs=probs, speech=decision.speech,
            uncertain=uncertain, changed=changed,
            window_label=self.labels[int(np.argmax(scores.probs))], window_probs=window_probs,
            scores=None if scores.scores is None else [int(v) for v in scores.scores],
            speech_seconds=decision.speech_seconds, noise_floor_db=decision.noise_floor_db,
        )


def _as_dict(labels: tuple[str, ...], probs: np.ndarray) -> dict[str, float]:
    return {label: float(p) for label, p in zip(labels, probs)}
