"""The benchmark's pictures (matplotlib, Agg backend): a confusion matrix per model and the
latency histograms. Without matplotlib (a bare Raspberry Pi install) :func:`available` is
False and the report says the PNGs were skipped."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


NO_RESULT = "(no result)"
"""Row and column of recordings without a result (no utterance found) in a confusion PNG."""


def confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str, *,
              no_result: list[int] | None = None) -> Path:
    """Row-normalised confusion matrix (recall per true class) with counts, as a PNG.

    ``no_result``: recordings of each true class without a result; when any, they get a
    column of their own (and an empty row, so the plot stays square) and count in the rows'
    totals."""
    from train.plots import plot_confusion  # numpy + matplotlib only: fine on a Pi

    m = np.asarray(matrix, dtype=np.int64)
    names = list(labels)
    if no_result is not None and any(no_result):
        m = np.pad(m, ((0, 1), (0, 1)))
        m[:-1, -1] = no_result
        names.append(NO_RESULT)
    plot_confusion(m.tolist(), names, path, title)
    return path


def latency_histograms(series: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Histograms of per-call times (milliseconds), one row per step, sharing a log x axis.

    ``series`` maps a label (``"invoke | cnn-int8 | 1 thread"``) to its samples in ms.
    """
    plt = _pyplot()
    names = list(series)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 0.9 + 1.05 * len(names)),
                             sharex=True, squeeze=False)
    every = np.concatenate([np.asarray(v, dtype=np.float64) for v in series.values()])
    lo, hi = max(every.min(), 1e-3), max(every.max(), 2e-3)
    bins = np.geomspace(lo * 0.9, hi * 1.1, 60)
    for ax, name in zip(axes[:, 0], names):
        v = np.asarray(series[name], dtype=np.float64)
        med, p99 = np.median(v), np.percentile(v, 99)
        ax.hist(v, bins=bins, color="tab:blue", alpha=0.8)
        ax.axvline(med, color="black", lw=1)
        ax.axvline(p99, color="tab:red", lw=1, ls="--")
        ax.set_xscale("log")
        ax.set_yticks([])
        right = np.log(med) < np.log(bins[0] * bins[-1]) / 2  # text away from the bars
        ax.text(0.99 if right else 0.01, 0.5,
                f"{name}\nmedian {med:.3g} ms, p99 {p99:.3g} ms, n={v.size}",
                transform=ax.transAxes, ha="right" if right else "left", va="center",
                fontsize=7, bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
    axes[-1, 0].set_xlabel("milliseconds per call (log scale); black: median, red: p99")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
