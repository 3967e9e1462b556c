"""TL105 layer-in-forward: a layer with parameters built inside ``forward`` (or a method it calls):
new random weights on every call, never trained."""

from __future__ import annotations

import ast
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import (
    CallInfo,
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    Scope,
    Walker,
    find_arg,
)
from torchlint.rules import Hit, Rule
from torchlint.rules.missing_super_init import methods_with_bases
from torchlint.rules.parameter_converted import PARAMETER
from torchlint.rules.unregistered_tensor import (
    FACTORIES,
    SAME_DEVICE_METHODS,
)
from torchlint.screen import TreeInfo, methods

_ALWAYS = {
    "Linear", "Bilinear", "LazyLinear", "Embedding", "EmbeddingBag", "PReLU",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
    "LazyConvTranspose3d", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
    "MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder",
    "TransformerEncoderLayer", "TransformerDecoderLayer", "AdaptiveLogSoftmaxWithLoss",
}
# name -> (flag, position, default): parameter-free when every flag is literally False
_FLAGGED = {
    **{f"BatchNorm{d}d": (("affine", 3, True), ("track_running_stats", 4, True)) for d in (1, 2, 3)},
    "SyncBatchNorm": (("affine", 3, True), ("track_running_stats", 4, True)),
    **{f"InstanceNorm{d}d": (("affine", 3, False), ("track_running_stats", 4, False)) for d in (1, 2, 3)},
    "GroupNorm": (("affine", 3, True),),
    "LayerNorm": (("elementwise_affine", 2, True),),
    "RMSNorm": (("elementwise_affine", 2, True),),
}
_WEIGHT_LOADERS = {"load_state_dict", "copy_"}
# nn.Module methods that return the module itself
_RETURNS_MODULE = {
    "to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval", "requires_grad_", "apply", "type",
}

# the last names of what _parametric reports, for the screen
_SCREEN_LEAVES = frozenset({*_ALWAYS, *_FLAGGED, *(q.rsplit(".", 1)[1] for q in PARAMETER)})


