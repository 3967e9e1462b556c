"""TL203 functional-norm-mode: ``F.batch_norm`` in an nn.Module without ``training=``: it defaults
to False, so training normalises with the running statistics and never updates them."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.facts import (
    ClassInfo,
    FunctionInfo,
    Guard,
    ModuleFacts,
    find_all,
    find_arg,
    is_false,
    self_attr,
)
from torchlint.rules import Hit, Rule
from torchlint.rules.dropout_ignores_eval import (
    _returns_early_unless_training,
    reads_training,
)
from torchlint.screen import TreeInfo

BATCH_NORM = "torch.nn.functional.batch_norm"
TRAINING = ("training", 5)  # input, running_mean, running_var, weight, bias, training


class FunctionalNormMode(Rule):
    code = "TL203"
    name = "functional-norm-mode"
    summary = "F.batch_norm in an nn.Module without training=: running stats never update, batch stats never used"
    needles = ("batch_norm",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return bool(info.based_classes) and info.mentions([BATCH_NORM])

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, _, fn, instance in facts.calls_in_module_methods(BATCH_NORM):
            training, maybe = find_arg(call.node, *TRAINING)
            if training is not None or maybe or _without_running_stats(call.node):
                continue
            if any(reads_training(g.test, fn, instance) and not _training_branch(g, fn, instance) for g in call.guards):
                continue  # the eval branch of a hand-written norm, or a mixed condition
            if _returns_early_unless_training(fn, instance) or _frozen(facts, fn.cls, call.node, instance):
                continue
            yield Hit(
                call.node,
                f"F.batch_norm() without training=: it defaults to False, so in training the batch is "
                f"normalised with the running statistics and they are never updated; pass "
                f"training={instance}.training",
                fn.cls,
            )


def _without_running_stats(call: cst.Call) -> bool:
    """``running_mean=None, running_var=None``: without ``training=True`` the call raises, so
    there is nothing silent to report."""
    for keyword, position in (("running_mean", 1), ("running_var", 2)):
        arg, _ = find_arg(call, keyword, position)
        if arg is None or not (isinstance(arg.value, cst.Name) and arg.value.value == "None"):
            return False
    return True


def _training_branch(guard: Guard, fn: FunctionInfo, instance: str) -> bool:
    """``if self.training:`` (or a local copy of it), taken: the call runs in training."""
    test = guard.test
    if isinstance(test, cst.Name):
        values = [v for _, v in fn.assignments.get(test.value, [])]
        test = values[0] if len(values) == 1 and values[0] is not None else test
    return guard.positive and self_attr(test, instance) == "training"


def _frozen(facts: ModuleFacts, cls: ClassInfo, call: cst.Call, instance: str) -> bool:
    """A batch norm frozen on purpose, by its structure (the class's name says nothing): the
    weight it passes is a buffer or has ``requires_grad`` switched off, the module switches off
    all its parameters, or the class overrides ``train()`` (to stay in eval mode)."""
    weight, _ = find_arg(call, "weight", 3)
    name = self_attr(weight.value, instance) if weight is not None else None
    for member in facts.family(cls):
        if "train" in member.methods and _stays_in_eval(member.methods["train"]):
            return True
        for c in member.self_calls:
            func = c.node.func
            if isinstance(func, cst.Attribute) and func.attr.value == "register_buffer" and c.node.args:
                key = c.node.args[0].value
                if name and isinstance(key, cst.SimpleString) and key.evaluated_value == name:
                    return True
        if name and any(_no_grad_parameter(a.value) for a in member.assigns(name)):
            return True
        own = any(
            isinstance(c.func, cst.Attribute) and c.func.attr.value in ("parameters", "named_parameters")
            for c in find_all(member.node, cst.Call)
        )
        for node in find_all(member.node, (cst.Assign, cst.Call)):
            owner = _switched_off(node)
            if owner is None:
                continue
            if isinstance(owner, cst.Name) and (owner.value == instance or own):
                return True  # the module itself, or each of its parameters in a loop
            if name and isinstance(owner, cst.Attribute) and owner.attr.value == name:
                return True
    return False


def _stays_in_eval(train: FunctionInfo) -> bool:
    """A ``train()`` override that keeps the module in eval mode: it calls ``.train(False)`` or
    ``.eval()``, or sets ``self.training = False`` (not one that passes ``mode`` on)."""
    for call in train.calls:
        func = call.node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "eval":
            return True
        if isinstance(func, cst.Attribute) and func.attr.value == "train" and call.node.args:
            if is_false(call.node.args[0].value):
                return True
    return any(
        isinstance(stmt, cst.Assign) and is_false(stmt.value)
        and any(isinstance(t.target, cst.Attribute) and t.target.attr.value == "training" for t in stmt.targets)
        for stmt in find_all(train.node, cst.Assign)
    )


def _no_grad_parameter(value: cst.BaseExpression | None) -> bool:
    """``nn.Parameter(w, requires_grad=False)``."""
    return isinstance(value, cst.Call) and any(
        a.keyword is not None and a.keyword.value == "requires_grad" and is_false(a.value) for a in value.args
    )


def _switched_off(node: cst.CSTNode) -> cst.BaseExpression | None:
    """What ``x.requires_grad = False`` or ``x.requires_grad_(False)`` freezes: ``x``."""
    if isinstance(node, cst.Assign):
        target = node.targets[0].target
        if is_false(node.value) and isinstance(target, cst.Attribute) and target.attr.value == "requires_grad":
            return target.value
        return None
    func = node.func
    if isinstance(func, cst.Attribute) and func.attr.value == "requires_grad_" and node.args and is_false(node.args[0].value):
        return func.value
    return None


