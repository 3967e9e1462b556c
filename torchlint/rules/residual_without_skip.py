"""TL301 residual-without-skip: a block meant to be residual whose input never reaches its output.

A block is *meant* to be residual when its name says so (``ResidualBlock``, ``ResBlock``,
``ResNetBlock``, ``ResUnit``, ``Bottleneck``, ``SkipConnection``, ...) or the first line of its
docstring calls the class a residual block. It *has* a skip when its forward combines two values
that both flow from the forward's inputs (see ``InputFlow``). Reported: such a block built as an
``nn.Sequential`` (a chain, no skip), or whose forward (its own, a base's in this file or, through
the project index, in another) has no combination at all. The name is weak evidence, so the
structure must agree: the block is not a wrapper of residual children, its output can have its
input's shape, and no wrapper or parent of the file or project adds the skip around it.
"""

from __future__ import annotations

import ast
import functools
import re
import weakref
from collections.abc import Iterable, Iterator

import libcst as cst

from torchlint.facts import (
    CallInfo,
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    Scope,
    ScopeWalker,
    Walker,
    children,
    code_of,
    self_attr,
)
from torchlint.rules import Hit, Rule
from torchlint.screen import TreeInfo, ast_nodes

SEQUENTIALS = {"torch.nn.Sequential", "torch.nn.modules.container.Sequential"}

# --- what the name says ---------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|[A-Z]+|\d+")

# A token here gives the name another meaning than "one residual block": a network, a stack or
# stage of blocks, a quantiser, a flow, frame/step skipping, a latent bottleneck, ...
OTHER_MEANINGS = {
    "net", "network", "model", "ne", "xt", "encoder", "decoder", "stage", "stack", "backbone",
    "features", "feature", "weights", "blocks", "layers", "units", "fpn", "head",
    "vq", "quantize", "quantizer", "quantization", "quantizers", "codebook",
    "coupling", "flow", "flows", "frame", "frames", "step", "steps", "mode", "token", "tokens",
    "dataset", "loss", "sampler", "scheduler", "config", "potential", "fusion",
}
# These change the meaning wherever they stand (``LatentBottleneck``, ``ResGatedGraphConv``).
QUALIFIERS = {"latent", "vae", "autoencoder", "info", "information", "csp", "spp", "graph", "gcn", "gnn"}
# The class is only one branch of a residual block; the parent does the add.
BRANCH_ONLY = {"shortcut", "skip", "branch", "downsample", "projection", "proj", "transform", "path", "body"}
BLOCK_WORDS = {"block", "unit"}

_DOC_RESIDUAL = re.compile(
    r"^\W*(?:[\w-]+\s+){0,4}?(?:residual|resnet)(?:[\s-]+[\w/-]+){0,2}?[\s-]+(?:block|unit)\b",
    re.I,
)
# The block is part of something bigger: a stack or stage of residual blocks.
_DOC_CONTAINER = re.compile(r"\b(of|containing|stack|stacks|sequence|stage|several|multiple|series|consists?)\b", re.I)
# The class is only the branch: its caller or parent adds the input back.
_DOC_ADDED_OUTSIDE = re.compile(
    r"\b(?:(?:added|applied|summed|handled|done)\s+(?:by|in)\s+the\s+"
    r"(?:parent|caller|outer|enclosing|calling|wrapper|wrapping|surrounding|containing)"
    r"|(?:parent|caller|outer|enclosing|wrapper|wrapping)\s+(?:\w+\s+)?(?:adds|applies|handles)"
    r"|(?:residual|skip|shortcut|identity)(?:\s+connection)?\s+is\s+(?:added|applied|handled|done)\s+"
    r"(?:by|in|outside|elsewhere)"
    r"|without\s+(?:the\s+|a\s+)?(?:skip|shortcut|residual|identity))",
    re.I,
)
# A forward documented as computing one branch.
_DOC_BRANCH = re.compile(r"\b(?:main|residual|body|inner)[\s-]+(?:branch|path)\b", re.I)
_DOC_JOIN = re.compile(r"shortcut|skip|identity|\badd|\bsum|residual connection", re.I)
# A bottleneck in another sense: the narrow middle of an encoder-decoder, a latent code.
_DOC_LATENT = re.compile(r"\b(latent|encoder|decoder|bottom|compress\w*|autoencoder|u-?net|code)\b", re.I)


_RESIDUAL_WORDS = ("residual", "resblock", "resnetblock", "resunit")


def name_tokens(name: str) -> list[str]:
    """``SEResNetBottleneck_v2`` -> ``["se", "res", "net", "bottleneck", "v", "2"]``."""
    return [t.lower() for part in re.split(r"[_\W]+", name) for t in _TOKEN.findall(part)]


def residual_marker(name: str) -> str | None:
    """What a class or function name says: ``"residual"`` (one residual block), ``"bottleneck"``
    (a ResNet bottleneck, or a latent one: needs more evidence), or None. Words after the marker
    say what the thing is (``ResNetEncoder``, ``ResidualVQ``); words before only qualify it
    (``LocalNetResidualBlock``)."""
    tokens = [t for t in name_tokens(name) if not t.isdigit() and t not in ("d", "v", "x")]
    tokens = " ".join(tokens).replace("res net", "resnet").split()
    if not tokens or tokens[-1] in BRANCH_ONLY or any(t in QUALIFIERS for t in tokens):
        return None
    for i, t in enumerate(tokens):
        after = tokens[i + 1 :]
        if t in _RESIDUAL_WORDS:
            kind = "residual"
        elif t in ("res", "resnet") and any(u in BLOCK_WORDS for u in after):
            kind = "residual"
        elif t in ("skip", "shortcut") and after[:1] and after[0] in ("connection", "block", "add"):
            kind = "residual"
        elif t == "bottleneck" and not any(u in _RESIDUAL_WORDS for u in after):
            kind = "bottleneck"  # ``BottleneckResidual`` is told by its last word
        else:
            continue
        return None if any(u in OTHER_MEANINGS for u in after) else kind
    return None


def residual_by_docstring(doc: str) -> bool:
    """Whether the docstring's first line calls the class itself a residual block."""
    first = doc.strip().split("\n", 1)[0]
    m = _DOC_RESIDUAL.match(first)
    if not m or _DOC_CONTAINER.search(m.group(0)) or re.search(r"inverted[\s-]+residual", m.group(0), re.I):
        return False  # a stack of blocks; MobileNet's inverted residual, whose skip is conditional
    return not any(t in OTHER_MEANINGS for t in name_tokens(m.group(0)))


def only_a_branch(cls: ClassInfo) -> bool:
    """Whether the class or forward docstring says the class is the branch, the add done outside."""
    if _DOC_ADDED_OUTSIDE.search(cls.docstring):
        return True
    forward = cls.methods.get("forward")
    if forward is None or not isinstance(forward.node, cst.FunctionDef):
        return False
    first = (forward.node.get_docstring() or "").strip().split("\n", 1)[0]
    return bool(_DOC_BRANCH.search(first)) and not _DOC_JOIN.search(first)


# --- data flow from the forward's inputs -----------------------------------------------------

