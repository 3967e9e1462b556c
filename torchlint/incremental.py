"""Parse an edited document again by parsing only the top-level statements the edit touched.

The language server checks a document at every pause in typing. Parsing a 1,500-line file with
LibCST costs most of a check, yet an edit changes one statement. ``DocumentTree`` keeps the last
tree of a document as chunks, one per top-level statement with its source and its positions,
and for a new text parses only the region between the unchanged beginning and end, then puts the
module together from the old chunks and the new ones. Positions are per chunk, so only the
chunks that changed are generated again.

The region starts and ends at statement boundaries of the old tree, each widened by one
statement (an edit at the edge of a statement may join it with its neighbour: an ``else:``, an
indented line). The new tree is used only when the region parses on its own, the module's
default indent and newline did not change, the joined chunks are exactly the new text, and no
line at the region's edges would belong elsewhere in a whole parse (a block footer's indented
comment, a module footer); otherwise the whole text is parsed. Tests compare the result with a
whole parse, node for node, over random edits of real files.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import CodePosition, CodeRange

from torchlint.positions import Positions

_NEWLINE = re.compile(r"\r\n?|\n")
_LIBCST_DEFAULT_INDENT = "    "  # LibCST's default indent for a module with no indented block


@dataclass(frozen=True)
class Chunk:
    """One top-level statement (with the module header before the first, the footer after the
    last), its source, and its positions relative to its own first line."""

    node: cst.BaseStatement | None  # None: a module with no statement, one chunk
    text: str
    positions: Positions

    @property
    def line_breaks(self) -> int:
        return self.positions.line_count - 1


class ChunkedPositions:
    """``Positions`` over a module put together from chunks: each node is looked up in the
    chunk that holds it and moved down by the lines before that chunk."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self._chunks = chunks
        self._first_lines = []
        line = 1
        for chunk in chunks:
            self._first_lines.append(line)
            line += chunk.line_breaks

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        for chunk, first in zip(self._chunks, self._first_lines):
            if node in chunk.positions:
                r = chunk.positions[node]
                return CodeRange(_moved(r.start, first), _moved(r.end, first))
        raise KeyError(node)

    def comments(self):
        for chunk, first in zip(self._chunks, self._first_lines):
            for comment, line in chunk.positions.comments():
                yield comment, line + first - 1

    def own_line_comments(self):
        for chunk in self._chunks:
            yield from chunk.positions.own_line_comments()


def _moved(position: CodePosition, first_line: int) -> CodePosition:
    return CodePosition(position.line + first_line - 1, position.column)


class DocumentTree:
    """The LibCST tree of one document across its edits."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.module: cst.Module | None = None
        self.chunks: list[Chunk] = []
        self.reparsed = 0  # chunks parsed by the last ``parse`` (for tests and measurements)

    def parse(self, text: str) -> cst.Module:
        """The tree of ``text``, as ``cst.parse_module`` gives it (it raises the same errors)."""
        if text == self.text and self.module is not None:
            self.reparsed = 0
            return self.module
        module = self._parse_region(text) if self.chunks and self.chunks[0].node is not None else None
        if module is None:
            module = cst.parse_module(text)
            self.chunks = _chunks(module, module.body, first=True, last=True) if module.body else [_whole(module)]
            self.reparsed = len(self.chunks)
        self.text, self.module = text, module
        return module

    def positions(self) -> ChunkedPositions:
        return ChunkedPositions(self.chunks)

    def _parse_region(self, text: str) -> cst.Module | None:
        """The new tree from the old chunks and a parse of the changed region; None where only
        a whole parse can tell."""
        old, chunks, module = self.text, self.chunks, self.module
        assert old is not None and module is not None
        prefix = _common_prefix(old, text)
        suffix = _common_suffix(old, text, limit=min(len(old), len(text)) - prefix)
        starts = [0]
        for chunk in chunks:
            starts.append(starts[-1] + len(chunk.text))
        first = max(i for i in range(len(chunks)) if starts[i] <= prefix)
        last = min(i for i in range(len(chunks)) if starts[i + 1] >= len(old) - suffix)
        first, last = max(first - 1, 0), min(last + 1, len(chunks) - 1)
        if last + 1 < len(chunks) and _has_indented_comment(chunks[last + 1].node.leading_lines):
            return None  # in a whole parse it may belong to a block footer of the region
        at_start, at_end = first == 0, last == len(chunks) - 1
        region = text[starts[first] : len(text) - (len(old) - starts[last + 1])]
        if not region or (not at_end and not region.endswith(("\n", "\r"))):
            return None
        default_indent = _first_indent(text)
        if default_indent is None or (default_indent or _LIBCST_DEFAULT_INDENT) != module.default_indent:
            return None
        region_indent = _first_indent(region)
        if region_indent is None or region_indent not in ("", module.default_indent):
            return None
        newline = _NEWLINE.search(text)
        if newline is None or newline.group() != module.default_newline:
            return None
        region_newline = _NEWLINE.search(region)
        if region_newline is not None and region_newline.group() != module.default_newline:
            return None
        try:
            part = cst.parse_module(region)
        except cst.ParserSyntaxError:
            return None
        if not part.body or (part.footer and not at_end) or (at_start and part.encoding != module.encoding):
            return None
        body = list(part.body)
        if not at_start:
            body[0] = body[0].with_changes(leading_lines=[*part.header, *body[0].leading_lines])
        header = part.header if at_start else module.header
        footer = part.footer if at_end else module.footer
        has_trailing_newline = part.has_trailing_newline if at_end else module.has_trailing_newline
        new = module.with_changes(
            body=[*(c.node for c in chunks[:first]), *body, *(c.node for c in chunks[last + 1 :])],
            header=header, footer=footer, has_trailing_newline=has_trailing_newline,
        )
        middle = _chunks(new, body, first=at_start, last=at_end)
        if "".join(c.text for c in middle) != region:
            return None
        self.chunks = [*chunks[:first], *middle, *chunks[last + 1 :]]
        self.reparsed = len(middle)
        return new


def _chunks(module: cst.Module, body: list[cst.BaseStatement], *, first: bool, last: bool) -> list[Chunk]:
    """One chunk per statement of ``body``; ``first``/``last``: the body begins or ends the
    module, so its first chunk carries the module header, its last the footer."""
    chunks = []
    for i, node in enumerate(body):
        is_first, is_last = first and i == 0, last and i == len(body) - 1
        alone = module.with_changes(
            body=[node],
            header=module.header if is_first else (),
            footer=module.footer if is_last else (),
            has_trailing_newline=module.has_trailing_newline if is_last else True,
        )
        positions = Positions(alone)
        chunks.append(Chunk(node, positions.code, positions))
    return chunks


def _whole(module: cst.Module) -> Chunk:
    positions = Positions(module)
    return Chunk(None, positions.code, positions)


def _has_indented_comment(lines) -> bool:
    return any(line.comment is not None and line.whitespace.value for line in lines)


def _first_indent(text: str) -> str | None:
    """The indentation of the first indented block ("" where there is none), as LibCST takes
    its default indent; None where the text does not tokenize."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.INDENT:
                return token.string
    except (tokenize.TokenError, SyntaxError):
        return None
    return ""


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common beginning of two strings (bisection on slices)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    """The length of the longest common end of two strings, at most ``limit``."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo
