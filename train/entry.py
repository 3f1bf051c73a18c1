"""The ``ser-train`` console script: the ``train`` extra is checked before ``train.cli``
runs, so an edge-only install gets one line naming ``pip install './edge-ser[train]'`` (exit 2)
instead of a ModuleNotFoundError traceback."""

from __future__ import annotations

import sys

PROG = "ser-train"
NEEDS = ("tensorflow", "keras", "librosa", "sklearn")
"""What every ser-train run imports (Keras models, host audio, metrics)."""
_HELP = {"-h", "--help"}


def main() -> None:
    """Console-script entry point (``ser-train``)."""
    import click

    from edge.cli_errors import CliError
    from edge.errors import EdgeSerError
    from edge.extras import missing_extra, require

    try:
        if not _HELP & set(sys.argv[1:]):
            require("training", NEEDS)
        from train.cli import main as command

        command(prog_name=PROG)
    except EdgeSerError as e:  # the extra is missing (before click took over)
        CliError(e, PROG).show()
        sys.exit(e.exit_code)
    except ImportError as e:
        extra = missing_extra(e, "training")
        if extra is None:
            raise
        click.echo(f"{PROG}: {extra}", err=True)
        sys.exit(extra.exit_code)
