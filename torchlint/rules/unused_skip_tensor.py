"""TL302 unused-skip-tensor: the block's input, kept aside in forward (or a method forward calls)
for a skip, never read again.

Decided by data flow and structure, not by the local's name: a local that holds the block's input
(``inp = x.clone()``), another stage of it kept under a skip's name (``attn_residual = h``), or a
projection of it
(``shortcut = self.downsample(x)``) is dead from that assignment on: no read can follow it, or it
is overwritten by a later stage of the input before any read (the first of two pre-norm skips
lost). Reported when the block was meant to join it back: it is named or documented as a residual
block, its forward keeps another skip, the kept value is a projection, the class has a layer for the
skip path, or its output has the input's shape; and no wrapper or parent adds the skip around it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import ClassInfo, FunctionInfo, ModuleFacts, children, self_attr
from torchlint.rules import Hit, Rule
from torchlint.rules.residual_without_skip import (
    PASS_METHODS,
    PROJECTION_TOKENS,
    InputFlow,
    SkipFinder,
    _changes_shape,
    _Combinations,
    has_projection,
    main_inputs,
    meant_residual,
    methods_with_bases,
    used_as_branch,
    wrapper_adds_skip,
)
from torchlint.screen import TreeInfo, methods

_FORWARD = re.compile(r"^(forward|_forward\w*|forward_\w+)$")
SKIP_WORDS = {"identity", "residual", "res", "shortcut", "skip", "short", "sc", "resid"}
# A local named by a skip word, alone or with one word naming the stream (``x_skip``).
STREAM_WORDS = {"x", "h", "input", "inp", "in", "hidden", "feat", "feats", "connection", "conn", "out", "cut"}
KEPT_INPUT_NAMES = {"inp", "x_in", "input_x", "x_input", "short_cut"}
# Words that name a skip path and nothing else (``res`` is also a result, ``sc`` a scale).
PLAIN_SKIP_WORDS = {"identity", "residual", "resid", "shortcut", "skip"}


def skip_named(name: str) -> bool:
    """``identity``, ``residual``, ``x_skip``, ``skip_connection``, ``inp``... but not ``skip_first``
    (what other rules take as the name of a kept skip tensor)."""
    lowered = name.lower()
    if lowered.startswith("_"):
        return False
    if lowered in KEPT_INPUT_NAMES:
        return True
    words = [w for w in lowered.split("_") if w]
    if not words or not any(w in SKIP_WORDS for w in words) or len(words) > 2:
        return False
    return all(w in SKIP_WORDS or w in STREAM_WORDS for w in words)


class UnusedSkipTensor(Rule):
    code = "TL302"
    name = "unused-skip-tensor"
    summary = "the block's input kept for the skip connection (identity = x) in forward, or a method it calls, and never read"
    needles = ("forward",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """In a forward-like method of a class with a base, or one the file calls as an attribute
        (a unit forward calls through ``self``), a local that may keep its input."""
        called: set[str] | None = None  # names called as ``<name>.<attr>(...)`` in the file
        for c in info.based_classes:
            for m in methods(c):
                if not _FORWARD.match(m.name):
                    if called is None:
                        called = {n.func.attr for n in info.calls if isinstance(n.func, ast.Attribute)}
                    if m.name not in called:
                        continue  # not a unit that forward may call through ``self``
                if _keeps_an_input(info, m):
                    return True
        return False

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        forward_like: dict[int, set[str]] = {}
        for fn in facts.functions:
            method = fn.method  # the function itself, or the method it is nested in
            if not (isinstance(fn.node, cst.FunctionDef) and method and fn.cls and fn.cls.is_module):
                continue
            if id(fn.cls) not in forward_like:
                forward_like[id(fn.cls)] = fn.cls.reached({m for m in fn.cls.methods if _FORWARD.match(m)})
            if method.name not in forward_like[id(fn.cls)]:
                continue
            if not any(isinstance(v, (cst.Name, cst.Call, cst.IfExp, cst.BinaryOperation)) for a in fn.assignments.values() for _, v in a):
                continue
            flow = InputFlow(facts, fn, main_inputs(fn))
            dead = list(_dead_kept_inputs(fn, flow))
            if not dead or used_as_branch(facts, fn.cls) or _layers_wrapped_in_skips(facts, fn.cls):
                continue
            for name, stmt, kind, fresh in dead:
                if kind == "projection" or kind == "input" and not fresh or _meant_to_join(facts, fn.cls, fn, flow):
                    yield Hit(
                        stmt,
                        f"'{name}' is kept for the skip connection but never read "
                        "after this: the skip is computed and dropped, so the block is not residual "
                        f"(add it back, e.g. `out = out + {name}`)",
                        fn.cls,
                    )


def _layers_wrapped_in_skips(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether the class builds its layers inside wrappers that add the skip themselves
    (``init_hyper_conn(dim=d, branch=Attention(...))``, ``Residual(FeedForward(...))``): the skip
    lives in each layer, and a ``residual = x`` left in forward is a leftover, not a lost skip. A
    wrapper of this file counts when its forward adds its input back."""
    for call in facts.calls:
        if call.cls is not cls:
            continue
        scope = call.scope or (call.function.scope if call.function else None)
        if not any(
            isinstance(a.value, cst.Call) and facts.is_module_class_expr(a.value.func, scope) for a in call.node.args
        ):
            continue
        wrapper = facts.local_class(call.node.func)
        if wrapper is cls:
            continue
        if wrapper is None:
            if wrapper_adds_skip(facts, call, cls):
                return True
            continue
        forward = methods_with_bases(facts, wrapper).get("forward")
        if forward is not None and SkipFinder(facts, wrapper, sums_input=True).forward_has_skip(forward):
            return True
    return False


