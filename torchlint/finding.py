"""The finding model: what every part of torchlint passes around. It imports nothing of torchlint's:
the engine, the cache, the reports and the adapters import it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TextEdit:
    """Replace the text from (line, column) up to (end_line, end_column), 1-based, with ``content``
    (an insertion when the two positions are equal), as ruff's JSON ``edits``."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str
    cell: int | None = None  # in a notebook: the cell the lines count in (see Finding.cell)


Edits = tuple[TextEdit, ...]


class TextFix:
    """A fix as ruff's JSON ``fix``: a message, ``applicability`` ("safe" or "unsafe", as ruff's),
    text edits, the ``(module, name)`` imports it needs, and ``import_edits``: the text edits that
    add those imports to the file as it is (``all_edits`` are both, what JSON and editors get;
    ``--fix`` applies ``edits`` and adds ``imports`` itself, once for all the fixes of a pass).
    Edits may be given as a function, called when they are first read: the language server renders
    a fix only when it is asked for."""

    __slots__ = ("message", "applicability", "_edits", "imports", "_import_edits")

    def __init__(
        self,
        message: str,
        applicability: str,
        edits: Edits | Callable[[], Edits],
        imports: tuple[tuple[str, str | None], ...] = (),
        import_edits: Edits | Callable[[], Edits] = (),
    ) -> None:
        self.message, self.applicability, self._edits, self.imports = message, applicability, edits, imports
        self._import_edits = import_edits

    @property
    def edits(self) -> Edits:
        if callable(self._edits):
            self._edits = self._edits()
        return self._edits

    @property
    def import_edits(self) -> Edits:
        if callable(self._import_edits):
            self._import_edits = self._import_edits()
        return self._import_edits

    @property
    def all_edits(self) -> Edits:
        return self.edits + self.import_edits

    def __reduce__(self):  # rendered, so it can be cached and sent to another process
        return TextFix, (self.message, self.applicability, self.edits, self.imports, self.import_edits)

    def __repr__(self) -> str:
        return f"TextFix({self.message!r}, {self.applicability!r}, {self.edits!r}, {self.imports!r}, {self.import_edits!r})"


@functools.total_ordering
@dataclass(frozen=True)
class Finding:
    """One finding, with 1-based line and column (columns count characters, as ruff's). In a
    notebook, ``cell`` is the 1-based index of the cell among all the notebook's cells and the
    lines count in that cell; None in a Python file. Findings sort by path, cell, line, column."""

    path: str
    line: int
    column: int
    code: str
    message: str
    end_line: int = 0
    end_column: int = 0
    name: str = field(default="", compare=False)
    fix: TextFix | None = field(default=None, compare=False)
    cell: int | None = None

    def _key(self) -> tuple:
        return (self.path, self.cell or 0, self.line, self.column, self.code, self.message, self.end_line, self.end_column)

    def __lt__(self, other: Finding) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return self._key() < other._key()