# Reading these from a tensor gives metadata, not data.
META_ATTRS = {
    "shape", "device", "dtype", "ndim", "is_cuda", "requires_grad", "layout", "is_sparse",
    "is_quantized", "is_meta", "names",
}
META_METHODS = {
    "size", "dim", "ndimension", "numel", "nelement", "get_device", "stride", "element_size",
    "is_contiguous", "is_floating_point", "is_complex", "data_ptr", "new_zeros", "new_ones",
    "new_empty", "new_full", "type", "storage_offset", "dim_order",
}
# ``a.<m>(b)``: the result has a's data and only b's shape, device or dtype.
META_FROM_ARG_METHODS = {"type_as", "expand_as", "view_as", "reshape_as", "to", "new_tensor"}
# torch functions that apply weights they are given: their result is a branch, not the input.
WEIGHTED_FUNCTIONS = {
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "linear",
    "bilinear", "embedding", "matmul", "mm", "bmm", "einsum", "baddbmm", "addmm", "multi_head_attention_forward",
}
# ``x.<m>(...)`` hands on x's own values, reshaped, cast or copied.
PASS_METHODS = {
    "clone", "detach", "contiguous", "float", "half", "double", "bfloat16", "to", "type_as", "view",
    "view_as", "reshape", "reshape_as", "permute", "transpose", "flatten", "unflatten", "squeeze",
    "unsqueeze", "expand", "expand_as", "movedim", "narrow",
}
META_FUNCTIONS = {"len", "isinstance", "hasattr", "getattr", "type", "id", "print", "str", "repr", "callable"}
META_TORCH = {
    "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like",
    "is_tensor", "numel", "is_floating_point", "is_complex", "result_type",
}
# Combinations of two tensors: any of these with two input-derived operands is a skip.
COMBINING_TORCH = {
    "add", "sub", "subtract", "cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack",
    "column_stack", "lerp", "addcmul", "addcdiv", "matmul", "mm", "bmm", "baddbmm", "addmm",
    "sum", "mean",
}
# What adds (or subtracts) tensors, among those.
SUMMING = {"add", "add_", "sub", "sub_", "subtract", "sum", "index_add", "index_add_", "scatter_add", "scatter_add_", "__add__", "__radd__"}
# A matrix product joins streams when it mixes the input itself (hyper-connections), not when it
# multiplies two projections of it (attention scores).
MATMULS = {"matmul", "mm", "bmm", "baddbmm", "addmm", "einsum"}
COMBINING_METHODS = {
    "add", "add_", "sub", "sub_", "lerp", "lerp_", "addcmul", "addcmul_", "addcdiv", "addcdiv_",
    "matmul", "mm", "bmm", "baddbmm", "index_add", "index_add_", "scatter_add", "scatter_add_",
    "append", "extend", "insert", "__add__", "__radd__",
}
COMBINING_BUILTINS = {"sum", "max", "min", "zip", "map"}
# nn.Module's own methods: calling them on self is not a call into a mixin.
MODULE_API = {
    "to", "cuda", "cpu", "float", "half", "double", "type", "train", "eval", "parameters",
    "named_parameters", "buffers", "named_buffers", "children", "named_children", "modules",
    "named_modules", "register_buffer", "register_parameter", "add_module", "register_module",
    "apply", "state_dict", "load_state_dict", "zero_grad", "requires_grad_", "get_submodule",
    "get_parameter", "get_buffer", "extra_repr", "register_forward_hook", "register_forward_pre_hook",
    "log", "log_dict", "__call__", "forward",
}


