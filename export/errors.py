"""The exporter's own failure: a conversion that produced something the edge cannot run."""

from __future__ import annotations

from edge.errors import EXIT_FAILURE, EdgeSerError


class ExportError(EdgeSerError):
    """Conversion or verification failed (non-builtin ops, float ops in an int8 graph, a
    model the interpreter refuses). Exit code 1: the input was valid, the export was not."""

    exit_code = EXIT_FAILURE
