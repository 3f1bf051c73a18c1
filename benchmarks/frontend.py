"""Front-end speed: our numpy MFCC against librosa and python_speech_features, in one run.

Measures, on real clips cut to one window:

* whole clip: ``edge.frontend.mfcc`` (both conventions), ``librosa.feature.mfcc`` with the
  same parameters, ``python_speech_features.mfcc`` with its defaults;
* streaming: ``MelStream.push`` of one hop block (the runtime's front end: mel power of the
  new frames only) against recomputing the whole window's mel power every hop (what a naive
  streaming loop would do).

The contenders run interleaved (round robin) so machine noise hits them alike; ratios are
taken within the run. ``python -m benchmarks.frontend --help``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio import load
from edge.features import DEFAULT_HOP_SECONDS, FeatureSpec
from edge.frontend import FrontendConfig, MelStream, mel_power, mfcc


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``n`` calls."""

    name: str
    n: int
    median: float
    p95: float
    p99: float
    mad: float  # median absolute deviation, the spread

    def to_dict(self) -> dict:
        return {"name": self.name, "n": self.n, "median_ms": self.median * 1e3,
                "p95_ms": self.p95 * 1e3, "p99_ms": self.p99 * 1e3, "mad_ms": self.mad * 1e3}


def summarise(name: str, samples: list[float]) -> Timing:
    a = np.asarray(samples)
    med = float(np.median(a))
    return Timing(name, a.size, med, float(np.percentile(a, 95)), float(np.percentile(a, 99)),
                  float(np.median(np.abs(a - med))))


def interleaved(contenders: dict[str, Callable[[int], object]], n_items: int,
                repeats: int) -> dict[str, Timing]:
    """Time each contender on each item ``repeats`` times, round robin; after a warm-up."""
    samples = interleaved_samples(contenders, n_items, repeats)
    return {k: summarise(k, v) for k, v in samples.items()}


def interleaved_samples(contenders: dict[str, Callable[[int], object]], n_items: int,
                        repeats: int) -> dict[str, list[float]]:
    """Like :func:`interleaved`, but every call's seconds (for histograms)."""
    for f in contenders.values():
        f(0)
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for i in range(n_items):
            for name, f in contenders.items():
                t0 = time.perf_counter()
                f(i)
                samples[name].append(time.perf_counter() - t0)
    return samples


def window_clips(paths: list[Path], spec: FeatureSpec) -> list[np.ndarray]:
    """Each file as exactly one window of samples (cropped or zero-padded at the end)."""
    clips = []
    for p in paths:
        x = load(p, spec.frontend.sample_rate)[: spec.window_samples]
        clips.append(np.pad(x, (0, spec.window_samples - x.size)))
    return clips


def run(paths: list[Path], *, repeats: int = 5, hop_seconds: float = DEFAULT_HOP_SECONDS) -> dict:
    """All front-end figures as a JSON-able dict."""
    import librosa
    import python_speech_features as psf

    spec = FeatureSpec()
    c = spec.frontend
    c_psf = FrontendConfig.python_speech_features()
    clips = window_clips(paths, spec)
    clips64 = [x.astype(np.float64) for x in clips]

    whole = interleaved({
        "edge mfcc (librosa convention)": lambda i: mfcc(clips[i], c),
        "librosa.feature.mfcc": lambda i: librosa.feature.mfcc(
            y=clips[i], sr=c.sample_rate, n_mfcc=c.n_mfcc, n_fft=c.n_fft,
            win_length=c.win_length, hop_length=c.hop_length, n_mels=c.n_mels, fmin=c.fmin,
            fmax=c.fmax, center=False),
        "edge mfcc (psf convention)": lambda i: mfcc(clips[i], c_psf),
        "python_speech_features.mfcc": lambda i: psf.mfcc(clips64[i], c_psf.sample_rate),
    }, len(clips), repeats)

    hop = int(round(hop_seconds * c.sample_rate))
    stream = MelStream(c)
    history = np.zeros(spec.window_samples, dtype=np.float32)

    def push_block(i: int) -> object:
        return stream.push(clips[i % len(clips)][:hop])

    def recompute_window(i: int) -> object:
        nonlocal history
        history = np.concatenate((history[hop:], clips[i % len(clips)][:hop]))
        return mel_power(history, c)

    streaming = interleaved({
        f"MelStream.push ({hop_seconds} s block)": push_block,
        f"recompute the {spec.window_seconds} s window per hop": recompute_window,
    }, len(clips), repeats)

    def ratio(a: str, b: str, table: dict[str, Timing]) -> float:
        return table[b].median / table[a].median

    names = list(whole)
    return {
        "clips": len(clips),
        "repeats": repeats,
        "window_seconds": spec.window_seconds,
        "hop_seconds": hop_seconds,
        "whole_clip": [t.to_dict() for t in whole.values()],
        "streaming": [t.to_dict() for t in streaming.values()],
        "ratios": {
            "librosa / edge": ratio(names[0], names[1], whole),
            "python_speech_features / edge (psf convention)": ratio(names[2], names[3], whole),
            "python_speech_features / edge (librosa convention)": ratio(names[0], names[3],
                                                                        whole),
            "recompute window / stream push": ratio(*list(streaming), streaming),
        },
        "machine": machine(),
    }


def machine() -> dict:
    """CPU, cores, Python and numpy versions: stated with every figure."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        fields = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in
                            Path("/proc/cpuinfo").read_text().splitlines())
            if v
        )
        # x86 says "model name"; a Raspberry Pi says "Model" (the board) and "Hardware"
        cpu = fields.get("model name") or fields.get("model") or fields.get("hardware") or cpu
    except OSError:
        pass

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform()}


def to_markdown(result: dict) -> str:
    lines = [
        f"Front end on {result['clips']} real clips of {result['window_seconds']} s, "
        f"{result['repeats']} rounds, interleaved ({result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores, Python {result['machine']['python']}, "
        f"numpy {result['machine']['numpy']}).",
        "",
        "| what | median ms | p95 ms | spread (MAD) ms | n |",
        "|---|---|---|---|---|",
    ]
    for row in result["whole_clip"] + result["streaming"]:
        lines.append(f"| {row['name']} | {row['median_ms']:.3f} | {row['p95_ms']:.3f} | "
                     f"{row['mad_ms']:.3f} | {row['n']} |")
    lines += ["", "| ratio (median / median) | x |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in result["ratios"].items()]
    return "\n".join(lines) + "\n"


def audio_clips(folder: str | Path) -> list[Path]:
    """The .wav and .flac files under ``folder``, sorted (the benchmark tools' own inputs)."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".wav", ".flac"))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("SER_DATA",
                        "../shared/data/ravdess-speech-16k"), help="folder of audio clips")
    parser.add_argument("--clips", type=int, default=40, help="clips to time (default 40)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds over the clips")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    files = audio_clips(args.data)
    if not files:
        print(f"ser-bench: no .wav/.flac clips under {args.data}", file=sys.stderr)
        return 2
    step = max(1, len(files) // args.clips)
    result = run(files[::step][: args.clips], repeats=args.repeats)
    print(json.dumps(result, indent=2) if args.json else to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
