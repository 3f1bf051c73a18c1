"""Which labels a run predicts: keep, drop or merge the corpus labels (``--classes``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edge.errors import ConfigError
from train.corpora import EMOTIONS


@dataclass(frozen=True)
class LabelMap:
    """Model classes in order, and which corpus label becomes which class (others dropped)."""

    classes: tuple[str, ...]
    mapping: dict[str, str]

    def __call__(self, label: str) -> str | None:
        return self.mapping.get(label)

    def index(self, label: str) -> int:
        return self.classes.index(self.mapping[label])


def parse_classes(text: str | None, present: Iterable[str]) -> LabelMap:
    """``--classes`` -> LabelMap.

    ``None``: every label present in the data, in the shared vocabulary's order. Otherwise a
    comma-separated list of classes; ``a+b`` merges ``b`` into ``a`` (``neutral+calm``);
    labels not listed are dropped. Example: ``neutral+calm,happy,sad,angry``.
    """
    present = set(present)
    if not text:
        classes = tuple(e for e in EMOTIONS if e in present)
        classes += tuple(sorted(present - set(EMOTIONS)))
        return LabelMap(classes, {c: c for c in classes})
    classes: list[str] = []
    mapping: dict[str, str] = {}
    for group in text.split(","):
        names = [n.strip().lower() for n in group.split("+") if n.strip()]
        if not names:
            raise ConfigError(f"--classes {text!r}: empty class between commas")
        for name in names:
            if name not in present:
                known = ", ".join(sorted(present))
                raise ConfigError(f"--classes: label {name!r} is not in the data ({known})")
            if name in mapping:
                raise ConfigError(f"--classes: label {name!r} is listed twice")
            mapping[name] = names[0]
        classes.append(names[0])
    if len(classes) < 2:
        raise ConfigError(f"--classes {text!r}: need at least two classes")
    return LabelMap(tuple(classes), mapping)
