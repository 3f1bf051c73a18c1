"""The endpointer: where utterances start and end, from frame levels alone.

A frame is *speech* when its level (:mod:`edge.levels`) is above the adaptive noise floor by
``margin_db`` and above ``min_level_db``; inside an utterance it must also be within
``top_db`` of the utterance's loudest frame so far (a soft tail long after the words does not
keep an utterance open, whatever the gain). The noise floor is a low percentile of the levels
over the last ``noise_seconds``, refreshed every ``floor_update_ms``: it settles on a quiet
room, a fan or hum within a few seconds.

Like Silero VAD's ``VADIterator``, the endpointer has one state bit (inside a candidate
utterance or not) and emits events only:

* ``start`` once a candidate holds ``min_speech_ms`` of speech frames (a click or a cough
  shorter than that never becomes an utterance) and its loudest frame is within
  ``quieter_db`` of the previous utterance's (a breath after the words, or their echo, is not
  an utterance of its own; the margin grows with the pause);
* ``end`` once speech has been absent for ``min_silence_ms`` (or the utterance reached
  ``max_speech_s``, or the stream ended).

Both carry the utterance's :class:`Segment`: from ``speech_pad_ms`` before its first speech
frame to ``speech_pad_ms`` after its last. The offline :func:`speech_segments` runs the same
object over a whole recording: one definition of an utterance for training, ``predict`` and
``listen``. Every decision depends on the levels alone, frame by frame, so the segments do not
depend on how the audio was cut into blocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from edge.errors import ConfigError
from edge.levels import SILENT_DB, percentile


@dataclass(frozen=True)
class EndpointConfig:
    """Parameters of the endpointer (times in the unit their names say)."""

    margin_db: float = 10.0
    """A speech frame is this far above the noise floor, dB."""
    min_level_db: float = -85.0
    """Frames quieter than this are never speech, dB (:mod:`edge.levels` units)."""
    top_db: float = 35.0
    """Inside an utterance, frames more than this below its loudest frame so far are not
    speech, dB."""
    onset_top_db: float = 40.0
    """When an utterance is confirmed, its onset becomes the start of the run of frames within
    this of its loudest frame so far (and above the noise floor by ``margin_db``) that led to
    the confirmation: where it starts then does not depend on the gain, dB. It moves later
    than the first speech frame only past a lead-in ``quieter_db`` under the peak."""
    onset_lookback_ms: float = 300.0
    """How far back before the first speech frame the onset may move, milliseconds."""
    onset_gap_ms: float = 250.0
    """A pause this long before the confirming speech separates a lead-in noise from the
    utterance's onset, milliseconds."""
    reonset_db: float = 3.0
    """Each time an utterance's loudest frame rises this far above the one its onset was
    found on, the onset is found again (a lead-in noise before the words is dropped), dB."""
    quieter_db: float = 30.0
    """A candidate more than this below the last utterance's loudest frame never becomes an
    utterance (a breath or a room's echo after the words), dB ..."""
    quieter_decay_db_per_s: float = 1.0
    """... a margin that grows by this much per second since that utterance ended, dB/s."""
    noise_seconds: float = 5.0
    """History the noise floor is estimated over, seconds."""
    noise_percentile: float = 10.0
    """Percentile of the levels in that history taken as the noise floor (while the history
    is not yet full, this times the share that is: the quietest frames at first)."""
    floor_update_ms: float = 100.0
    """How often the noise floor is re-estimated, milliseconds."""
    min_speech_ms: float = 250.0
    """Speech frames a candidate needs before it is an utterance, milliseconds."""
    min_silence_ms: float = 400.0
    """Absence of speech that ends an utterance, milliseconds."""
    speech_pad_ms: float = 100.0
    """Audio kept before the first and after the last speech frame, milliseconds (at most
    half of ``min_silence_ms``, so neighbouring utterances never overlap)."""
    max_speech_s: float = 6.0
    """An utterance is ended after this long and the next one begins, seconds (a monologue
    gets a final every few seconds, and its final costs at most four windows)."""

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"EndpointConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("margin_db", "top_db", "onset_top_db", "onset_lookback_ms", "onset_gap_ms",
                     "reonset_db", "quieter_db",
                     "quieter_decay_db_per_s",
                     "min_speech_ms", "min_silence_ms",
                     "speech_pad_ms"):
            if not getattr(self, name) >= 0:
                raise bad(name, "must be >= 0")
        for name in ("noise_seconds", "floor_update_ms", "max_speech_s"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0")
        if not 0 <= self.noise_percentile <= 100:
            raise bad("noise_percentile", "must be in [0, 100]")
        if 2 * self.speech_pad_ms > self.min_silence_ms:
            raise bad("speech_pad_ms", f"must be at most half of min_silence_ms"
                      f" ({self.min_silence_ms:g})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"endpoint config has fields this edge-ser does not know:"
                              f" {', '.join(unknown)} (upgrade edge-ser)")
        return cls(**{k: float(v) for k, v in data.items()})


@dataclass(frozen=True)
class Segment:
    """One utterance in frames of the front end: ``[start, end)``, pads included."""

    start: int
    end: int
    speech_frames: int
    """Frames inside that were speech."""
    confirmed: int
    """Frames consumed when the utterance was confirmed (its ``start`` event): interim
    results exist from there on."""

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class EndpointEvent:
    """``start``: an utterance is confirmed (``segment.end`` is the frame so far);
    ``end``: it is over (``segment`` is final). ``frame`` is the number of frames consumed
    when the event was decided."""

    kind: Literal["start", "end"]
    frame: int
    segment: Segment
    noise_floor_db: float
    """The noise floor when it was decided, dB."""


class Endpointer:
    """Streaming utterance boundaries: feed every frame level in order with :meth:`push`.

    Parameters
    ----------
    config : EndpointConfig
    frames_per_second : float
        Frame rate of the levels (``sample_rate / hop_length``).
    """

    def __init__(self, config: EndpointConfig, frames_per_second: float) -> None:
        self.config = config
        self.frames_per_second = float(frames_per_second)

        def frames(ms: float) -> int:
            return int(round(ms * self.frames_per_second / 1000.0))

        self._history_size = max(1, frames(config.noise_seconds * 1000.0))
        self._update_every = max(1, frames(config.floor_update_ms))
        self._min_speech = max(1, frames(config.min_speech_ms))
        self._min_silence = max(1, frames(config.min_silence_ms))
        self._pad = frames(config.speech_pad_ms)
        self._lookback = min(frames(config.onset_lookback_ms), self._history_size - 1)
        self._onset_gap = max(1, frames(config.onset_gap_ms))
        self._max_frames = max(self._min_speech + 1, frames(config.max_speech_s * 1000.0))
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next level is frame 0 of a new stream."""
        self._history = np.full(self._history_size, SILENT_DB)
        self._filled = 0
        self._floor = SILENT_DB
        self._t = 0  # frames consumed
        self._triggered = False
        self._confirmed = False
        self._first = self._last = 0  # first / last speech frame of the candidate
        self._speech = 0
        self._confirmed_at = 0
        self._peak = self._onset_peak = SILENT_DB
        self._previous_end = 0
        self._previous_peak = SILENT_DB

    @property
    def frames_seen(self) -> int:
        return self._t

    @property
    def noise_floor_db(self) -> float:
        """The noise floor the last decision used, dB."""
        return self._floor

    @property
    def active(self) -> Segment | None:
        """The confirmed utterance in progress (``end`` = frames so far), or None."""
        if not self._confirmed:
            return None
        return Segment(self._start(), self._t, self._speech, self._confirmed_at)

    def _start(self) -> int:
        return max(0, self._previous_end, self._first - self._pad)

    def push(self, levels: np.ndarray) -> list[EndpointEvent]:
        """Levels of the next frames (dB, oldest first) -> the events they decide."""
        events: list[EndpointEvent] = []
        c = self.config
        history, size, every = self._history, self._history_size, self._update_every
        margin, min_level, top_db = c.margin_db, c.min_level_db, c.top_db
        for level in np.asarray(levels, dtype=np.float64).ravel().tolist():
            t = self._t
            history[t % size] = level
            if self._filled < size:
                self._filled += 1
            if t % every == 0:
                # until the history is full, a lower percentile: a stream that opens in the
                # middle of speech must not take the speech for the room
                share = self._filled / size
                self._floor = percentile(history[:self._filled], c.noise_percentile * share)
            threshold = self._floor + margin
            if threshold < min_level:
                threshold = min_level
            if self._triggered and self._peak - top_db > threshold:
                threshold = self._peak - top_db
            self._t = t + 1
            if level > threshold:
                if not self._triggered:
                    self._triggered, self._confirmed = True, False
                    self._first, self._speech, self._peak = t, 0, level
                self._last = t
                self._speech += 1
                if level > self._peak:
                    self._peak = level
                if self._confirmed and self._peak > self._onset_peak + c.reonset_db:
                    # louder than what its onset was found on (the words after a lead-in
                    # noise, or a rising voice): the onset is found again, relative to this
                    self._first, self._onset_peak = self._refined_onset(), self._peak
                if (not self._confirmed and self._speech >= self._min_speech
                        and self._peak >= self._quieter_limit()):
                    self._confirmed, self._confirmed_at = True, self._t
                    self._first, self._onset_peak = self._refined_onset(), self._peak
                    events.append(EndpointEvent("start", self._t, self.active, self._floor))
            elif self._triggered and t - self._last >= self._min_silence:
                events.extend(self._close(self._last + 1 + self._pad))
            if self._confirmed:
                if self._t - self._start() >= self._max_frames:
                    events.extend(self._close(self._t))
            elif self._triggered and self._t - self._first >= self._max_frames:
                self._triggered = False  # sparse blips that never made an utterance
        return events

    def finish(self) -> list[EndpointEvent]:
        """End of the stream: the utterance in progress ends with the audio."""
        if not self._triggered:
            return []
        return self._close(min(self._t, self._last + 1 + self._pad))

    def _refined_onset(self) -> int:
        """The start of the run of frames within ``onset_top_db`` of the candidate's peak
        (and ``margin_db`` over the floor) that leads up to now, walking back until a gap of
        ``onset_gap_ms``; no further back than ``onset_lookback_ms`` before its first speech
        frame. Relative to the peak, so the same onset at any gain."""
        c = self.config
        threshold = max(self._peak - c.onset_top_db, self._floor + c.margin_db)
        low = max(self._previous_end, self._first - self._lookback, 0,
                  self._t - self._history_size)
        onset, gap = None, 0
        for t in range(self._t - 1, low - 1, -1):
            if self._history[t % self._history_size] > threshold:
                onset, gap = t, 0
            elif onset is not None:
                gap += 1
                if gap >= self._onset_gap:
                    break
        if onset is None:
            return self._first
        if onset > self._first:
            # later than the first speech frame: only past a lead-in far quieter than the
            # words (a breath, a noise: quieter_db under the peak), never past a word
            known = self._t - self._history_size
            if self._first < known:
                return self._first
            dropped = self._history[np.arange(self._first, onset) % self._history_size]
            if dropped.max() > self._peak - c.quieter_db:
                return self._first
        return onset

    def _quieter_limit(self) -> float:
        """Loudest frame a candidate needs to become an utterance, dB."""
        c = self.config
        pause = (self._t - self._previous_end) / self.frames_per_second
        return self._previous_peak - c.quieter_db - c.quieter_decay_db_per_s * pause

    def _close(self, end: int) -> list[EndpointEvent]:
        confirmed = self._confirmed
        segment = Segment(self._start(), end, self._speech, self._confirmed_at)
        self._triggered = self._confirmed = False
        if not confirmed:
            return []
        self._previous_end, self._previous_peak = end, self._peak
        return [EndpointEvent("end", self._t, segment, self._floor)]


def speech_segments(levels: np.ndarray, config: EndpointConfig,
                    frames_per_second: float) -> list[Segment]:
    """The utterances of a whole recording: :class:`Endpointer` run over all its levels,
    then ended with the recording."""
    endpointer = Endpointer(config, frames_per_second)
    events = endpointer.push(levels) + endpointer.finish()
    return [e.segment for e in events if e.kind == "end"]


def replay(levels: np.ndarray, config: EndpointConfig, frames_per_second: float,
           hop_frames: int) -> tuple[list[Segment], list[Segment]]:
    """What the streaming recogniser decides over a whole recording: the utterances (its
    finals) and the utterance under way at every hop boundary of the stream (its interims:
    from the onset as the endpointer had it then to that boundary).

    Returns
    -------
    finals : the segments of the ``end`` events, then of :meth:`Endpointer.finish`
    interims : the active segment at each hop boundary (frames ``hop, 2 hop, ...``) where an
        utterance is under way
    """
    endpointer = Endpointer(config, frames_per_second)
    finals: list[Segment] = []
    interims: list[Segment] = []
    for start in range(0, len(levels), hop_frames):
        chunk = levels[start:start + hop_frames]
        finals += [e.segment for e in endpointer.push(chunk) if e.kind == "end"]
        if len(chunk) == hop_frames and endpointer.active is not None:
            interims.append(endpointer.active)
    finals += [e.segment for e in endpointer.finish()]
    return finals, interims
