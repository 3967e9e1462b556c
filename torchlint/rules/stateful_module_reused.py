"""TL305 stateful-module-reused: one BatchNorm called on two tensors in the same forward.

A module with running statistics (BatchNorm*, SyncBatchNorm, InstanceNorm* with
``track_running_stats=True``) updates them on every call in training. Called twice in one pass
on different tensors, its running mean and variance average two distributions, and ``eval()``
normalises both with that mix. Reported at the second call site. Calls in exclusive branches, a
single call site in a loop (or comprehension), and a second call on the very same tensor are not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import (
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    find_arg,
    self_attr,
    walk,
)
from torchlint.rules import Hit, Rule
from torchlint.rules.residual_without_skip import _class_chain
from torchlint.screen import TreeInfo, methods, own_nodes

# torch.nn classes with running statistics -> position of ``track_running_stats``, and whether
# they track by default.
RUNNING_STATS = {
    "BatchNorm1d": (4, True), "BatchNorm2d": (4, True), "BatchNorm3d": (4, True),
    "SyncBatchNorm": (4, True),
    "LazyBatchNorm1d": (3, True), "LazyBatchNorm2d": (3, True), "LazyBatchNorm3d": (3, True),
    "InstanceNorm1d": (4, False), "InstanceNorm2d": (4, False), "InstanceNorm3d": (4, False),
    "LazyInstanceNorm1d": (3, False), "LazyInstanceNorm2d": (3, False), "LazyInstanceNorm3d": (3, False),
}
_EXITS = (cst.Return, cst.Raise, cst.Continue, cst.Break)


class StatefulModuleReused(Rule):
    code = "TL305"
    name = "stateful-module-reused"
    summary = "the same BatchNorm (running statistics) called on two different tensors in one forward"
    needles = ("Norm",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A torch.nn layer with running statistics spelled, and a method of a class with a base
        calling the same ``self.<attr>`` twice in its own body, an attribute the file assigns."""
        if not info.spells(RUNNING_STATS):
            return False
        assigned = _assigned_attrs(info)
        return any(
            _calls_an_attribute_twice(m, assigned) for c in info.based_classes for m in methods(c) if m.name != "__init__"
        )

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.module_classes():
            stateful = _stateful_attrs(facts, cls)
            if not stateful:
                continue
            for fn in cls.methods.values():
                if fn.name == "__init__" or not fn.self_name:
                    continue
                yield from self._reuses(fn, stateful)

    def _reuses(self, fn: FunctionInfo, stateful: dict[str, str]) -> Iterator[Hit]:
        calls: dict[str, list[cst.Call]] = {}
        for call in fn.calls:
            attr = self_attr(call.node.func, fn.self_name)
            if attr in stateful and call.function is fn:
                calls.setdefault(attr, []).append(call.node)
        if not any(len(c) > 1 for c in calls.values()):
            return
        tree = _Tree(fn.node.body)
        for attr, sites in calls.items():
            for i, second in enumerate(sites[1:], 1):
                if any(tree.both_run(first, second) and not tree.same_tensor(fn, first, second) for first in sites[:i]):
                    yield Hit(
                        second,
                        f"self.{attr} ({stateful[attr]}) is called a second time in {fn.name}() on another "
                        "tensor: its running mean/var are updated with both inputs' statistics, so eval() "
                        "normalises each with a mix; give each use its own norm layer (or add "
                        f"'# noqa: {self.code}' if the sharing is deliberate)",
                        fn.cls,
                    )


def _stateful_attrs(facts: ModuleFacts, cls: ClassInfo) -> dict[str, str]:
    """``self.<attr>`` -> class name, for attributes only ever set to a layer with running
    statistics (or None)."""
    kinds: dict[str, str | None] = {}
    for c in _class_chain(facts, cls):
        for a in c.attr_assigns:
            if isinstance(a.value, cst.Name) and a.value.value == "None":
                kinds.setdefault(a.name, "")
                continue
            kind = _running_stats_layer(facts, a.value, a.method)
            previous = kinds.get(a.name, "")
            kinds[a.name] = kind if kind and (previous == "" or previous == kind) else None
    return {name: kind for name, kind in kinds.items() if kind}


def _running_stats_layer(facts: ModuleFacts, value: cst.BaseExpression | None, method: FunctionInfo) -> str | None:
    """The running-stats class a ``self.<attr> = <value>`` builds: ``nn.BatchNorm2d(c)``, or
    ``norm_layer(c)`` where the local ``norm_layer`` is only ever such a class (or None)."""
    if not isinstance(value, cst.Call):
        return None
    layers = _local_values(method, value.func)
    leaves = {_running_stats_leaf(facts, layer, method) for layer in (layers or [value.func])}
    leaf = leaves.pop() if len(leaves) == 1 else None
    if leaf is None:
        return None
    position, default = RUNNING_STATS[leaf]
    arg, maybe = find_arg(value, "track_running_stats", position)
    if maybe:
        return None
    if arg is None:
        return leaf if default else None
    return leaf if isinstance(arg.value, cst.Name) and arg.value.value == "True" else None


