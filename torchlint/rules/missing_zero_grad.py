"""TL501 missing-zero-grad: a training loop that steps the optimizer and never clears gradients."""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import CallInfo, FunctionInfo, ModuleFacts, code_of, walk
from torchlint.rules import Hit, Rule
from torchlint.rules.loops import (
    Body,
    Event,
    assigned_values,
    bodies,
    body_of,
    called_functions,
    last_name,
    method_name,
    receiver,
)
from torchlint.screen import TreeInfo

_OPTIMIZER_NAME = re.compile(r"optim|(^|_)opts?\d*(_|$)")
_OPTIMIZER_PREFIX = re.compile(r"^opts?[A-Z0-9]")
_CLEARING_METHODS = {
    "zero_grad", "zero_grads", "zero_gradients", "clear_grad", "clear_grads", "reset_grad", "reset_grads",
}
_GRAD_IN_PLACE = {"zero_", "fill_", "copy_"}
_HELPER_DEPTH = 3


def optimizer_like(facts: ModuleFacts, expr: cst.BaseExpression | None, body: Body) -> bool:
    """Named like an optimizer (``optimizer``, ``opt_g``, ``self.optim``, ``optD``) or assigned
    from a ``torch.optim`` class in this body or on this instance."""
    name = last_name(expr)
    if name is None:
        return False
    lowered = name.lower()
    if "sched" in lowered:
        return False
    if _OPTIMIZER_NAME.search(lowered) or _OPTIMIZER_PREFIX.match(name):
        return True
    if isinstance(expr, cst.Name):
        return any(_builds_optimizer(facts, v, body) for v in assigned_values(body, expr.value))
    fn = body.function
    if isinstance(expr, cst.Attribute) and fn is not None and fn.cls is not None:
        if isinstance(expr.value, cst.Name) and expr.value.value == fn.instance:
            return any(_builds_optimizer(facts, a.value, body) for a in fn.cls.assigns(name))
    return False


def _builds_optimizer(facts: ModuleFacts, value: cst.BaseExpression | None, body: Body) -> bool:
    if not isinstance(value, cst.Call):
        return False
    q = facts.qualname(value.func, body.scope) or ""
    leaf = q.rsplit(".", 1)[-1]
    return q.startswith("torch.optim.") and leaf[:1].isupper() and not q.startswith(
        ("torch.optim.lr_scheduler.", "torch.optim.swa_utils.")
    )


def optimizer_step(facts: ModuleFacts, call: cst.Call, body: Body) -> bool:
    """``opt.step()`` on an optimizer, or ``scaler.step(opt)``; not ``opt.step(closure)`` (the
    closure may clear the gradients itself) nor ``scheduler.step()``."""
    if method_name(call) != "step" or receiver(call) is None:
        return False
    if not call.args:
        return optimizer_like(facts, receiver(call), body)
    first = call.args[0]
    return first.keyword is None and not first.star and optimizer_like(facts, first.value, body)


def is_backward(facts: ModuleFacts, event: Event) -> bool:
    if event.call is None:
        return False
    if method_name(event.node) == "backward" and receiver(event.node) is not None:
        return True
    return facts.call_qualname(event.call) == "torch.autograd.backward"


def clears_gradients(facts: ModuleFacts, event: Event, depth: int = 0, seen: set[int] | None = None) -> bool:
    """Whether the event clears gradients: ``zero_grad()``, ``p.grad = None``, ``p.grad.zero_()``,
    ``del p.grad``, or a call of a helper of this file that does."""
    node = event.node
    if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        return any(_is_grad(t) for t in targets)
    if isinstance(node, cst.Del):
        return _is_grad(node.target) or (
            isinstance(node.target, cst.Tuple) and any(_is_grad(e.value) for e in node.target.elements)
        )
    name = method_name(node)
    if name in _CLEARING_METHODS:
        return True
    if name in _GRAD_IN_PLACE and _reaches_grad(receiver(node)):
        return True
    if name == "setattr" and len(node.args) >= 2:
        key = node.args[1].value
        if isinstance(key, cst.SimpleString) and key.evaluated_value == "grad":
            return True
    if event.call is None or depth >= _HELPER_DEPTH:
        return False
    seen = seen if seen is not None else set()
    for helper in called_functions(facts, event.call):
        if id(helper) in seen:
            continue
        seen.add(id(helper))
        if _function_clears(facts, helper, depth + 1, seen):
            return True
    return False


def _function_clears(facts: ModuleFacts, fn: FunctionInfo, depth: int, seen: set[int]) -> bool:
    body = body_of(facts, fn)
    return body is not None and any(clears_gradients(facts, e, depth, seen) for e in body.events)


def _is_grad(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Attribute) and expr.attr.value == "grad"


