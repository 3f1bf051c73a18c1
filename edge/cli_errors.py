"""How every edge-ser command line shows a package error: one line, the right exit code."""

from __future__ import annotations

from typing import Any

import click

from edge.errors import EdgeSerError


class CliError(click.ClickException):
    """An :class:`EdgeSerError` as one line ``PROG: message`` on stderr, exiting with the
    error's ``exit_code`` (2 for bad input). Shared by edge-ser, ser-train, ser-export and
    ser-bench."""

    def __init__(self, error: EdgeSerError, prog: str) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code
        self.prog = prog

    def show(self, file: Any = None) -> None:
        click.echo(f"{self.prog}: {self.format_message()}", err=True)
