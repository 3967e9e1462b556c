"""``torchlint check --add-noqa``, as ruff's: a ``# noqa: CODE`` on every line with a finding, so
that a code base can adopt the linter and fix its findings later.

An existing ``# noqa: X`` on the line gets the new codes added to its list; another comment stays,
the directive after it. A line whose end is inside a multi-line string or continued with a
backslash cannot take a comment: its directive goes where the string or continuation ends, where
flake8 (and torchlint) read it for that line. The file is written as ``--fix`` writes:
re-parsed first, in its own encoding (BOM kept) and line endings, atomically; a notebook's cells
are edited in its JSON text.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from torchlint import fixes, notebook
from torchlint.engine import NOQA, Selection, SourceError, check_source, decode, discover, module_name_for, noqa_lines
from torchlint.finding import Finding
from torchlint.rules import PARSE_ERROR_CODE

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass
class NoqaResult:
    """What ``--add-noqa`` did to one file: directives added, findings left without one, and why
    the file was not written (or None)."""

    path: Path
    added: int = 0
    left: int = 0
    problem: str | None = None


def add_noqa_paths(
    paths: Iterable[str], selection: Selection, project: Callable[[], object] | None = None
) -> list[NoqaResult]:
    return [add_noqa_file(path, selection, project) for path in discover(list(paths), selection)]


def add_noqa_file(path: Path, selection: Selection, project: Callable[[], object] | None = None) -> NoqaResult:
    selection = selection.for_file(path)
    codes = selection.codes_for(str(path))

    def check(text: str, module_name: str | None) -> list[Finding]:
        return check_source(text, str(path), codes, module_name, project=project, target_version=selection.target_version)

    try:
        data = path.read_bytes()
    except OSError as e:
        return NoqaResult(path, problem=f"cannot read: {e.strerror or e}")
    if selection.language(path) == "ipynb":
        return _notebook(path, data, check)
    try:
        before = decode(data)
    except SourceError as e:
        return NoqaResult(path, problem=str(e))
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    after, added, left = with_noqa(before, check(before, module_name_for(path)))
    if not added:
        return NoqaResult(path, 0, left)
    try:
        fixes.write_atomically(path, after.encode(encoding))
    except (OSError, UnicodeEncodeError) as e:
        return NoqaResult(path, 0, left + added, f"cannot write: {e}")
    return NoqaResult(path, added, left)


def _notebook(path: Path, data: bytes, check: Callable[[str, str | None], list[Finding]]) -> NoqaResult:
    try:
        nb = notebook.load(notebook.decode(data))
    except notebook.NotebookError as e:
        return NoqaResult(path, problem=str(e))
    module, added, left = with_noqa(nb.source, check(nb.source, None))
    if not added:
        return NoqaResult(path, 0, left)
    try:
        fixes.write_atomically(path, nb.with_sources(nb.split(module)).encode("utf-8"))
    except (OSError, notebook.NotebookError) as e:
        return NoqaResult(path, 0, left + added, f"cannot write: {e}")
    return NoqaResult(path, added, left)


def with_noqa(text: str, findings: Iterable[Finding]) -> tuple[str, int, int]:
    """The text with a ``# noqa`` for every finding (TL000 aside) on its line, or, for a line
    ending inside a multi-line string or a continuation, on the line where that ends (where
    flake8 and torchlint read it); how many lines got one, and how many findings could not get
    one. The text is returned as it was when the result would not parse."""
    findings = [f for f in findings if f.code != PARSE_ERROR_CODE]
    if not findings:
        return text, 0, 0
    spanned = noqa_lines(text)
    by_line: dict[int, set[str]] = {}
    for f in findings:
        by_line.setdefault(spanned.get(f.line, f.line), set()).add(f.code)
    comments, ends = _comments_and_line_ends(text)
    lines = _LINE.findall(text)
    added = left = 0
    for number, codes in sorted(by_line.items()):
        if number not in ends or number > len(lines):
            left += len(codes)
            continue
        body = lines[number - 1].rstrip("\r\n")
        ending = lines[number - 1][len(body):]
        lines[number - 1] = _directive(body, comments.get(number), sorted(codes)) + ending
        added += 1
    out = "".join(lines)
    try:
        cst.parse_module(out)
    except (cst.ParserSyntaxError, RecursionError):
        return text, 0, left + sum(len(c) for c in by_line.values())
    return out, added, left


def _directive(body: str, comment: tuple[int, str] | None, codes: list[str]) -> str:
    """The line with ``codes`` added to its ``# noqa``, or a new ``# noqa: codes`` at its end."""
    if comment is not None:
        start, value = comment
        m = NOQA.search(value)
        if m is not None:
            present = re.split(r"[,\s]+", m.group("codes") or "")
            merged = list(dict.fromkeys([c for c in present if c] + codes))
            value = value[: m.start()] + "# noqa: " + ", ".join(merged) + value[m.end():]
            return body[:start] + value
    return body.rstrip(" \t") + "  # noqa: " + ", ".join(codes)


def _comments_and_line_ends(text: str) -> tuple[dict[int, tuple[int, str]], set[int]]:
    """The comment on each line (its column and text), and the lines that
    end outside any string or backslash continuation (where a comment can go)."""
    comments: dict[int, tuple[int, str]] = {}
    ends: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text, newline="").readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = (token.start[1], token.string)
            elif token.type in (tokenize.NEWLINE, tokenize.NL):
                ends.add(token.start[0])
    except (tokenize.TokenError, SyntaxError):
        pass
    return comments, ends
