"""TL402 non-leaf-requires-grad: a tensor made with ``requires_grad=True`` and then moved,
converted or computed on (``.cuda()``, ``.to(device)``, ``* 0.1``) is not a leaf: its ``.grad``
stays None and an optimizer cannot update it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from torchlint.edits import render, with_keyword
from torchlint.facts import CallInfo, ModuleFacts, Walker, dotted_name, find_all
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.unregistered_tensor import FACTORIES

_VARIABLES = {"torch.autograd.Variable", "torch.autograd.variable.Variable"}
# methods that do not return a tensor on the graph
_NOT_TENSORS = {
    "item", "tolist", "numpy", "size", "dim", "numel", "data_ptr", "element_size", "nelement",
    "ndimension", "backward", "register_hook", "retain_grad", "is_floating_point", "stride",
    "get_device", "storage", "untyped_storage", "is_contiguous", "equal", "__len__",
}
# methods that may return the tensor itself (no copy: still a leaf) when nothing changes
_MAY_RETURN_SELF = {"cpu", "contiguous", "requires_grad_"}
_DTYPE_METHODS = {
    "float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
}
_DTYPE_NAMES = {
    "float": "float32", "float32": "float32", "double": "float64", "float64": "float64",
    "half": "float16", "float16": "float16", "bfloat16": "bfloat16",
}
_OPTIMIZER_RE = re.compile(
    r"^(SGD|ASGD|Adam\w*|Adamax|Adagrad|Adadelta|RMSprop|Rprop|LBFGS|NAdam|RAdam|SparseAdam|"
    r"Lion\w*|Lamb|LAMB|Adafactor|\w*Optimizer)$"
)

LEAF, NON_LEAF, NO_GRAD, OTHER = "leaf", "non-leaf", "no-grad", "other"


@dataclass
class _Grad:
    """What an expression is to autograd: a leaf that requires grad, a non-leaf (with the node
    that made it one and the dtype it had), a tensor without grad, or something else."""

    state: str
    where: cst.CSTNode | None = None
    dtype: str = "float32"


@dataclass(eq=False)
class _Scope:
    """One function (or the module's top level): what it binds and how it uses the names."""

    node: cst.CSTNode
    parent: _Scope | None
    cls: cst.ClassDef | None
    env: dict[str, _Grad] = field(default_factory=dict)
    candidates: list[tuple[str, cst.CSTNode]] = field(default_factory=list)  # bound key, non-leaf op
    grad_reads: set[str] = field(default_factory=set)
    retained: set[str] = field(default_factory=set)
    optimized: set[str] = field(default_factory=set)  # keys named in an optimizer's arguments
    containers: dict[str, set[str]] = field(default_factory=dict)  # list name -> keys put in it


class NonLeafRequiresGrad(Rule):
    code = "TL402"
    name = "non-leaf-requires-grad"
    summary = "torch.randn(..., requires_grad=True).cuda() / .to() / * x: not a leaf, .grad stays None"
    needles = ("requires_grad",)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        if not any(_makes_leaf(facts, call) for call in facts.calls):
            return
        walk = _Walk(facts)
        walk.walk(facts.module)
        reported: set[int] = set()
        for scope in walk.scopes:
            for key, where in scope.candidates:
                if id(where) in reported or not _used_as_leaf(walk, scope, key):
                    continue
                reported.add(id(where))
                yield Hit(where, _message(facts, key, where), fix=_fix(facts, walk, where))
        for where in walk.direct:
            if id(where) not in reported:
                reported.add(id(where))
                yield Hit(where, _message(facts, None, where), fix=_fix(facts, walk, where))


def _makes_leaf(facts: ModuleFacts, call: CallInfo) -> bool:
    """A factory with ``requires_grad=True``, or a ``.requires_grad_()`` call."""
    func = call.node.func
    if isinstance(func, cst.Attribute) and func.attr.value == "requires_grad_":
        return True
    return _requires_grad(call.node) and facts.call_qualname(call) in FACTORIES | _VARIABLES


def _fix(facts: ModuleFacts, walk: _Walk, where: cst.CSTNode) -> Fix | None:
    """``factory(..., requires_grad=True).to(device)`` / ``.cuda()`` -> ``factory(...,
    requires_grad=True, device=...)``: only for a move written right on the factory call, to a
    device (a string, ``torch.device(...)``, or a name that says device), when the factory has no
    ``device=`` and no ``**kwargs``."""
    if not (isinstance(where, cst.Call) and isinstance(where.func, cst.Attribute)):
        return None
    factory = where.func.value
    if not isinstance(factory, cst.Call) or not _requires_grad(factory):
        return None
    info = walk.calls.get(id(factory))
    if info is None or facts.call_qualname(info) not in FACTORIES:
        return None
    if any(a.star or a.keyword is not None and a.keyword.value == "device" for a in factory.args):
        return None
    method, args = where.func.attr.value, where.args
    if method == "cuda" and not args:
        device = '"cuda"'
    elif method == "to" and len(args) == 1 and (args[0].keyword is None or args[0].keyword.value == "device"):
        if not _names_device(facts, args[0].value):
            return None
        device = render(facts.module, args[0].value)
    else:
        return None
    edit = NodeEdit(where, render(facts.module, where, with_keyword(factory, "device", device)))
    return Fix(f"Pass device={device} to the factory instead of .{method}()", (edit,), safe=False)


def _names_device(facts: ModuleFacts, expr: cst.BaseExpression) -> bool:
    """A string, ``torch.device(...)``, or a name or attribute whose last part says device
    (``device``, ``dev``, ``self.device``): not a dtype, not a tensor to copy the device of."""
    if isinstance(expr, cst.SimpleString):
        return True
    if isinstance(expr, cst.Call):
        return facts.qualname(expr.func) == "torch.device"
    last = expr.attr.value if isinstance(expr, cst.Attribute) else getattr(expr, "value", None)
    return isinstance(last, str) and (last == "dev" or "device" in last.lower())


def _message(facts: ModuleFacts, key: str | None, where: cst.CSTNode) -> str:
    if isinstance(where, cst.Call) and isinstance(where.func, cst.Attribute):
        op = f".{where.func.attr.value}()"
    elif isinstance(where, cst.Call):
        op = f"{facts.module.code_for_node(where.func)}()"
    else:
        op = "the arithmetic"
    subject = key or "the tensor"
    return (
        f"{op} after requires_grad=True returns a new tensor that is not a leaf: {subject}.grad stays "
        f"None after backward() and an optimizer cannot update it; pass device=/dtype= to the "
        f"factory, or apply {op} first and call .requires_grad_() on the result"
    )


def _used_as_leaf(walk: _Walk, scope: _Scope, key: str) -> bool:
    """Whether the bound tensor is used as a leaf: its ``.grad`` is read or it is handed to an
    optimizer (directly or in a list), and ``retain_grad()`` is not called on it."""
    related = [s for s in walk.scopes if _within(s, scope) or (key.startswith("self.") and s.cls is scope.cls)]
    if any(key in s.retained for s in related):
        return False
    for s in related:
        optimized = set(s.optimized)
        for name in s.optimized:
            optimized |= s.containers.get(name, set())
        if key in s.grad_reads or key in optimized:
            return True
    return False


def _within(inner: _Scope, outer: _Scope) -> bool:
    s: _Scope | None = inner
    while s is not None:
        if s is outer:
            return True
        s = s.parent
    return False


def _key(expr: cst.BaseExpression) -> str | None:
    """The name a value lives under: ``opt``, ``self.w``; a subscript is keyed by its container."""
    while isinstance(expr, cst.Subscript):
        expr = expr.value
    return dotted_name(expr)


class _Walk(Walker):
    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self.calls: dict[int, CallInfo] = {id(c.node): c for c in facts.calls}
        self.scope = _Scope(facts.module, None, None)
        self.scopes = [self.scope]
        self.classes: list[cst.ClassDef] = []
        self.direct: list[cst.CSTNode] = []  # non-leaf tensors written into an optimizer call

    # scopes

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._enter(node)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scope = self.scope.parent

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._enter(node)

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self.scope = self.scope.parent

    def _enter(self, node: cst.CSTNode) -> None:
        cls = self.classes[-1] if self.classes else self.scope.cls
        self.scope = _Scope(node, self.scope, cls)
        self.scopes.append(self.scope)

    # bindings

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._bind(t.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(target.elements):
                for t, v in zip(target.elements, value.elements):
                    self._bind(t.value, v.value)
            return
        key = _key(target) if not isinstance(target, cst.Subscript) else None
        if key is None:
            return
        if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
            self.scope.containers[key] = {k for e in value.elements if (k := _key(e.value))}
            elements = [e.value for e in value.elements]
        elif isinstance(value, (cst.ListComp, cst.GeneratorExp)):
            elements = [value.elt]
        else:
            grad = self.trace(value)
            self.scope.env[key] = grad
            elements = [value] if grad.state == NON_LEAF else []
        for el in elements:
            grad = self.trace(el)
            if grad.state == NON_LEAF and grad.where is not None:
                self.scope.candidates.append((key, grad.where))

    # uses

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "grad":
            key = _key(node.value)
            if key:
                self.scope.grad_reads.add(key)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "retain_grad":
            key = _key(func.value)
            if key:
                self.scope.retained.add(key)
            return
        if isinstance(func, cst.Attribute) and func.attr.value in ("append", "extend", "add"):
            key = _key(func.value)
            if key and node.args:
                found = {k for n in find_all(node.args[0].value, (cst.Name, cst.Attribute)) if (k := _key(n))}
                self.scope.containers.setdefault(key, set()).update(found)
            return
        if not self._is_optimizer(node):
            return
        for arg in node.args:
            for n in find_all(arg.value, (cst.Name, cst.Attribute)):
                key = _key(n)
                if key:
                    self.scope.optimized.add(key)
            for el in find_all(arg.value, (cst.Call, cst.BinaryOperation, cst.Subscript)):
                grad = self.trace(el)
                if grad.state == NON_LEAF and grad.where is not None:
                    self.direct.append(grad.where)

    def _is_optimizer(self, node: cst.Call) -> bool:
        info = self.calls.get(id(node))
        q = self.facts.call_qualname(info) if info else None
        if q and q.startswith("torch.optim.lr_scheduler."):
            return False
        leaf = (q or "").rsplit(".", 1)[-1]
        if not q:
            func = node.func
            leaf = func.attr.value if isinstance(func, cst.Attribute) else ""
            leaf = func.value if isinstance(func, cst.Name) else leaf
        return bool(_OPTIMIZER_RE.match(leaf))

    # what an expression is to autograd

    def trace(self, expr: cst.BaseExpression) -> _Grad:
        if isinstance(expr, cst.Name):
            return self.scope.env.get(expr.value, _Grad(OTHER))
        if isinstance(expr, cst.Call):
            return self._trace_call(expr)
        if isinstance(expr, cst.BinaryOperation):
            left, right = self.trace(expr.left), self.trace(expr.right)
            return _computed(expr, left if left.state in (LEAF, NON_LEAF) else right)
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            return _computed(expr, self.trace(expr.expression))
        if isinstance(expr, cst.Subscript):
            return _computed(expr, self.trace(expr.value))
        if isinstance(expr, cst.Attribute):
            key = _key(expr)
            if key in self.scope.env:
                return self.scope.env[key]
            inner = self.trace(expr.value)
            if expr.attr.value == "data" and inner.state in (LEAF, NON_LEAF):
                return _Grad(NO_GRAD)
            if expr.attr.value in ("T", "mT", "H", "mH"):
                return _computed(expr, inner)
            return _Grad(OTHER)
        return _Grad(OTHER)

    def _trace_call(self, call: cst.Call) -> _Grad:
        info = self.calls.get(id(call))
        q = self.facts.call_qualname(info) if info else None
        if q in FACTORIES or q in _VARIABLES:
            return _Grad(LEAF if _requires_grad(call) else NO_GRAD, dtype=self._dtype(call) or "float32")
        func = call.func
        if q is not None:
            leaf = q.rsplit(".", 1)[-1]
            if q.startswith("torch.") and leaf[:1].islower() and call.args:
                inner = self.trace(call.args[0].value)
                return inner if leaf.endswith("_") else _computed(call, inner)
            return _Grad(OTHER)
        if not isinstance(func, cst.Attribute):
            return _Grad(OTHER)
        method = func.attr.value
        inner = self.trace(func.value)
        if inner.state == OTHER or method in _NOT_TENSORS:
            return _Grad(OTHER)
        if method == "detach":
            return _Grad(NO_GRAD)
        if method == "requires_grad_":
            flag = call.args[0].value if len(call.args) == 1 else None
            on = not call.args or (isinstance(flag, cst.Name) and flag.value == "True")
            if inner.state == NO_GRAD and on:
                return _Grad(LEAF, dtype=inner.dtype)
            return inner if on else _Grad(OTHER)
        if inner.state == NO_GRAD or method.endswith("_"):
            return inner
        target = self._conversion_dtype(call, method)
        if inner.state == LEAF and (method in _MAY_RETURN_SELF or target == inner.dtype):
            return inner
        return _computed(call, inner)

    def _dtype(self, call: cst.Call) -> str | None:
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == "dtype":
                q = self.facts.qualname(arg.value) or ""
                return _DTYPE_NAMES.get(q.rsplit(".", 1)[-1], q)
        return None

    def _conversion_dtype(self, call: cst.Call, method: str) -> str | None:
        """The dtype a ``.float()``/``.to(torch.float32)`` converts to, None for other calls
        (``.to(device)`` moves, and so copies)."""
        if method in _DTYPE_METHODS and not call.args:
            return _DTYPE_METHODS[method]
        if method == "to" and call.args:
            dtype = self._dtype(call)
            if dtype and all(a.keyword is not None and a.keyword.value == "dtype" for a in call.args):
                return dtype
            if len(call.args) == 1 and call.args[0].keyword is None:
                q = self.facts.qualname(call.args[0].value) or ""
                if q.startswith("torch.") and q.rsplit(".", 1)[-1] in _DTYPE_NAMES:
                    return _DTYPE_NAMES[q.rsplit(".", 1)[-1]]
        return None


def _computed(node: cst.CSTNode, inner: _Grad) -> _Grad:
    """The result of an operation on ``inner``: a leaf that requires grad becomes a non-leaf here."""
    if inner.state == LEAF:
        return _Grad(NON_LEAF, node, inner.dtype)
    if inner.state in (NON_LEAF, NO_GRAD):
        return inner
    return _Grad(OTHER)


def _requires_grad(call: cst.Call) -> bool:
    return any(
        a.keyword is not None
        and a.keyword.value == "requires_grad"
        and isinstance(a.value, cst.Name)
        and a.value.value == "True"
        for a in call.args
    )