def _running_stats_leaf(facts: ModuleFacts, layer: cst.BaseExpression | None, method: FunctionInfo) -> str | None:
    q = facts.qualname(layer, method.scope) if layer is not None else None
    leaf = q.rsplit(".", 1)[1] if q and q.startswith("torch.nn.") else None
    return leaf if leaf in RUNNING_STATS else None


def _local_values(method: FunctionInfo, func: cst.BaseExpression) -> list[cst.BaseExpression | None] | None:
    """The values a local callee name can hold, ``None`` literals left out: a parameter's default
    (``norm_layer=nn.BatchNorm2d``; None in the list when it has none) and what the body assigns
    (``norm_layer = nn.BatchNorm2d``). None when the name is not local."""
    if not isinstance(func, cst.Name) or not isinstance(method.node, cst.FunctionDef):
        return None
    params = method.node.params
    values = [p.default for p in (*params.posonly_params, *params.params, *params.kwonly_params) if p.name.value == func.value]
    if not values and func.value not in method.assignments:
        return None
    values += [v for _, v in method.assignments.get(func.value, [])]
    return [v for v in values if not (isinstance(v, cst.Name) and v.value == "None")]


class _Tree:
    """Parents of the nodes of a function body, and when each node starts and ends in source
    order (a statement's assignment takes effect at its end)."""

    def __init__(self, body: cst.CSTNode) -> None:
        self.parent: dict[int, cst.CSTNode] = {}
        self.start: dict[int, int] = {}
        self.end: dict[int, int] = {}
        stack: list[cst.CSTNode] = []
        clock = iter(range(1 << 30))

        def enter(node: cst.CSTNode) -> None:
            if stack:
                self.parent[id(node)] = stack[-1]
            self.start[id(node)] = next(clock)
            stack.append(node)

        def leave(node: cst.CSTNode) -> None:
            self.end[id(stack.pop())] = next(clock)

        walk(body, enter, leave)

    def ancestors(self, node: cst.CSTNode) -> list[cst.CSTNode]:
        out = [node]
        while id(out[-1]) in self.parent:
            out.append(self.parent[id(out[-1])])
        return out

    def both_run(self, first: cst.Call, second: cst.Call) -> bool:
        """Whether one pass can run both calls: not in two branches of one ``if``, and ``first``
        not followed by a return (or break/continue) before ``second`` is reached."""
        up_first, up_second = self.ancestors(first), self.ancestors(second)
        common = {id(n) for n in up_second}
        i = next(k for k, n in enumerate(up_first) if id(n) in common)
        lca = up_first[i]
        j = next(k for k, n in enumerate(up_second) if n is lca)
        below_first, below_second = up_first[i - 1], up_second[j - 1]
        if isinstance(lca, (cst.If, cst.IfExp)) and below_first is not below_second:
            if lca.test not in (below_first, below_second):
                return False
        for block in up_first[:i]:
            if isinstance(block, cst.IndentedBlock) and block.body and _exits(block.body[-1]):
                return False
        return True

    def same_tensor(self, fn: FunctionInfo, first: cst.Call, second: cst.Call) -> bool:
        """Both calls on the same expression, none of its names rebound in between."""
        code = cst.Module([])
        if [code.code_for_node(a) for a in first.args] != [code.code_for_node(a) for a in second.args]:
            return False
        names: set[str] = set()
        for a in first.args:
            walk(a, lambda n: names.add(n.value) if isinstance(n, cst.Name) else None)
        start, end = self.start[id(first)], self.start[id(second)]
        return not any(
            start < self.end.get(id(stmt), -1) < end for name in names for stmt, _ in fn.assignments.get(name, [])
        )


def _exits(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and any(isinstance(s, _EXITS) for s in stmt.body)


def _assigned_attrs(info: TreeInfo) -> set[str]:
    """The attributes the file assigns: ``<x>.<attr> = ...`` and ``setattr(<x>, "<attr>", ...)``."""
    found = {n.attr for n in info.nodes if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    for call in info.calls:
        if isinstance(call.func, ast.Name) and call.func.id == "setattr" and len(call.args) >= 2:
            key = call.args[1]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found.add(key.value)
    return found


def _calls_an_attribute_twice(method: ast.FunctionDef | ast.AsyncFunctionDef, attrs: set[str]) -> bool:
    """The screen's reading of a method: two calls of one ``<instance>.<attr>(...)`` in its own
    body (not in the functions nested in it), ``attr`` among ``attrs``."""
    params = [*method.args.posonlyargs, *method.args.args]
    if not params:
        return False
    instance = params[0].arg
    seen: set[str] = set()
    for node in own_nodes(method):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == instance and func.attr in attrs:
            if func.attr in seen:
                return True
            seen.add(func.attr)
    return False