class InputFlow:
    """Which names of a function hold data that flows from its (tainted) parameters.

    Flow-insensitive: a name is input-derived if any value ever bound to it reads an
    input-derived name outside metadata (``x.shape``, ``x.size()``, ``len(x)``, ``x.dtype`` ...).
    Parameters of nested functions and lambdas count as inputs (they are called with them).
    """

    def __init__(self, facts: ModuleFacts, fn: FunctionInfo, tainted_params: Iterable[str]) -> None:
        self.facts = facts
        self.fn = fn
        self.self_name = fn.self_name
        collector = _Bindings()
        collector.walk(fn.node.body)
        self.bindings = collector.bindings
        self.inputs = set(tainted_params)
        self.tainted: set[str] = self.inputs | collector.nested_params
        # other parameters, never rebound: a stream the caller hands in (``forward(x, residual)``)
        self.side = {p for p in fn.params if p not in self.tainted and p != self.self_name} - {
            n for names, _ in self.bindings for n in names
        }
        changed = True
        while changed:
            changed = False
            for names, values in self.bindings:
                if not names <= self.tainted and any(self.expr(v) for v in values):
                    self.tainted |= names
                    changed = True

    @functools.cached_property
    def kept(self) -> set[str]:
        """The inputs and the locals that hold one of them as it came in, on some path
        (``identity = x``, ``x.clone()``, ``self.downsample(x)``, ``F.avg_pool2d(x, 2)``,
        ``x[..., :t]``), or the stream it starts (``h = h + f(h)``): what a skip adds back."""
        kept = set(self.inputs)
        changed = True
        while changed:
            changed = False
            for name, assigned in self.fn.assignments.items():
                if name not in kept and any(self._binds_kept(stmt, value, kept) for stmt, value in assigned):
                    kept.add(name)
                    changed = True
        return kept

    def _binds_kept(self, stmt: cst.CSTNode, value: cst.BaseExpression | None, kept: set[str]) -> bool:
        if isinstance(stmt, cst.Assign) and not (len(stmt.targets) == 1 and isinstance(stmt.targets[0].target, cst.Name)):
            return False
        return isinstance(stmt, (cst.Assign, cst.AnnAssign)) and value is not None and self.keeps(value, kept)

    def keeps(self, node: cst.BaseExpression, kept: set[str] | None = None) -> bool:
        """Whether an expression is an input as it came in: a kept name, reshaped, cast, cropped,
        scaled, pooled or padded by a function without weights (``F.avg_pool2d(x, 2)``), or
        passed through a layer named for the skip path (``self.shortcut(x)``)."""
        kept = self.kept if kept is None else kept
        if isinstance(node, cst.Name):
            return node.value in kept
        if isinstance(node, cst.Subscript):
            return self.keeps(node.value, kept)
        if isinstance(node, cst.IfExp):
            return self.keeps(node.body, kept) and self.keeps(node.orelse, kept)
        if isinstance(node, cst.BinaryOperation):
            sides = (node.left, node.right)
            if isinstance(node.operator, (cst.Add, cst.Subtract)):
                return any(self.keeps(v, kept) for v in sides)  # the stream goes on: ``h + f(h)``
            if isinstance(node.operator, (cst.Multiply, cst.Divide)):
                return any(self.keeps(v, kept) for v in sides) and not all(self.expr(v) for v in sides)
            return False
        if not isinstance(node, cst.Call):
            return False
        func, args = node.func, [a.value for a in node.args]
        if isinstance(func, cst.Attribute) and func.attr.value in PASS_METHODS:
            return self.keeps(func.value, kept)
        layer = func.value if isinstance(func, cst.Subscript) else func
        name = layer.attr.value if isinstance(layer, cst.Attribute) else layer.value if isinstance(layer, cst.Name) else ""
        if PROJECTION_TOKENS & set(name_tokens(name)):
            return any(self.keeps(a, kept) for a in args)
        return bool(args) and self.keeps(args[0], kept) and self._weightless(func, kept)

    def _weightless(self, func: cst.BaseExpression, kept: set[str]) -> bool:
        """A function, not a layer of the class nor one of torch's with weights (``F.conv2d``)."""
        if self_attr(func, self.self_name) or isinstance(func, cst.Name) and (
            func.value in self.fn.assignments or func.value in self.fn.params
        ):
            return False  # ``self.conv(x)``, ``for conv in self.convs: conv(x)``
        q = self.facts.qualname(func, self.fn.scope) or ""
        if not q.startswith("torch."):
            return True
        return q.rsplit(".", 1)[1] not in WEIGHTED_FUNCTIONS and not self.facts.is_module_class_expr(func, self.fn.scope)

    def sums_input(self, operands: list[cst.BaseExpression]) -> bool:
        """Whether adding the operands adds an input as it came in to a branch of layers on it
        (not to an elementwise function of it: a Snake activation ``x + sin(a * x) ** 2``)."""
        kept = [o for o in operands if self.keeps(o)]
        others = [o for o in operands if not any(o is k for k in kept)]
        return bool(kept) and any(
            self.expr(o) and self.layered(o) and not any(o.deep_equals(k) for k in kept) for o in others
        )

    @functools.cached_property
    def _layered_names(self) -> set[str]:
        """Names bound, on some path, from a layer's output (``out = self.conv(x)``)."""
        names: set[str] = set()
        changed = True
        while changed:
            changed = False
            for bound, values in self.bindings:
                if not bound <= names and any(self.layered(v, names) for v in values):
                    names |= bound
                    changed = True
        return names

    def layered(self, node: cst.CSTNode, names: set[str] | None = None) -> bool:
        """Whether an expression runs a layer: a call of an attribute of self (``self.conv(x)``,
        ``self.blocks[i](x)``), of a local or parameter (``for blk in self.blocks: blk(x)``), of a
        function that is not torch's, or of one of torch's with weights; or reads a name bound
        from one. Elementwise torch functions and tensor methods run no layer."""
        names = self._layered_names if names is None else names
        if isinstance(node, cst.Name):
            return node.value in names
        if isinstance(node, cst.Call) and self._runs_layer(node.func):
            return True
        return any(self.layered(c, names) for c in _children(node))

    def _runs_layer(self, func: cst.BaseExpression) -> bool:
        if isinstance(func, cst.Subscript) or self_attr(func, self.self_name):
            return True
        if isinstance(func, cst.Attribute) and not self.facts.qualname(func, self.fn.scope):
            return func.attr.value in WEIGHTED_FUNCTIONS  # a tensor's method: ``h.matmul(w)``
        if isinstance(func, cst.Name) and func.value in META_FUNCTIONS | COMBINING_BUILTINS:
            return False
        q = self.facts.qualname(func, self.fn.scope) or ""
        return not q.startswith("torch.") or q.rsplit(".", 1)[1] in WEIGHTED_FUNCTIONS or self.facts.is_module_class_expr(
            func, self.fn.scope
        )

    def expr(self, node: cst.CSTNode) -> bool:
        """Whether the value of an expression carries input data."""
        if isinstance(node, cst.Name):
            return node.value in self.tainted
        if isinstance(node, cst.Attribute):
            return node.attr.value not in META_ATTRS and self.expr(node.value)
        if isinstance(node, cst.Call):
            return self._call(node)
        if isinstance(node, cst.Subscript):
            return self.expr(node.value)
        if isinstance(node, (cst.Comparison, cst.UnaryOperation)) and _is_none_test(node):
            return False
        return any(self.expr(c) for c in _children(node))

    def _call(self, node: cst.Call) -> bool:
        func = node.func
        args = [a.value for a in node.args]
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in META_METHODS:
                return False
            if method in META_FROM_ARG_METHODS:
                return self.expr(func.value)
        if isinstance(func, cst.Name) and func.value in META_FUNCTIONS and self._builtin(func):
            return False
        q = self.facts.qualname(func, self.fn.scope)
        if q and q.startswith("torch.") and q.rsplit(".", 1)[1] in META_TORCH:
            return False
        return self.expr(func) or any(self.expr(a) for a in args)

    def _builtin(self, name: cst.Name) -> bool:
        return self.facts.resolve_name(name.value, self.fn.scope) is None and not _bound_anywhere(name.value, self.fn.scope)

    def mixes_streams(self, operands: list[cst.BaseExpression]) -> bool:
        """A matrix product of input data where one operand is an input itself (``H @ x``)."""
        raw = any(isinstance(o, cst.Name) and o.value in self.inputs for o in operands)
        return raw and self.count(operands, side=True) >= 2

    def stream(self, node: cst.BaseExpression) -> bool:
        """Input data, or a side parameter passed in as it is (a stream to join)."""
        return self.expr(node) or isinstance(node, cst.Name) and node.value in self.side

    def joins(self, left: cst.BaseExpression, right: cst.BaseExpression) -> bool:
        """Whether combining the two joins input data with another stream (a value combined with
        itself, ``x += x``, only doubles one stream)."""
        if left.deep_equals(right):
            return False
        return self.stream(left) and self.stream(right) and (self.expr(left) or self.expr(right))

    def count(self, exprs: Iterable[cst.BaseExpression], side: bool = False) -> int:
        """How many of the expressions carry input data (a starred or iterable one counts twice);
        with ``side``, side parameters count too, provided input data is among them."""
        exprs = list(exprs)
        n = 0
        for e in exprs:
            if isinstance(e, (cst.List, cst.Tuple, cst.Set)):
                n += self.count((el.value for el in e.elements), side)
            elif _concatenation(e):
                n += self.count([e.left, e.right], side)
            elif isinstance(e, (cst.StarredElement, cst.ListComp, cst.GeneratorExp)) and self.expr(e):
                n += 2
            elif self.expr(e) or side and isinstance(e, cst.Name) and e.value in self.side:
                n += 1
        if side and n and not self.count(exprs):
            return 0
        return n


class _Bindings(Walker):
    """Every (names bound, values they take) in a function body, nested scopes included."""

    def __init__(self) -> None:
        self.bindings: list[tuple[frozenset[str], list[cst.BaseExpression]]] = []
        self.nested_params: set[str] = set()

    def _add(self, target: cst.BaseExpression, values: list[cst.BaseExpression]) -> None:
        names = frozenset(_root_names(target))
        if names:
            self.bindings.append((names, values))

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._add(t.target, [node.value])

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value:
            self._add(node.target, [node.value])

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._add(node.target, [node.value])

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._add(node.target, [node.value])

    def visit_For(self, node: cst.For) -> None:
        self._add(node.target, [node.iter])

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._add(node.target, [node.iter])

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname:
            self._add(node.asname.name, [node.item])

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("append", "extend", "insert", "update", "add"):
            self._add(func.value, [a.value for a in node.args])

    def visit_Parameters(self, node: cst.Parameters) -> None:
        self.nested_params.update(p.name.value for p in _params(node))


def _root_names(target: cst.BaseExpression) -> Iterator[str]:
    """Names a target writes into: ``a``, ``a, b``, ``a[i]`` and ``a.b`` (a's contents)."""
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield from _root_names(el.value)
    elif isinstance(target, cst.StarredElement):
        yield from _root_names(target.value)
    elif isinstance(target, cst.Subscript):
        yield from _root_names(target.value)


