"""``tools/demo.py`` imported as a module (it is a script, not a package module), for tests
that build its replay track or map windows to clips (test_demo, test_mic)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DEMO = Path(__file__).resolve().parents[1] / "tools" / "demo.py"
MODULE_NAME = "edge_ser_tools_demo"


def load_demo() -> ModuleType:
    """The demo module (imported once per process)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    spec = importlib.util.spec_from_file_location(MODULE_NAME, DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module
