"""Helpers for writing fixes: render a changed node where the old one stood, add a keyword
argument keeping the call's layout, name ``torch.nn`` the way a scope can."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import libcst as cst

# LibCST's code generator state: the public Module.code_for_node cannot start inside indented
# blocks, and re-indenting its output afterwards would also change multi-line strings.
from libcst._nodes.internal import CodegenState

from torchlint.facts import ModuleFacts, Scope, children
from torchlint.finding import TextEdit

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def render(module: cst.Module, original: cst.CSTNode, node: cst.CSTNode | None = None) -> str:
    """The code of ``node`` (default: ``original``) to stand where ``original`` is. Lines inside
    brackets keep the indentation of the blocks around ``original``, which
    ``Module.code_for_node`` drops."""
    node = original if node is None else node
    code = module.code_for_node(node)
    if "\n" not in code and "\r" not in code:
        return code
    indents: list[str] = []

    def find(at: cst.CSTNode) -> bool:
        if at is original:
            return True
        block = isinstance(at, cst.IndentedBlock)
        if block:
            indents.append(module.default_indent if at.indent is None else at.indent)
        if any(find(child) for child in children(at)):
            return True
        if block:
            indents.pop()
        return False

    find(module)
    state = CodegenState(module.default_indent, module.default_newline, indent_tokens=indents)
    node._codegen(state)
    return "".join(state.tokens)


def with_keyword(call: cst.Call, keyword: str, code: str) -> cst.Call:
    """The call with ``keyword=code`` appended, the other arguments' layout kept (a trailing
    comma stays trailing, one argument a line stays so)."""
    args = list(call.args)
    new = cst.Arg(
        _expression(code),
        keyword=cst.Name(keyword),
        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
    )
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if isinstance(last.comma, cst.Comma):
        new = new.with_changes(comma=last.comma)
        if len(args) > 1 and isinstance(args[-2].comma, cst.Comma):
            separator = args[-2].comma
        elif isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
            separator = cst.Comma(whitespace_after=call.whitespace_before_args)
    args[-1] = last.with_changes(comma=separator)
    return call.with_changes(args=[*args, new])


@lru_cache(maxsize=256)
def _expression(code: str) -> cst.BaseExpression:
    """A parsed expression; cached, as fixes add the same few (``self.training``) many times
    and LibCST's nodes are immutable."""
    return cst.parse_expression(code)


def torch_nn(facts: ModuleFacts, scope: Scope) -> tuple[str, tuple[tuple[str, str | None], ...]] | None:
    """How code in ``scope`` can name ``torch.nn``, and the import that needs: ``nn`` when it is
    bound to torch.nn, ``torch.nn`` when ``torch`` is imported, else ``nn`` with ``from torch
    import nn``; None when ``nn`` names something else here."""
    if facts.resolve_name("nn", scope) == "torch.nn":
        return "nn", ()
    if facts.resolve_name("torch", scope) == "torch":
        return "torch.nn", ()
    s: Scope | None = scope
    while s is not None:
        if "nn" in s.imports or "nn" in s.bound:
            return None
        s = s.parent
    if facts.module_scope.star_imports:
        return None
    return "nn", (("torch", "nn"),)


def with_imports(text: str, imports: Iterable[tuple[str, str | None]]) -> str:
    """Add the imports fixes need (once each, where the module's imports are)."""
    imports = sorted(set(imports), key=lambda i: (i[0], i[1] or ""))
    if not imports:
        return text
    # Imported here: a tenth of a second, paid only when a fix needs an import.
    from libcst.codemod import CodemodContext
    from libcst.codemod.visitors import AddImportsVisitor

    module = cst.parse_module(text)
    context = CodemodContext()
    for module_name, obj in imports:
        AddImportsVisitor.add_needed_import(context, module_name, obj)
    return AddImportsVisitor(context).transform_module(module).code


def import_edits(text: str, imports: Iterable[tuple[str, str | None]]) -> tuple[TextEdit, ...]:
    """The text edit adding ``imports`` to ``text`` where ``with_imports`` puts them: the lines
    that differ, as one replacement (an insertion of whole lines, usually); none when the
    imports are there already."""
    before, after = _LINE.findall(text), _LINE.findall(with_imports(text, imports))
    if before == after:
        return ()
    head = 0
    while head < min(len(before), len(after)) and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < min(len(before), len(after)) - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    start = head + 1
    if len(before) - tail == head:  # an insertion before line ``start``
        end = start
    else:
        end = len(before) - tail + 1
    if end > len(before) and before and not before[-1].endswith(("\n", "\r")):  # up to the end of a last line
        return (TextEdit(start, 1, len(before), len(before[-1]) + 1, "".join(after[head: len(after) - tail])),)
    return (TextEdit(start, 1, end, 1, "".join(after[head: len(after) - tail])),)