def _params(params: cst.Parameters) -> list[cst.Param]:
    out = [*params.posonly_params, *params.params, *params.kwonly_params]
    if isinstance(params.star_arg, cst.Param):
        out.append(params.star_arg)
    if params.star_kwarg:
        out.append(params.star_kwarg)
    return out


def _children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    for c in children(node):
        if isinstance(c, cst.BaseExpression) or isinstance(
            c, (cst.Arg, cst.Element, cst.DictElement, cst.StarredDictElement, cst.SubscriptElement,
                cst.Index, cst.Slice, cst.CompFor, cst.CompIf, cst.FormattedStringExpression)
        ):
            yield c
        elif isinstance(c, cst.ComparisonTarget):
            yield c.comparator


def _is_none_test(node: cst.CSTNode) -> bool:
    if isinstance(node, cst.UnaryOperation):
        return isinstance(node.operator, cst.Not)
    assert isinstance(node, cst.Comparison)
    return all(isinstance(t.operator, (cst.Is, cst.IsNot)) for t in node.comparisons)


def _bound_anywhere(name: str, scope: Scope | None) -> bool:
    while scope is not None:
        if name in scope.bound or name in scope.imports:
            return True
        scope = scope.parent
    return False


# --- finding the skip -------------------------------------------------------------------------


class SkipFinder:
    """Whether a class's forward (and the methods it reaches) combines two input-derived values."""

    def __init__(self, facts: ModuleFacts, cls: ClassInfo, sums_input: bool = False) -> None:
        """``sums_input``: only a sum that adds an input as it came in (``x + f(x)``, ``out +=
        identity``, ``self.shortcut(x) + h``) counts: not a concatenation (a dense layer), a sum
        of parallel branches or of slices of one tensor (a pooling), nor a list extended."""
        self.facts = facts
        self.cls = cls
        self.sums_input = sums_input
        self.methods = methods_with_bases(facts, cls)
        self.attrs = {a.name for c in _class_chain(facts, cls) for a in c.attr_assigns} | _class_attrs(cls)
        self.unknown_base = _has_unknown_base(facts, cls)
        self.torch_layers = _torch_layer_attrs(facts, cls)
        self.seen: set[tuple[str, frozenset[str]]] = set()

    def forward_has_skip(self, forward: FunctionInfo) -> bool:
        inputs = main_inputs(forward)
        flow = InputFlow(self.facts, forward, inputs)
        if not self._returns_input_data(forward, flow):
            return True  # abstract, or returns nothing derived from the input: not a block
        if _takes_a_collection(forward, inputs[0]) if inputs else False:
            return True  # mixes a list of tensors (earlier blocks' outputs): an aggregator
        return self._has_skip(forward, frozenset(inputs), flow) or _joins_inputs(self.facts, forward)

    def _has_skip(self, fn: FunctionInfo, tainted: frozenset[str], flow: InputFlow | None = None) -> bool:
        key = (fn.name, tainted)
        if key in self.seen:
            return False
        self.seen.add(key)
        flow = flow or InputFlow(self.facts, fn, tainted)
        scan = _Combinations(self, flow)
        scan.walk(fn.node.body)
        return scan.found

    def _returns_input_data(self, fn: FunctionInfo, flow: InputFlow) -> bool:
        finder = _Returns()
        finder.walk(fn.node.body)
        if finder.yields:
            return False
        return any(flow.expr(v) for v in finder.values)

    def follow(self, attr: str, call: cst.Call | None, flow: InputFlow) -> bool:
        """A ``self.<attr>`` reference inside forward: does it (possibly) do the skip?"""
        fn = self.methods.get(attr)
        if fn is not None:
            if call is None:
                tainted = frozenset(p for p in fn.params if p != fn.self_name)
            else:
                tainted = frozenset(_tainted_params(fn, call, flow))
            return bool(tainted) and self._has_skip(fn, tainted)
        if call is None or attr in self.attrs or attr in MODULE_API:
            return False
        # a method the class does not define: inherited from a mixin or an unknown base
        return self.unknown_base and any(flow.expr(a.value) for a in call.args)


def main_inputs(fn: FunctionInfo) -> list[str]:
    """The streams a skip joins: the first input, ``*args``, and inputs named as a skip
    (``forward(self, x, residual)``); side inputs (masks, embeddings, sizes) are not."""
    assert isinstance(fn.node, cst.FunctionDef)
    params = fn.node.params
    positional = [p.name.value for p in (*params.posonly_params, *params.params)]
    if positional and positional[0] == fn.self_name:
        positional = positional[1:]
    out = positional[:1]
    if isinstance(params.star_arg, cst.Param):
        out.append(params.star_arg.name.value)
    named = [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]
    out += [n for n in named if SKIP_STREAM_TOKENS & set(n.lower().split("_")) and n not in out]
    return out


class _Combinations(Walker):
    def __init__(self, finder: SkipFinder, flow: InputFlow) -> None:
        self.finder = finder
        self.flow = flow
        self.found = False

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.found:
            return False
        return super().on_visit(node)

    def _adds(self, left: cst.BaseExpression, right: cst.BaseExpression) -> bool:
        if _sequence(left, self.flow.fn) or _sequence(right, self.flow.fn):
            return False  # ``outputs += (attn,)`` concatenates tuples, it adds no tensors
        if self.finder.sums_input:
            return self.flow.sums_input([left, right])
        return self.flow.joins(left, right)

    def _combines(self, operands: list[cst.BaseExpression]) -> bool:
        """Whether a call combining the operands (``torch.add``, ``sum([...])``, an unknown
        function) joins two streams; in ``sums_input`` mode, adds an input to other data."""
        if self.finder.sums_input:
            return self.flow.sums_input(_flat(operands))
        return self.flow.count(operands, side=True) >= 2

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, (cst.Add, cst.Subtract)):
            if self._adds(node.left, node.right):
                self.found = True
        elif isinstance(node.operator, cst.MatrixMultiply):
            if self.flow.mixes_streams([node.left, node.right]):
                self.found = True

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, (cst.AddAssign, cst.SubtractAssign)):
            if self._adds(node.target, node.value):
                self.found = True
        elif isinstance(node.operator, cst.MatrixMultiplyAssign):
            if self.flow.joins(node.target, node.value):
                self.found = True

    def visit_Return(self, node: cst.Return) -> None:
        # several input-derived results: the caller combines them
        if self.finder.sums_input:
            return
        if isinstance(node.value, (cst.Tuple, cst.List, cst.Dict)) and self.flow.count(_elements(node.value)) >= 2:
            self.found = True

    def visit_Call(self, node: cst.Call) -> None:
        flow, finder = self.flow, self.finder
        func = node.func
        args = [a.value for a in node.args]
        for a in args:
            ref = self_attr(a, flow.self_name)
            if ref and ref in finder.methods and finder.follow(ref, None, flow):
                self.found = True
                return
        attr = self_attr(func, flow.self_name)
        if attr is not None:
            if finder.follow(attr, node, flow) or (
                attr not in finder.methods and attr not in finder.torch_layers and flow.count(args) >= 2
                and not finder.sums_input
            ):
                self.found = True
            return
        if _is_super_call(func):
            if func.attr.value == "forward":
                self.found = any(flow.expr(a) for a in args) and parent_forward_skip(finder.facts, finder.cls) is not False
            elif finder.unknown_base and any(flow.expr(a) for a in args):
                self.found = True
            return
        q = self.finder.facts.qualname(func, flow.fn.scope)
        if isinstance(func, cst.Attribute) and not (q and q.startswith("torch.")):
            method = func.attr.value
            if method in COMBINING_METHODS and not (finder.sums_input and method not in SUMMING):
                self.found = self._combines([func.value, *args])
            return
        if q and q.startswith("torch."):
            leaf = q.rsplit(".", 1)[1]
            if leaf in MATMULS:
                self.found = flow.mixes_streams(args)
            elif leaf in COMBINING_TORCH and not (finder.sums_input and leaf not in SUMMING):
                self.found = self._combines(args)
            return
        if isinstance(func, cst.Name) and func.value in COMBINING_BUILTINS:
            # map(f, (q, k, v)) adds nothing
            self.found = self._combines(args) and (not finder.sums_input or func.value == "sum")
            return
        if isinstance(func, cst.Name) and func.value in META_FUNCTIONS:
            return
        if flow.count(args) >= 2 and not finder.sums_input:
            self.found = True  # an unknown function of two input-derived tensors


