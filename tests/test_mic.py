"""``edge-ser listen`` on a real input device: a PulseAudio virtual microphone.

Real clips with pauses between them are played into the null sink with ``paplay`` while
``edge-ser listen --json --record CAP.wav`` records the default input device through
PortAudio/ALSA's pulse plugin, exactly as on a desktop or a Raspberry Pi with PulseAudio.
The clips are of speakers the model under test never heard (a cross-validation fold's bundle
of the shipped recipe, tests/models/; its metadata names whom it was trained on), taken in a
fixed order with no regard to whether the model gets them right: the
assertions are about the live path, not the model. What ``listen`` reported live must be,
utterance by utterance, exactly what ``edge-ser predict`` says of the audio it heard (the
``--record`` file), every clip must get a final result, and the pauses must say no_speech.
Then the microphone is taken away mid-stream: one line, the summary, exit status 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest_demo import DEMO, load_demo
from conftest_edge import EDGE_SER, fold_bundle
from conftest_pulse import virtual_microphone

from edge.audio import load
from edge.bundle import load_bundle
from train.corpora import read_corpus

pytestmark = [pytest.mark.mic, pytest.mark.data]

N_CLIPS = 4
GAP_SECONDS = 3.0
PAUSE_MARGIN = 0.7
"""Seconds after a clip's speech before results count as over the pause (the endpointer's
hangover is 0.4 s; where the track starts in the stream is known to a few tens of ms)."""
UTTERANCE_KEYS = ("utterance", "start", "end", "label", "confidence", "uncertain", "probs",
                  "scores", "speech_seconds")


@pytest.fixture(scope="module")
def virtual_mic():
    with virtual_microphone() as mic:
        yield mic


@pytest.fixture(scope="module")
def model() -> Path:
    return fold_bundle("int8")


@pytest.fixture(scope="module")
def demo():
    return load_demo()


def run_edge_ser(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0,
                 ) -> subprocess.CompletedProcess:
    return subprocess.run([str(EDGE_SER), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def unseen_clips(model, ravdess_dir):
    """Clips of speakers the model never heard: RAVDESS and the shared corpora beside it,
    every speaker not in the model's training or validation speakers, one clip of a
    different emotion each, in a fixed order (no selection by what the model says)."""
    demo = load_demo()
    meta = load_bundle(model).metadata
    trained = set(meta.training.get("train_speakers") or []) | set(
        meta.training.get("val_speakers") or [])
    utterances = [u for d in demo.data_dirs((ravdess_dir,))
                  + [ravdess_dir.parent / "savee-16k"] if d.is_dir()
                  for u in read_corpus(d).utterances]
    unseen = sorted({u.speaker for u in utterances} - trained)
    if not trained or not unseen:
        pytest.fail(f"no speakers outside {model.name}'s training speakers in the data"
                    f" (trained on {len(trained)}): the microphone test needs voices the"
                    " model never heard")
    chosen = demo.choose_clips(utterances, N_CLIPS, labels=meta.labels,
                               prefer_speakers=unseen)
    assert len(chosen) == N_CLIPS and all(u.speaker in unseen for u in chosen)
    rate = meta.features.frontend.sample_rate
    return [(u, load(u.path, rate)) for u in chosen]


class ListenProcess:
    """`edge-ser listen --json` on the default device, its lines stamped with arrival time."""

    def __init__(self, model: Path, env: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen(
            [str(EDGE_SER), "listen", "--json", "--model", str(model), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[tuple[float, dict]] = []
        self.first = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.append((time.monotonic(), json.loads(line)))
                self.first.set()

    def end(self, sig: int | None = signal.SIGINT, timeout: float = 20.0) -> tuple[int, str]:
        """Send ``sig`` (None: just wait); the exit status and stderr."""
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def stream_start(self) -> float:
        """Wall-clock time (monotonic) of the stream's sample 0: a result decided at ``t``
        cannot arrive before ``start + t``, and arrives a few ms after."""
        return min(arrived - obj["t"] for arrived, obj in self.lines if "t" in obj)


def test_devices_lists_the_virtual_microphone(virtual_mic):
    run = run_edge_ser("devices", "--json", env=virtual_mic.env)
    assert run.returncode == 0, run.stderr
    devices = json_lines(run.stdout)
    names = {d["name"] for d in devices}
    assert names & {"pulse", "default"}, f"no pulse/default ALSA device in {names}"
    default = [d for d in devices if d["default"]]
    assert len(default) == 1 and 16000 in default[0]["rates"]


RECORD = """
import json, subprocess, sys, time
import numpy as np, sounddevice as sd
rate, blocks, stamps = 16000, [], []
def callback(indata, frames, t, status):
    blocks.append(indata[:, 0].copy())
    stamps.append(time.monotonic())
