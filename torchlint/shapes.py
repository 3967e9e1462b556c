"""A small static shape model: the feature sizes of torch layers whose sizes are literal.

A size is known only when it is an integer literal, arithmetic over literals, or a name bound
once to such a value in the same function (or once at module level); anything else (a
parameter, an attribute, a call) is unknown, and the model says nothing about it.

A tensor's known size is a ``Feature``: a size on one axis, ``CHANNEL`` (dim 1, what
convolutions and batch norms read) or ``LAST`` (dim -1, what Linear and LayerNorm read). A
``Layer`` reads one axis (and checks its size there) and writes one. ``feed`` passes a feature
through a layer and says whether the sizes cannot line up. Sequences of layers (nn.Sequential
arguments, and list literals that end up in one) and each module class's layer attributes are
found here too, so rules and the verifier share one reading of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import libcst as cst

from torchlint.facts import (
    CallInfo,
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    find_arg,
    is_true,
    target_names,
    walk,
)

CHANNEL, LAST, BOTH = "channel", "last", "both"  # BOTH: BatchNorm1d reads (N, C) and (N, C, L)
SEQUENTIALS = {"torch.nn.Sequential", "torch.nn.modules.container.Sequential"}

_ACTIVATIONS = {
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
    "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign",
    "Tanhshrink", "Softshrink", "Hardshrink", "LogSigmoid", "Threshold", "Softmax", "LogSoftmax",
    "Softmax2d", "Softmin",
}
SIZE_PRESERVING = _ACTIVATIONS | {
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "Identity", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "LazyInstanceNorm1d",
    "LazyInstanceNorm2d", "LazyInstanceNorm3d",
}
_POOL = re.compile(r"^(Adaptive)?(Max|Avg|LP)Pool[123]d$|^(Reflection|Replication|Constant|Zero|Circular)Pad[123]d$")
CHANNEL_PRESERVING = {"Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "LocalResponseNorm"}
CONVS = {f"{kind}{n}d" for kind in ("Conv", "ConvTranspose") for n in (1, 2, 3)}
BATCH_NORMS = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"}
INSTANCE_NORMS = {"InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"}
# wrappers that return the module they are given
_SAME_MODULE = {"torch.nn.utils.spectral_norm", "torch.nn.utils.weight_norm"}
_SAME_MODULE_PREFIX = "torch.nn.utils.parametrizations."
PARAMETERS = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}
SHAPE_FACTORIES = {
    f"torch.{name}"
    for name in ("randn", "rand", "zeros", "ones", "empty", "Tensor", "FloatTensor", "DoubleTensor", "HalfTensor")
}
# tensor methods that return a tensor of the same shape
_SHAPE_KEEPING = {
    "normal_", "uniform_", "zero_", "fill_", "mul", "mul_", "div", "div_", "add", "add_", "sub",
    "sub_", "to", "cuda", "cpu", "float", "double", "half", "bfloat16", "requires_grad_", "detach",
    "clone", "contiguous", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
    "trunc_normal_",
}
Dim = int | str | None  # a dimension: a size, a symbol (see ShapeModel.dim), or unknown


@dataclass(frozen=True, eq=False)
class Layer:
    """A torch layer constructor with what the model knows about its sizes."""

    node: cst.Call  # the constructor call (for a Sequential: the Sequential call)
    kind: str  # the class name: "Conv2d", "BatchNorm2d", ... or "Sequential"
    reads: str | None = None  # the axis it checks, or None
    in_size: int | None = None
    writes: str | None = None  # the axis of out_size
    out_size: int | None = None
    preserves: str | None = None  # "all": shape kept; CHANNEL: only the channel count kept
    bias: bool | None = None  # Conv/Linear: True (default or literal), False, None (unknown)
    elements: tuple[Layer | None, ...] = ()  # a Sequential's layers (None: unknown element)

    @property
    def label(self) -> str:
        text = re.sub(r"\s+", " ", cst.Module([]).code_for_node(self.node))
        text = re.sub(r"([(\[]) | (?=[)\]])|,(?= ?[)\]])", r"\1", text)
        return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, eq=False)
class Feature:
    """A known size on one axis of a tensor, and the layer that set it."""

    size: int
    axis: str
    origin: str | Callable[[], str]  # where it came from, for a message (a function: named only if one needs it)

    @property
    def source(self) -> str:
        return self.origin() if callable(self.origin) else self.origin

    @property
    def unit(self) -> str:
        return "channels" if self.axis == CHANNEL else "features"


@dataclass(frozen=True)
class Mismatch:
    expected: int  # what the layer reads
    got: Feature


def _compatible(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and (a == b or BOTH in (a, b))


def feed(layer: Layer | None, feature: Feature | None, source: str | Callable[[], str] = "") -> tuple[Feature | None, Mismatch | None]:
    """The feature after ``layer``, and the mismatch when the layer cannot take ``feature``.
    ``source`` names the layer in the output feature (default: its constructor)."""
    if layer is None:
        return None, None
    if layer.elements:
        return _feed_sequence(layer, feature, source)
    if layer.preserves == "all":
        return feature, None
    if layer.preserves == CHANNEL:
        return (feature if feature and feature.axis == CHANNEL else None), None
    if feature and layer.in_size is not None and _compatible(feature.axis, layer.reads) and feature.size != layer.in_size:
        return None, Mismatch(layer.in_size, feature)
    if layer.out_size is None:
        return None, None
    axis = layer.writes
    if axis == BOTH:
        axis = feature.axis if feature and _compatible(feature.axis, BOTH) else CHANNEL
    return Feature(layer.out_size, axis, source or partial(getattr, layer, "label")), None


def _feed_sequence(layer: Layer, feature: Feature | None, source: str | Callable[[], str]) -> tuple[Feature | None, Mismatch | None]:
    """Through a Sequential: only a mismatch with the incoming feature is reported; one between
    its own elements is the Sequential's finding, reported where it is built."""
    current = feature
    for element in layer.elements:
        current, mismatch = feed(element, current)
        if mismatch:
            return None, (mismatch if mismatch.got is feature else None)
    if current is None or current is feature:
        return current, None
    return Feature(current.size, current.axis, source or partial(getattr, layer, "label")), None


