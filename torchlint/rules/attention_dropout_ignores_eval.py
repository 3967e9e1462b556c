"""TL202 attention-dropout-ignores-eval: ``F.scaled_dot_product_attention`` dropout that stays on
after ``model.eval()``."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.edits import render
from torchlint.facts import FunctionInfo, ModuleFacts, find_all, find_arg
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.dropout_ignores_eval import gated_on_training, is_zero
from torchlint.screen import TreeInfo

SDPA = "torch.nn.functional.scaled_dot_product_attention"
RATE = ("dropout_p", 4)  # query, key, value, attn_mask, dropout_p


class AttentionDropoutIgnoresEval(Rule):
    code = "TL202"
    name = "attention-dropout-ignores-eval"
    summary = "F.scaled_dot_product_attention(dropout_p=...) not gated on self.training: attention dropout stays on in eval()"
    needles = ("scaled_dot_product_attention",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """In a file with a class with a base, an attention call given a dropout rate."""
        leaf = SDPA.rsplit(".", 1)[1]
        return bool(info.based_classes) and info.mentions([SDPA]) and any(
            leaf in info.callee_leaves(call) and (len(call.args) > RATE[1] or any(k.arg == RATE[0] for k in call.keywords))
            for call in info.calls
        )

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, _, fn, instance in facts.calls_in_module_methods(SDPA):
            rate, _ = find_arg(call.node, *RATE)
            if rate is None or caller_decides(rate.value, caller_params(facts, fn, instance)):
                continue
            if gated_on_training(call, fn, instance, RATE):
                continue
            shown = _short(rate.value)
            yield Hit(
                call.node,
                f"F.scaled_dot_product_attention(dropout_p={shown}) has no {instance}.training gate: "
                f"attention dropout stays on after model.eval(); pass "
                f"dropout_p={shown if shown != '...' else 'rate'} if {instance}.training else 0.0",
                fn.cls,
                Fix(f"Gate the rate on {instance}.training", (NodeEdit(rate.value, _gated(facts, rate, instance)),)),
            )


def caller_params(facts: ModuleFacts, fn: FunctionInfo, instance: str) -> set[str]:
    """The parameters of this function and of the functions around it, up to the method."""
    by_scope = {id(f.scope): f for f in facts.functions}
    params: set[str] = set()
    scope = fn.scope
    while scope is not None and scope.kind != "class":
        if id(scope) in by_scope:
            params.update(by_scope[id(scope)].params)
        scope = scope.parent
    return params - {instance}


def caller_decides(expr: cst.BaseExpression, params: set[str]) -> bool:
    """A rate passed in by the caller (``dropout_p=p``), or switched off by a caller's flag
    (``0.0 if deterministic else self.p``): the caller decides whether it is zero in eval."""
    if isinstance(expr, cst.Name):
        return expr.value in params
    if isinstance(expr, cst.IfExp) and (is_zero(expr.body) or is_zero(expr.orelse)):
        return any(n.value in params for n in find_all(expr.test, cst.Name))
    return False


def _gated(facts: ModuleFacts, rate: cst.Arg, instance: str) -> str:
    """``<rate> if self.training else 0.0``, the rate parenthesised when it would not bind."""
    code = render(facts.module, rate.value)
    if isinstance(rate.value, (cst.IfExp, cst.Lambda, cst.NamedExpr)) and not rate.value.lpar:
        code = f"({code})"
    return f"{code} if {instance}.training else 0.0"


def _short(expr: cst.BaseExpression) -> str:
    text = cst.Module([]).code_for_node(expr)
    return text if len(text) <= 40 and "\n" not in text else "..."