with sd.InputStream(samplerate=rate, channels=1, dtype="float32", callback=callback,
                    blocksize=512):
    time.sleep(1.0)
    played = time.monotonic()
    subprocess.run(["paplay", "--latency-msec=500", sys.argv[1]], check=True)
    time.sleep(0.5)
y = np.concatenate(blocks)
np.save(sys.argv[2], y)
print(json.dumps({"played": played - (stamps[-1] - y.size / rate),
                  "first_block": stamps[0] - played + 1.0}))
"""


def test_virtual_microphone_records_what_is_played(virtual_mic, ravdess_dir, demo, tmp_path):
    """The device itself, without edge-ser: sounddevice records the clip paplay plays, in
    time (the keeper parec at work) and intact (soxr resampling, no dropouts)."""
    clip = ravdess_dir / "Actor_01" / "03-01-05-02-01-01-01.flac"
    x = load(clip, 16000)
    wav = demo.write_wav(tmp_path / "clip.wav", x, 16000)
    run = subprocess.run([sys.executable, "-c", RECORD, str(wav), str(tmp_path / "rec.npy")],
                         capture_output=True, text=True, env=virtual_mic.env, timeout=60)
    assert run.returncode == 0, run.stderr
    timing = json.loads(run.stdout)
    y = np.load(tmp_path / "rec.npy")
    n = 1 << int(np.ceil(np.log2(y.size + x.size)))
    lag = int(np.argmax(np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)[:y.size]))
    latency = lag / 16000 - timing["played"]
    # the clip piece by piece (0.25 s) where it has speech: each found where it belongs
    piece, found, total = 4000, 0, 0
    for start in range(0, x.size - piece, piece):
        ref = x[start:start + piece]
        if np.sqrt(np.mean(ref**2)) < 0.01 or lag + start + piece > y.size:
            continue
        total += 1
        got = y[lag + start:lag + start + piece]
        found += np.corrcoef(ref, got)[0, 1] > 0.9
    print(f"\nfirst block {timing['first_block']:.3f} s after the stream started;"
          f" clip heard {latency * 1000:.0f} ms after paplay started;"
          f" {found}/{total} speech pieces match")
    assert timing["first_block"] < 0.5, "the recording started late (is the keeper running?)"
    assert -0.05 < latency < 0.5
    assert total >= 8 and found >= 0.75 * total


def test_no_input_device_is_one_line_and_exit_2(model, tmp_path):
    """No sound server and no sound card: a clear line, exit 2, no traceback, no output."""
    cards = Path("/proc/asound/cards")
    if cards.is_file() and "no soundcards" not in cards.read_text():
        pytest.skip("this machine has a sound card: ALSA would find its microphone")
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket",
           "XDG_RUNTIME_DIR": str(tmp_path), "PULSE_RUNTIME_PATH": str(tmp_path)}
    run = run_edge_ser("listen", "--json", "--model", str(model), env=env, timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-ser: "), run.stderr
    assert "Traceback" not in run.stderr


def test_unknown_device_is_bad_input(virtual_mic, model):
    run = run_edge_ser("listen", "--json", "--model", str(model), "--device", "no-such-mic",
                       env=virtual_mic.env, timeout=60)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-mic" in lines[0], run.stderr


def test_live_equals_offline_on_unseen_voices_through_the_virtual_microphone(
        virtual_mic, model, demo, unseen_clips, tmp_path):
    rate = load_bundle(model).metadata.features.frontend.sample_rate
    track, placed = demo.build_track(unseen_clips, rate, gap_seconds=GAP_SECONDS)
    wav = demo.write_wav(tmp_path / "mic-track.wav", track, rate)
    heard = tmp_path / "heard.wav"

    listen = ListenProcess(model, virtual_mic.env, "--record", str(heard))
    try:
        assert listen.first.wait(timeout=30), "listen printed nothing within 30 s"
        played_at = time.monotonic()
        underruns = virtual_mic.play(wav)
        time.sleep(1.5)
    finally:
        code, stderr = listen.end(signal.SIGINT)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    objects = [obj for _, obj in listen.lines]
    assert "summary" in objects[-1], "no summary object after Ctrl-C"
    summary = objects[-1]["summary"]
    assert summary["interrupted"] is True and summary["overruns"] == 0
    results = [obj for obj in objects if "summary" not in obj]
    finals = [r for r in results if r["event"] == "final"]

    # live == offline on the same audio: the recording of what listen heard, predicted
    run = run_edge_ser("predict", str(heard), "--json", "--model", str(model))
    assert run.returncode == 0, run.stderr
    (offline,) = json_lines(run.stdout)
    assert [{k: f[k] for k in UTTERANCE_KEYS} for f in finals] == offline["utterances"]

    shift = played_at - listen.stream_start()  # where the track starts in the stream
    per_clip = demo.outcomes(results, placed, shift=shift)
    print(f"\ntrack starts {shift:.3f} s into the stream; {len(finals)} utterances;"
          f" {underruns} playback underruns; first result {summary['first_result_seconds']} s")
    for r in per_clip:
        print(f"  {r.placed.utterance.speaker} {r.placed.utterance.path.name}: true"
              f" {r.placed.utterance.label}, heard {r.predicted} ({r.utterances} utterances)")
    assert all(r.utterances >= 1 for r in per_clip), "a clip without a final result"
    pauses = demo.pause_results(results, placed, shift=shift, margin=PAUSE_MARGIN)
    assert len(pauses) >= 2 * (N_CLIPS - 1)
    silent = sum(r["event"] == "no_speech" for r in pauses)
    assert silent >= 0.95 * len(pauses), [(r["t"], r["event"]) for r in pauses]


def test_the_microphone_going_away_ends_listen_with_one_line_and_the_summary(model):
    """A daemon of its own, its null sink unloaded while listen records it: listen notices
    within a few seconds, prints one line naming the device and the summary, exits 1."""
    with virtual_microphone() as mic:
        listen = ListenProcess(model, mic.env)
        try:
            assert listen.first.wait(timeout=30), "listen printed nothing within 30 s"
            time.sleep(1.0)
            gone = subprocess.run(["pactl", "unload-module", "module-null-sink"], env=mic.env,
                                  capture_output=True, text=True, timeout=20)
            assert gone.returncode == 0, gone.stderr
            removed = time.monotonic()
            code, stderr = listen.end(None, timeout=30)
            took = time.monotonic() - removed
        finally:
            if listen.proc.poll() is None:
                listen.proc.kill()
    print(f"\nlisten ended {took:.1f} s after the device went away: {stderr.strip()}")
    assert code == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and "input device" in lines[0] and lines[1].startswith(
        "edge-ser: done: ")
    assert "summary" in listen.lines[-1][1]
    assert took < 10


def test_demo_listens_live_to_the_microphone(virtual_mic, model, demo, unseen_clips, tmp_path):
    """`python tools/demo.py --mic` is `edge-ser listen` on the default device: what is
    played shows up as a kept line, Ctrl-C ends it with the summary and 130."""
    rate = load_bundle(model).metadata.features.frontend.sample_rate
    track, _ = demo.build_track(unseen_clips[:1], rate, lead_seconds=1.0)
    wav = demo.write_wav(tmp_path / "one-clip.wav", track, rate)
    proc = subprocess.Popen([sys.executable, str(DEMO), "--mic", "--model", str(model)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=virtual_mic.env)
    try:
        time.sleep(3.0)
        virtual_mic.play(wav)
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert "demo: listening to the default microphone" in err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("edge-ser: stopped: ")
    kept = [line for line in out.splitlines() if " s  " in line]
    assert kept and any(label in kept[-1] for label in load_bundle(model).metadata.labels)
