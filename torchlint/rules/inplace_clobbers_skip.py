"""TL401 inplace-clobbers-skip: a tensor kept aside (``identity = x``) changed in place through
another name before it is read.

``identity = x`` does not copy: both names hold one tensor. An in-place operation through ``x``
(``x += ...``, ``x.relu_()``, ``F.relu(x, inplace=True)``, a layer built with ``inplace=True``
called on ``x``, ``x[...] = ...``) changes what ``identity`` reads. A layer built with
``inplace=True`` also changes ``x`` itself when its result is bound to another name
(``out = self.relu(x)``), so a later ``out + x`` adds the activated tensor to itself.

The check runs the function's statements in order over an abstract state: for each name, the
tensors (abstract objects) it may hold; rebinding (``x = self.conv(x)``) gives a fresh object,
views and in-place results keep the object. Both arms of an ``if`` are followed and merged; an
arm that returns is dropped; loop bodies run twice. An in-place change marks every other name
holding the object; a later read of a marked name reports the in-place operation.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from torchlint.facts import (
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    find_arg,
    is_true,
    self_attr,
    target_names,
)
from torchlint.rules import Hit, Rule
from torchlint.rules.residual_without_skip import (
    META_ATTRS,
    META_METHODS,
    SEQUENTIALS,
    _class_chain,
)
from torchlint.rules.unused_skip_tensor import skip_named
from torchlint.screen import TreeInfo, ast_nodes, methods, plain_names

# torch.nn layers with an ``inplace`` flag -> its position in the constructor.
INPLACE_LAYERS = {
    "ReLU": 0, "ReLU6": 0, "SELU": 0, "SiLU": 0, "Mish": 0, "Hardswish": 0, "Hardsigmoid": 0,
    "LeakyReLU": 1, "ELU": 1, "CELU": 1, "Dropout": 1, "Dropout1d": 1, "Dropout2d": 1,
    "Dropout3d": 1, "AlphaDropout": 1, "FeatureAlphaDropout": 1,
    "Hardtanh": 2, "Threshold": 2, "RReLU": 2,
}
# torch.nn.functional functions with an ``inplace`` argument -> its position.
INPLACE_FUNCTIONS = {
    "relu": 1, "relu6": 1, "selu": 1, "silu": 1, "mish": 1, "hardswish": 1, "hardsigmoid": 1,
    "elu": 2, "celu": 2, "leaky_relu": 2, "hardtanh": 3, "threshold": 3, "rrelu": 4,
    "dropout": 3, "dropout1d": 3, "dropout2d": 3, "dropout3d": 3, "alpha_dropout": 3,
    "feature_alpha_dropout": 3,
}
# Methods ending in ``_`` that change flags or bookkeeping, not values.
NOT_VALUE_INPLACE = {"requires_grad_", "share_memory_", "record_stream", "retain_grad_"}
# Results that are (or may be) the receiver itself or a view of its storage.
VIEW_METHODS = {
    "view", "view_as", "detach", "reshape", "reshape_as", "flatten", "unflatten", "squeeze", "unsqueeze",
    "transpose", "permute", "expand", "expand_as", "narrow", "t", "movedim", "moveaxis", "contiguous",
    "to", "type_as", "float", "as_strided",
}
COMBINING_TORCH = {"add", "sub", "subtract", "cat", "concat", "concatenate", "stack", "lerp", "addcmul", "addcdiv"}
COMBINING_METHODS = {"add", "add_", "sub", "sub_", "lerp", "lerp_", "addcmul", "addcmul_", "addcdiv", "addcdiv_"}
VIEW_ATTRS = {"data", "T", "mT", "H", "mH"}
# Builtins whose results are not tensors.
NOT_TENSOR_BUILTINS = {
    "len", "int", "float", "bool", "str", "range", "enumerate", "zip", "list", "tuple", "dict", "set",
    "isinstance", "hasattr", "getattr", "type", "min", "max", "sum", "abs", "round", "any", "all",
    "print", "sorted", "reversed", "map", "filter", "id", "repr", "format",
}
NOT_TENSOR_ANNOTATIONS = {"int", "float", "bool", "str", "list", "tuple", "dict", "List", "Tuple", "Dict", "Sequence"}


class InplaceClobbersSkip(Rule):
    code = "TL401"
    name = "inplace-clobbers-skip"
    summary = "a tensor kept for a skip (identity = x) changed in place through its alias before it is read"
    # an in-place method or function, an inplace flag (by keyword or as a positional ``True``), an
    # augmented assignment, or an assignment into a subscript
    needles = ("_(", "inplace", "True", "+=", "-=", "*=", "/=", "%=", "@=", "&=", "|=", "^=", "<<=", ">>=", "]=", "] =")

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """In a function of a class with a base, a local changed in place through a layer built with
        an inplace flag; or a local changed in place that shares its tensor with another name
        (``identity = x``), one of those names read where values combine or named as a skip."""
        inplace, identity = _layer_attrs(info)
        layers = inplace | identity  # the attributes _layer_kinds can give a kind
        for cls in info.based_classes:
            methods_of = {id(m) for m in methods(cls)}
            for fn in info.subtree(cls):
                if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                nodes = info.subtree(fn)
                held = _holdable(fn, id(fn) in methods_of, nodes)
                changes = {n: _changed_roots(n, inplace) & held for n in nodes}
                if any(roots and _changes_itself(n, nodes, inplace) for n, roots in changes.items() if isinstance(n, ast.Call)):
                    return True
                changed = set().union(*changes.values())
                shared = set().union(*(_alias_names(n, layers, held) for n in nodes)) if changed else set()
                if changed & shared and (any(skip_named(n) for n in shared) or shared & _combined(nodes)):
                    return True
        return False

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        layers: dict[int, dict[str, str]] = {}
        for fn in facts.functions:
            cls = fn.cls
            if not isinstance(fn.node, cst.FunctionDef) or cls is None or not cls.is_module:
                continue
            if id(cls) not in layers:
                layers[id(cls)] = _layer_kinds(facts, cls)
            flow = _Flow(facts, fn, fn.instance, layers[id(cls)])
            flow.run()
            for node, (via, kept) in flow.reports.items():
                yield Hit(node, _message(via, kept), cls)


def _message(via: str, kept: str) -> str:
    if via == kept:
        return (
            f"this in-place layer changes '{via}' itself, and '{via}' is read again later expecting the "
            f"old values: build the layer with inplace=False, or keep a copy (`{via}.clone()`)"
        )
    return (
        f"in-place change of '{via}' also changes '{kept}' (the same tensor), which is read later: the "
        f"skip gets the modified values; make it out-of-place (`{via} = {via} + ...`, inplace=False) "
        f"or keep `{kept} = {via}.clone()`"
    )


# --- which self.<attr> layers act in place ----------------------------------------------------


def _layer_kinds(facts: ModuleFacts, cls: ClassInfo) -> dict[str, str]:
    """``self.<attr>`` -> ``"inplace"`` (every assignment a layer built with inplace=True, or a
    Sequential whose first layer is one) or ``"identity"`` (nn.Identity: returns its input)."""
    kinds: dict[str, str | None] = {}
    for c in _class_chain(facts, cls):
        for a in c.attr_assigns:
            kind = _layer_kind(facts, a.value, a.method)
            kinds[a.name] = kind if kinds.get(a.name, kind) == kind else None
    return {name: kind for name, kind in kinds.items() if kind}


def _layer_kind(facts: ModuleFacts, value: cst.BaseExpression | None, method: FunctionInfo) -> str | None:
    if not isinstance(value, cst.Call):
        return None
    q = facts.qualname(value.func, method.scope) or ""
    if q in SEQUENTIALS:
        for arg in value.args:
            kind = _layer_kind(facts, arg.value, method) if not (arg.star or arg.keyword) else None
            if kind != "identity":
                return kind
        return None
    leaf = q.rsplit(".", 1)[1] if q.startswith("torch.nn.") else ""
    if leaf == "Identity":
        return "identity"
    if leaf in INPLACE_LAYERS:
        flag, _ = find_arg(value, "inplace", INPLACE_LAYERS[leaf])
        if flag is not None and is_true(flag.value):
            return "inplace"
    return None


# --- the abstract state ------------------------------------------------------------------------


@dataclass
class _State:
    holds: dict[str, frozenset[int]] = field(default_factory=dict)  # name -> objects it may hold
    changed: dict[str, tuple[cst.CSTNode, str]] = field(default_factory=dict)  # name -> (in-place node, via)
    exited: bool = False

    def copy(self) -> _State:
        return _State(dict(self.holds), dict(self.changed), self.exited)

    def merge(self, other: _State) -> _State:
        if self.exited:
            return other.copy()
        if other.exited:
            return self.copy()
        holds = dict(self.holds)
        for name, objs in other.holds.items():
            holds[name] = holds.get(name, frozenset()) | objs
        return _State(holds, {**other.changed, **self.changed})


class _Flow:
    """Runs a function's statements in order over ``_State``; collects ``reports``."""

    def __init__(self, facts: ModuleFacts, fn: FunctionInfo, instance: str | None, layers: dict[str, str]) -> None:
        self.facts = facts
        self.fn = fn
        self.instance = instance
        self.layers = layers
        self.ids = itertools.count()
        self.reports: dict[cst.CSTNode, tuple[str, str]] = {}
        self.state = _State()
        self.statement_call: cst.BaseExpression | None = None  # a call that is a whole statement

    def fresh(self) -> frozenset[int]:
        return frozenset([next(self.ids)])

    def run(self) -> None:
        node = self.fn.node
        assert isinstance(node, cst.FunctionDef)
        params = node.params
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            name = p.name.value
            if name == self.fn.self_name or _not_tensor_param(p):
                continue
            self.state.holds[name] = self.fresh()
        self.block(node.body)

    # statements

    def block(self, body: cst.BaseSuite | cst.BaseStatement | None) -> None:
        if body is None:
            return
        if isinstance(body, cst.SimpleStatementSuite):
            for small in body.body:
                self.small(small)
            return
        statements = body.body if isinstance(body, cst.IndentedBlock) else [body]
        for stmt in statements:
            if self.state.exited:
                return
            self.statement(stmt)

    def statement(self, stmt: cst.CSTNode) -> None:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self.small(small)
        elif isinstance(stmt, cst.If):
            self.value(stmt.test)
            self.branches([stmt.body, stmt.orelse])
        elif isinstance(stmt, cst.Else):
            self.block(stmt.body)
        elif isinstance(stmt, (cst.For, cst.While)):
            objs = self.value(stmt.iter if isinstance(stmt, cst.For) else stmt.test)
            before = self.state.copy()
            for _ in range(2):
                if isinstance(stmt, cst.For):
                    self.bind(stmt.target, self.fresh() if objs else frozenset())
                self.block(stmt.body)
                self.state.exited = False
                self.state = self.state.merge(before)
            self.block(stmt.orelse)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                objs = self.value(item.item)
                if item.asname is not None:
                    self.bind(item.asname.name, objs)
            self.block(stmt.body)
        elif isinstance(stmt, cst.Try):
            before = self.state.copy()
            self.block(stmt.body)
            after = self.state
            for handler in stmt.handlers:
                self.state = before.merge(after)
                self.state.exited = False
                self.block(handler.body)
                after = after.merge(self.state)
            self.state = after
            self.block(stmt.orelse)
            if stmt.finalbody is not None:
                self.block(stmt.finalbody.body)
        elif isinstance(stmt, cst.Match):
            self.value(stmt.subject)
            self.branches([case.body for case in stmt.cases] + [None])
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            self.bind(stmt.name, frozenset())

    def branches(self, bodies: list) -> None:
        start = self.state
        merged: _State | None = None
        for body in bodies:
            self.state = start.copy()
            self.block(body)
            merged = self.state if merged is None else merged.merge(self.state)
        self.state = merged if merged is not None else start

    def small(self, small: cst.BaseSmallStatement) -> None:
        if isinstance(small, cst.Assign):
            objs = self.value(small.value)
            for t in small.targets:
                self.bind(t.target, objs)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self.bind(small.target, self.value(small.value))
        elif isinstance(small, cst.AugAssign):
            combining = isinstance(small.operator, (cst.AddAssign, cst.SubtractAssign))
            self.operands([small.value], combining)
            target = small.target
            if isinstance(target, cst.Name) and isinstance(small.value, cst.Integer):
                self.read(target, combining)  # ``idx += 1``: a counter, not a tensor changed in place
            elif isinstance(target, cst.Name):
                self.read(target, combining)
                self.change(self.state.holds.get(target.value, frozenset()), small, target.value)
            elif isinstance(target, cst.Subscript) and not _keyed_by_string(target):
                self.change(self.base(target.value), small, _root(target.value))
        elif isinstance(small, cst.Expr):
            self.statement_call = small.value
            self.value(small.value)
        elif isinstance(small, cst.Return):
            if small.value is not None:
                self.value(small.value)
            self.state.exited = True
        elif isinstance(small, cst.Raise):
            if small.exc is not None:
                self.value(small.exc)
            self.state.exited = True
        elif isinstance(small, (cst.Continue, cst.Break)):
            self.state.exited = True
        elif isinstance(small, cst.Assert):
            self.value(small.test)
        elif isinstance(small, cst.Del):
            for name in _names_in(small.target):
                self.state.holds.pop(name, None)
                self.state.changed.pop(name, None)

    def bind(self, target: cst.CSTNode, objs: frozenset[int]) -> None:
        if isinstance(target, cst.Name):
            self.state.holds[target.value] = objs
            self.state.changed.pop(target.value, None)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self.bind(el.value, self.fresh() if objs else frozenset())
        elif isinstance(target, cst.StarredElement):
            self.bind(target.value, frozenset())
        elif isinstance(target, cst.Subscript):
            for el in target.slice:
                if isinstance(el.slice, cst.Index):
                    self.value(el.slice.value)
            if not _keyed_by_string(target):  # ``batch["x"] = x`` fills a mapping, no tensor
                self.change(self.base(target.value), target, _root(target.value))
        elif isinstance(target, cst.Attribute):
            self.value(target.value)

    # expressions

    def read(self, name: cst.Name, combining: bool = False) -> None:
        """A read of a name's values. A name changed through another name counts when it is named
        as a skip or the read combines it (``out + identity``, ``torch.cat``, ``+=``)."""
        hit = self.state.changed.get(name.value)
        if hit is None:
            return
        node, via = hit
        if via == name.value or combining or skip_named(name.value):
            self.reports.setdefault(node, (via, name.value))

    def change(self, objs: frozenset[int], node: cst.CSTNode, via: str | None, itself: bool = False) -> None:
        """An in-place change of ``objs`` through the name ``via``: every other name holding one
        of them now reads changed values (``via`` too when ``itself``)."""
        if not objs or via is None:
            return
        for name, held in self.state.holds.items():
            if held & objs and (name != via or itself):
                self.state.changed.setdefault(name, (node, via))

    def base(self, expr: cst.BaseExpression) -> frozenset[int]:
        """The objects whose storage ``expr`` (a name, a slice or a view of one) refers to."""
        if isinstance(expr, cst.Name):
            return self.state.holds.get(expr.value, frozenset())
        if isinstance(expr, cst.Subscript):
            return self.base(expr.value)
        if isinstance(expr, cst.Attribute) and expr.attr.value in VIEW_ATTRS:
            return self.base(expr.value)
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in VIEW_METHODS:
            return self.base(expr.func.value)
        return frozenset()

    def operands(self, exprs: list[cst.BaseExpression], combining: bool = False) -> frozenset[int]:
        """Evaluate operands left to right; bare names (also inside list/tuple literals) are read
        when the operation runs, after all operands (``identity + self.relu(x)`` sees the change)."""
        deferred: list[cst.Name] = []
        objs: frozenset[int] = frozenset()

        def gather(e: cst.BaseExpression) -> None:
            nonlocal objs
            if isinstance(e, cst.Name):
                deferred.append(e)
                objs |= self.state.holds.get(e.value, frozenset())
            elif isinstance(e, (cst.List, cst.Tuple)):
                for el in e.elements:
                    gather(el.value)
            else:
                objs |= self.value(e)

        for e in exprs:
            gather(e)
        for name in deferred:
            self.read(name, combining)
        return objs

    def value(self, expr: cst.BaseExpression | None) -> frozenset[int]:
        """Evaluate an expression: reads, in-place changes; the objects its value may be."""
        if expr is None:
            return frozenset()
        if isinstance(expr, cst.Name):
            self.read(expr)
            return self.state.holds.get(expr.value, frozenset())
        if isinstance(expr, cst.Attribute):
            if isinstance(expr.value, cst.Name) and expr.attr.value in META_ATTRS:
                return frozenset()
            objs = self.value(expr.value)
            return objs if expr.attr.value in VIEW_ATTRS else frozenset()
        if isinstance(expr, cst.Call):
            return self.call(expr)
        if isinstance(expr, (cst.BinaryOperation, cst.Comparison, cst.BooleanOperation)):
            parts = (
                [expr.left, expr.right]
                if not isinstance(expr, cst.Comparison)
                else [expr.left, *(c.comparator for c in expr.comparisons)]
            )
            combining = isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract))
            objs = self.operands(parts, combining)
            return self.fresh() if objs and isinstance(expr, cst.BinaryOperation) else frozenset()
        if isinstance(expr, cst.UnaryOperation):
            return self.fresh() if self.value(expr.expression) else frozenset()
        if isinstance(expr, cst.Subscript):
            objs = self.value(expr.value)
            for el in expr.slice:
                if isinstance(el.slice, cst.Index):
                    self.value(el.slice.value)
            return self.fresh() if objs else frozenset()
        if isinstance(expr, cst.IfExp):
            self.value(expr.test)
            start = self.state
            self.state = start.copy()
            a = self.value(expr.body)
            left = self.state
            self.state = start.copy()
            b = self.value(expr.orelse)
            self.state = left.merge(self.state)
            return a | b
        if isinstance(expr, (cst.Tuple, cst.List, cst.Set)):
            self.operands([e.value for e in expr.elements])
            return frozenset()
        if isinstance(expr, cst.Dict):
            for el in expr.elements:
                if isinstance(el, cst.DictElement):
                    self.value(el.key)
                self.value(el.value)
            return frozenset()
        if isinstance(expr, (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
            self._comprehension(expr)
            return frozenset()
        if isinstance(expr, cst.NamedExpr):
            objs = self.value(expr.value)
            self.bind(expr.target, objs)
            return objs
        if isinstance(expr, (cst.Await, cst.Yield)):
            inner = expr.expression if isinstance(expr, cst.Await) else expr.value
            return self.value(inner) if isinstance(inner, cst.BaseExpression) else frozenset()
        if isinstance(expr, cst.StarredElement):
            return self.value(expr.value)
        if isinstance(expr, cst.FormattedString):
            return frozenset()
        return frozenset()  # literals, lambdas

    def _comprehension(self, expr: cst.BaseExpression) -> None:
        """Names read in a comprehension are read once its loop runs; its targets shadow."""
        bound: set[str] = set()
        comp = expr.for_in
        while comp is not None:
            self.value(comp.iter)
            bound |= set(_names_in(comp.target))
            comp = comp.inner_for_in
        elements = [expr.key, expr.value] if isinstance(expr, cst.DictComp) else [expr.elt]
        saved = {n: self.state.changed.pop(n) for n in bound if n in self.state.changed}
        for el in elements:
            self.value(el)
        self.state.changed.update(saved)

    def call(self, call: cst.Call) -> frozenset[int]:
        func = call.func
        args = [a.value for a in call.args]
        first = call.args[0].value if call.args and not call.args[0].star and call.args[0].keyword is None else None
        attr = self_attr(func, self.instance) if self.instance else None
        if attr is not None:
            objs = self.operands(args)
            kind = self.layers.get(attr)
            if kind is None or first is None:
                return self.fresh() if objs or not args else frozenset()
            target = self.base(first)
            if kind == "inplace":
                # ``out = self.relu(x)`` hides that x changes; ``self.relu(x)`` alone relies on it
                self.change(target, call, _root(first), itself=call is not self.statement_call)
            return target
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            receiver = func.value
            if method in META_METHODS or method in ("item", "tolist", "numel"):
                if not isinstance(receiver, cst.Name):
                    self.value(receiver)
                self.operands(args)
                return frozenset()
            q = self.facts.qualname(func, self.fn.scope)
            if q is None or not q.startswith("torch."):
                objs = self.operands([receiver, *args], method in COMBINING_METHODS)
                recv = self.base(receiver)
                if method.endswith("_") and not method.startswith("_") and method not in NOT_VALUE_INPLACE:
                    self.change(recv, call, _root(receiver))
                    return recv
                if method in VIEW_METHODS and not _copies(call):
                    return recv
                return self.fresh() if objs else frozenset()
        q = self.facts.qualname(func, self.fn.scope)
        if q is None:
            if not isinstance(func, cst.Name):
                self.value(func)
            objs = self.operands(args)
            if isinstance(func, cst.Name) and func.value in NOT_TENSOR_BUILTINS:
                return frozenset()
            return self.fresh() if objs else frozenset()
        module, _, leaf = q.rpartition(".")
        objs = self.operands(args, module == "torch" and leaf in COMBINING_TORCH)
        if first is None or module not in ("torch", "torch.nn.functional"):
            return self.fresh() if objs else frozenset()
        inplace = leaf.endswith("_") and not leaf.startswith("_")
        if not inplace and module == "torch.nn.functional" and leaf in INPLACE_FUNCTIONS:
            flag, _ = find_arg(call, "inplace", INPLACE_FUNCTIONS[leaf])
            inplace = flag is not None and is_true(flag.value)
        if inplace:
            target = self.base(first)
            self.change(target, call, _root(first))
            return target
        return self.fresh() if objs else frozenset()


def _copies(call: cst.Call) -> bool:
    """``x.to(..., copy=True)`` returns a new tensor."""
    flag, _ = find_arg(call, "copy")
    return flag is not None and is_true(flag.value)


def _root(expr: cst.BaseExpression) -> str | None:
    """The name an expression is a slice or view of: ``x`` for ``x[:, 0]`` or ``x.view(-1)``."""
    while True:
        if isinstance(expr, cst.Name):
            return expr.value
        if isinstance(expr, cst.Subscript) or (isinstance(expr, cst.Attribute) and expr.attr.value in VIEW_ATTRS):
            expr = expr.value
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in VIEW_METHODS:
            expr = expr.func.value
        else:
            return None


def _names_in(target: cst.CSTNode) -> Iterator[str]:
    if isinstance(target, cst.Del):
        target = target.target
    return (n.value for n in target_names(target))


def _not_tensor_param(param: cst.Param) -> bool:
    """A parameter that is not a tensor: annotated as int/list/..., or defaulting to a literal."""
    ann = param.annotation.annotation if param.annotation is not None else None
    if ann is not None:
        head = ann.value if isinstance(ann, cst.Subscript) else ann
        name = head.attr.value if isinstance(head, cst.Attribute) else head.value if isinstance(head, cst.Name) else ""
        if name in NOT_TENSOR_ANNOTATIONS:
            return True
    default = param.default
    return isinstance(default, (cst.Integer, cst.Float, cst.SimpleString, cst.List, cst.Tuple, cst.Dict)) or (
        isinstance(default, cst.Name) and default.value in ("True", "False")
    )


def _ast_root(expr: ast.expr) -> str | None:
    """``_root`` over CPython's ast."""
    while True:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, ast.Subscript) or isinstance(expr, ast.Attribute) and expr.attr in VIEW_ATTRS:
            expr = expr.value
        elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in VIEW_METHODS:
            expr = expr.func.value
        else:
            return None


def _first_root(call: ast.Call) -> str | None:
    """The root name of a call's first positional argument (what an in-place function changes)."""
    first = call.args[0] if call.args else None
    return _ast_root(first) if first is not None and not isinstance(first, ast.Starred) else None


def _changed_roots(node: ast.AST, inplace: set[str]) -> set[str]:
    """The names whose tensors ``_Flow`` may take ``node`` to change in place: ``x += <not an
    int>``, ``x[i] = ...``, ``x.add_(...)``, ``torch.relu_(x)``, ``F.relu(x, inplace=True)``, or
    ``self.act(x)`` with ``act`` among the ``inplace`` attributes."""
    if isinstance(node, ast.AugAssign):
        target = node.target
        if isinstance(target, ast.Name):
            return set() if isinstance(node.value, ast.Constant) and type(node.value.value) is int else {target.id}
        return _roots(target.value) if isinstance(target, ast.Subscript) else set()
    if isinstance(node, ast.Subscript):
        return _roots(node.value) if isinstance(node.ctx, ast.Store) else set()
    if not isinstance(node, ast.Call):
        return set()
    func = node.func
    leaf = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if leaf.endswith("_") and not leaf.startswith("_"):
        receiver = _roots(func.value) if isinstance(func, ast.Attribute) else set()
        return _first_roots(node) | receiver
    if _passes_inplace(node) or _attr_call(func, inplace):
        return _first_roots(node)
    return set()


def _roots(expr: ast.expr) -> set[str]:
    root = _ast_root(expr)
    return {root} if root is not None else set()


def _first_roots(call: ast.Call) -> set[str]:
    root = _first_root(call)
    return {root} if root is not None else set()


def _holdable(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool, nodes: list[ast.AST]) -> set[str]:
    """The names that may hold a tensor in ``_Flow``: the parameters but a method's instance, and
    the names the function (or a function in it) binds."""
    args = fn.args
    params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    plain = not any(isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod") for d in fn.decorator_list)
    if is_method and plain and (args.posonlyargs or args.args):
        params = params[1:]
    return {*params, *(n.id for n in nodes if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load))}


def _combined(nodes: list[ast.AST]) -> set[str]:
    """The names read where ``_Flow.operands`` combines values: operands of ``+``/``-`` (and of
    ``+=``/``-=``), of the combining methods and torch functions (``add``, ``cat``...)."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            found |= plain_names(node.left) | plain_names(node.right)
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Add, ast.Sub)):
            found |= plain_names(node.target) | plain_names(node.value)
        elif isinstance(node, ast.Call):
            func = node.func
            leaf = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if leaf in COMBINING_METHODS or leaf in COMBINING_TORCH:
                receiver = [func.value] if isinstance(func, ast.Attribute) else []
                for e in (*receiver, *node.args, *(k.value for k in node.keywords)):
                    found |= plain_names(e)
    return found


def _changes_itself(call: ast.Call, nodes: list[ast.AST], inplace: set[str]) -> bool:
    """A call of an ``inplace`` attribute whose result is used (``out = self.relu(x)``): a layer
    built with inplace=True then changes ``x`` itself."""
    return _attr_call(call.func, inplace) and not any(isinstance(n, ast.Expr) and n.value is call for n in nodes)


def _attr_call(func: ast.expr, attrs: set[str]) -> bool:
    """``<name>.<attr>`` with ``attr`` among ``attrs``: the call of such a layer."""
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.attr in attrs


def _layer_attrs(info: TreeInfo) -> tuple[set[str], set[str]]:
    """The attributes assigned (``<x>.<attr> = ...``, ``setattr(<x>, "<attr>", ...)``) a torch.nn
    layer built with an inplace flag (or a Sequential given one), and those assigned an
    Identity: a superset of what ``_layer_kinds`` takes as "inplace" and "identity"."""
    flags = "inplace" in info.names or "True" in info.names
    if not flags and "Identity" not in info.names:
        return set(), set()

    def kind(value: ast.expr) -> str | None:
        if not isinstance(value, ast.Call):
            return None
        leaves = info.callee_leaves(value)
        if flags and leaves & INPLACE_LAYERS.keys() and _passes_inplace(value):
            return "inplace"
        if "Identity" in leaves:
            return "identity"
        if "Sequential" in leaves and any(kind(a) == "inplace" for a in value.args):
            return "inplace"
        return None

    found: dict[str, set[str]] = {"inplace": set(), "identity": set()}
    for node in info.nodes:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            values = node.value.elts if isinstance(node.value, (ast.Tuple, ast.List)) else [node.value]
            for k in {kind(v) for v in values} - {None}:
                found[k].update(n.attr for t in targets for n in ast_nodes(t) if isinstance(n, ast.Attribute))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" and len(node.args) >= 3:
            key, k = node.args[1], kind(node.args[2])
            if k is not None and isinstance(key, ast.Constant) and isinstance(key.value, str):
                found[k].add(key.value)
    return found["inplace"], found["identity"]


def _alias_names(node: ast.AST, layers: set[str], held: set[str]) -> set[str]:
    """The names a binding may leave holding one tensor together: ``a = b = ...``, or a name
    bound to what another name holds (``identity = x``, ``y = x.view(...)``, ``y = x.relu_()``,
    ``y = self.act(x)`` with ``act`` among the ``layers`` attributes)."""
    if isinstance(node, ast.Assign):
        names = {t.id for t in node.targets if isinstance(t, ast.Name)}
        sources = _held_by(node.value, layers) & held
        return names | sources if len(names) > 1 or sources - names else set()
    pairs = []
    if isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
        pairs = [(node.target, node.value)]
    elif isinstance(node, ast.withitem):
        pairs = [(node.optional_vars, node.context_expr)]
    for target, value in pairs:
        if isinstance(target, ast.Name):
            sources = _held_by(value, layers) & held
            if sources - {target.id}:
                return sources | {target.id}
    return set()


def _held_by(expr: ast.AST, layers: set[str]) -> set[str]:
    """The names whose tensors ``_Flow.value`` may give as the value of ``expr``."""
    if isinstance(expr, ast.Name):
        return {expr.id}
    if isinstance(expr, ast.Attribute):
        return _held_by(expr.value, layers) if expr.attr in VIEW_ATTRS else set()
    if isinstance(expr, ast.IfExp):
        return _held_by(expr.body, layers) | _held_by(expr.orelse, layers)
    if isinstance(expr, ast.NamedExpr):  # the value, now held by the target too
        return _held_by(expr.value, layers) | {expr.target.id}
    if isinstance(expr, (ast.Await, ast.Yield, ast.Starred)):
        return _held_by(expr.value, layers) if expr.value is not None else set()
    if not isinstance(expr, ast.Call):
        return set()
    func = expr.func
    leaf = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    found: set[str | None] = set()
    if isinstance(func, ast.Attribute) and (leaf.endswith("_") or leaf in VIEW_METHODS):
        found.add(_ast_root(func.value))
    if leaf.endswith("_") or _passes_inplace(expr) or _attr_call(func, layers):
        found.add(_first_root(expr))
    return {n for n in found if n is not None}


def _passes_inplace(node: ast.AST) -> bool:
    """A call given ``inplace=`` or a positional ``True`` (a function or a layer built with it,
    anywhere in the file: the layer may be a class attribute set in another class)."""
    return isinstance(node, ast.Call) and (
        any(k.arg == "inplace" for k in node.keywords) or any(isinstance(a, ast.Constant) and a.value is True for a in node.args)
    )


def _keyed_by_string(subscript: cst.Subscript) -> bool:
    """``d["key"]``, ``d[f"{k}_x"]``: an item of a mapping, which no tensor has."""
    return any(
        isinstance(el.slice, cst.Index)
        and isinstance(el.slice.value, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString))
        for el in subscript.slice
    )