def _meant_to_join(facts: ModuleFacts, cls: ClassInfo, fn: FunctionInfo, flow: InputFlow) -> bool:
    """Whether the block was built to add its input back (see the module docstring)."""
    if meant_residual(cls) or has_projection(facts, cls):
        return True
    joins = _Combinations(SkipFinder(facts, cls), flow)
    joins.visit_Return = lambda node: None  # returning (h, cache) is not a join here
    joins.walk(fn.node.body)
    unit = fn.method if fn.method and not _FORWARD.match(fn.method.name) else None
    return joins.found or not _changes_shape(facts, cls, unit)


def _dead_kept_inputs(fn: FunctionInfo, flow: InputFlow) -> Iterator[tuple[str, cst.CSTNode, str, bool]]:
    """(name, first dead assignment, what it keeps (``_kept_input``), whether it keeps the input
    as forward got it) for each local that keeps the input and is dead from some assignment on."""
    order, parents = _layout(fn.node)
    for name, assigned in fn.assignments.items():
        if name in fn.params or name.startswith("_"):
            continue
        reads = [order[id(r)] for r in fn.reads.get(name, []) if id(r) in order]
        if any(_nested(r, parents, fn.node) for r in fn.reads.get(name, [])):
            continue  # read by a nested function or lambda: when, cannot tell
        stores = [s for s, _ in assigned if id(s) in order]
        for stmt, value in assigned:
            if not isinstance(stmt, (cst.Assign, cst.AnnAssign)) or value is None or id(stmt) not in order:
                continue
            if isinstance(stmt, cst.Assign) and not (len(stmt.targets) == 1 and isinstance(stmt.targets[0].target, cst.Name)):
                continue
            kept = _kept_input(value, flow, name, fn)
            if kept is None or not _dead_from(stmt, value, reads, stores, order, parents, fn):
                continue
            yield name, stmt, kept, _fresh(stmt, value, order, parents, fn)
            break


def _fresh(stmt, value, order, parents, fn: FunctionInfo) -> bool:
    """Whether the kept value is an input of forward not yet rebound (outside any loop): what the
    block's width says applies to it. A stage inside the block is kept to be joined there."""
    while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        value = value.func.value  # x.clone()
    if not isinstance(value, cst.Name) or value.value not in fn.params:
        return False
    if _enclosing_loop(stmt, parents, fn.node) is not None:
        return False
    at = order[id(stmt)]
    return not any(order.get(id(s), at) < at for s, _ in fn.assignments.get(value.value, []))


_KINDS = ("input", "computed", "projection")  # weakest evidence first


