"""Helpers for writing fixes: render a changed node where the old one stood, add a keyword
argument keeping the call's layout, name ``torch.nn`` the way a scope can."""

from __future__ import annotations

from functools import lru_cache

import libcst as cst

# LibCST's code generator state: the public Module.code_for_node cannot start inside indented
# blocks, and re-indenting its output afterwards would also change multi-line strings.
from libcst._nodes.internal import CodegenState

from torchlint.facts import ModuleFacts, Scope, children


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
