"""Which lines of the user's file ran while a finding was probed (``sys.settrace``, Python 3.11+).

A probe may only confirm or refute a finding whose flagged line ran: the lines that ran while the
module was built and those that ran with the input the probe last chose (``mark_input`` forgets
the lines of the inputs tried before) are recorded, per phase.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable
from types import FrameType


class LineTrace:
    """Record the lines of ``path`` that run inside the ``with`` block."""

    def __init__(self, path: str):
        self.path = os.path.realpath(path)
        self.built: set[int] = set()
        self.ran: set[int] = set()
        self.input: str | None = None
        self.building = True
        self.after_line: Callable[[FrameType, int], None] | None = None
        self._files: dict[str, bool] = {}
        self._previous = None

    def __enter__(self) -> LineTrace:
        global _current
        self._previous = sys.gettrace()
        self._outer = _current
        _current = self
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc) -> None:
        global _current
        sys.settrace(self._previous)
        _current = self._outer

    def built_now(self) -> None:
        """The module is built: lines from now on ran with an input."""
        self.building = False

    def rebuild(self) -> None:
        """The module built took no input: the next one is being built."""
        self.built.clear()
        self.ran.clear()
        self.input = None
        self.building = True

    def forget_build(self) -> None:
        """A constructor attempt failed: its lines do not count."""
        self.built.clear()

    def _call(self, frame: FrameType, event: str, arg) -> object:
        filename = frame.f_code.co_filename
        mine = self._files.get(filename)
        if mine is None:
            mine = self._files[filename] = os.path.realpath(filename) == self.path
        return self._line if mine else None

    def _line(self, frame: FrameType, event: str, arg) -> object:
        if event == "line":
            if self.after_line is not None:
                self.after_line(frame, frame.f_lineno)
            (self.built if self.building else self.ran).add(frame.f_lineno)
        return self._line

    def covers(self, lines: set[int]) -> bool:
        return bool(lines & (self.built | self.ran))


_current: LineTrace | None = None


def current() -> LineTrace | None:
    return _current


def mark_input(describe: str) -> None:
    """The probe now runs ``describe``: forget the lines earlier inputs ran."""
    if _current is not None:
        _current.ran.clear()
        _current.input = describe


def forget_build() -> None:
    if _current is not None:
        _current.forget_build()


def lines_that_count(tree: ast.Module, line: int) -> set[int] | None:
    """The lines whose running means the flagged ``line`` ran: its whole simple statement; for the
    header of a ``def``, the function's body; for the header of a ``class``, its ``forward``'s body
    (None when the class inherits forward: running the module runs it)."""
    best: ast.stmt | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and _start(node) <= line <= (node.end_lineno or node.lineno):
            if best is None or _start(node) >= _start(best) and (node.end_lineno or 0) <= (best.end_lineno or 0):
                best = node
    if best is None:
        return {line}
    body = getattr(best, "body", None)
    if not isinstance(body, list) or not body or line >= body[0].lineno:
        return set(range(best.lineno, (best.end_lineno or best.lineno) + 1))
    if isinstance(best, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return _body_lines(best)
    if isinstance(best, ast.ClassDef):
        forward = next((n for n in best.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "forward"), None)
        return _body_lines(forward) if forward else None
    return set(range(_start(best), body[0].lineno))


def _start(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    return set(range(function.body[0].lineno, (function.end_lineno or function.lineno) + 1))
