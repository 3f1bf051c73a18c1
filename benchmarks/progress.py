"""Progress on stderr: tqdm bars when tqdm is installed, plain lines otherwise (a bare
Raspberry Pi install has only the edge dependencies)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def say(message: str) -> None:
    """One diagnostic line on stderr."""
    print(f"ser-bench: {message}", file=sys.stderr, flush=True)


def bar(items: Iterable[T], desc: str, *, total: int | None = None, unit: str = "it",
        enabled: bool = True) -> Iterator[T]:
    """``items`` with a progress bar on stderr (tqdm), or a start and an end line."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        say(f"{desc} ...")
        count = 0
        for item in items:
            count += 1
            yield item
        say(f"{desc}: {count} {unit} done")
        return
    yield from tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False,
                    dynamic_ncols=True)
