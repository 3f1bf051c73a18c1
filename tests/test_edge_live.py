"""What listen shows: a live line for the utterance under way and a kept line per finished
one on a terminal, only the finished ones on a pipe, JSON Lines, the summary."""

from __future__ import annotations

import io
import json

from edge.live import LiveView, Summary
from edge.recognizer import Result

LABELS = ("neutral", "angry", "sad")


def result(event: str, t: float, label: str | None = None, p: float = 0.7, *,
           start: float = 1.0, utterance: int = 0) -> Result:
    if event == "no_speech":
        return Result("no_speech", t, None, None, None, None, None, {}, False, None, 0.0, -60.0)
    probs = {k: (p if k == label else (1 - p) / 2) for k in LABELS}
    return Result(event, t, utterance, start, t - (0.3 if event == "final" else 0.0), label, p,
                  probs, p < 0.5, [[1, 2, 3]], 1.2, -60.0)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


SESSION = [result("no_speech", 0.5), result("interim", 1.5, "sad", 0.4),
           result("interim", 2.0, "angry"), result("final", 2.4, "angry", 0.8),
           result("no_speech", 2.5), result("interim", 4.0, "sad", 0.6, start=3.2, utterance=1),
           result("final", 4.6, "sad", 0.45, start=3.2, utterance=1)]


def test_terminal_shows_the_interim_live_and_keeps_a_line_per_utterance():
    out = Terminal()
    view = LiveView(as_json=False, labels=LABELS, out=out)
    for r in SESSION:
        view.show(r)
    view.close()
    kept = [line.split("\r")[-1] for line in out.getvalue().split("\n")]
    assert kept[-1] == ""
    finals = [k for k in kept if k and "(speaking)" not in k and "no speech" not in k]
    assert len(finals) == 2
    assert finals[0].startswith("    1.0-   2.1 s  angry") and "0.80 ########--" in finals[0]
    assert finals[1].startswith("    3.2-   4.3 s  sad?") and "then" in finals[1]
    assert "(speaking)" in out.getvalue()  # the interims were drawn live


def test_plain_output_prints_only_finished_utterances():
    out = io.StringIO()
    view = LiveView(as_json=False, labels=LABELS, out=out)
    for r in SESSION:
        view.show(r)
    lines = out.getvalue().splitlines()
    assert [line.split()[3] for line in lines] == ["angry", "sad?"]


def test_json_lines_tell_finals_from_interims_by_one_field():
    out = io.StringIO()
    view = LiveView(as_json=True, labels=LABELS, out=out)
    for r in SESSION:
        view.show(r)
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["event"] for o in objs] == [r.event for r in SESSION]
    final = [o for o in objs if o["event"] == "final"][0]
    assert {"t", "utterance", "start", "end", "label", "confidence", "probs", "speech",
            "uncertain", "scores", "speech_seconds"} <= set(final)
    assert final["label"] == "angry" and final["scores"] == [[1, 2, 3]] and final["speech"]
    pause = objs[0]
    assert pause["label"] is None and not pause["speech"] and pause["probs"] == {}


def test_summary_line():
    s = Summary(audio_seconds=12.04, wall_seconds=12.1, utterances=3, uncertain_utterances=1,
                speech_seconds=5.46, hops=24, no_speech_hops=12,
                shares={"angry": 0.5, "sad": 0.25, "neutral": 0.25}, overruns=1,
                dropped_seconds=0.03, first_result_seconds=0.6, hop_ms_mean=1.1,
                hop_ms_max=4.0, interrupted=True, source="default")
    assert s.line() == ("stopped: 12.0 s of audio, 3 utterances (5.5 s of speech, 1 uncertain);"
                        " angry 50%, sad 25%, neutral 25%; 1 overruns")
    d = s.to_dict()
    assert d["shares"] == {"angry": 0.5, "sad": 0.25, "neutral": 0.25} and d["utterances"] == 3
