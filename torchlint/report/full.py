"""The ``full`` format, ruff's default: each finding's header, then the source lines around it with
line numbers and a caret span under the reported range, then the fix's title (``help: ...``); in a
notebook, the cell's lines, labelled with the cell. The summary is the concise format's.

Colour only on a terminal: ``NO_COLOR`` (non-empty) turns it off, else ``FORCE_COLOR``
(non-empty) turns it on, else it is on when stdout is a terminal (and ``TERM`` is not ``dumb``).
"""

from __future__ import annotations

import io
import os
import re
import sys
import tokenize
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from torchlint import notebook
from torchlint.finding import Finding
from torchlint.fixes import fixable
from torchlint.report.text import summary

if TYPE_CHECKING:
    from torchlint.verify.runner import Verification

CONTEXT = 2  # lines shown before and after the reported ones, as ruff
MAX_SPAN_LINES = 6  # a longer range shows its first and last lines, "..." between
_LINE_BREAK = re.compile(r"\r\n?|\n")


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, codes: str) -> str:
        return f"\x1b[{codes}m{text}\x1b[0m" if self.color and text else text


def use_color(stream=None) -> bool:
    """Whether to colour the output: NO_COLOR, then FORCE_COLOR, then whether it is a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


def render(
    findings: Sequence[Finding],
    *,
    unsafe: bool = False,
    fixed: int = 0,
    verifications: Mapping[Finding, Verification] | None = None,
    color: bool | None = None,
) -> str:
    """``color``: None decides from the environment (see the module's docstring)."""
    style = _Style(use_color() if color is None else color)
    sources = _Sources()
    blocks = [finding_block(f, sources.lines(f), unsafe, style, (verifications or {}).get(f)) for f in findings]
    tail = summary(findings, unsafe, fixed, verifications)
    return "".join(block + "\n" for block in blocks) + "\n".join(tail) + "\n"


def finding_block(f: Finding, lines: list[str] | None, unsafe: bool, style: _Style, verification=None) -> str:
    """One finding: header, location, snippet (when the source can be read), help."""
    mark = " [*]" if fixable(f, unsafe) else ""
    cell = f"cell {f.cell}:" if f.cell is not None else ""
    out = [
        f"{style(f.code, '1;31')}{style(mark, '36')} {style(f.message, '1')}",
    ]
    if lines is None:
        out.append(f"{style('-->', '34')} {f.path}:{cell}{f.line}:{f.column}")
    else:
        out += snippet(f, lines, style, f"{f.path}:{cell}{f.line}:{f.column}")
    if f.fix is not None:
        out.append(f"{style('help', '1;36')}: {f.fix.message}")
    if verification is not None:
        out.append(f"{style('verify', '1;35')}: {verification.verdict}: {verification.evidence}")
    return "\n".join(out) + "\n"


def snippet(f: Finding, lines: list[str], style: _Style, where: str) -> list[str]:
    """The ``-->`` line and the numbered source lines with carets under the finding's range."""
    end_line = max(f.end_line or f.line, f.line)
    first, last = max(f.line - CONTEXT, 1), min(end_line + CONTEXT, len(lines))
    while first < f.line and not lines[first - 1].strip():
        first += 1
    while last > end_line and not lines[last - 1].strip():
        last -= 1
    width = len(str(last))
    gutter = style(" " * width + " |", "34")
    out = [f"{' ' * width}{style('-->', '34')} {where}", gutter]
    shown = list(range(first, last + 1))
    if end_line - f.line + 1 > MAX_SPAN_LINES:
        keep = MAX_SPAN_LINES // 2
        shown = [n for n in shown if n < f.line + keep or n > end_line - keep]
    previous = None
    for n in shown:
        if previous is not None and n != previous + 1:
            out.append(style("...", "34"))
        previous = n
        text = lines[n - 1] if n <= len(lines) else ""
        out.append(f"{style(str(n).rjust(width) + ' |', '34')} {text}".rstrip())
        if f.line <= n <= end_line:
            start = f.column if n == f.line else _indent(text) + 1
            if not f.end_line:  # no range (TL000): one character
                stop = start + 1
            else:
                stop = f.end_column if n == end_line else len(text) + 1
            stop = max(stop, start + 1)
            pad = "".join("\t" if c == "\t" else " " for c in text[: start - 1])
            out.append(f"{gutter} {pad}{style('^' * (stop - start), '1;31')}")
    out.append(gutter)
    return out


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip())


class _Sources:
    """The lines of each file (of each notebook cell) findings are in, read once."""

    def __init__(self) -> None:
        self._files: dict[str, list[str] | None] = {}
        self._notebooks: dict[str, notebook.Notebook | None] = {}

    def lines(self, f: Finding) -> list[str] | None:
        if f.cell is not None:
            return self._cell_lines(f.path, f.cell)
        if f.path not in self._files:
            self._files[f.path] = _read_lines(f.path)
        return self._files[f.path]

    def _cell_lines(self, path: str, cell: int) -> list[str] | None:
        if path not in self._notebooks:
            try:
                self._notebooks[path] = notebook.read(Path(path))
            except (OSError, notebook.NotebookError):
                self._notebooks[path] = None
        nb = self._notebooks[path]
        source = next((c.source for c in nb.cells if c.number == cell), None) if nb else None
        return None if source is None else _LINE_BREAK.split(source)


def _read_lines(path: str) -> list[str] | None:
    """A Python file's lines, decoded as Python reads it; None when it cannot be read."""
    try:
        data = Path(path).read_bytes()
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding, errors="replace")
    except (OSError, SyntaxError, LookupError):
        return None
    return _LINE_BREAK.split(text.removeprefix("\ufeff"))
