"""Applying fixes to source text: the text edits of the chosen findings, in one pass, plus the
imports they need; the result is re-parsed before anyone writes it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from torchlint.engine import Finding, TextEdit

_LINE_BREAK = re.compile(r"\r\n?|\n")


def _offsets(text: str) -> list[int]:
    """Offset of the first character of each line (lines split as LibCST counts them)."""
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def apply_edits(text: str, edits: Sequence[TextEdit]) -> str:
    """The text with every edit applied. Edits must not overlap (see ``choose``)."""
    starts = _offsets(text)
    spans = sorted(
        ((starts[e.line - 1] + e.column - 1, starts[e.end_line - 1] + e.end_column - 1, e.content) for e in edits),
        reverse=True,
    )
    for start, end, content in spans:
        text = text[:start] + content + text[end:]
    return text


def choose(findings: Iterable[Finding], unsafe: bool) -> tuple[list[Finding], list[Finding]]:
    """The fixable findings to apply now, and those left for the next pass because one of their
    edits overlaps an edit already chosen (two fixes of one node: one now, one next run)."""
    chosen: list[Finding] = []
    deferred: list[Finding] = []
    taken: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for f in sorted(findings):
        if f.fix is None or (f.fix.applicability == "unsafe" and not unsafe):
            continue
        spans = [((e.line, e.column), (e.end_line, e.end_column)) for e in f.fix.edits]
        if any(a[0] < b[1] and b[0] < a[1] or a[0] == b[0] for a in spans for b in taken):
            deferred.append(f)
            continue
        chosen.append(f)
        taken.extend(spans)
    return chosen, deferred


def with_imports(text: str, imports: Iterable[tuple[str, str | None]]) -> str:
    """Add the imports fixes need (once each, where the module's imports are)."""
    imports = sorted(set(imports), key=lambda i: (i[0], i[1] or ""))
    if not imports:
        return text
    module = cst.parse_module(text)
    context = CodemodContext()
    for module_name, obj in imports:
        AddImportsVisitor.add_needed_import(context, module_name, obj)
    return AddImportsVisitor(context).transform_module(module).code
