"""TL503 direct-forward-call: ``module.forward(x)`` instead of ``module(x)``: hooks are skipped."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import partial

import libcst as cst

from torchlint.edits import render
from torchlint.facts import ModuleFacts, Scope, code_of, self_attr
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.loops import Body, assigned_values, bodies
from torchlint.screen import TreeInfo

_CONTAINERS = {"torch.nn.ModuleList", "torch.nn.Sequential", "torch.nn.ModuleDict"}


class DirectForwardCall(Rule):
    code = "TL503"
    name = "direct-forward-call"
    summary = "module.forward(x) instead of module(x): forward hooks, pre-hooks and wrappers are skipped"
    needles = (".forward(",)
    default_enabled = False
    off_reason = "17 of 51 corpus findings were worth a look: whether anything hooks the receiver is rarely visible"

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return any(isinstance(c.func, ast.Attribute) and c.func.attr == "forward" for c in info.calls)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for body in bodies(facts):
            for call in body.calls():
                func = call.node.func
                if not (isinstance(func, cst.Attribute) and func.attr.value == "forward"):
                    continue
                if _is_module(facts, func.value, body, 0):
                    target = code_of(func.value)
                    yield Hit(
                        call.node,
                        f"{target}.forward(...) bypasses nn.Module.__call__: its forward hooks and "
                        f"pre-hooks do not run, nor the wrappers that rely on them (FSDP unsharding, "
                        f"DDP, torch.compile, quantization observers, feature extractors); call "
                        f"{target}(...) instead",
                        call.cls if call.cls is not None and call.cls.is_module else None,
                        Fix(
                            f"Call {target}(...) instead of {target}.forward(...)",
                            (NodeEdit(func, partial(render, facts.module, func.value)),),
                            safe=False,  # the hooks now run: that is the point, but it changes what runs
                        ),
                    )


def _is_module(facts: ModuleFacts, expr: cst.BaseExpression, body: Body, depth: int) -> bool:
    """Whether ``expr`` is certainly an nn.Module instance: built from a module class in this
    body or on this instance, annotated as one, or taken from a ModuleList/Sequential/ModuleDict."""
    if depth > 2:
        return False
    scope = body.scope
    if isinstance(expr, cst.Subscript):
        return _is_container(facts, expr.value, body, depth + 1)
    if isinstance(expr, cst.Name):
        if _annotated_module(facts, expr.value, body):
            return True
        if any(_builds_module(facts, v, scope) for v in assigned_values(body, expr.value)):
            return not _throwaway(expr.value, body)
        return any(
            _is_container(facts, loop.iter, body, depth + 1)
            for loop in body.loops
            if isinstance(loop, cst.For) and isinstance(loop.target, cst.Name) and loop.target.value == expr.value
        )
    values = _attr_values(expr, body)
    return values is not None and any(_builds_module(facts, v, scope) for v in values)


def _is_container(facts: ModuleFacts, expr: cst.BaseExpression, body: Body, depth: int) -> bool:
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "values":
        expr = expr.func.value
    if isinstance(expr, cst.Name):
        values = [v for v in assigned_values(body, expr.value) if v is not None]
    else:
        values = _attr_values(expr, body) or []
    return any(
        isinstance(v, cst.Call) and facts.qualname(v.func, body.scope) in _CONTAINERS for v in values
    )


def _attr_values(expr: cst.BaseExpression, body: Body) -> list[cst.BaseExpression | None] | None:
    """The values ``self.<attr>`` is assigned in the class of this method, or None."""
    fn = body.function
    attr = self_attr(expr, fn.instance) if fn is not None and fn.cls is not None else None
    if attr is not None:
        return [a.value for a in fn.cls.assigns(attr)]
    return None


def _builds_module(facts: ModuleFacts, value: cst.BaseExpression | None, scope: Scope) -> bool:
    """A call of a module class: torch's, a known one, or one of this file whose bases say so
    (a class taken for a module only because it defines ``forward`` may be any callable)."""
    if not isinstance(value, cst.Call):
        return False
    local = facts.local_class(value.func)
    if local is not None:
        return local.is_module and not local.module_inferred
    return facts.is_module_class_expr(value.func, scope)


def _throwaway(name: str, body: Body) -> bool:
    """A module built in a function only to be run once: nothing can have hooked it."""
    fn = body.function
    return fn is not None and len(fn.reads.get(name, [])) <= 1


def _annotated_module(facts: ModuleFacts, name: str, body: Body) -> bool:
    node = body.node
    if not isinstance(node, cst.FunctionDef):
        return False
    params = [*node.params.posonly_params, *node.params.params, *node.params.kwonly_params]
    for p in params:
        if p.name.value == name and p.annotation is not None:
            return facts.is_module_class_expr(p.annotation.annotation, body.scope.parent or body.scope)
    return False
