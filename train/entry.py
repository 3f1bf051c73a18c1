"""The ``ser-train`` console script: the ``train`` extra is checked before ``train.cli``
runs, so an edge-only install gets one line naming ``pip install './edge-ser[train]'`` (exit 2)
instead of a ModuleNotFoundError traceback."""

from __future__ import annotations

PROG = "ser-train"
NEEDS = ("tensorflow", "keras", "librosa", "sklearn")
"""What every ser-train run imports (Keras models, host audio, metrics)."""


def main() -> None:
    """Console-script entry point (``ser-train``)."""
    from edge.extras import run_command

    def command() -> None:
        from train.cli import main as cli

        cli(prog_name=PROG)

    run_command(command, PROG, "training", NEEDS)
