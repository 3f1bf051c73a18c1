"""What ``ser-train`` checks for a pretrained kind before it reads any audio: the extra is
installed, ``--pretrained`` is given (and only for these kinds) and has the right form, and
no option the pipelines do not honour is set."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edge.errors import ConfigError
from train.pretrained import KINDS


def check_options(kind: str, pretrained: Path | None, given: Mapping[str, object]) -> None:
    """ConfigError (or ExtraMissingError naming the ``pretrained`` extra) for a run that
    cannot go ahead; ``given`` maps option names to their values (falsy: not given)."""
    from edge.extras import require

    if kind not in KINDS:
        raise ConfigError(f"--pretrained is for --model {' or '.join(KINDS)}, not {kind}")
    require(f"--model {kind}", KINDS[kind].modules)
    unsupported = [name for name, value in given.items() if value]
    if unsupported:
        raise ConfigError(f"--model {kind}: {', '.join(unsupported)} not supported by the"
                          " pretrained pipelines (speaker folds of --data only)")
    from train.pretrained.run import check_pretrained

    check_pretrained(kind, pretrained)