class _Returns(ScopeWalker):
    """The returned values of a function body, not of functions nested in it."""

    def __init__(self) -> None:
        self.values: list[cst.BaseExpression] = []
        self.yields = False

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self.values.append(node.value)

    def visit_Yield(self, node: cst.Yield) -> None:
        self.yields = True


def _sequence(node: cst.BaseExpression, fn: FunctionInfo) -> bool:
    """A tuple or list display (``(h,)``, ``() if keep else None``), or a local only ever
    assigned one."""
    if isinstance(node, cst.Name) and node.value in fn.assignments:
        assigned = fn.assignments[node.value]
        values = [v for _, v in assigned if v is not None]
        return (
            all(isinstance(s, (cst.Assign, cst.AugAssign)) for s, _ in assigned)
            and all(_display(v) for v in values)
            and any(not _is_none(v) for v in values)
        )
    return _display(node)


def _display(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.IfExp):
        return _display(node.body) and _display(node.orelse)
    return _is_none(node) or isinstance(node, (cst.Tuple, cst.List, cst.ListComp))


def _is_none(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "None"


def _flat(operands: list[cst.BaseExpression]) -> list[cst.BaseExpression]:
    """The operands with list and tuple displays opened: ``sum([x, h])`` adds x and h."""
    out = []
    for o in operands:
        if isinstance(o, (cst.List, cst.Tuple)):
            out.extend(_flat(_elements(o)))
        elif _concatenation(o):
            out.extend(_flat([o.left, o.right]))
        else:
            out.append(o)
    return out


def _concatenation(node: cst.BaseExpression) -> bool:
    """``[x] + [b(x) for b in bs]``: one list of the elements of both."""
    return isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add) and (
        _display(node.left) or _display(node.right)
    )


def _elements(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(node, cst.Dict):
        return [e.value for e in node.elements if isinstance(e, cst.DictElement)]
    return [e.value for e in node.elements]  # type: ignore[attr-defined]


def _is_super_call(func: cst.BaseExpression) -> bool:
    return (
        isinstance(func, cst.Attribute)
        and isinstance(func.value, cst.Call)
        and isinstance(func.value.func, cst.Name)
        and func.value.func.value == "super"
    )


def _tainted_params(fn: FunctionInfo, call: cst.Call, flow: InputFlow) -> Iterator[str]:
    params = [p for p in fn.params if p != fn.self_name]
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for i, a in enumerate(positional):
        if i < len(params) and flow.expr(a.value):
            yield params[i]
    for a in call.args:
        if a.keyword is not None and flow.expr(a.value):
            yield a.keyword.value
        elif a.star and flow.expr(a.value):
            yield from params


def _takes_a_collection(fn: FunctionInfo, name: str) -> bool:
    """Whether forward's input is a list of tensors: annotated so, iterated, unpacked, or handed
    whole to ``torch.stack``/``cat``/``sum``."""
    assert isinstance(fn.node, cst.FunctionDef)
    for p in fn.node.params.params:
        if p.name.value == name and p.annotation is not None and _admits_a_collection(p.annotation.annotation):
            return True
    for node in _walk(fn.node.body):
        if isinstance(node, (cst.For, cst.CompFor)) and _is_name(node.iter, name):
            return True
        if isinstance(node, cst.StarredElement) and _is_name(node.value, name):
            return True
        if isinstance(node, cst.Arg) and node.star == "*" and _is_name(node.value, name):
            return True
        if isinstance(node, cst.Call) and len(node.args) >= 1 and _is_name(node.args[0].value, name):
            leaf = node.func.attr.value if isinstance(node.func, cst.Attribute) else getattr(node.func, "value", "")
            if leaf in ("stack", "cat", "concat", "sum", "enumerate", "zip", "reversed", "list", "tuple"):
                return True
    return False


_COLLECTIONS = ("list", "List", "tuple", "Tuple", "Sequence", "Iterable")


def _admits_a_collection(ann: cst.BaseExpression) -> bool:
    """``list[Tensor]``, ``Sequence[Tensor]``, or a union with one (``list[Tensor] | Tensor``,
    ``Union[Tensor, List[Tensor]]``)."""
    if isinstance(ann, cst.BinaryOperation) and isinstance(ann.operator, cst.BitOr):
        return _admits_a_collection(ann.left) or _admits_a_collection(ann.right)
    head = ann.value if isinstance(ann, cst.Subscript) else ann
    leaf = head.attr.value if isinstance(head, cst.Attribute) else getattr(head, "value", "")
    if leaf in _COLLECTIONS:
        return True
    if leaf in ("Union", "Optional") and isinstance(ann, cst.Subscript):
        return any(
            isinstance(el.slice, cst.Index) and _admits_a_collection(el.slice.value) for el in ann.slice
        )
    return False


def _is_name(node: cst.CSTNode, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    yield node
    for c in children(node):
        yield from _walk(c)


def _passthrough(node: cst.BaseExpression, params: set[str]) -> str | None:
    """The parameter an expression hands on unprocessed: ``x``, ``a * x``, ``x.to(dtype)``."""
    if isinstance(node, cst.Name):
        return node.value if node.value in params else None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Divide)):
        return _passthrough(node.left, params) or _passthrough(node.right, params)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        if node.func.attr.value in ("to", "float", "half", "double", "type", "type_as", "contiguous", "clone"):
            return _passthrough(node.func.value, params)
    return None


def _joins_inputs(facts: ModuleFacts, fn: FunctionInfo) -> bool:
    """A forward of several tensors that adds one of them, unprocessed, to data of another:
    the caller computed the branch (``forward(self, x, y): return self.norm(x + self.drop(y))``)."""
    params = {p for p in fn.params if p != fn.self_name}
    if len(params) < 2:
        return False
    for node in _walk(fn.node.body):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
            for kept, other in ((node.left, node.right), (node.right, node.left)):
                p = _passthrough(kept, params)
                if p and InputFlow(facts, fn, params - {p}).expr(other):
                    return True
    return False


def parent_forward_skip(facts: ModuleFacts, cls: ClassInfo) -> bool | None:
    """What ``super().forward(x)`` does: True (the parent adds the skip), False (torch's chain or
    a parent whose forward has none), None (unknown)."""
    for base in cls.bases:
        local = facts.local_class(base)
        if local is not None:
            forward = methods_with_bases(facts, local).get("forward")
            if forward is None:
                return False if sequential_base(facts, local) else None
            return SkipFinder(facts, local).forward_has_skip(forward)
        q = facts.qualname(base, cls.scope)
        if q and q.startswith("torch."):
            continue
        kind = _project_forward(facts, q)
        return {"skip": True, "none": False, "sequential": False}.get(kind)
    return False


