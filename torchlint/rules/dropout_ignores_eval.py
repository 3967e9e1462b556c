"""TL201 dropout-ignores-eval: functional dropout that stays on after ``model.eval()``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial

import libcst as cst

from torchlint.edits import render, with_keyword
from torchlint.facts import (
    CallInfo,
    FunctionInfo,
    ModuleFacts,
    Walker,
    find_all,
    find_arg,
    references_attr,
    self_attr,
    walk,
)
from torchlint.lazy import matchers as m
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo

# name -> position of the ``training`` parameter
DROPOUTS = {
    "torch.nn.functional.dropout": 2,
    "torch.nn.functional.dropout1d": 2,
    "torch.nn.functional.dropout2d": 2,
    "torch.nn.functional.dropout3d": 2,
    "torch.nn.functional.alpha_dropout": 2,
    "torch.nn.functional.feature_alpha_dropout": 2,
}
# these two default to training=False instead: without the argument they never drop anything
OFF_BY_DEFAULT = {"torch.nn.functional.alpha_dropout", "torch.nn.functional.feature_alpha_dropout"}
# A comment that says dropout stays on at inference on purpose: Monte-Carlo (Bayesian) dropout,
# "always", "on purpose", a Tacotron-style prenet; or eval/inference together with a word that
# keeps it on ("also at inference", "kept on in eval") and no negation ("not in eval").
_INTENT = re.compile(
    r"\b(mc|monte[ -]?carlo|bayes\w*|uncertaint\w*|always|on purpose|purpose(ful)?ly|intentional\w*|"
    r"deliberate\w*|prenet|non[ -]?deterministic)\b",
    re.I,
)
_EVAL = re.compile(r"\b(eval\w*|inference|test[ -]time|testing|predict\w*)\b", re.I)
_KEPT = re.compile(r"\b(even|also|too|keeps?|kept|stays?|still|remains?|active|enabled|on)\b", re.I)
_NEGATED = re.compile(r"\b(not|no|off|never|only|disabled?)\b|n't", re.I)


class DropoutIgnoresEval(Rule):
    code = "TL201"
    name = "dropout-ignores-eval"
    summary = "F.dropout in an nn.Module without a training= argument: dropout stays on in eval()"
    needles = ("dropout",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return bool(info.based_classes) and info.mentions(DROPOUTS)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for call, qualname, fn, instance in facts.calls_in_module_methods(*DROPOUTS):
            training, maybe = find_arg(call.node, "training", DROPOUTS[qualname])
            if maybe:
                continue
            short = qualname.rsplit(".", 1)[1]
            if training is not None:
                continue  # a literal True is TL204's, any other value decides the mode
            fixed = with_keyword(call.node, "training", f"{instance}.training")
            if training is None and qualname in OFF_BY_DEFAULT:
                rate, _ = find_arg(call.node, "p", 1)
                if rate is not None and is_zero(rate.value):
                    continue
                yield Hit(
                    call.node,
                    f"F.{short}() without training=: it defaults to False, so it never drops anything, "
                    f"not even in training; pass training={instance}.training",
                    fn.cls,
                    Fix(
                        f"Pass training={instance}.training",
                        (NodeEdit(call.node, partial(render, facts.module, call.node, fixed)),),
                        safe=False,  # switches the dropout on in training: the numbers change
                    ),
                )
                continue
            if gated_on_training(call, fn, instance, ("p", 1)) or states_always_on(fn, call.node):
                continue
            yield Hit(
                call.node,
                f"F.{short}() without training=: it defaults to True, so dropout stays on "
                f"after model.eval(); pass training={instance}.training",
                fn.cls,
                Fix(
                    f"Pass training={instance}.training",
                    (NodeEdit(call.node, partial(render, facts.module, call.node, fixed)),),
                ),
            )


def states_always_on(fn: FunctionInfo, call: cst.Call) -> bool:
    """Whether a comment on the call's statement, or on the line above it, says the dropout stays
    on at inference on purpose (Monte-Carlo dropout, "always on", "even in eval", a prenet)."""
    return any(
        _INTENT.search(text) or (_EVAL.search(text) and _KEPT.search(text) and not _NEGATED.search(text))
        for text in _comments_at(fn.node, call)
    )


def _comments_at(function: cst.CSTNode, node: cst.CSTNode) -> list[str]:
    """The comments of the statement holding ``node``: on its own lines, on the comment lines
    right above it, and, for the first statement of a block, on the block's header line."""
    path = _path_to(function, node)
    statements = [i for i, n in enumerate(path) if isinstance(n, (cst.SimpleStatementLine, cst.BaseCompoundStatement))]
    if not statements:
        return []
    index = statements[-1]
    stmt = path[index]
    found: list[cst.Comment] = []
    above: list[cst.Comment] = []
    for line in stmt.leading_lines:
        above = [*above, line.comment] if line.comment is not None else []
    found += above
    if isinstance(stmt, cst.SimpleStatementLine):
        found += m.findall(stmt.with_changes(leading_lines=()), m.Comment())
    elif isinstance(stmt.body, cst.IndentedBlock) and stmt.body.header.comment is not None:
        found.append(stmt.body.header.comment)
    block = path[index - 1] if index else None
    if isinstance(block, cst.IndentedBlock) and block.body and block.body[0] is stmt and block.header.comment:
        found.append(block.header.comment)
    return [c.value for c in found]


