"""edge.session.Session: what `listen` does around the listener (recording, signals, the
summary, the exit status), for a program that uses the Python API, on real clips."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading

import numpy as np
import pytest
from conftest_edge import CLIPS, EDGE_SER, ravdess_wavs, read_wav16, shipped

from edge.audio import load
from edge.bundle import load_bundle
from edge.errors import EXIT_INTERRUPTED
from edge.live import LiveView
from edge.session import Session
from edge.sources import FileSource


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(shipped())


@pytest.fixture(scope="module")
def wav(ravdess_dir, tmp_path_factory):
    return ravdess_wavs(ravdess_dir, tmp_path_factory.mktemp("wav"), CLIPS[:1])[0]


def test_a_session_gives_what_listen_gives_and_records_what_it_heard(bundle, wav, tmp_path):
    results, said = [], []
    outcome = Session(bundle, FileSource(wav, realtime=False), on_result=results.append,
                      record=tmp_path / "heard.wav", warn=said.append, announce=False).run()
    assert outcome.exit_code == 0 and outcome.failure is None
    assert not outcome.summary.interrupted and outcome.summary.utterances == 1
    assert said == [outcome.summary.line()]
    cli = subprocess.run([str(EDGE_SER), "listen", "--file", str(wav), "--fast", "--json",
                          "--model", str(shipped())], capture_output=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    *listened, last = [json.loads(line) for line in cli.stdout.decode().splitlines()]
    assert [r.to_dict() for r in results] == listened
    assert last["summary"]["utterances"] == outcome.summary.utterances
    heard = load(tmp_path / "heard.wav", 16000)
    np.testing.assert_allclose(heard, read_wav16(wav), atol=1e-6)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0),
                                           (signal.SIGINT, EXIT_INTERRUPTED)])
def test_signals_end_a_session_with_a_summary_and_listens_exit_status(bundle, wav, sig, code):
    """In real time, a signal 1 s in: the utterance under way still gets its final, the
    summary says who stopped it; SIGTERM is a clean stop (0), Ctrl-C 130."""
    results, before = [], signal.getsignal(sig)
    view = LiveView(as_json=True, labels=bundle.metadata.labels, out=io.StringIO())
    session = Session(bundle, FileSource(wav, realtime=True), view=view,
                      on_result=results.append, warn=lambda line: None)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), sig))
    timer.start()
    try:
        outcome = session.run()
    finally:
        timer.cancel()
    assert outcome.exit_code == code
    assert outcome.summary.interrupted and outcome.summary.extra["stopped_by"] == sig.name
    assert 0.9 < outcome.summary.audio_seconds < 2.0
    assert [r.event for r in results].count("final") == 1  # what was heard is finished
    assert signal.getsignal(sig) == before  # the handlers are given back
    assert view.out.getvalue().count('"event": "final"') == 1  # the view saw it too
