"""Modules imported on their first use, so that start-up pays only for what a run needs:
``libcst.matchers`` alone costs about a third of importing the rules, and only a few rules
use it, once a file has passed their screen."""

from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands for a module; imports it when one of its attributes is first read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


matchers = LazyModule("libcst.matchers")