class ShapeModel:
    """The layers of one file, with their literal sizes."""

    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self._calls: dict[int, CallInfo] = {id(c.node): c for c in facts.calls}
        self._constants = _module_constants(facts)
        self._attr_layers: dict[int, dict[str, tuple[Layer, cst.CSTNode]]] = {}
        self.bound: dict[cst.CSTNode, set[str]] = {}  # bound_in() of statements, computed once

    def call_info(self, node: cst.Call) -> CallInfo | None:
        return self._calls.get(id(node))

    # sizes

    def size(self, expr: cst.BaseExpression, fn: FunctionInfo | None, depth: int = 0) -> int | None:
        """The integer value of ``expr`` when it is traceable to literals, else None."""
        if isinstance(expr, cst.Integer):
            return int(expr.evaluated_value)
        if isinstance(expr, cst.BinaryOperation) and depth < 8:
            left, right = self.size(expr.left, fn, depth + 1), self.size(expr.right, fn, depth + 1)
            if left is None or right is None:
                return None
            op = expr.operator
            if isinstance(op, cst.Add):
                return left + right
            if isinstance(op, cst.Subtract):
                return left - right
            if isinstance(op, cst.Multiply):
                return left * right
            if isinstance(op, cst.FloorDivide) and right:
                return left // right
            return None
        if isinstance(expr, cst.Name) and depth < 8:
            value = self.bound_once(expr.value, fn)
            return self.size(value, fn, depth + 1) if value is not None else None
        return None

    def bound_once(self, name: str, fn: FunctionInfo | None) -> cst.BaseExpression | None:
        """The value ``name`` is bound to, when it is bound exactly once by a plain assignment in
        ``fn`` (not a parameter), or, when no function around ``fn`` binds it, once at module
        level. None otherwise."""
        if fn is not None:
            if name in fn.scope.bound:
                if name in fn.params:
                    return None
                assigned = fn.assignments.get(name, [])
                if len(assigned) != 1 or not isinstance(assigned[0][0], (cst.Assign, cst.AnnAssign)):
                    return None
                stmt, value = assigned[0]
                if isinstance(stmt, cst.Assign) and len(stmt.targets) != 1:
                    return None
                return value
            scope = fn.scope.parent
            while scope is not None and scope.kind != "module":
                if scope.kind == "function" and name in scope.bound:
                    return None
                scope = scope.parent
        return self._constants.get(name)

    # layers

    def layer(self, expr: cst.BaseExpression, fn: FunctionInfo | None = None, depth: int = 0) -> Layer | None:
        """The torch layer ``expr`` builds: a constructor call, or a local name bound once to one."""
        if isinstance(expr, cst.Name) and depth < 3:
            value = self.bound_once(expr.value, fn) if fn is not None else None
            return self.layer(value, fn, depth + 1) if isinstance(value, cst.Call) else None
        if not isinstance(expr, cst.Call):
            return None
        info = self.call_info(expr)
        fn = info.function if info else fn
        scope = info.scope if info else None
        qualname = self.facts.qualname(expr.func, scope)
        if not qualname or not qualname.startswith("torch.nn."):
            return None
        if (qualname in _SAME_MODULE or qualname.startswith(_SAME_MODULE_PREFIX)) and expr.args and depth < 3:
            return self.layer(expr.args[0].value, fn, depth + 1)
        kind = qualname.rsplit(".", 1)[1]
        if qualname in SEQUENTIALS:
            elements = [self.layer(e, fn, depth + 1) if e is not None else None for e in self.sequence_elements(expr, fn)]
            return Layer(expr, "Sequential", elements=tuple(elements) or (None,))
        return self._torch_layer(expr, kind, fn)

    def _torch_layer(self, call: cst.Call, kind: str, fn: FunctionInfo | None) -> Layer | None:
        def arg(keyword: str, position: int | None) -> int | None:
            found, maybe = find_arg(call, keyword, position)
            return self.size(found.value, fn) if found is not None and not maybe else None

        if kind in SIZE_PRESERVING:
            return Layer(call, kind, preserves="all")
        if kind in CHANNEL_PRESERVING or _POOL.match(kind):
            return Layer(call, kind, preserves=CHANNEL)
        if kind in CONVS:
            return Layer(call, kind, CHANNEL, arg("in_channels", 0), CHANNEL, arg("out_channels", 1), bias=self._bias(call, 7))
        if kind.startswith("LazyConv"):
            return Layer(call, kind, writes=CHANNEL, out_size=arg("out_channels", 0), bias=self._bias(call, 6))
        if kind == "Linear":
            return Layer(call, kind, LAST, arg("in_features", 0), LAST, arg("out_features", 1), bias=self._bias(call, 2))
        if kind == "LazyLinear":
            return Layer(call, kind, writes=LAST, out_size=arg("out_features", 0), bias=self._bias(call, 1))
        if kind in BATCH_NORMS:
            n = arg("num_features", 0)
            return Layer(call, kind, BOTH if kind == "BatchNorm1d" else CHANNEL, n, BOTH, n)
        if kind in INSTANCE_NORMS:
            # without affine weights or running stats, a wrong num_features is only a warning
            checked = any(arg is not None and is_true(arg.value) for arg in (find_arg(call, k)[0] for k in ("affine", "track_running_stats")))
            n = arg("num_features", 0)
            return Layer(call, kind, CHANNEL, n if checked else None, CHANNEL, n)
        if kind == "GroupNorm":
            n = arg("num_channels", 1)
            return Layer(call, kind, CHANNEL, n, CHANNEL, n)
        if kind in ("LayerNorm", "RMSNorm"):
            found, maybe = find_arg(call, "normalized_shape", 0)
            value = found.value if found is not None and not maybe else None
            if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == 1:
                value = value.elements[0].value
            n = self.size(value, fn) if value is not None else None
            return Layer(call, kind, LAST, n, LAST, n)
        if kind in ("Embedding", "EmbeddingBag"):
            return Layer(call, kind, writes=LAST, out_size=arg("embedding_dim", 1))
        return Layer(call, kind)  # another torch layer: sizes unknown

    def _bias(self, call: cst.Call, position: int) -> bool | None:
        found, maybe = find_arg(call, "bias", position)
        if maybe:
            return None
        if found is None:
            return True
        value = found.value
        if isinstance(value, cst.Name) and value.value in ("True", "False"):
            return value.value == "True"
        return None

    # sequences of layers

    def sequence_elements(self, call: cst.Call, fn: FunctionInfo | None) -> list[cst.BaseExpression | None]:
        """The elements of ``nn.Sequential(...)`` in order; None for what cannot be listed
        (``*layers``, a dict). An ``OrderedDict([(name, layer), ...])`` gives its layers."""
        if len(call.args) == 1 and isinstance(call.args[0].value, cst.Call) and not call.args[0].star:
            inner = call.args[0].value
            info = self.call_info(inner)
            q = self.facts.qualname(inner.func, info.scope if info else None)
            if q == "collections.OrderedDict" and len(inner.args) == 1 and isinstance(inner.args[0].value, (cst.List, cst.Tuple)):
                out: list[cst.BaseExpression | None] = []
                for el in inner.args[0].value.elements:
                    pair = el.value
                    ok = isinstance(pair, cst.Tuple) and len(pair.elements) == 2 and not isinstance(el, cst.StarredElement)
                    out.append(pair.elements[1].value if ok else None)
                return out
        return [None if a.star or a.keyword else a.value for a in call.args]

    def layer_runs(self) -> Iterator[tuple[list[cst.BaseExpression | None], FunctionInfo | None]]:
        """Runs of expressions that become consecutive layers of one nn.Sequential: its
        arguments; the arguments of ``super().__init__(...)`` in an nn.Sequential subclass; and
        each list literal that a local list passed as ``nn.Sequential(*layers)`` is built from
        (``layers = [...]``, ``layers += [...]``, ``layers.extend([...])``). None: not listable."""
        for call, _ in self.facts.calls_to(*SEQUENTIALS):
            fn = call.function
            yield self.sequence_elements(call.node, fn), fn
            if fn is not None:
                for arg in call.node.args:
                    if arg.star == "*" and isinstance(arg.value, cst.Name):
                        yield from ((run, fn) for run in _list_literals(fn, arg.value.value))
        for cls in self.facts.classes:
            if not any(self.facts.qualname(b, cls.scope) in SEQUENTIALS for b in cls.bases):
                continue
            init = cls.methods.get("__init__")
            for call in init.calls if init else ():
                func = call.node.func
                if (
                    isinstance(func, cst.Attribute)
                    and func.attr.value == "__init__"
                    and isinstance(func.value, cst.Call)
                    and isinstance(func.value.func, cst.Name)
                    and func.value.func.value == "super"
                ):
                    yield [None if a.star or a.keyword else a.value for a in call.node.args], init

    # tensors built by factories

    def dims(self, expr: cst.BaseExpression | None, fn: FunctionInfo | None, depth: int = 0) -> tuple[Dim, ...] | None:
        """The shape of a tensor built by a torch factory (``torch.randn(784, 256)``), through
        ``nn.Parameter``, ``nn.init.*_``, scaling, in-place init and transposes. A dimension is an
        int, a symbol (a name that holds one value in ``fn``: equal symbols are equal sizes, different
        ones probably differ), or None."""
        if expr is None or depth > 6:
            return None
        if isinstance(expr, cst.Name):
            return self.dims(self.bound_once(expr.value, fn), fn, depth + 1)
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("T", "mT", "data"):
            inner = self.dims(expr.value, fn, depth + 1)
            return inner[::-1] if inner and expr.attr.value != "data" and len(inner) == 2 else inner
        if isinstance(expr, cst.BinaryOperation):
            left, right = self.dims(expr.left, fn, depth + 1), self.dims(expr.right, fn, depth + 1)
            return left if right is None else (right if left is None else None)
        if not isinstance(expr, cst.Call):
            return None
        info = self.call_info(expr)
        q = self.facts.qualname(expr.func, info.scope if info else None)
        first = expr.args[0].value if expr.args and not expr.args[0].keyword and not expr.args[0].star else None
        if q in PARAMETERS or (q and q.startswith("torch.nn.init.") and q.endswith("_")):
            return self.dims(first, fn, depth + 1)
        if q in SHAPE_FACTORIES:
            sized, maybe = find_arg(expr, "size")
            if maybe:
                return None
            args = [a.value for a in expr.args if not a.keyword]
            if sized is not None and sized.keyword:
                args = [sized.value]
            if len(args) == 1 and isinstance(args[0], (cst.Tuple, cst.List)):
                args = [e.value for e in args[0].elements]
            if any(isinstance(a, cst.StarredElement) for a in args):
                return None
            return tuple(self.dim(a, fn) for a in args)
        if q is None and isinstance(expr.func, cst.Attribute):
            method = expr.func.attr.value
            inner = self.dims(expr.func.value, fn, depth + 1) if method in _SHAPE_KEEPING or method in ("t", "transpose") else None
            if method == "t" or (method == "transpose" and inner and len(inner) == 2):
                return inner[::-1] if inner and len(inner) == 2 else None
            return inner
        return None

    def dim(self, expr: cst.BaseExpression, fn: FunctionInfo | None) -> Dim:
        """A dimension: its int value, else a symbol for a name that holds one value in ``fn``."""
        value = self.size(expr, fn)
        if value is not None or not isinstance(expr, cst.Name) or fn is None:
            return value
        name = expr.value
        if name in fn.params and name not in fn.assignments:
            return f"{id(fn)}:{name}"
        if name not in fn.params and len(fn.assignments.get(name, [])) == 1:
            return f"{id(fn)}:{name}"
        return None

    # module attributes

    def attr_layers(self, family: list[ClassInfo]) -> dict[str, tuple[Layer, cst.CSTNode]]:
        """``self.<name>`` -> (layer, its assignment) for each attribute of the class family
        (a class with its bases and subclasses in this file) assigned exactly once, to a layer."""
        key = id(family[0])
        if key not in self._attr_layers:
            counts: dict[str, int] = {}
            for cls in family:
                for a in cls.attr_assigns:
                    counts[a.name] = counts.get(a.name, 0) + 1
            table = {}
            for cls in family:
                for a in cls.attr_assigns:
                    if counts[a.name] == 1 and isinstance(a.node, (cst.Assign, cst.AnnAssign)) and a.value is not None:
                        found = self.layer(a.value, a.method)
                        if found is not None:
                            table[a.name] = (found, a.node)
            self._attr_layers[key] = table
        return self._attr_layers[key]


