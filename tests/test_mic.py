"""``edge-ser listen`` on a real input device: a PulseAudio virtual microphone.

Real RAVDESS clips with pauses between them are played into the null sink with ``paplay``
while ``edge-ser listen --json`` records the default input device through PortAudio/ALSA's
pulse plugin, exactly as on a desktop or a Raspberry Pi with PulseAudio. The labels it prints
must follow the clips: per clip, the majority of its windows gives the label ``edge-ser
predict`` gives the clip's file, and the pauses give ``speech: false``. That is a property of
the live path (device, resampling, ring buffer, streaming front end, gate, smoothing), not of
the model being right: the clips are chosen (deterministically) among those the offline paths
agree on, with three different labels.
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
from conftest_edge import EDGE_SER, shipped
from conftest_pulse import virtual_microphone

from edge.audio import load
from edge.bundle import load_bundle
from train.corpora import read_ravdess

pytestmark = [pytest.mark.mic, pytest.mark.data]

N_CLIPS = 3
GAP_SECONDS = 4.0
"""Pauses in the microphone track. With RAVDESS's silences around the speech (less where
breaths are audible) at least 4 s lie between the sound of two clips, so that every pause
holds a whole window with :data:`ALIGN_MARGIN` to spare on both sides, at any hop phase."""
STEADY_MARGIN = 0.25
"""A candidate clip qualifies when, in the file replays, its label leads the runner-up by at
least this share of its windows with speech (windows that hold only the start or the end of
an utterance often say something else: a clip the model is torn about is no test of the live
path)."""
ALIGN_MARGIN = 0.25
"""Seconds of slack around the sound when deciding that a window is a pause: where the
track starts in the stream is known to a few tens of ms (the results arrive within one
32 ms block of their audio; paplay's sound within ~10 ms of its start)."""


@pytest.fixture(scope="module")
def virtual_mic():
    with virtual_microphone() as mic:
        yield mic


@pytest.fixture(scope="module")
def model() -> Path:
    return shipped()


@pytest.fixture(scope="module")
def demo():
    return load_demo()


def run_edge_ser(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0,
                 ) -> subprocess.CompletedProcess:
    return subprocess.run([str(EDGE_SER), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def replay_outcomes(demo, model: Path, clips: list, rate: int, window: float, tmp: Path, *,
                    lead_seconds: float) -> list:
    """Per-clip outcomes of `edge-ser listen --file TRACK --fast --json` on the clips."""
    track, placed = demo.build_track(clips, rate, lead_seconds=lead_seconds)
    wav = demo.write_wav(tmp / f"track-{lead_seconds}.wav", track, rate)
    run = run_edge_ser("listen", "--file", str(wav), "--fast", "--json", "--model", str(model))
    assert run.returncode == 0, run.stderr
    hops = [h for h in json_lines(run.stdout) if "summary" not in h]
    return demo.outcomes(hops, placed, window)


@pytest.fixture(scope="module")
def chosen_clips(demo, model, ravdess_dir, tmp_path_factory):
    """Three clips of different predicted emotions on which `edge-ser predict` and the file
    replay through `listen` agree, steadily: [(utterance, samples, label)].

    Candidates: 16 clips (two sets of eight emotions from different actors). A candidate
    qualifies when its label from `predict` leads its windows by :data:`STEADY_MARGIN` in
    two file replays whose windows sit half a hop apart (the device shifts the windows by a
    fraction of a hop, and resamples). The steadiest qualifying clips of three different
    labels are chosen."""
    bundle = load_bundle(model)
    rate = bundle.metadata.features.frontend.sample_rate
    window = bundle.metadata.features.window_seconds
    half_hop = bundle.metadata.hop_seconds / 2
    corpus = read_ravdess(ravdess_dir)
    tmp = tmp_path_factory.mktemp("mic-clips")
    candidates = [u for offset in (0, 4) for u in demo.choose_clips(
        corpus.utterances, 8, labels=bundle.metadata.labels, offset=offset)]
    clips = [(u, load(u.path, rate)) for u in dict.fromkeys(candidates)]
    wavs = [demo.write_wav(tmp / f"{u.path.stem}.wav", x, rate) for u, x in clips]
    run = run_edge_ser("predict", "--json", "--model", str(model), *map(str, wavs))
    assert run.returncode == 0, run.stderr
    predicted = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    replays = [replay_outcomes(demo, model, clips, rate, window, tmp, lead_seconds=lead)
               for lead in (2.0, 2.0 + half_hop)]
    ranked = []
    for i, ((u, x), p) in enumerate(zip(clips, predicted)):
        label, leads = p["label"], []
        for outcomes in replays:
            o = outcomes[i]
            if label is None or o.predicted != label or not o.speech_windows:
                break
            runner_up = max([v for k, v in o.votes.items() if k != label], default=0)
            leads.append((o.votes[label] - runner_up) / o.speech_windows)
        else:
            if min(leads) >= STEADY_MARGIN:
                ranked.append((min(leads), p["confidence"], i, u, x, label))
    chosen: list[tuple] = []
    for *_, u, x, label in sorted(ranked, key=lambda r: (-r[0], -r[1], r[2])):
        if label not in {c[2] for c in chosen} and len(chosen) < N_CLIPS:
            chosen.append((u, x, label))
    if len(chosen) < N_CLIPS:
        pytest.fail(f"fewer than {N_CLIPS} clips with different labels on which predict and"
                    f" the file replays agree steadily ({[c[2] for c in chosen]}); is the"
                    f" model {model} trained?")
    return chosen


class ListenProcess:
    """`edge-ser listen --json` on the default device, its lines stamped with arrival time."""

    def __init__(self, model: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([str(EDGE_SER), "listen", "--json", "--model", str(model)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
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

    def interrupt(self, timeout: float = 20.0) -> tuple[int, str]:
        """Ctrl-C; the exit status and stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def stream_start(self) -> float:
        """Wall-clock time (monotonic) of the stream's sample 0: a result for a window
        ending at ``t`` cannot arrive before ``start + t``, and arrives a few ms after."""
        return min(arrived - hop["t"] for arrived, hop in self.lines if "t" in hop)


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


def test_labels_follow_the_clips_through_the_virtual_microphone(
        virtual_mic, model, demo, chosen_clips, tmp_path):
    bundle = load_bundle(model)
    rate = bundle.metadata.features.frontend.sample_rate
    window = bundle.metadata.features.window_seconds
    track, placed = demo.build_track([(u, x) for u, x, _ in chosen_clips], rate,
                                     gap_seconds=GAP_SECONDS)
    wav = demo.write_wav(tmp_path / "mic-track.wav", track, rate)

    listen = ListenProcess(model, virtual_mic.env)
    try:
        assert listen.first.wait(timeout=30), "listen printed nothing within 30 s"
        played_at = time.monotonic()
        underruns = virtual_mic.play(wav)
        time.sleep(1.0)
    finally:
        code, stderr = listen.interrupt()
    assert code == 130, stderr
    assert "Traceback" not in stderr
    objects = [obj for _, obj in listen.lines]
    assert "summary" in objects[-1], "no summary object after Ctrl-C"
    summary = objects[-1]["summary"]
    assert summary["interrupted"] is True
    hops = [obj for obj in objects if "summary" not in obj]

    shift = played_at - listen.stream_start()  # where the track starts in the stream
    print(f"\ntrack starts {shift:.3f} s into the stream; {len(hops)} windows;"
          f" {summary['overruns']} overruns; {underruns} playback underruns;"
          f" first result {summary['first_result_seconds']} s")
    print("stream:", " ".join(f"{h['t']:.1f}:{h['label'] or '-'}" for h in hops))
    results = demo.outcomes(hops, placed, window, shift=shift)
    expected = [label for _, _, label in chosen_clips]
    got = [r.predicted for r in results]
    for r in results:
        print(f"  {r.placed.utterance.path.name}: true {r.placed.utterance.label},"
              f" votes {r.votes} over {r.windows} windows")
    assert all(r.speech_windows >= 2 for r in results), \
        [(r.windows, r.speech_windows) for r in results]
    assert got == expected, f"per-clip majority {got} != predict's labels {expected}"

    pauses = demo.pause_hops(hops, placed, window, shift=shift, margin=ALIGN_MARGIN)
    covered = {demo.pause_of_window(h["t"] - shift, window, placed, margin=ALIGN_MARGIN)
               for h in pauses}
    print(f"{len(pauses)} windows in the {len(covered)} pauses")
    assert len(covered) == N_CLIPS - 1, "a pause between clips without a window inside it"
    assert [h["speech"] for h in pauses] == [False] * len(pauses), \
        [(h["t"], h["speech"], h.get("speech_seconds")) for h in pauses]
    assert all(h["label"] is None for h in pauses)


def test_demo_listens_live_to_the_microphone(virtual_mic, model, demo, chosen_clips, tmp_path):
    """`python tools/demo.py --mic` is `edge-ser listen` on the default device: what is
    played shows up as lines, Ctrl-C ends it with the summary and 130."""
    bundle = load_bundle(model)
    rate = bundle.metadata.features.frontend.sample_rate
    track, _ = demo.build_track([chosen_clips[0][:2]], rate, lead_seconds=1.0)
    wav = demo.write_wav(tmp_path / "one-clip.wav", track, rate)
    proc = subprocess.Popen([sys.executable, str(DEMO), "--mic", "--model", str(model)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=virtual_mic.env)
    try:
        time.sleep(3.0)  # start-up; the first result needs a whole window anyway
        virtual_mic.play(wav)
        time.sleep(1.0)
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
    lines = out.splitlines()
    assert any("(no speech)" in line for line in lines)
    assert any(chosen_clips[0][2] in line for line in lines), out
