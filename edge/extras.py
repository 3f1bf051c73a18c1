"""Host commands on an edge-only install: one line naming the extra to install, exit 2.

``ser-train``, ``ser-export`` and parts of ``ser-bench`` need the ``train`` extra
(TensorFlow, librosa, scikit-learn, ...), which a device install (the wheel or checkout without
extras) does not have. The command lines check for it before starting work and turn a missing
module met later into the same message: :func:`needs_extra` around a piece of work,
:func:`run_command` around a whole console script (the one wrapper ser-train, ser-export and
ser-bench use). Only ``importlib`` is used here: nothing is imported to find out whether it
is installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator

from edge.cli_errors import CliError
from edge.errors import EXIT_BAD_INPUT, EdgeSerError

TRAIN_EXTRA = "pip install './edge-ser[train]'"
"""From the checkout (``./edge-ser``): there is no release on a package index yet."""
EXTRA_MODULES = {
    "tensorflow": "TensorFlow", "keras": "Keras", "librosa": "librosa",
    "sklearn": "scikit-learn", "scipy": "SciPy", "python_speech_features":
    "python_speech_features", "matplotlib": "matplotlib", "soundfile": "soundfile",
    "tqdm": "tqdm", "flatbuffers": "flatbuffers", "numba": "numba",
}
"""Top-level modules that come with the ``train`` extra, and their names for people."""
PRETRAINED_EXTRA = "pip install './edge-ser[pretrained]'"
PRETRAINED_MODULES = {"safetensors": "safetensors"}
"""Top-level modules that come with the ``pretrained`` extra (``ser-train --model
wav2vec2-rf``), on top of the ``train`` extra."""


class ExtraMissingError(EdgeSerError):
    """A host command run where the ``train`` extra is not installed."""

    exit_code = EXIT_BAD_INPUT


def _message(what: str, missing: list[str]) -> str:
    names = ", ".join(EXTRA_MODULES.get(m, m) for m in missing)
    if all(m in PRETRAINED_MODULES for m in missing):
        return (f"{what} needs {names}, which this install does not have; install the"
                f" pretrained extra from an edge-ser checkout: {PRETRAINED_EXTRA}")
    return (f"{what} needs {names}, which this install does not have (an edge-only install);"
            f" install the host extra from an edge-ser checkout: {TRAIN_EXTRA}")


def installed(module: str) -> bool:
    """Is the top-level ``module`` importable (without importing it)?"""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(what: str, modules: Iterable[str]) -> None:
    """Raise :class:`ExtraMissingError` naming ``what`` (e.g. ``"training"``), the missing
    ``modules`` and the ``pip install``, when any of them is not installed."""
    missing = [m for m in modules if not installed(m)]
    if missing:
        raise ExtraMissingError(_message(what, missing))


def missing_extra(error: ImportError, what: str) -> ExtraMissingError | None:
    """The one-line error for an ImportError of a module the ``train`` (or ``pretrained``)
    extra provides, or None for any other import error (a bug, to be shown as such)."""
    name = getattr(error, "name", None) or ""
    root = name.split(".")[0]
    if isinstance(error, ModuleNotFoundError) and (root in EXTRA_MODULES
                                                   or root in PRETRAINED_MODULES):
        return ExtraMissingError(_message(what, [root]))
    return None


@contextlib.contextmanager
def needs_extra(what: str, modules: Iterable[str] = ()) -> Iterator[None]:
    """:func:`require` the ``modules``, then run the block; a module of the ``train`` extra
    found missing inside it raises :class:`ExtraMissingError` (any other ImportError is a
    bug and propagates)."""
    require(what, modules)
    try:
        yield
    except ImportError as e:
        extra = missing_extra(e, what)
        if extra is None:
            raise
        raise extra from None


HELP_OPTIONS = frozenset({"-h", "--help"})


def run_command(command: Callable[[], object], prog: str, what: str,
                needs: Iterable[str] = ()) -> None:
    """A host console script's body: ``command()`` (which loads and runs the click command)
    under :func:`needs_extra` (``needs`` checked first, unless help is asked for); a missing
    extra is ``PROG: ... pip install './edge-ser[train]'`` on stderr and exit 2."""
    try:
        with needs_extra(what, () if HELP_OPTIONS & set(sys.argv[1:]) else needs):
            command()
    except ExtraMissingError as e:
        CliError(e, prog).show()
        sys.exit(e.exit_code)
