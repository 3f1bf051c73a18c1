"""eGeMAPSv02 functionals (88 per clip) through the ``opensmile`` package, in a process of
their own.

openSMILE's native library and TensorFlow's do not share a process: with TensorFlow loaded,
``Smile.process_signal`` aborts the interpreter (``malloc(): invalid size``, measured with
opensmile 2.6.0 and TensorFlow 2.21). ``ser-train`` has TensorFlow loaded, so
:func:`egemaps_functionals` hands the clips to ``python -m train.egemaps`` (this module,
which imports only numpy and opensmile) through a temporary ``.npz`` and reads the table back.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge.errors import EdgeSerError

N_FUNCTIONALS = 88
"""eGeMAPSv02 functionals per clip."""


def _extract(windows: list[np.ndarray], sample_rate: int) -> np.ndarray:
    """In this process (no TensorFlow here): ``(n, 88)`` float32, NaN as 0."""
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    rows = [smile.process_signal(np.asarray(w, np.float32), sample_rate).to_numpy().reshape(-1)
            for w in windows]
    return np.nan_to_num(np.asarray(rows, np.float32).reshape(len(windows), N_FUNCTIONALS))


def egemaps_functionals(windows: list[np.ndarray], sample_rate: int) -> np.ndarray:
    """The 88 eGeMAPSv02 functionals of each clip's audio (mono float, ``sample_rate`` Hz):
    ``(n, 88)`` float32, computed in a child Python process (see the module doc)."""
    from edge.extras import require

    require("--model egemaps-svm", ["opensmile"])
    with tempfile.TemporaryDirectory(prefix="edge-ser-egemaps-") as tmp:
        source, table = Path(tmp) / "clips.npz", Path(tmp) / "functionals.npy"
        np.savez(source, sample_rate=np.int64(sample_rate),
                 **{f"clip{i}": np.asarray(w, np.float32) for i, w in enumerate(windows)})
        done = subprocess.run([sys.executable, "-m", "train.egemaps", str(source), str(table)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise EdgeSerError(f"eGeMAPS extraction failed (exit {done.returncode}): {last}")
        return np.load(table)


def main(argv: list[str]) -> None:
    """``python -m train.egemaps CLIPS.npz OUT.npy``: the child side."""
    source, table = argv
    with np.load(source) as clips:
        sample_rate = int(clips["sample_rate"])
        windows = [clips[f"clip{i}"] for i in range(len(clips.files) - 1)]
    np.save(table, _extract(windows, sample_rate))


if __name__ == "__main__":
    main(sys.argv[1:])
