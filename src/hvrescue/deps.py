"""Optional dependencies, imported when a command needs them.

``evtx``, ``defusedxml``, ``pytsk3``, ``regipy``, ``mfusepy`` and ``dissect.hypervisor`` each serve
one part of hvrescue. When one is missing, the command that needs it stops with a message naming
the package and what needs it (``MissingDependencyError``); everything else keeps working.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from hvrescue.errors import HvrescueError

# module imported -> the package pip installs it from
PACKAGES = {
    "evtx": "evtx",
    "defusedxml": "defusedxml",
    "pytsk3": "pytsk3",
    "regipy": "regipy",
    "mfusepy": "mfusepy",
    "dissect.hypervisor": "dissect.hypervisor",
}


class MissingDependencyError(HvrescueError):
    """An optional package a command needs is not installed."""

    key = "error.dependency.missing"

    def __init__(self, module: str, feature: str) -> None:
        top = module.split(".")[0] if module not in PACKAGES else module
        super().__init__(package=PACKAGES.get(module, top), feature=feature)
        self.module = module
        self.feature = feature


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise ``MissingDependencyError`` saying which ``feature`` needs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module, feature) from exc


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
