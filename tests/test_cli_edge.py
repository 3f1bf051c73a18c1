"""edge-ser end to end: the installed console script in a subprocess, on real audio (RAVDESS
clips converted to WAV in a temporary directory), with the shipped bundles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest_edge import CLIPS, EDGE_SER, foreign_tflite, ravdess_wavs, shipped, write_wav

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
RESULT_KEYS = {"event", "t", "utterance", "start", "end", "label", "confidence", "probs",
               "speech", "uncertain", "scores", "speech_seconds", "noise_floor_db"}
PREDICT_KEYS = {"file", "label", "confidence", "probs", "speech", "duration", "utterances"}
UTTERANCE_KEYS = {"utterance", "start", "end", "label", "confidence", "uncertain", "probs",
                  "scores", "speech_seconds"}


def edge_ser(*args: str, stdin: bytes | None = None, timeout: float = 60
             ) -> subprocess.CompletedProcess:
    return subprocess.run([str(EDGE_SER), *args], input=stdin, capture_output=True,
                          timeout=timeout, env=ENV)


def lines(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode().splitlines()]


@pytest.fixture(scope="module")
def model():
    return str(shipped())


@pytest.fixture(scope="module")
def wavs(ravdess_dir, tmp_path_factory):
    return ravdess_wavs(ravdess_dir, tmp_path_factory.mktemp("wav"), CLIPS)


@pytest.fixture(scope="module")
def bad(tmp_path_factory, model):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.wav").write_bytes(b"")
    (d / "text.wav").write_text("this is not audio\n")
    write_wav(d / "short.wav", np.zeros(100), 16000)
    nan = np.full(16000, np.nan, dtype="<f4").tobytes()
    (d / "nan.wav").write_bytes(
        b"RIFF" + (36 + len(nan)).to_bytes(4, "little") + b"WAVEfmt "
        + (16).to_bytes(4, "little") + (3).to_bytes(2, "little") + (1).to_bytes(2, "little")
        + (16000).to_bytes(4, "little") + (64000).to_bytes(4, "little")
        + (4).to_bytes(2, "little") + (32).to_bytes(2, "little")
        + b"data" + len(nan).to_bytes(4, "little") + nan)
    data = Path(model).read_bytes()
    (d / "corrupt.tflite").write_bytes(data[: len(data) // 3])
    (d / "foreign.tflite").write_bytes(foreign_tflite(data))
    (d / "text.tflite").write_text("not a model")
    return d


def test_predict_json_on_real_clips(model, wavs):
    r = edge_ser("predict", *map(str, wavs), "--model", model, "--json")
    assert r.returncode == 0, r.stderr
    records = lines(r.stdout)
    assert [rec["file"] for rec in records] == [str(w) for w in wavs]
    for rec in records:
        assert rec.keys() >= PREDICT_KEYS
        assert rec["speech"] and rec["label"] in rec["probs"]
        assert rec["confidence"] == max(rec["probs"].values())
        assert sum(rec["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert rec["utterances"] and rec["utterances"][0].keys() == UTTERANCE_KEYS
        for u in rec["utterances"]:
            assert all(len(w) == len(rec["probs"]) for w in u["scores"])
            assert all(-128 <= v <= 127 and isinstance(v, int) for w in u["scores"] for v in w)
            assert 0 <= u["start"] < u["end"] <= rec["duration"]


def test_predict_keeps_going_past_bad_files(model, wavs, bad):
    files = [str(wavs[0]), str(bad / "text.wav"), str(bad / "missing.wav"), str(wavs[1])]
    r = edge_ser("predict", *files, "--model", model, "--json")
    assert r.returncode == 2
    assert [rec["file"] for rec in lines(r.stdout)] == [files[0], files[3]]
    err = r.stderr.decode().splitlines()
    assert err[0].startswith(f"edge-ser: {files[1]}: ")
    assert err[1] == f"edge-ser: {files[2]}: no such file"
    assert "2 of 4 files failed" in err[2]


@pytest.mark.parametrize("name, reason", [
    ("empty.wav", "empty"), ("text.wav", "not"), ("short.wav", "too short"),
    ("nan.wav", "NaN"), ("missing.wav", "no such file"),
])
def test_bad_audio_is_one_line_and_exit_2(bad, model, name, reason):
    for command in (["predict", str(bad / name)], ["listen", "--file", str(bad / name)]):
        r = edge_ser(*command, "--model", model, "--json")
        err = r.stderr.decode().splitlines()
        assert r.returncode == 2, (command, r.stderr)
        assert r.stdout == b""
        assert len(err) == 1 and err[0].startswith("edge-ser: ") and reason in err[0], err


@pytest.mark.parametrize("name, reason", [
    ("corrupt.tflite", "corrupt"), ("foreign.tflite", "without edge-ser metadata"),
    ("text.tflite", "not a TFLite model"), ("missing.tflite", "no such model file"),
])
def test_bad_model_is_one_line_and_exit_2(bad, wavs, name, reason):
    path = str(bad / name)
    for command in (["predict", str(wavs[0]), "--model", path],
                    ["listen", "--file", str(wavs[0]), "--model", path], ["info", path]):
        r = edge_ser(*command)
        err = r.stderr.decode().splitlines()
        assert r.returncode == 2, (command, r.stderr)
        assert len(err) == 1 and reason in err[0] and "Traceback" not in err[0], err


def test_unknown_shipped_name_lists_the_shipped_ones(wavs):
    r = edge_ser("predict", str(wavs[0]), "--model", "no-such-model")
    assert r.returncode == 2
    assert b"no such model file or shipped model" in r.stderr


def test_listen_file_fast_json(model, wavs):
    r = edge_ser("listen", "--file", str(wavs[0]), "--fast", "--json", "--model", model)
    assert r.returncode == 0, r.stderr
    records = lines(r.stdout)
    *results, last = records
    assert results and set(last) == {"summary"}
    for rec in results:
        assert rec.keys() == RESULT_KEYS
        assert (rec["label"] is None) == (rec["event"] == "no_speech") == (not rec["speech"])
    assert [h["t"] for h in results] == sorted(h["t"] for h in results)
    assert [h["event"] for h in results].count("final") == 1
    summary = last["summary"]
    assert summary["utterances"] == 1 and summary["overruns"] == 0
    assert summary["hops"] == sum(h["event"] != "final" for h in results)
    assert not summary["interrupted"]
    assert r.stderr.decode().strip().startswith("edge-ser: done:")


def test_listen_equals_predict_per_utterance(model, wavs, tmp_path):
    """A recording of several utterances with pauses and a quiet room: `listen --file --fast
    --json` gives per utterance exactly the span, label and int8 scores `predict --json` gives
    for it, whatever the recording's rate."""
    from conftest_edge import read_wav16

    from edge.audio import resample

    rng = np.random.default_rng(3)
    parts = []
    for w in wavs:
        parts += [np.zeros(int(rng.uniform(1.5, 3.0) * 16000)), read_wav16(w)]
    x = np.concatenate(parts + [np.zeros(16000)])
    x = (x + rng.standard_normal(x.size) * 10 ** (-60 / 20)).astype(np.float32)
    for rate in (16000, 44100):
        y = x if rate == 16000 else resample(x, 16000, rate)
        rec = write_wav(tmp_path / f"rec{rate}.wav", y, rate)
        live = edge_ser("listen", "--file", str(rec), "--fast", "--json", "--model", model)
        assert live.returncode == 0, live.stderr
        finals = [d for d in lines(live.stdout) if d.get("event") == "final"]
        (predicted,) = lines(edge_ser("predict", str(rec), "--json", "--model", model).stdout)
        assert len(finals) == len(predicted["utterances"]) == len(wavs)
        for f, u in zip(finals, predicted["utterances"]):
            assert {k: f[k] for k in UTTERANCE_KEYS} == u


