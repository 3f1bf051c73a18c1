"""What the weights of a bundle may be used for: the licences of the corpora it was trained on.

The code is Apache-2.0; weights trained on a corpus carry that corpus's terms. The shipped
bundles' notice is ``edge/models/NOTICE`` (inside the package, beside the models);
:func:`weights_licence` names, for a bundle's training metadata, the corpora and their terms
in one line (``edge-ser info`` prints it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

NOTICE = Path(__file__).resolve().parent / "models" / "NOTICE"
"""The licence notice of the shipped weights."""
CODE_LICENCE = "Apache-2.0"

CORPUS_LICENCES = {
    "ravdess": ("RAVDESS", "CC BY-NC-SA 4.0"),
    "savee": ("SAVEE", "research use only"),
    "nemo": ("nEMO", "CC BY-NC-SA 4.0"),
}
"""Reader name (``train.corpora``) -> (corpus, licence) for the corpora shipped models use."""


def training_corpora(training: Mapping[str, Any]) -> list[str]:
    """The reader names of every corpus a bundle trained on (``corpora`` then
    ``extra_corpora`` of its metadata), first mention first."""
    names: list[str] = []
    for key in ("corpora", "extra_corpora"):
        for name in training.get(key) or []:
            if name not in names:
                names.append(str(name))
    return names


def weights_licence(training: Mapping[str, Any]) -> str:
    """One line: the corpora the weights were trained on, their licences, and what follows
    (non-commercial, share-alike) for the weights."""
    corpora = training_corpora(training)
    if not corpora:
        return "weights: training corpora not recorded; their licences apply"
    parts, noncommercial, sharealike = [], False, False
    for name in corpora:
        title, licence = CORPUS_LICENCES.get(name, (name, "its own licence"))
        parts.append(f"{title} ({licence})")
        noncommercial |= "NC" in licence or "research" in licence
        sharealike |= "SA" in licence
    terms = [t for t, on in (("non-commercial use only", noncommercial),
                             ("share-alike", sharealike)) if on]
    return (f"weights trained on {', '.join(parts)}"
            + (f": {', '.join(terms)}" if terms else ""))
