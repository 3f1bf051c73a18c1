"""The package's exceptions. Each message says what was wrong, with which value, and the fix.

The CLIs turn these into one line on stderr and an exit code: ``EXIT_BAD_INPUT`` (2) for
everything a user can fix by changing what they pass in.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a writer whose reader went away (``| head``)."""


class EdgeSerError(Exception):
    """Base class of edge-ser's errors; ``exit_code`` is what a CLI exits with."""

    exit_code = EXIT_FAILURE


class ConfigError(EdgeSerError, ValueError):
    """An impossible or unsupported parameter value."""

    exit_code = EXIT_BAD_INPUT


class AudioError(EdgeSerError):
    """Audio that cannot be used: missing, unreadable, empty, too short, NaN or inf."""

    exit_code = EXIT_BAD_INPUT


class ModelError(EdgeSerError):
    """A model file that is not an edge-ser bundle, is corrupt, or cannot be honoured."""

    exit_code = EXIT_BAD_INPUT


DAMAGED_ADVICE = ("re-install edge-ser if it is a shipped model (pip install --force-reinstall"
                  " --no-deps with the wheel file or checkout you installed from), or export"
                  " it again with ser-export")
"""What to do about a damaged bundle; the end of every "damaged" message. edge-ser is
installed from a wheel file or a git checkout (no release on a package index yet:
docs/install.md), so the advice names no index package."""


def damaged_model(source: str, what: str) -> ModelError:
    """The one-line error for a damaged model file: ``SOURCE: damaged (WHAT); advice``."""
    return ModelError(f"{source}: damaged ({what}); {DAMAGED_ADVICE}")


class RuntimeMissingError(EdgeSerError):
    """No TFLite interpreter is installed; the message names the pip install."""

    exit_code = EXIT_FAILURE


class DeviceError(EdgeSerError):
    """No usable audio input device."""

    exit_code = EXIT_BAD_INPUT


class DeviceLost(EdgeSerError):
    """The microphone went away (or stopped delivering audio) while listening."""

    exit_code = EXIT_FAILURE
