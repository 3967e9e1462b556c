"""TL502 activated-logits-loss: softmax or sigmoid outputs given to a loss that expects logits."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.facts import (
    ClassInfo,
    ModuleFacts,
    ScopeWalker,
    find_arg,
    self_attr,
)
from torchlint.rules import Hit, Rule
from torchlint.rules.loops import Body, assigned_values, bodies, body_of, methods_named

SOFTMAX, SIGMOID = "softmax", "sigmoid"
ACTIVATION_FUNCTIONS = {
    "torch.softmax": SOFTMAX,
    "torch.nn.functional.softmax": SOFTMAX,
    "torch.special.softmax": SOFTMAX,
    "torch.sigmoid": SIGMOID,
    "torch.nn.functional.sigmoid": SIGMOID,
    "torch.special.expit": SIGMOID,
}
ACTIVATION_MODULES = {"torch.nn.Softmax": SOFTMAX, "torch.nn.Sigmoid": SIGMOID}
# loss -> the activations whose outputs it must not be given (it applies its own)
LOSS_FUNCTIONS = {
    "torch.nn.functional.cross_entropy": {SOFTMAX},
    "torch.nn.functional.nll_loss": {SOFTMAX},
    "torch.nn.functional.binary_cross_entropy_with_logits": {SIGMOID, SOFTMAX},
}
LOSS_MODULES = {
    "torch.nn.CrossEntropyLoss": {SOFTMAX},
    "torch.nn.NLLLoss": {SOFTMAX},
    "torch.nn.BCEWithLogitsLoss": {SIGMOID, SOFTMAX},
}
_EXPECTS = {
    "cross_entropy": "logits (it applies log_softmax itself)",
    "nll_loss": "log-probabilities (log_softmax), not probabilities",
    "binary_cross_entropy_with_logits": "logits (it applies sigmoid itself)",
}
_DEPTH = 3


class ActivatedLogitsLoss(Rule):
    code = "TL502"
    name = "activated-logits-loss"
    summary = "softmax output into cross_entropy/CrossEntropyLoss, sigmoid output into BCEWithLogits"
    needles = ("CrossEntropy", "cross_entropy", "nll_loss", "NLLLoss", "BCEWithLogits", "with_logits")

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for body in bodies(facts):
            for event in body.events:
                if event.call is None:
                    continue
                loss = _loss_of(facts, event.node, body)
                if loss is None:
                    continue
                name, forbidden = loss
                arg, _ = find_arg(event.node, "input", 0)
                if arg is None:
                    continue
                kind = activation(facts, arg.value, body, event.node, 0)
                if kind in forbidden:
                    yield Hit(event.node, _message(name, kind))


def _message(loss: str, kind: str) -> str:
    expects = _EXPECTS[loss]
    if loss == "nll_loss":
        return (
            f"nll_loss is given {kind} probabilities but expects log-probabilities: the loss becomes "
            f"-p instead of -log(p), whose gradient vanishes on confidently wrong predictions; use "
            f"log_softmax (or pass the logits to cross_entropy)"
        )
    return (
        f"{loss} is given {kind} outputs but expects {expects}: the {kind} is applied twice, the "
        f"gradients shrink and the model trains slowly to poorly calibrated outputs; pass the "
        f"raw logits (keep the {kind} for predictions and metrics)"
    )


def _loss_of(facts: ModuleFacts, call: cst.Call, body: Body) -> tuple[str, set[str]] | None:
    """The loss a call computes (``F.cross_entropy(...)``, ``nn.CrossEntropyLoss()(...)``,
    ``criterion(...)``, ``self.criterion(...)``) and the activations it must not follow."""
    q = facts.qualname(call.func, body.scope)
    if q in LOSS_FUNCTIONS:
        return q.rsplit(".", 1)[1], LOSS_FUNCTIONS[q]
    for value in _values_of(call.func, body, call):
        if isinstance(value, cst.Call):
            vq = facts.qualname(value.func, body.scope)
            if vq in LOSS_MODULES:
                return _functional_name(vq), LOSS_MODULES[vq]
    return None


def _functional_name(module_qualname: str) -> str:
    return {
        "torch.nn.CrossEntropyLoss": "cross_entropy",
        "torch.nn.NLLLoss": "nll_loss",
        "torch.nn.BCEWithLogitsLoss": "binary_cross_entropy_with_logits",
    }[module_qualname]


def _values_of(expr: cst.BaseExpression, body: Body, before: cst.CSTNode | None) -> list[cst.BaseExpression]:
    """What an expression denotes: itself, the last value of a local name assigned before
    ``before`` (or anywhere, when None) in this body, or the one value ``self.<attr>`` is
    assigned in the class."""
    if isinstance(expr, cst.Name):
        values = assigned_values(body, expr.value, before)
        return [values[-1]] if values and values[-1] is not None else []
    fn = body.function
    attr = self_attr(expr, fn.instance) if fn is not None and fn.cls is not None else None
    if attr is not None:
        assigns = fn.cls.assigns(attr)
        return [a.value for a in assigns] if len(assigns) == 1 and assigns[0].value is not None else []
    return [expr]


def activation(
    facts: ModuleFacts, expr: cst.BaseExpression, body: Body, before: cst.CSTNode | None, depth: int
) -> str | None:
    """``softmax``/``sigmoid`` when ``expr`` is certainly that activation's output, else None."""
    if depth > _DEPTH:
        return None
    if isinstance(expr, cst.Name):
        values = _values_of(expr, body, before)
        return activation(facts, values[0], body, before, depth + 1) if values else None
    if not isinstance(expr, cst.Call):
        return None
    func = expr.func
    q = facts.qualname(func, body.scope)
    if q in ACTIVATION_FUNCTIONS:
        return ACTIVATION_FUNCTIONS[q]
    if q is None and isinstance(func, cst.Attribute) and func.attr.value in (SOFTMAX, SIGMOID):
        if facts.qualname(func.value, body.scope) is None and not _is_instance(func.value, body):
            return func.attr.value  # Tensor.softmax(dim) / Tensor.sigmoid()
    for callee in _values_of(func, body, before):
        if not isinstance(callee, cst.Call):
            continue
        cq = facts.qualname(callee.func, body.scope)
        if cq in ACTIVATION_MODULES:
            return ACTIVATION_MODULES[cq]
        cls = facts.local_class(callee.func)
        if cls is not None and cls.is_module:
            return _forward_ends_in(facts, cls, depth + 1)
    return None


def _is_instance(expr: cst.BaseExpression, body: Body) -> bool:
    return isinstance(expr, cst.Name) and body.function is not None and expr.value == body.function.instance


def _forward_ends_in(facts: ModuleFacts, cls: ClassInfo, depth: int) -> str | None:
    """The activation every ``return`` of the class's forward applies last, if one does."""
    forwards = methods_named(facts, cls, "forward")
    if not forwards:
        return None
    body = body_of(facts, forwards[0])
    if body is None or not isinstance(body.node, cst.FunctionDef):
        return None
    returns = _returns(body.node.body)
    kinds = set()
    for ret in returns:
        if ret.value is None:
            return None
        kinds.add(activation(facts, ret.value, body, None, depth))
    return kinds.pop() if len(kinds) == 1 else None


def _returns(block: cst.BaseSuite) -> list[cst.Return]:
    found: list[cst.Return] = []

    class _Finder(ScopeWalker):
        def visit_Return(self, node: cst.Return) -> None:
            found.append(node)

    _Finder().walk(block)
    return found
