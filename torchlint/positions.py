"""Source positions for the few nodes a file reports, without LibCST's PositionProvider.

PositionProvider builds a line/column pair for every node of the module as it generates the code,
splitting every token with a regular expression: on a 1,500-line file that costs several times
the parse. Here the same code generation runs with a state that only remembers, for each node,
which tokens it spans (two integers); lines and columns are worked out afterwards, and only for
the nodes asked about. The hooks are LibCST's own (``before_codegen``/``after_codegen`` for the
whitespace-inclusive range, ``record_syntactic_position`` for the syntactic one, which wins), so
the ranges are exactly PositionProvider's.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import accumulate

import libcst as cst
from libcst.metadata import CodePosition, CodeRange
from libcst._nodes.internal import CodegenState

_NEWLINE = re.compile(r"\r\n?|\n")


class _SpanState(CodegenState):
    """LibCST's code generation state, recording each node's span as token indices."""

    def __init__(self, module: cst.Module) -> None:
        super().__init__(module.default_indent, module.default_newline)
        self.spans: dict[cst.CSTNode, tuple[int, int]] = {}
        self._starts: list[int] = []

    def pop_trailing_newline(self) -> None:
        """Keep the module's last newline: PositionProvider counts it in the spans that end there."""

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._starts.append(len(self.tokens))

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self._starts.pop()
        if node not in self.spans:  # the syntactic span, recorded inside, wins
            self.spans[node] = (start, len(self.tokens))

    @contextmanager
    def record_syntactic_position(
        self, node: cst.CSTNode, *, start_node: cst.CSTNode | None = None, end_node: cst.CSTNode | None = None
    ) -> Iterator[None]:
        start = len(self.tokens)
        try:
            yield
        finally:
            end = len(self.tokens)
            if start_node is not None:
                start = self.spans[start_node][0]
            if end_node is not None:
                end = self.spans[end_node][1]
            self.spans[node] = (start, end)


class Positions:
    """Where nodes of one module stand in its source: ``positions[node]`` is the node's
    ``CodeRange`` (1-based lines, 0-based columns in characters), as PositionProvider gives it."""

    def __init__(self, module: cst.Module) -> None:
        state = _SpanState(module)
        module._codegen(state)
        self._spans = state.spans
        self._offsets = list(accumulate(map(len, state.tokens), initial=0))
        text = "".join(state.tokens)
        self._line_starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
        drop = len(state.tokens[-1]) if state.tokens and not module.has_trailing_newline else 0
        self.code = text[: len(text) - drop]  # the module's source, as ``module.code``

    @property
    def line_count(self) -> int:
        """The lines of the source, counting the empty one after a final newline."""
        return len(self._line_starts)

    def __contains__(self, node: cst.CSTNode) -> bool:
        return node in self._spans

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        start, end = self._spans[node]
        return CodeRange(self._position(start), self._position(end))

    def _position(self, token: int) -> CodePosition:
        """The position before the given token."""
        offset = self._offsets[token]
        line = bisect.bisect_right(self._line_starts, offset)
        return CodePosition(line, offset - self._line_starts[line - 1])

    def comments(self) -> Iterable[tuple[cst.Comment, int]]:
        """Every comment of the module with its line."""
        for node, (start, _) in self._spans.items():
            if type(node) is cst.Comment:
                yield node, self._position(start).line

    def own_line_comments(self) -> Iterable[cst.Comment]:
        """The comments that stand on a line of their own."""
        for node in self._spans:
            if type(node) is cst.EmptyLine and node.comment is not None:
                yield node.comment