class LayerInForward(Rule):
    code = "TL105"
    name = "layer-in-forward"
    summary = "a layer with parameters constructed inside forward: new random weights every call, never trained"
    needles = ("forward",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A module class with its own ``forward``, and a call in a method that forward may reach
        that may build a layer with parameters: a torch.nn layer or Parameter, or a class of
        this file."""
        if "forward" not in info.method_names:
            return False
        leaves = _SCREEN_LEAVES | info.top_class_names
        return any(not leaves.isdisjoint(info.callee_leaves(call)) for call in _calls_reached_from_forward(info))

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        calls = calls_by_method(facts)
        owners = _ParameterOwners(facts, calls)
        reported: set[int] = set()
        for cls in facts.module_classes():
            reached, unguarded = _reached_from_forward(facts, cls, calls)
            if not reached or _trains_in_forward(facts, reached, calls):
                continue
            for fn in reached:
                candidates = [(c, what) for c in calls.get(fn, []) if (what := _parametric(facts, c, owners))]
                if not candidates or not fn.self_name:
                    continue
                uses = _Uses(fn.self_name)
                uses.walk(fn.node.body)
                for call, what in candidates:
                    fate = uses.fate(call.node)
                    lazy = fate == "stored" and (fn not in unguarded or uses.guarded(call.node))
                    if fate == "kept" or lazy or uses.without_grad(call.node) or id(call.node) in reported:
                        continue
                    reported.add(id(call.node))
                    yield Hit(call.node, _message(what, fate, fn), cls)


def calls_by_method(facts: ModuleFacts) -> dict[FunctionInfo, list[CallInfo]]:
    """The calls of each method, with those of the functions nested in it."""
    out: dict[FunctionInfo, list[CallInfo]] = {}
    for call in facts.calls:
        if call.function is not None and call.function.method is not None:
            out.setdefault(call.function.method, []).append(call)
    return out


def _reached_from_forward(
    facts: ModuleFacts, cls: ClassInfo, calls: dict[FunctionInfo, list[CallInfo]]
) -> tuple[list[FunctionInfo], set[FunctionInfo]]:
    """The class's own ``forward`` and the methods it calls through ``self`` (transitively), and
    those reached without passing an ``if`` (a helper called only under a test is lazy setup)."""
    methods = methods_with_bases(facts, cls)
    forward = cls.methods.get("forward")
    if forward is None:
        return [], set()
    init = {methods[n] for n in facts.construction_methods(cls) if n in methods}
    reached, unguarded = [forward], {forward}
    for fn in reached:
        for call in calls.get(fn, []):
            func = call.node.func
            if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)):
                continue
            callee = methods.get(func.attr.value) if func.value.value == fn.self_name else None
            if callee is None or callee in init or callee.name == "forward" or _may_memoise(facts, callee):
                continue
            if callee not in reached:
                reached.append(callee)
            if fn in unguarded and not call.guards:
                unguarded.add(callee)
    return reached, unguarded


# decorators that run the method on every call, as written
_PLAIN_DECORATORS = ("torch.", "typing.", "abc.", "staticmethod", "classmethod")


def _may_memoise(facts: ModuleFacts, fn: FunctionInfo) -> bool:
    """A decorator other than torch's, typing's or abc's: it may cache the result
    (``functools.cache``, a project's ``@singleton('projector')``), so the layer is built once."""
    if not isinstance(fn.node, cst.FunctionDef):
        return False
    for dec in fn.node.decorators:
        expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
        q = facts.qualname(expr, fn.scope.parent) or (expr.value if isinstance(expr, cst.Name) else "")
        if not q.startswith(_PLAIN_DECORATORS):
            return True
    return False


def _trains_in_forward(
    facts: ModuleFacts, reached: list[FunctionInfo], calls: dict[FunctionInfo, list[CallInfo]]
) -> bool:
    """An optimizer made on the way: forward fits what it builds (explainers, test-time fitting)."""
    return any((facts.call_qualname(c) or "").startswith("torch.optim.") for fn in reached for c in calls.get(fn, []))


class _ParameterOwners:
    """Which classes of this file own parameters: a parametric torch base, or a layer or
    ``nn.Parameter`` built at construction time."""

    def __init__(self, facts: ModuleFacts, calls: dict[FunctionInfo, list[CallInfo]]) -> None:
        self.facts, self.calls = facts, calls
        self.known: dict[int, bool] = {}

    def owns(self, cls: ClassInfo) -> bool:
        if id(cls) in self.known:
            return self.known[id(cls)]
        self.known[id(cls)] = False  # a cycle owns nothing
        found = cls.is_module and (self._parametric_base(cls) or self._builds_parameters(cls))
        self.known[id(cls)] = found
        return found

    def _parametric_base(self, cls: ClassInfo) -> bool:
        for base in cls.bases:
            local = self.facts.local_class(base)
            if local is not None:
                if self.owns(local):
                    return True
                continue
            q = self.facts.qualname(base, cls.scope) or ""
            if q.startswith("torch.nn.") and q.rsplit(".", 1)[1] in _ALWAYS | set(_FLAGGED):
                return True
        return False

    def _builds_parameters(self, cls: ClassInfo) -> bool:
        methods = {cls.methods[n] for n in self.facts.construction_methods(cls) if n in cls.methods}
        for fn in methods:
            for call in self.calls.get(fn, []):
                func = call.node.func
                if isinstance(func, cst.Attribute) and func.attr.value == "register_parameter":
                    return True
                if _parametric(self.facts, call, self, fresh_only=False):
                    return True
        return False


def _parametric(facts: ModuleFacts, call: CallInfo, owners: _ParameterOwners, fresh_only: bool = True) -> str | None:
    """What the call builds when it is a layer with parameters (or a new random ``nn.Parameter``)."""
    func = call.node.func
    scope = call.scope
    local = facts.local_class(func)
    if local is not None:
        return local.name if owners.owns(local) else None
    q = facts.qualname(func, scope) or ""
    if q in PARAMETER:
        if fresh_only and not (call.node.args and _fresh_tensor(facts, call.node.args[0].value, scope)):
            return None
        requires_grad, _ = find_arg(call.node, "requires_grad", 1)
        if fresh_only and requires_grad is not None and _literal_bool(requires_grad.value) is not True:
            return None  # a constant, not meant to be trained
        return "nn.Parameter"
    parts = q.split(".")
    if parts[:2] != ["torch", "nn"] or not (len(parts) == 3 or (len(parts) == 5 and parts[2] == "modules")):
        return None
    name = parts[-1]
    if name in _ALWAYS:
        return f"nn.{name}"
    if name in _FLAGGED:
        flags = []
        for keyword, position, default in _FLAGGED[name]:
            arg, maybe = find_arg(call.node, keyword, position)
            if maybe:
                return None
            flags.append(default if arg is None else _literal_bool(arg.value))
        if any(f is None for f in flags) or not any(flags):
            return None
        return f"nn.{name}"
    return None


def _literal_bool(expr: cst.BaseExpression) -> bool | None:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return expr.value == "True"
    return None


def _fresh_tensor(facts: ModuleFacts, expr: cst.BaseExpression, scope: Scope | None) -> bool:
    """A tensor made by a torch factory here (``torch.randn(d)``, ``torch.zeros(n) * 0.02``)."""
    while True:
        if isinstance(expr, cst.Call):
            q = facts.qualname(expr.func, scope)
            if q in FACTORIES:
                return True
            if q is None and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in SAME_DEVICE_METHODS:
                expr = expr.func.value
                continue
            return False
        if isinstance(expr, cst.BinaryOperation):
            return _fresh_tensor(facts, expr.left, scope) or _fresh_tensor(facts, expr.right, scope)
        if isinstance(expr, cst.Subscript):
            expr = expr.value
            continue
        return False


class _Uses(Walker):
    """Where each call's result goes: stored on the instance (``self.proj = nn.Linear(...)``,
    ``self.layers.append(...)``, ``setattr(self, ...)``, also through a local name), given or
    re-drawn weights on purpose (``layer.weight = self.w``, ``layer.load_state_dict(...)``,
    ``nn.init.normal_(layer.weight)``, ``layer.requires_grad_(False)``), or used and thrown away."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.stack: list[cst.CSTNode] = []
        self.parents: dict[int, tuple[cst.CSTNode, ...]] = {}
        self.stored: list[cst.BaseExpression] = []  # values stored on the instance
        self.weighted: set[str] = set()  # local names given weights

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Call):
            self.parents[id(node)] = tuple(self.stack)
            self.stored.extend(_stored_by_call(node, self.instance))
            func = node.func
            if isinstance(func, cst.Attribute) and (func.attr.value in _WEIGHT_LOADERS or func.attr.value[-1] == "_"):
                self.weighted.add(_root(func) or "")
                self.weighted.update(_root(a.value) or "" for a in node.args if isinstance(a.value, cst.Attribute))
        elif isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                if _root(target) == self.instance and node.value is not None:
                    self.stored.append(node.value)
                elif not isinstance(target, cst.Name):
                    self.weighted.add(_root(target) or "")
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()

    def fate(self, call: cst.Call) -> str:
        """``"stored"`` on the instance, ``"kept"`` (given weights), or ``"temporary"``."""
        if any(_holds(value, call) for value in self.stored):
            return "stored"
        ancestors = self.parents.get(id(call), ())
        statement = next((n for n in reversed(ancestors) if isinstance(n, cst.BaseSmallStatement)), None)
        if isinstance(statement, (cst.Assign, cst.AnnAssign)) and statement.value is call:
            targets = [t.target for t in statement.targets] if isinstance(statement, cst.Assign) else [statement.target]
            names = {t.value for t in targets if isinstance(t, cst.Name)}
            if names & self.weighted:
                return "kept"
            if any(_holds(value, name) for value in self.stored for name in names):
                return "stored"
        return "temporary"

    def without_grad(self, call: cst.Call) -> bool:
        """Inside ``with torch.no_grad():`` or ``inference_mode()``: weights not meant to be trained."""
        for node in self.parents.get(id(call), ()):
            if isinstance(node, cst.With):
                for item in node.items:
                    func = item.item.func if isinstance(item.item, cst.Call) else item.item
                    name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
                    if name in ("no_grad", "inference_mode"):
                        return True
        return False

    def guarded(self, call: cst.Call) -> bool:
        """Under an ``if``/``while`` of the method, or in an ``except`` handler."""
        ancestors = self.parents.get(id(call), ())
        return any(isinstance(n, (cst.If, cst.IfExp, cst.While, cst.ExceptHandler)) for n in ancestors)


_STORING = {"add_module", "register_module", "append", "extend", "insert", "update", "setdefault", "add", "__setitem__"}


def _stored_by_call(call: cst.Call, instance: str) -> list[cst.BaseExpression]:
    """The arguments a call stores on the instance: ``self.blocks.append(b)``, ``setattr(self, n, b)``."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in _STORING and _root(func.value) == instance:
        return [a.value for a in call.args]
    if isinstance(func, cst.Name) and func.value == "setattr" and call.args and _root(call.args[0].value) == instance:
        return [a.value for a in call.args[1:]]
    return []


def _holds(expr: cst.BaseExpression, item: cst.Call | str) -> bool:
    """Whether ``expr`` is the item (a call node, or a local name) or a container built around it
    (``nn.Sequential(item, ...)``, ``[item]``, ``{k: item}``), not something computed by calling it."""
    if expr is item or (isinstance(expr, cst.Name) and expr.value == item):
        return True
    if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
        return any(_holds(e.value, item) for e in expr.elements)
    if isinstance(expr, cst.Dict):
        return any(isinstance(e, cst.DictElement) and _holds(e.value, item) for e in expr.elements)
    if isinstance(expr, cst.Call):
        func = expr.func
        if isinstance(func, cst.Attribute) and func.attr.value in _RETURNS_MODULE:
            return _holds(func.value, item)
        return any(_holds(a.value, item) for a in expr.args)
    return False


def _root(expr: cst.BaseExpression) -> str | None:
    """``self.a.b[0]`` -> ``"self"``."""
    while isinstance(expr, (cst.Attribute, cst.Subscript)):
        expr = expr.value
    return expr.value if isinstance(expr, cst.Name) else None


def _message(what: str, fate: str, fn: FunctionInfo) -> str:
    where = "forward()" if fn.name == "forward" else f"{fn.name}() (called from forward())"
    if fate == "stored":
        return (
            f"{what}(...) is built in {where} and stored on the module on every call: each call "
            f"brings fresh weights that the optimizer (made before) does not hold, so they are never "
            f"trained; build it once in __init__ (or only when it does not exist yet)"
        )
    return (
        f"{what}(...) is built in {where}: fresh weights on every call, not registered and never "
        f"trained; build it once in __init__ and call the stored layer here"
    )


def _calls_reached_from_forward(info: TreeInfo) -> list[ast.Call]:
    """The calls in the methods (and the functions nested in them) of the classes with a base
    that a ``forward`` may reach through ``<x>.<method>()`` calls, matched by name over them all."""
    by_name: dict[str, list[ast.AST]] = {}
    for cls in info.based_classes:
        for m in methods(cls):
            if m.name != "__init__":
                by_name.setdefault(m.name, []).append(m)
    reached, todo, calls = {"forward"}, ["forward"], []
    while todo:
        for m in by_name.get(todo.pop(), ()):
            for node in info.subtree(m):
                if isinstance(node, ast.Call):
                    calls.append(node)
                    func = node.func
                    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.attr not in reached:
                        reached.add(func.attr)
                        todo.append(func.attr)
    return calls