def _path_to(root: cst.CSTNode, target: cst.CSTNode) -> list[cst.CSTNode]:
    """The nodes from ``root`` down to ``target`` (both included), or [] when it is not below."""
    stack: list[cst.CSTNode] = []
    found: list[cst.CSTNode] = []

    def enter(node: cst.CSTNode) -> bool:
        if found:
            return False
        stack.append(node)
        if node is target:
            found.extend(stack)
            return False
        return True

    walk(root, enter, lambda node: stack.pop())
    return found


def is_zero(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, (cst.Integer, cst.Float)) and float(expr.value) == 0.0


def gated_on_training(call: CallInfo, fn: FunctionInfo, instance: str, rate: tuple[str, int]) -> bool:
    """Whether the call only runs in training, or its rate is zero outside training.

    Quiet cases: under ``if self.training`` (or any test that reads it, also through a local such
    as ``training = self.training``); after an early ``if not self.training: return``; a rate that
    is literally zero, reads ``self.training``, or is a local name whose assignments read it or
    that is assigned under a test that reads it (``if not self.training: p = 0.0``).
    """
    if any(reads_training(g.test, fn, instance) for g in call.guards):
        return True
    if _returns_early_unless_training(fn, instance, in_eval=True):
        return True
    arg, maybe = find_arg(call.node, *rate)
    if maybe:
        return True
    if arg is None:
        return False
    value = arg.value
    if is_zero(value) or reads_training(value, fn, instance):
        return True
    return isinstance(value, cst.Name) and _assigned_under_training_test(fn, value.value, instance)


def reads_training(expr: cst.BaseExpression, fn: FunctionInfo, instance: str) -> bool:
    """Whether ``expr`` reads ``self.training``, directly or through a local assigned from it."""
    if references_attr(expr, instance, "training"):
        return True
    names = {n.value for n in find_all(expr, cst.Name)}
    return any(
        a is not None and references_attr(a, instance, "training")
        for name in names
        for _, a in fn.assignments.get(name, [])
    )


def _assigned_under_training_test(fn: FunctionInfo, name: str, instance: str) -> bool:
    finder = _GuardedAssignment(fn, name, instance)
    finder.walk(fn.node.body)
    return finder.found


class _GuardedAssignment(Walker):
    """Finds an assignment to ``name`` inside an ``if`` whose test reads ``self.training``."""

    def __init__(self, fn: FunctionInfo, name: str, instance: str) -> None:
        self.fn, self.name, self.instance = fn, name, instance
        self.depth = 0  # how many enclosing ``if`` tests read self.training
        self.found = False

    def visit_If(self, node: cst.If) -> None:
        self.depth += reads_training(node.test, self.fn, self.instance)

    def leave_If(self, node: cst.If) -> None:
        self.depth -= reads_training(node.test, self.fn, self.instance)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._check(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._check(node.target)

    def _check(self, target: cst.BaseExpression) -> None:
        if self.depth and isinstance(target, cst.Name) and target.value == self.name:
            self.found = True


def _returns_early_unless_training(fn: FunctionInfo, instance: str, in_eval: bool = False) -> bool:
    """Whether the method starts by returning (or raising) under a test that reads
    ``self.training``; with ``in_eval``, only under one that holds whenever the module is in eval
    mode (``if not self.training: return x``; not ``if self.training and self.checkpointing:``)."""
    body = fn.node.body
    if not isinstance(body, cst.IndentedBlock):
        return False
    for stmt in body.body:
        if isinstance(stmt, cst.If) and references_attr(stmt.test, instance, "training"):
            if in_eval and not _holds_in_eval(stmt.test, instance):
                continue
            inner = stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else [stmt.body]
            for s in inner:
                small = s.body if isinstance(s, cst.SimpleStatementLine) else [s]
                if any(isinstance(x, (cst.Return, cst.Raise)) for x in small):
                    return True
    return False


def _holds_in_eval(test: cst.BaseExpression, instance: str) -> bool:
    """Whether ``test`` is true whenever ``self.training`` is False: ``not self.training``,
    ``self.training is False``, an ``or`` with such a part, an ``and`` of such parts."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return references_attr(test.expression, instance, "training")
    if isinstance(test, cst.BooleanOperation):
        left, right = _holds_in_eval(test.left, instance), _holds_in_eval(test.right, instance)
        return (left or right) if isinstance(test.operator, cst.Or) else (left and right)
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        op, value = test.comparisons[0].operator, test.comparisons[0].comparator
        if self_attr(test.left, instance) != "training" or not isinstance(value, cst.Name):
            return False
        if isinstance(op, (cst.Is, cst.Equal)):
            return value.value == "False"
        if isinstance(op, (cst.IsNot, cst.NotEqual)):
            return value.value == "True"
    return False
