"""What listen shows: the live terminal line, plain lines on change, JSON Lines, the summary."""

from __future__ import annotations

import io
import json

from edge.live import LiveView, Summary
from edge.recognizer import Result

LABELS = ("neutral", "angry", "sad")


def result(t: float, label: str | None, p: float = 0.7, *, changed: bool = False,
           uncertain: bool = False) -> Result:
    probs = {k: (p if k == label else (1 - p) / 2) for k in LABELS}
    return Result(t=t, label=label, confidence=None if label is None else p, probs=probs,
                  speech=label is not None, uncertain=uncertain, changed=changed,
                  window_label=label or "neutral", window_probs=probs, scores=[1, 2, 3],
                  speech_seconds=1.0 if label else 0.0, noise_floor_db=-60.0)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_line_is_rewritten_and_kept_on_each_change():
    out = Terminal()
    view = LiveView(as_json=False, labels=LABELS, out=out)
    for r in (result(3.0, "angry", changed=True), result(3.5, "angry", 0.8),
              result(4.0, "sad", 0.6, changed=True), result(4.5, None)):
        view.show(r)
    view.close()
    text = out.getvalue()
    kept = text.split("\n")
    assert len(kept) == 4 and kept[-1] == ""  # a kept line per state (angry, sad, no speech)
    assert kept[0].split("\r")[-1].startswith("    3.5 s  angry") and "then" in kept[0]
    assert kept[1].split("\r")[-1].startswith("    4.0 s  sad")
    assert "(no speech)" in kept[2].split("\r")[-1]
    assert "0.80 ########--" in kept[0]


def test_plain_output_prints_only_changes():
    out = io.StringIO()
    view = LiveView(as_json=False, labels=LABELS, out=out)
    for r in (result(3.0, "angry", changed=True), result(3.5, "angry"),
              result(4.0, None), result(4.5, "sad", 0.3, changed=True, uncertain=True)):
        view.show(r)
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["angry", "(no", "sad?"]


def test_json_lines_carry_the_contract_keys():
    out = io.StringIO()
    LiveView(as_json=True, labels=LABELS, out=out).show(result(3.0, "angry", changed=True))
    (obj,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {"t", "label", "confidence", "probs", "speech", "uncertain", "scores"} <= set(obj)
    assert obj["label"] == "angry" and obj["scores"] == [1, 2, 3]


def test_summary_line():
    s = Summary(audio_seconds=12.04, wall_seconds=12.1, windows=19, speech_windows=14,
                uncertain_windows=2, shares={"angry": 0.5, "sad": 0.25, "neutral": 0.25},
                overruns=1, dropped_seconds=0.03, first_result_seconds=3.2, hop_ms_mean=1.1,
                hop_ms_max=4.0, interrupted=True, source="default")
    assert s.line() == ("stopped: 12.0 s of audio, 19 windows (14 with speech, 2 uncertain);"
                        " angry 50%, sad 25%, neutral 25%; 1 overruns")
    assert s.to_dict()["shares"] == {"angry": 0.5, "sad": 0.25, "neutral": 0.25}