def test_listen_stdin_raw_equals_file_replay(model, wavs):
    """The same audio through a pipe (cut into odd-sized pieces by the OS) and through a
    file replay: identical per-hop results."""
    from conftest_edge import read_wav16

    x = np.concatenate([read_wav16(w) for w in wavs[:2]])
    pcm = np.round(x * 32768).astype("<i2").tobytes()
    piped = edge_ser("listen", "--stdin-raw", "16000", "--json", "--model", model, stdin=pcm)
    assert piped.returncode == 0, piped.stderr
    joined = write_wav(wavs[0].parent / "joined.wav", x, 16000)
    replay = edge_ser("listen", "--file", str(joined), "--fast", "--json", "--model", model)
    results = [rec for rec in lines(piped.stdout) if "summary" not in rec]
    assert len(results) >= 5 and any(r["event"] == "final" for r in results)
    assert results == [rec for rec in lines(replay.stdout) if "summary" not in rec]


def test_listen_replays_48k_audio_through_the_resampler(model, wavs, tmp_path):
    from conftest_edge import read_wav16

    from edge.audio import resample

    x48 = resample(read_wav16(wavs[1]), 16000, 48000)
    path = write_wav(tmp_path / "48k.wav", x48, 48000)
    r = edge_ser("listen", "--file", str(path), "--fast", "--json", "--model", model)
    assert r.returncode == 0, r.stderr
    results = [rec for rec in lines(r.stdout) if "summary" not in rec]
    assert any(h["event"] == "final" for h in results)