def _list_literals(fn: FunctionInfo, name: str) -> Iterator[list[cst.BaseExpression | None]]:
    def elements(node: cst.BaseExpression) -> list[cst.BaseExpression | None] | None:
        if isinstance(node, (cst.List, cst.Tuple)):
            return [None if isinstance(e, cst.StarredElement) else e.value for e in node.elements]
        return None

    for stmt, value in fn.assignments.get(name, []):
        if isinstance(stmt, cst.Assign) and value is not None:
            found = elements(value)
            if found is not None:
                yield found
        elif isinstance(stmt, cst.AugAssign) and isinstance(stmt.value, (cst.List, cst.Tuple)):
            yield elements(stmt.value)
    for call in fn.calls:
        func = call.node.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value == "extend"
            and isinstance(func.value, cst.Name)
            and func.value.value == name
            and call.node.args
        ):
            found = elements(call.node.args[0].value)
            if found is not None:
                yield found


def _module_constants(facts: ModuleFacts) -> dict[str, cst.BaseExpression]:
    """Module-level names bound exactly once, by a plain assignment, and never declared global."""
    bindings: dict[str, list[cst.BaseExpression | None]] = {}

    def visit(body) -> None:
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign):
                        for t in small.targets:
                            for n in _names(t.target):
                                bindings.setdefault(n, []).append(small.value if len(small.targets) == 1 and isinstance(t.target, cst.Name) else None)
                    elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                        for n in _names(small.target):
                            value = small.value if isinstance(small, cst.AnnAssign) else None
                            bindings.setdefault(n, []).extend([value, None] if isinstance(small, cst.AugAssign) else [value])
            elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                bindings.setdefault(stmt.name.value, []).append(None)
            elif isinstance(stmt, (cst.If, cst.For, cst.While, cst.Try, cst.With)):
                for n in bound_in(stmt):
                    bindings.setdefault(n, []).extend([None, None])

    visit(facts.module.body)
    declared = {n for f in facts.functions for n in f.scope.declared_global}
    return {
        name: values[0]
        for name, values in bindings.items()
        if len(values) == 1 and values[0] is not None and name not in declared and name not in facts.module_scope.imports
    }


def _names(target: cst.BaseExpression) -> Iterator[str]:
    return (n.value for n in target_names(target))


def bound_in(stmt: cst.CSTNode) -> set[str]:
    """Names a statement binds anywhere inside it (a nested function or class: only its name)."""
    found: set[str] = set()

    def enter(node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            found.add(node.name.value)
            return False
        if isinstance(node, cst.Lambda):
            return False
        if isinstance(node, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.NamedExpr)):
            found.update(_names(node.target))
        elif isinstance(node, cst.AsName):
            found.update(_names(node.name))
        elif isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
            found.update((a.evaluated_alias or a.evaluated_name).split(".")[0] for a in node.names)
        return True

    walk(stmt, enter)
    return found