def _kept_input(value: cst.BaseExpression, flow: InputFlow, name: str, fn: FunctionInfo) -> str | None:
    """What the value keeps of the input: ``"input"``, the input itself (an alias, reshaped or
    cast); ``"projection"``, a layer's projection of it (``self.downsample(x)``, kept under a
    skip's name or by a skip layer, also reshaped around: ``self.sc(x.transpose(1, 4))``);
    ``"computed"``, a function of it kept under a name that only means a skip (``residual =
    F.interpolate(h, size)``); None otherwise."""
    if isinstance(value, cst.Name):
        # the input itself, another stage of it kept under a skip's name (``residual = h``), or
        # a stage that layers then transform (``input_embedding = x; x = self.fc1(x)``)
        stage = value.value in fn.params or SKIP_WORDS & set(name.lower().split("_")) or _transformed(value.value, fn)
        return "input" if stage and flow.expr(value) else None
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
        kinds = [_kept_input(v, flow, name, fn) for v in (value.left, value.right) if flow.expr(v)]
        return kinds[0] if len(kinds) == 1 else None  # scaled: ``self.proj(h) * self.scale``
    if isinstance(value, cst.IfExp):
        kinds = [_kept_input(v, flow, name, fn) for v in (value.body, value.orelse)]
        kinds = [k for k in kinds if k is not None]
        return max(kinds, key=_KINDS.index) if kinds else None
    if not isinstance(value, cst.Call):
        return None
    if isinstance(value.func, cst.Attribute) and value.func.attr.value in PASS_METHODS:
        kind = _kept_input(value.func.value, flow, name, fn)
        if kind is not None:
            return kind
    layer = _layer_called(value.func, fn)
    args = [a.value for a in value.args]
    if layer and len(args) == 1 and flow.expr(args[0]):
        skipish = (SKIP_WORDS | PROJECTION_TOKENS) & {*name.lower().split("_"), *layer.lower().split("_")}
        return "projection" if skipish else None
    positional = [a.value for a in value.args if a.keyword is None and a.star != "**"]
    if PLAIN_SKIP_WORDS & set(name.lower().split("_")) and positional and flow.expr(positional[0]) and flow.expr(value):
        return "computed"
    return None


def _transformed(name: str, fn: FunctionInfo) -> bool:
    """Whether ``name`` is rebound from a layer or function applied to it (``x = self.fc(x)``,
    ``x = F.gelu(x)``), not only reshaped (``beta = beta.view(...)``)."""
    for _, value in fn.assignments.get(name, []):
        for node in _nodes(value) if value is not None else ():
            if isinstance(node, cst.Call) and not (
                isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name)
                and node.func.value.value == name
            ) and any(isinstance(a.value, cst.Name) and a.value.value == name for a in node.args):
                return True
    return False


def _layer_called(func: cst.BaseExpression, fn: FunctionInfo) -> str | None:
    """The layer a call runs: ``self.down`` (``self.blocks[i]``), or a loop variable over the
    module's layers (``for conv_block in self.conv_blocks``); its name."""
    if isinstance(func, cst.Subscript):
        func = func.value
    instance = fn.instance
    attr = self_attr(func, instance)
    if attr:
        return attr
    if isinstance(func, cst.Name):
        for stmt, _ in fn.assignments.get(func.value, []):
            if isinstance(stmt, cst.For) and any(
                self_attr(n, instance) for n in _nodes(stmt.iter) if isinstance(n, cst.Attribute)
            ):
                return func.value
    return None