def test_ctrl_c_ends_with_a_summary_and_130(model, wavs):
    """Real-time replay, interrupted after the first result."""
    proc = subprocess.Popen([str(EDGE_SER), "listen", "--file", str(wavs[2]), "--json",
                             "--model", model], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV)
    try:
        first = json.loads(proc.stdout.readline())
        assert first.keys() == RESULT_KEYS
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    summary = json.loads(out.decode().splitlines()[-1])["summary"]
    assert summary["interrupted"] and summary["hops"] >= 1
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("edge-ser: stopped:") and "overruns" in last


def test_sigterm_ends_like_ctrl_c_but_as_a_clean_stop(model, wavs):
    """How systemd stops the README's unit: the summary line, the summary object, exit 0."""
    proc = subprocess.Popen([str(EDGE_SER), "listen", "--file", str(wavs[2]), "--json",
                             "--model", model], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV)
    try:
        json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.decode().splitlines()[-1])["summary"]
    assert summary["interrupted"] and summary["stopped_by"] == "SIGTERM"
    assert err.decode().strip().splitlines()[-1].startswith("edge-ser: stopped:")


def test_sigterm_while_stdin_is_open_and_idle(model, wavs):
    """`parec ... | edge-ser listen --stdin-raw` stopped by systemd: the reader is not stuck in
    a read of the idle pipe; exit 0 with the summary."""
    from conftest_edge import read_wav16

    pcm = np.round(read_wav16(wavs[0]) * 32768).astype("<i2").tobytes()
    proc = subprocess.Popen([str(EDGE_SER), "listen", "--stdin-raw", "16000", "--json",
                             "--model", model], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    try:
        proc.stdin.write(pcm)
        proc.stdin.flush()
        json.loads(proc.stdout.readline())  # it is processing; stdin stays open, idle
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
    assert code == 0, err
    assert json.loads(out.decode().splitlines()[-1])["summary"]["stopped_by"] == "SIGTERM"
    assert b"Fatal" not in err and b"Traceback" not in err


def test_a_closed_pipe_ends_quietly_with_the_status_a_shell_expects(model, wavs):
    """`edge-ser listen --json ... | head -1`: 141 (128 + SIGPIPE), nothing on stderr."""
    shell = (f"{EDGE_SER} listen --file {wavs[0]} --json --model {model} | head -1 >/dev/null;"
             " echo ${PIPESTATUS[0]}")
    r = subprocess.run(["bash", "-c", shell], capture_output=True, env=ENV, timeout=60)
    assert r.stdout.decode().strip() == "141", r.stderr
    assert r.stderr == b""
    shell = (f"{EDGE_SER} predict {wavs[0]} {wavs[1]} {wavs[2]} --json --model {model}"
             " | head -c 10 >/dev/null; echo ${PIPESTATUS[0]}")
    r = subprocess.run(["bash", "-c", shell], capture_output=True, env=ENV, timeout=60)
    assert r.stdout.decode().strip() in ("0", "141") and b"Traceback" not in r.stderr


def test_no_microphone_is_one_line_suggesting_file_and_devices(model):
    r = edge_ser("listen", "--device", "no-such-device-xyz", "--model", model)
    assert r.returncode == 2
    err = r.stderr.decode().splitlines()
    assert len(err) == 1 and "--file" in err[0] and "edge-ser devices" in err[0]


def test_no_sounddevice_installed_names_the_pip_install(model):
    code = ("import sys; sys.modules['sounddevice'] = None; from edge.cli import main;"
            f" sys.argv = ['edge-ser', 'listen', '--model', {model!r}]; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=ENV, timeout=60)
    assert r.returncode == 2
    assert b"pip install sounddevice" in r.stderr and b"--file" in r.stderr


def test_float32_bundle_works_without_quantisation(wavs):
    r = edge_ser("predict", str(wavs[0]), "--model", str(shipped("cnn-float32")), "--json")
    assert r.returncode == 0, r.stderr
    (rec,) = lines(r.stdout)
    assert rec["speech"] and all(u["scores"] is None for u in rec["utterances"])
    r = edge_ser("listen", "--file", str(wavs[0]), "--fast", "--json", "--model",
                 str(shipped("cnn-float32")))
    assert r.returncode == 0
    assert all(d["scores"] is None for d in lines(r.stdout)[:-1])


def test_info_human_and_json(model):
    r = edge_ser("info", model)
    assert r.returncode == 0, r.stderr
    assert b"labels" in r.stdout and b"(297, 40, 2)" in r.stdout and b"utterances" in r.stdout
    (meta,) = lines(edge_ser("info", model, "--json").stdout)
    assert meta["format"] == "edge-ser-bundle" and meta["path"] == model
    assert meta["model"]["quantization"] == "int8"


def test_default_model_is_the_shipped_default(wavs):
    """Without --model the shipped default (edge/models/DEFAULT) is used."""
    from edge.shipped import MODELS_DIR, default_model

    if not (MODELS_DIR / "DEFAULT").is_file():
        pytest.fail(f"shipped default model missing: no {MODELS_DIR / 'DEFAULT'}")
    env = {k: v for k, v in ENV.items() if k != "EDGE_SER_MODEL"}
    r = subprocess.run([str(EDGE_SER), "info", "--json"], capture_output=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[0]["path"] == str(default_model())


def test_help_teaches_and_usage_errors_exit_2():
    r = edge_ser("--help")
    assert r.returncode == 0 and b"listen" in r.stdout and b"130" in r.stdout
    r = edge_ser("listen", "--help")
    assert b"--stdin-raw" in r.stdout and b"summary" in r.stdout
    r = edge_ser("listen", "--fast")
    assert r.returncode == 2 and b"--fast only applies to --file" in r.stderr
    assert edge_ser("predict").returncode == 2


def test_cli_import_is_light_and_file_replay_never_loads_the_host_stack(model, wavs):
    """Importing edge.cli loads neither numpy nor an interpreter; a file replay never loads
    sounddevice, TensorFlow, librosa, scipy, sklearn or soundfile (WAV input)."""
    heavy = ("numpy", "sounddevice", "tensorflow", "ai_edge_litert")
    code = ("import sys, edge.cli;"
            f" print([m for m in {heavy!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=ENV, timeout=60)
    assert r.stdout.decode().strip() == "[]", r.stderr
    banned = ("sounddevice", "tensorflow", "keras", "librosa", "scipy", "sklearn", "soundfile")
    code = (
        "import sys; from edge.cli import cli\n"
        f"args = ['listen', '--file', {str(wavs[0])!r}, '--fast', '--json', '--model', {model!r}]\n"
        "try:\n    cli(args, standalone_mode=False)\nfinally:\n"
        f"    print([m for m in sys.modules if m.split('.')[0] in {banned!r}], file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().strip().splitlines()[-1] == "[]"


def test_realtime_replay_is_paced(model, wavs):
    """Without --fast a replay takes about as long as the recording (it is a live source)."""
    start = time.monotonic()
    r = edge_ser("listen", "--file", str(wavs[3]), "--json", "--model", model)
    elapsed = time.monotonic() - start
    summary = lines(r.stdout)[-1]["summary"]
    assert r.returncode == 0
    assert elapsed >= summary["audio_seconds"] * 0.9


def test_listen_duration_stops_after_that_much_audio(model, wavs, tmp_path):
    from conftest_edge import read_wav16

    from edge.audio import resample

    x48 = resample(np.concatenate([read_wav16(w) for w in wavs]), 16000, 48000)
    path = write_wav(tmp_path / "long48k.wav", x48, 48000)
    r = edge_ser("listen", "--file", str(path), "--fast", "--json", "--duration", "7",
                 "--model", model)
    assert r.returncode == 0, r.stderr
    *results, last = lines(r.stdout)
    assert last["summary"]["audio_seconds"] == pytest.approx(7.0, abs=0.01)
    hops = [h for h in results if h["event"] != "final"]
    # a hop every 50 frames; frame k ends 22 ms after 10*k ms: 0.522, 1.022, ... 6.522 s
    assert len(hops) == 13 and hops[-1]["t"] <= 7.0


def listen_json(model: str, wav: Path, *args: str) -> tuple[list[dict], dict]:
    r = edge_ser("listen", "--file", str(wav), "--fast", "--json", "--model", model, *args)
    assert r.returncode == 0, r.stderr
    *results, last = lines(r.stdout)
    return results, last["summary"]


@pytest.mark.parametrize("hop", [None, 0.25, 0.75])
def test_hop_sets_the_grid_of_interim_results(model, wavs, hop):
    """`listen --hop S`: an interim or no-speech result every S seconds of audio (the
    bundle's 0.5 s without it), on one grid from the start of the stream."""
    results, summary = listen_json(model, wavs[0], *(["--hop", str(hop)] if hop else []))
    step = hop or 0.5
    times = np.array([r["t"] for r in results if r["event"] != "final"])
    assert times.size >= 4
    assert np.allclose(np.diff(times), step, atol=1e-3), np.diff(times)
    assert np.allclose((times - times[0]) / step, np.round((times - times[0]) / step))
    assert summary["hops"] == times.size
    assert summary["hops"] == pytest.approx(summary["audio_seconds"] / step, abs=1.5)


def test_uncertain_follows_the_threshold(model, wavs):
    """`--threshold T` marks exactly the results whose confidence is below T uncertain, in
    predict and in listen; T between two utterances' confidences splits them."""
    r = edge_ser("predict", "--json", "--model", model, *map(str, wavs))
    assert r.returncode == 0, r.stderr
    confidences = sorted(u["confidence"] for f in lines(r.stdout) for u in f["utterances"])
    assert len(set(confidences)) >= 3
    middle = (confidences[len(confidences) // 2 - 1] + confidences[len(confidences) // 2]) / 2
    for threshold in (0.0, middle, 1.0):
        r = edge_ser("predict", "--json", "--model", model, "--threshold", str(threshold),
                     *map(str, wavs))
        assert r.returncode == 0, r.stderr
        utterances = [u for f in lines(r.stdout) for u in f["utterances"]]
        assert [u["uncertain"] for u in utterances] == \
            [u["confidence"] < threshold for u in utterances]
        assert any(u["uncertain"] for u in utterances) == (threshold > confidences[0])
        assert all(u["uncertain"] for u in utterances) == (threshold > confidences[-1])
        results, summary = listen_json(model, wavs[0], "--threshold", str(threshold))
        spoken = [h for h in results if h["event"] != "no_speech"]
        assert spoken and all(h["uncertain"] == (h["confidence"] < threshold)
                              for h in spoken)
        finals = [h for h in spoken if h["event"] == "final"]
        assert summary["uncertain_utterances"] == sum(h["uncertain"] for h in finals)
