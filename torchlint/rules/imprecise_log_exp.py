"""TL705 imprecise-log-exp: ``torch.log(1 + x)`` and ``torch.exp(x) - 1``, which lose the
precision of small ``x`` that ``torch.log1p`` and ``torch.expm1`` keep."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.deprecations import spell
from torchlint.facts import CallInfo, ModuleFacts
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo


def _is_one(expr: cst.BaseExpression) -> bool:
    """The literal 1 or 1.0 (any spelling: ``1.``, ``1.00``, ``1e0``), without parentheses tricks."""
    if isinstance(expr, cst.Integer):
        return expr.evaluated_value == 1
    if isinstance(expr, cst.Float):
        return expr.evaluated_value == 1.0
    return False


def _single_arg(call: cst.Call) -> cst.BaseExpression | None:
    """The argument of a call with exactly one plain positional argument."""
    if len(call.args) == 1 and call.args[0].keyword is None and not call.args[0].star:
        return call.args[0].value
    return None


def _plus_one_operand(expr: cst.BaseExpression) -> cst.BaseExpression | None:
    """``x`` of ``1 + x`` or ``x + 1``."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
        if _is_one(expr.left):
            return expr.right
        if _is_one(expr.right):
            return expr.left
    return None


class ImpreciseLogExp(Rule):
    code = "TL705"
    name = "imprecise-log-exp"
    summary = "torch.log(1 + x) / torch.exp(x) - 1: use torch.log1p(x) / torch.expm1(x), exact for small x"
    needles = ("log", "exp")
    default_enabled = False
    off_reason = "on the corpus 15 of 24 findings take the log of counts, positions or durations, where log1p/expm1 change nothing"

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(["torch.log", "torch.exp"])

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, _ in facts.calls_to("torch.log"):
            arg = _single_arg(call.node)
            x = _plus_one_operand(arg) if arg is not None else None
            if x is not None:
                yield Hit(
                    call.node,
                    "torch.log(1 + x) rounds 1 + x first, so the result is inaccurate (0 for |x| below about "
                    "1e-7 in float32); torch.log1p(x) computes it exactly",
                    fix=_fix(facts, call, call.node, "torch.log1p", x),
                )
        exps = {id(call.node): call for call, _ in facts.calls_to("torch.exp")}
        if exps:
            finder = _ExpMinusOne(exps)
            finder.walk(facts.module)
            for binop, call in finder.found:
                yield Hit(
                    binop,
                    "torch.exp(x) - 1 loses the precision of small x (exp(x) is rounded next to 1 before the "
                    "subtraction); torch.expm1(x) computes it exactly",
                    fix=_fix(facts, call, binop, "torch.expm1", _single_arg(call.node)),
                )


def _fix(facts: ModuleFacts, call: CallInfo, node: cst.CSTNode, replacement: str, x: cst.BaseExpression) -> Fix | None:
    scope = call.scope or facts.module_scope
    spelled = spell(facts, scope, replacement)
    if spelled is None:
        return None
    code, imports = spelled
    return Fix(
        f"Use {replacement}",
        (NodeEdit(node, f"{code}({facts.module.code_for_node(x)})"),),
        safe=False,
        imports=imports,
    )


class _ExpMinusOne:
    """``<torch.exp(x)> - 1`` binary operations, with the call."""

    def __init__(self, exps: dict[int, CallInfo]) -> None:
        self.exps = exps
        self.found: list[tuple[cst.BinaryOperation, CallInfo]] = []

    def walk(self, module: cst.Module) -> None:
        from torchlint.facts import walk

        walk(module, self.enter)

    def enter(self, node: cst.CSTNode) -> None:
        if (
            isinstance(node, cst.BinaryOperation)
            and isinstance(node.operator, cst.Subtract)
            and _is_one(node.right)
            and id(node.left) in self.exps
            and not node.left.lpar
            and _single_arg(node.left) is not None
        ):
            self.found.append((node, self.exps[id(node.left)]))
