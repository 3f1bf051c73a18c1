"""Requirements pinned to the host venv's versions: pi-check downloads the Pi's wheels of
the edge dependencies at the versions the host runs, so both sides run the same runtime.

    python tools/pi/pins.py NAME...     one ``NAME==VERSION`` a line (``NAME`` if not installed)
"""

from __future__ import annotations

import sys
from importlib import metadata


def pinned(name: str) -> str:
    """``name==version`` as installed here, or ``name`` when it is not installed."""
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


if __name__ == "__main__":
    print("\n".join(pinned(n) for n in sys.argv[1:]))