def _reaches_grad(expr: cst.BaseExpression | None) -> bool:
    """``p.grad``, ``p.grad.data``: an in-place call on them writes the gradient."""
    while isinstance(expr, cst.Attribute):
        if expr.attr.value == "grad":
            return True
        expr = expr.value
    return False


class MissingZeroGrad(Rule):
    code = "TL501"
    name = "missing-zero-grad"
    summary = "a loop calls backward() and optimizer.step() but never clears gradients: they accumulate"
    needles = ("backward",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """An optimizer's ``step`` and a ``backward`` in the file."""
        return {"step", "backward"} <= info.names

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        reported: set[int] = set()
        for body in bodies(facts):
            for loop in body.loops:
                events = body.in_loop(loop)
                steps = [e for e in events if e.call is not None and optimizer_step(facts, e.node, body)]
                if not steps or not any(is_backward(facts, e) for e in events):
                    continue
                clears = [e for e in events if clears_gradients(facts, e)]
                if clears:
                    steps = _steps_no_clear_names(facts, clears, steps)
                for step in steps:
                    if _fresh_each_iteration(facts, step.node, events, body):
                        continue
                    if id(step.node) not in reported:
                        reported.add(id(step.node))
                        yield Hit(step.node, _message(step.call, [e.node for e in clears]))


def _steps_no_clear_names(facts: ModuleFacts, clears: list[Event], steps: list[Event]) -> list[Event]:
    """In a loop that steps two or more optimizers and clears only with ``X.zero_grad()``: the
    steps whose optimizer, and the model it was built over (``optG = Adam(netG.parameters())``),
    no clear names. A GAN loop that zeroes the discriminator and never the generator. Any other
    clear, or an optimizer built out of sight, clears everything as far as the rule can tell."""
    named: set[str] = set()
    for e in clears:
        owner = receiver(e.node) if isinstance(e.node, cst.Call) and method_name(e.node) == "zero_grad" else None
        if owner is None:
            return []
        named.add(code_of(owner))
    stepped = {code_of(_stepped(s.node)) for s in steps}
    if len(stepped) < 2:
        return []
    left = []
    for step in steps:
        opt = code_of(_stepped(step.node))
        models = _optimized_models(facts, opt)
        covered = {opt} | models
        if models and not any(c == n or c.startswith(n + ".") or n.startswith(c + ".") for c in covered for n in named):
            left.append(step)
    return left


def _stepped(step: cst.Call) -> cst.BaseExpression:
    """``opt.step()`` -> ``opt``; ``scaler.step(opt)`` -> ``opt``."""
    return step.args[0].value if step.args else receiver(step)


def _optimized_models(facts: ModuleFacts, opt: str) -> set[str]:
    """The models an optimizer bound to ``opt`` is built over, where every binding of that name in
    the file is a call on ``model.parameters()`` (``optG = optim.Adam(netG.parameters(), ...)``);
    else none."""
    models: set[str] = set()
    found = False

    def visit(node: cst.CSTNode) -> None:
        nonlocal found
        if not isinstance(node, cst.Assign) or not any(code_of(t.target) == opt for t in node.targets):
            return
        found = True
        value = node.value
        first = value.args[0].value if isinstance(value, cst.Call) and value.args else None
        if isinstance(first, cst.Call) and method_name(first) == "parameters" and receiver(first) is not None:
            models.add(code_of(receiver(first)))
        else:
            models.add("")  # built some other way: unknown

    walk(facts.module, visit)
    return set() if not found or "" in models else models


def _fresh_each_iteration(facts: ModuleFacts, step: cst.Call, events: list[Event], body: Body) -> bool:
    """Whether the loop builds the stepped optimizer anew over tensors it also creates anew
    (``x = z.detach().clone(); opt = SGD([x])``): no gradient is left from an earlier iteration."""
    opt = receiver(step) if not step.args else step.args[0].value
    if not isinstance(opt, cst.Name):
        return False
    assigned = {
        t.target.value: e.node.value
        for e in events
        if isinstance(e.node, cst.Assign)
        for t in e.node.targets
        if isinstance(t.target, cst.Name)
    }
    built = assigned.get(opt.value)
    if not _builds_optimizer(facts, built, body) or not built.args:
        return False
    params = built.args[0].value
    return isinstance(params, (cst.List, cst.Tuple)) and bool(params.elements) and all(
        isinstance(el.value, cst.Name) and isinstance(assigned.get(el.value.value), cst.Call)
        for el in params.elements
    )


def _message(call: CallInfo, clears: list[cst.CSTNode]) -> str:
    opt = code_of(_stepped(call.node))
    others = ", ".join(dict.fromkeys(code_of(c) for c in clears))
    cleared = f"clears only other gradients ({others})" if clears else "never clears the gradients"
    return (
        f"{opt} is stepped in a loop that calls backward() but {cleared}: "
        f"backward() adds to .grad, so every step applies the sum of all past gradients; "
        f"call {opt}.zero_grad() in each iteration (before backward(), or after step())"
    )