def _project_forward(facts: ModuleFacts, qualname: str | None) -> str:
    """The project index's account of a class's forward (``index.ProjectIndex.forward_kind``)."""
    index = facts.project_index()
    return index.forward_kind(qualname) if index is not None and qualname else ""


def _class_chain(facts: ModuleFacts, cls: ClassInfo) -> list[ClassInfo]:
    """The class and its bases defined in this file, nearest first."""
    out, todo = [], [cls]
    while todo:
        c = todo.pop(0)
        if c in out:
            continue
        out.append(c)
        todo.extend(b for b in (facts.local_class(e) for e in c.bases) if b is not None)
    return out


def methods_with_bases(facts: ModuleFacts, cls: ClassInfo) -> dict[str, FunctionInfo]:
    methods: dict[str, FunctionInfo] = {}
    for c in _class_chain(facts, cls):
        for name, fn in c.methods.items():
            methods.setdefault(name, fn)
    return methods


def _class_attrs(cls: ClassInfo) -> set[str]:
    out = set()
    for stmt in cls.node.body.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for s in stmt.body:
                if isinstance(s, (cst.Assign, cst.AnnAssign)):
                    targets = [t.target for t in s.targets] if isinstance(s, cst.Assign) else [s.target]
                    out.update(n for t in targets for n in _root_names(t))
    return out


def _torch_layer_attrs(facts: ModuleFacts, cls: ClassInfo) -> set[str]:
    """Attributes only ever assigned a torch.nn layer (``self.attn = nn.MultiheadAttention(...)``):
    calling one adds nothing back, whatever it is given."""
    layers: dict[str, bool] = {}
    for a in cls.attr_assigns:
        v = a.value
        q = facts.qualname(v.func, a.method.scope) if isinstance(v, cst.Call) else None
        layers[a.name] = layers.get(a.name, True) and bool(q and q.startswith("torch.nn.") and facts.is_module_class_expr(v.func, a.method.scope))
    return {name for name, only_torch in layers.items() if only_torch}