def _nodes(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    yield node
    for c in children(node):
        yield from _nodes(c)


def _dead_from(stmt, value, reads, stores, order, parents, fn: FunctionInfo) -> bool:
    """No read can see this assignment's value: none follows it before a store in the same block
    overwrites it; or the overwrite keeps a later stage of the input (the first skip lost)."""
    at = order[id(stmt)]
    loop = _enclosing_loop(stmt, parents, fn.node)
    if loop is not None and any(order[id(loop)] <= r <= _end(loop, order) for r in reads):
        return False  # read again in the next iteration
    block, line = _statement(stmt, parents)
    kills = sorted(  # a store overwrites after its value is read, up to its last token: ``h = h + original``
        _end(s, order) for s in stores if order[id(s)] > at and _statement(s, parents)[0] is block
    )
    kill = kills[0] if kills else None
    if any(r > at and (kill is None or r <= kill) for r in reads):
        return False
    if kill is None:
        return True
    kept = value.value if isinstance(value, cst.Name) else None
    return kept is not None and any(
        at < order[id(s)] < kill for s, _ in fn.assignments.get(kept, []) if id(s) in order
    )


def _layout(root: cst.CSTNode) -> tuple[dict[int, int], dict[int, cst.CSTNode]]:
    """Source order of every node under ``root`` (pre-order) and each node's parent."""
    order: dict[int, int] = {}
    parents: dict[int, cst.CSTNode] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        order[id(node)] = len(order)
        kids = list(children(node))
        for k in kids:
            parents[id(k)] = node
        stack.extend(reversed(kids))
    return order, parents


def _end(node: cst.CSTNode, order: dict[int, int]) -> int:
    last = node
    while True:
        kids = list(children(last))
        if not kids:
            return order[id(last)]
        last = kids[-1]


def _statement(node: cst.CSTNode, parents) -> tuple[cst.CSTNode | None, cst.CSTNode]:
    """The block (statement list) holding the statement of ``node``, and that statement."""
    while id(node) in parents:
        parent = parents[id(node)]
        if isinstance(parent, (cst.IndentedBlock, cst.Module)):
            return parent, node
        node = parent
    return None, node


def _enclosing_loop(node: cst.CSTNode, parents, root: cst.CSTNode) -> cst.CSTNode | None:
    while id(node) in parents and node is not root:
        node = parents[id(node)]
        if isinstance(node, (cst.For, cst.While)):
            return node
    return None


def _nested(read: cst.Name, parents, root: cst.CSTNode) -> bool:
    node: cst.CSTNode = read
    while id(node) in parents and node is not root:
        node = parents[id(node)]
        if isinstance(node, (cst.FunctionDef, cst.Lambda)) and node is not root:
            return True
    return False



def _keeps_an_input(info: TreeInfo, method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The screen's reading of a method and the functions nested in it: a local that may keep
    the input (``_kept_input``) and is not read between that assignment and its next store."""
    return any(_dead_keeper(info, fn) for fn in info.subtree(method) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _dead_keeper(info: TreeInfo, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """In one function (its nested functions' statements too, which only lets more through):
    ``name = <what _kept_input may take>``, with one plain target not starting with ``_`` nor a
    parameter, and no read of ``name`` after it before the next store of it (anywhere in the
    function: an earlier store only lets more through)."""
    args = fn.args
    params = {a.arg for a in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg) if a is not None}
    reads: dict[str, list[tuple[int, int]]] = {}
    stores: dict[str, list[tuple[int, int]]] = {}
    keepers: list[tuple[str, tuple[int, int]]] = []
    for node in info.subtree(fn):
        if isinstance(node, ast.Name):
            at = (node.lineno, node.col_offset)
            (reads if isinstance(node.ctx, ast.Load) else stores).setdefault(node.id, []).append(at)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            reads.setdefault(node.target.id, []).append((node.lineno, node.col_offset))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
            if isinstance(target, ast.Name) and node.value is not None and not target.id.startswith("_"):
                if target.id not in params and _may_keep(node.value, target.id):
                    keepers.append((target.id, (target.lineno, target.col_offset)))
    for name, at in keepers:
        kill = min((s for s in stores.get(name, ()) if s > at), default=None)
        if not any(at < r and (kill is None or r < kill) for r in reads.get(name, ())):
            return True
    return False


def _may_keep(value: ast.expr, name: str) -> bool:
    """Whether ``_kept_input`` may take ``value`` (assigned to ``name``) as keeping the input."""
    if isinstance(value, ast.Name):
        return True
    if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Mult, ast.Div)):
        return _may_keep(value.left, name) or _may_keep(value.right, name)
    if isinstance(value, ast.IfExp):
        return _may_keep(value.body, name) or _may_keep(value.orelse, name)
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    if isinstance(func, ast.Attribute) and func.attr in PASS_METHODS and _may_keep(func.value, name):
        return True
    if PLAIN_SKIP_WORDS & set(name.lower().split("_")) and value.args:
        return True
    if len(value.args) + len(value.keywords) != 1:
        return False
    func = func.value if isinstance(func, ast.Subscript) else func
    layer = func.attr if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else func.id if isinstance(func, ast.Name) else None
    return layer is not None and bool((SKIP_WORDS | PROJECTION_TOKENS) & {*name.lower().split("_"), *layer.lower().split("_")})