def _has_unknown_base(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether some base (or a local base's base) is neither torch's nor defined in this file."""
    for c in _class_chain(facts, cls):
        for b in c.bases:
            if facts.local_class(b) is not None:
                continue
            q = facts.qualname(b, c.scope)
            if not (q and q.startswith("torch.")):
                return True
    return False


def sequential_base(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether the class (or a local base) subclasses nn.Sequential, none overriding forward."""
    for c in _class_chain(facts, cls):
        if "forward" in c.methods:
            return False
        if any(facts.qualname(b, c.scope) in SEQUENTIALS for b in c.bases):
            return True
    return False


# --- the rule -----------------------------------------------------------------------------

SKIP_STREAM_TOKENS = {"shortcut", "skip", "identity", "residual", "res"}
SKIPISH_TOKENS = SKIP_STREAM_TOKENS | {"downsample", "short", "stride", "expansion"}


class ResidualWithoutSkip(Rule):
    code = "TL301"
    name = "residual-without-skip"
    summary = "a residual block (by name, docstring, or a skip-path layer it builds and never uses) whose input is never added back to its output"
    needles = ("Res", "res", "RES", "Skip", "skip", "Shortcut", "shortcut", "Bottleneck", "bottleneck")

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A class with a base named or documented as a residual block, or a function named as
        one that may return an nn.Sequential."""
        if any(residual_marker(f.name) == "residual" for f in info.functions):
            return True
        return any(
            residual_marker(c.name) is not None or _may_say_residual(c) or _may_build_skip_layer(info, c)
            for c in info.based_classes
        )

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.classes:
            if not cls.is_module or only_a_branch(cls):
                continue
            unused = _unused_skip_layer(facts, cls)
            if not (unused or meant_residual(cls)):
                continue
            inherited = "" if cls.methods.get("forward") else _inherited_forward(facts, cls)
            if sequential_base(facts, cls) or inherited == "sequential":
                if _builds_plain_layers(facts, cls) and not used_as_branch(facts, cls):
                    yield Hit(
                        cls.node.name,
                        f"{cls.name} is meant to be a residual block but subclasses nn.Sequential without "
                        "overriding forward: it chains its layers and never adds the input back; "
                        "define forward as `return x + super().forward(x)`",
                        cls,
                    )
                continue
            forward = methods_with_bases(facts, cls).get("forward")
            if forward is not None:
                owner = next(c for c in _class_chain(facts, cls) if c.methods.get("forward") is forward)
                missing = not SkipFinder(facts, owner).forward_has_skip(forward)
            else:
                missing = inherited == "none"  # forward inherited from a base in another file
            if (
                missing
                and not _has_residual_child(facts, cls)
                and not _changes_shape(facts, cls)
                and not used_as_branch(facts, cls)
            ):
                built = f" (self.{unused} is built for the skip path and never used)" if unused else ""
                yield Hit(
                    cls.node.name,
                    f"{cls.name} is meant to be a residual block but forward() never combines its input "
                    "with the body's output (no add, cat or torch.add of the input): the skip connection "
                    f"is missing, so it trains as a plain deep stack{built}",
                    cls,
                )
        yield from self._factories(facts)

    def _factories(self, facts: ModuleFacts) -> Iterator[Hit]:
        for fn in facts.functions:
            if not isinstance(fn.node, cst.FunctionDef) or fn.is_method or residual_marker(fn.name) != "residual":
                continue
            for call in _returned_calls(fn):
                if (
                    facts.qualname(call.func, fn.scope) in SEQUENTIALS
                    and _plain_layers(facts, fn, call)
                    and not _factory_used_as_branch(facts, fn)
                ):
                    yield Hit(
                        call,
                        f"{fn.name}() is meant to build a residual block but returns a plain nn.Sequential: "
                        "the layers run in a chain and the input is never added back",
                    )


def meant_residual(cls: ClassInfo) -> bool:
    """Named or documented as one residual block (a bottleneck only with signs of a ResNet one)."""
    marker = residual_marker(cls.name)
    if marker == "residual" or residual_by_docstring(cls.docstring):
        return True
    first = cls.docstring.strip().split("\n", 1)[0]
    return marker == "bottleneck" and not _DOC_LATENT.search(first) and _resnet_signs(cls)


def _resnet_signs(cls: ClassInfo) -> bool:
    """A skip-ish name (downsample, shortcut, identity, stride, expansion...) in the class."""
    names = {a.name for a in cls.attr_assigns} | _class_attrs(cls)
    for method in ("__init__", "forward"):
        fn = cls.methods.get(method)
        if fn is not None:
            names |= set(fn.params) | set(fn.assignments)
    return any(SKIPISH_TOKENS & set(n.lower().split("_")) for n in names)


def used_as_branch(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether the class is the branch of a skip made elsewhere: built as the argument of a
    wrapper that adds the skip (``Residual(Block(...))``, hyper-connections), built into an
    attribute of a class of this file or the project whose forward adds its output to its input
    (``x = x + blk(x)`` over a ModuleList of them; ``conv_out + res_out``; a CSP block's
    ``torch.cat`` of its bottlenecks' output with its input)."""
    for call in facts.calls:
        if any(_builds(facts, a.value, cls) for a in call.node.args) and wrapper_adds_skip(facts, call, cls):
            return True
    return _parent_adds_skip(facts, cls.name)


def _factory_used_as_branch(facts: ModuleFacts, fn: FunctionInfo) -> bool:
    """Whether what the factory builds is the branch of a skip made elsewhere, as for a class
    (``used_as_branch``): handed to a wrapper that adds the skip, or built into an attribute
    that a class of this file or the project adds around (``x = x + self.body(x)``)."""
    for call in facts.calls:
        built = any(
            isinstance(n, cst.Call) and isinstance(n.func, cst.Name) and n.func.value == fn.name
            for a in call.node.args
            for n in _walk(a.value)
        )
        if built and wrapper_adds_skip(facts, call, None):
            return True
    return _parent_adds_skip(facts, fn.name)


WRAPPER_TOKENS = {"residual", "res", "skip", "shortcut", "hyper", "connection", "connections", "rezero"}


def wrapper_adds_skip(facts: ModuleFacts, call: CallInfo, cls: ClassInfo | None) -> bool:
    """Whether the call that is handed the block wraps it in a skip: a class of this file or the
    project whose forward has one, or a wrapper from elsewhere named for it."""
    func = call.node.func
    wrapper = facts.local_class(func)
    if wrapper is cls:
        return False
    if wrapper is not None:
        forward = methods_with_bases(facts, wrapper).get("forward")
        return forward is not None and SkipFinder(facts, wrapper).forward_has_skip(forward)
    scope = call.scope or (call.function.scope if call.function else None)
    kind = _project_forward(facts, facts.qualname(func, scope))
    if kind:
        return kind == "skip"
    callee = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else ""
    return bool(WRAPPER_TOKENS & set(name_tokens(callee)))


_BRANCHES_HERE: weakref.WeakKeyDictionary[ModuleFacts, set[str]] = weakref.WeakKeyDictionary()


def _parent_adds_skip(facts: ModuleFacts, name: str) -> bool:
    """Whether a class of this file or the project adds a skip around what the top-level class
    or factory function ``name`` builds."""
    module = facts.module_name or ""
    qualname = f"{module}.{name}"
    project = facts.project_index() if module else None
    if project is not None and module in project.files:
        return qualname in project.branch_classes  # this file's uses and every other file's
    return qualname in _branches_here(facts)


def _branches_here(facts: ModuleFacts) -> set[str]:
    """The classes of this file that a class of this file adds a skip around (the index's scan
    of this one file, so that a run without the index sees them too)."""
    from torchlint import index  # the index imports the engine, which imports the rules

    if facts not in _BRANCHES_HERE:
        try:
            entry = index.scan_tree(facts.syntax_tree(), facts.module_name or "")
        except (SyntaxError, ValueError, RecursionError):
            entry = None
        _BRANCHES_HERE[facts] = index.only_branches([entry]) if entry else set()
    return _BRANCHES_HERE[facts]


def _inherited_forward(facts: ModuleFacts, cls: ClassInfo) -> str:
    """What the forward a class inherits from a base in another file of the project does."""
    for c in _class_chain(facts, cls):
        for b in c.bases:
            if facts.local_class(b) is None:
                kind = _project_forward(facts, facts.qualname(b, c.scope))
                if kind:
                    return kind
    return ""


def _has_residual_child(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether ``__init__`` builds a residual block (a wrapper that chains them has no skip of its
    own to lose: the skips live in the children)."""
    init = cls.methods.get("__init__")
    return init is not None and any(_residual_callee(facts, c.node.func, init.scope, cls) for c in init.calls)


def _residual_callee(facts: ModuleFacts, func: cst.BaseExpression, scope: Scope | None, cls: ClassInfo) -> bool:
    name = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else ""
    if not name or name == cls.name:
        return False
    local = facts.local_class(func)
    if local is not None:
        if local is cls or not local.is_module:
            return False
        forward = methods_with_bases(facts, local).get("forward")
        if forward is not None and SkipFinder(facts, local, sums_input=True).forward_has_skip(forward) and _computes(facts, local):
            return True
        if forward is not None and not SkipFinder(facts, local).forward_has_skip(forward):
            return False  # a chain of layers whatever its name says (``ResidualAttentionMlp``)
        return residual_marker(name) is not None
    if _project_forward(facts, facts.qualname(func, scope)) == "skip":
        return True
    return residual_marker(name) is not None


def _computes(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether a class builds layers of its own (not an abstract stub that passes as 'has a skip'):
    a torch.nn layer, or any call stored on self in ``__init__`` (``self.conv1 = ConvLayer(...)``
    from a helper module)."""
    init = methods_with_bases(facts, cls).get("__init__")
    if init is None:
        return False
    if any(facts.is_module_class_expr(c.node.func, init.scope) for c in init.calls):
        return True
    return any(a.method is init and isinstance(a.value, cst.Call) for c in _class_chain(facts, cls) for a in c.attr_assigns)


# Layers whose first two arguments are the input and output sizes.
SIZED_LAYERS = {"Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"}
PROJECTION_TOKENS = {"shortcut", "skip", "downsample", "residual", "res", "identity", "short", "match", "nin", "sc"}
_SKIP_PATH_WORDS = {"shortcut", "skip"}  # words that name nothing but the skip path


def _changes_shape(facts: ModuleFacts, cls: ClassInfo, forward: FunctionInfo | None = None) -> bool:
    """Whether the block maps one size to another (its layers on the input go from one
    constructor parameter to another, ``Conv2d(in_ch, out_ch)``, and not back) with nothing to project the input (no shortcut,
    downsample or skip layer, no ``nn.Identity`` alternative): its output cannot be added to
    its input, so it is not meant to have a skip. ``forward``: the method whose input is meant
    (a unit that forward calls), else the class's forward."""
    init, forward = cls.methods.get("__init__"), forward or cls.methods.get("forward")
    if init is None or forward is None or has_projection(facts, cls):
        return False
    flow = InputFlow(facts, forward, main_inputs(forward)[:1])
    on_input = {
        attr for c in forward.calls
        if (attr := self_attr(c.node.func, forward.self_name)) and any(flow.expr(a.value) for a in c.node.args)
    }
    layers = [
        n for a in cls.attr_assigns if a.name in on_input and a.value is not None
        for n in _walk(a.value) if isinstance(n, cst.Call)
    ]
    params = set(init.params)
    sizes_in, sizes_out = set(), set()
    for node in layers:
        q = facts.qualname(node.func, init.scope) or ""
        if not q.startswith("torch.nn.") or q.rsplit(".", 1)[1] not in SIZED_LAYERS:
            continue
        sizes = [a.value for a in node.args if a.keyword is None][:2]
        sizes += [a.value for a in node.args if a.keyword and a.keyword.value in (
            "in_channels", "out_channels", "in_features", "out_features")]
        roots = [_size_param(v, params) for v in sizes[:2]]
        if len(roots) == 2 and None not in roots:
            sizes_in.add(roots[0])
            sizes_out.add(roots[1])
    same = _equal_at_every_call(facts, cls, init, sizes_in | sizes_out)
    sizes_in, sizes_out = {same.get(p, p) for p in sizes_in}, {same.get(p, p) for p in sizes_out}
    return sizes_in != sizes_out  # a size goes in that never comes out (``dim -> hidden -> dim`` keeps it)


def _equal_at_every_call(facts: ModuleFacts, cls: ClassInfo, init: FunctionInfo, names: set[str]) -> dict[str, str]:
    """Constructor parameters that every construction of the class in the file passes the same
    value (``PreActBlock(planes, planes)`` for ``(in_planes, planes)``), each mapped to one of
    them: the sizes the block is built with are equal wherever it is built."""
    if len(names) < 2:
        return {}
    positional = init.params[1:]
    calls = [c.node for c in facts.calls if facts.local_class(c.node.func) is cls]
    values: dict[str, list[str]] = {n: [] for n in names}
    for call in calls:
        bound: dict[str, cst.BaseExpression] = {}
        for i, arg in enumerate(call.args):
            if arg.star:
                return {}
            name = arg.keyword.value if arg.keyword else positional[i] if i < len(positional) else None
            if name in values:
                bound[name] = arg.value
        if set(bound) != names:
            return {}  # a size left to its default, or passed through ``*args``
        for name, value in bound.items():
            values[name].append(code_of(value))
    if not calls:
        return {}
    groups: dict[tuple[str, ...], str] = {}
    return {n: groups.setdefault(tuple(v), n) for n, v in sorted(values.items())}


def _size_param(node: cst.BaseExpression, params: set[str]) -> str | None:
    """The constructor parameter a size is made from: ``dim``, ``self.dim``, ``dim * 4``."""
    if isinstance(node, cst.Name) and node.value in params:
        return node.value
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.attr.value in params:
        return node.attr.value  # self.in_channels, set from the parameter
    if isinstance(node, cst.BinaryOperation):
        return _size_param(node.left, params) or _size_param(node.right, params)
    return None


def _unused_skip_layer(facts: ModuleFacts, cls: ClassInfo) -> str | None:
    """A layer built for the skip path that nothing uses after construction: an attribute named
    only for it (``self.shortcut``, ``self.skip_conv``), or named as a projection and
    ``nn.Identity()`` in one case (``self.downsample = Proj(...) if changes else nn.Identity()``),
    that no method of the class's family in the file reads outside construction."""
    construction = facts.construction_methods(cls)
    read: set[str] | None = None
    for a in cls.attr_assigns:
        words = set(a.name.lower().split("_"))
        if a.method.name not in construction or a.value is None or not words & PROJECTION_TOKENS:
            continue
        calls = [n for n in _walk(a.value) if isinstance(n, cst.Call)]
        identity_or_layer = isinstance(a.value, cst.IfExp) and any(
            facts.qualname(n.func, a.method.scope) == "torch.nn.Identity" for n in calls
        )
        if not (words & _SKIP_PATH_WORDS or identity_or_layer):
            continue
        if not any(facts.is_module_class_expr(n.func, a.method.scope) for n in calls):
            continue
        if read is None:
            read = {u.name for u in facts.attr_uses(facts.family(cls)) if not u.store and u.method not in construction}
        if a.name not in read:
            return a.name
    return None


def has_projection(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """A layer or parameter for the skip path: an attribute or constructor parameter named as one
    (``downsample``, ``shortcut``, ``skip``, ``res_conv``, ``nin_shortcut``), or an attribute that
    is ``nn.Identity()`` in one case and a layer in another."""
    names = {a.name for a in cls.attr_assigns}
    init = cls.methods.get("__init__")
    if init is not None:
        names |= set(init.params)
    if any(PROJECTION_TOKENS & set(n.lower().split("_")) for n in names):
        return True
    for a in cls.attr_assigns:
        if isinstance(a.value, cst.IfExp) and any(
            facts.qualname(n.func, a.method.scope) == "torch.nn.Identity" for n in _walk(a.value) if isinstance(n, cst.Call)
        ):
            return True
    return False


def _builds(facts: ModuleFacts, node: cst.CSTNode, cls: ClassInfo) -> bool:
    if isinstance(node, cst.Call) and facts.local_class(node.func) is cls:
        return True
    return any(_builds(facts, c, cls) for c in children(node))


def _builds_plain_layers(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether the layers an nn.Sequential subclass chains are plain ones: none of those its
    ``__init__`` builds (handed to ``super().__init__`` or registered as attributes) nor those
    this file hands it is a residual block (a stage of blocks is not one block)."""
    init = cls.methods.get("__init__")
    if init is not None and any(_residual_callee(facts, c.node.func, init.scope, cls) for c in init.calls):
        return False
    for call in facts.calls:
        if facts.local_class(call.node.func) is cls:
            handed = [n.func for a in call.node.args for n in _walk(a.value) if isinstance(n, cst.Call)]
            if any(_residual_callee(facts, f, call.scope, cls) for f in handed):
                return False
            layers = [f for f in handed if facts.qualname(f, call.scope) not in SEQUENTIALS and facts.is_module_class_expr(f, call.scope)]
            if not layers and any(_class_in_a_variable(f, call) for f in handed):
                return False  # only blocks of a class the caller chooses
    return True


def _class_in_a_variable(func: cst.BaseExpression, call: CallInfo) -> bool:
    """``block(...)`` where ``block`` is a parameter of the calling function: a class its caller
    chooses (``make_stage(block=BasicBlock)``), maybe a residual one."""
    fn = call.function
    return isinstance(func, cst.Name) and fn is not None and func.value in fn.params


def _returned_calls(fn: FunctionInfo) -> Iterator[cst.Call]:
    finder = _Returns()
    finder.walk(fn.node.body)
    for value in finder.values:
        if isinstance(value, cst.Name):
            assigned = fn.assignments.get(value.value, [])
            if len(assigned) == 1:
                value = assigned[0][1]
        if isinstance(value, cst.Call):
            yield value


def _plain_layers(facts: ModuleFacts, fn: FunctionInfo, call: cst.Call) -> bool:
    """Whether every element of ``nn.Sequential(...)`` is a torch.nn layer built in place."""
    if not call.args:
        return False
    for arg in call.args:
        value = arg.value
        if arg.star or arg.keyword or not isinstance(value, cst.Call):
            return False
        q = facts.qualname(value.func, fn.scope)
        if not (q and q.startswith("torch.nn.")) or q in SEQUENTIALS:
            return False
    return True


def _may_build_skip_layer(info: TreeInfo, cls: ast.ClassDef) -> bool:
    """The screen's reading of ``_unused_skip_layer``: an attribute named only for the skip path,
    or named as a projection and assigned a conditional expression that calls something."""
    for node in info.subtree(cls):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for t in targets:
            words = set(t.attr.lower().split("_")) if isinstance(t, ast.Attribute) else set()
            if words & _SKIP_PATH_WORDS:
                return True
            if words & PROJECTION_TOKENS and isinstance(value, ast.IfExp) and any(
                isinstance(n, ast.Call) for n in ast_nodes(value)
            ):
                return True
    return False


def _may_say_residual(cls: ast.ClassDef) -> bool:
    """The screen's reading of a class's docstring: one CPython cannot read as LibCST does (not a
    plain string) may say anything."""
    first = cls.body[0] if cls.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, (ast.Constant, ast.JoinedStr))):
        return False
    if not (isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)):
        return True
    return residual_by_docstring(ast.get_docstring(cls) or "")
