"""TL304 shape-mismatch: literal layer sizes that cannot line up.

Three places, all read through the shared shape model (``torchlint.shapes``): consecutive
layers of an nn.Sequential; the flow of a local through ``self.<layer>(x)`` calls in a method
(with the residual adds along the way); and ``F.linear`` weights and biases built from factories.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import (
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    children,
    find_arg,
    self_attr,
)
from torchlint.rules import Hit, Rule
from torchlint.screen import TreeInfo, child_nodes
from torchlint.shapes import (
    BATCH_NORMS,
    CHANNEL,
    CONVS,
    INSTANCE_NORMS,
    LAST,
    Dim,
    Feature,
    Layer,
    Mismatch,
    ShapeModel,
    bound_in,
    feed,
)

F = "torch.nn.functional."
LINEAR = F + "linear"
ADDS = {"torch.add", "torch.Tensor.add"}
# functions whose output has the shape of their first argument
SHAPE_KEEPING_FUNCTIONS = {
    *(f"torch.{n}" for n in ("relu", "relu_", "sigmoid", "tanh", "softmax", "log_softmax", "dropout")),
    *(
        F + n
        for n in (
            "relu", "relu_", "relu6", "gelu", "silu", "elu", "selu", "celu", "leaky_relu", "mish",
            "hardswish", "hardsigmoid", "hardtanh", "sigmoid", "tanh", "softplus", "dropout",
            "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "softmax", "log_softmax",
        )
    ),
}
SHAPE_KEEPING_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "float", "half", "double", "detach"}
_COMPREHENSIONS = (cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)

# the screen's sources of a size: the torch.nn layers whose sizes the shape model reads (it
# knows them by the last part of their name), its tensor factories and F.linear
_SIZED_LAYERS = frozenset({
    *CONVS, *BATCH_NORMS, *INSTANCE_NORMS, "Linear", "LazyLinear", "GroupNorm", "LayerNorm", "RMSNorm",
    "Embedding", "EmbeddingBag", *(f"LazyConv{t}{n}d" for t in ("", "Transpose") for n in (1, 2, 3)),
})

# the arguments the shape model reads a torch.nn layer's sizes from: (keyword, position)
_SIZE_ARGS: dict[str, tuple[tuple[str, int], ...]] = {
    **{kind: (("in_channels", 0), ("out_channels", 1)) for kind in CONVS},
    **{f"LazyConv{t}{n}d": (("out_channels", 0),) for t in ("", "Transpose") for n in (1, 2, 3)},
    "Linear": (("in_features", 0), ("out_features", 1)),
    "LazyLinear": (("out_features", 0),),
    **{kind: (("num_features", 0),) for kind in (*BATCH_NORMS, *INSTANCE_NORMS)},
    "GroupNorm": (("num_channels", 1),),
    "LayerNorm": (("normalized_shape", 0),),
    "RMSNorm": (("normalized_shape", 0),),
    "Embedding": (("embedding_dim", 1),),
    "EmbeddingBag": (("embedding_dim", 1),),
}


def _known_sizes(info: TreeInfo) -> int:
    """How many size arguments of torch.nn layer calls may be known to the shape model (``size``:
    literals, arithmetic of them, names that are not a parameter of the function around)."""
    count = 0
    todo: list[tuple[ast.AST, frozenset[str]]] = [(info.tree, frozenset())]
    while todo:
        node, params = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            inner = frozenset(
                a.arg for a in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg) if a is not None
            )
            body = node.body if isinstance(node.body, list) else [node.body]
            todo.extend((child, inner) for child in body)
            todo.extend((child, params) for child in child_nodes(node) if child not in body)
            continue
        if isinstance(node, ast.Call):
            for kind in info.callee_leaves(node) & _SIZE_ARGS.keys():
                for keyword, position in _SIZE_ARGS[kind]:
                    given = [k.value for k in node.keywords if k.arg == keyword] or node.args[position : position + 1]
                    count += any(_may_be_known(v, params) for v in given)
        todo.extend((child, params) for child in child_nodes(node))
    return count


def _may_be_known(expr: ast.AST, params: frozenset[str]) -> bool:
    if isinstance(expr, (ast.Tuple, ast.List)) and len(expr.elts) == 1:
        expr = expr.elts[0]
    if isinstance(expr, ast.Constant):
        return isinstance(expr.value, int)
    if isinstance(expr, ast.BinOp):
        return _may_be_known(expr.left, params) and _may_be_known(expr.right, params)
    return isinstance(expr, ast.Name) and expr.id not in params


class ShapeMismatch(Rule):
    code = "TL304"
    name = "shape-mismatch"
    summary = "literal layer sizes that cannot line up: consecutive layers, a residual add, F.linear weight/bias"
    needles = ("Linear", "linear", "Conv", "Norm", "Embedding")

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """F.linear (its weight's sizes come from tensor factories), or two sizes of torch.nn layers
        that may be known: every mismatch compares two sizes the shape model traced to literals."""
        if info.mentions([LINEAR]):
            return True
        sized = [c for c in info.calls if info.callee_leaves(c) & _SIZE_ARGS.keys()]
        return bool(sized) and _known_sizes(info) >= 2

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        model = ShapeModel(facts)
        seen: set[int] = set()
        for hit in (*_sequential_hits(model), *_flow_hits(facts, model)):
            if id(hit.node) not in seen:
                seen.add(id(hit.node))
                yield hit


# --- (a) consecutive layers of an nn.Sequential ---------------------------------------------------


def _sequential_hits(model: ShapeModel) -> Iterator[Hit]:
    for run, fn in model.layer_runs():
        feature: Feature | None = None
        for element in run:
            layer = model.layer(element, fn) if element is not None else None
            feature, mismatch = feed(layer, feature)
            if mismatch and layer is not None:
                yield Hit(
                    element,
                    f"{layer.label} takes {_amount(mismatch.expected, mismatch.got)} but the layer before "
                    f"it, {mismatch.got.source}, gives {_amount(mismatch.got.size, mismatch.got)}: the "
                    "Sequential fails with a shape error when it runs; make the sizes agree",
                    fn.cls if fn else None,
                )


def _amount(size: int, like: Feature) -> str:
    return f"{size} {like.unit}"


# --- (b), (c), (d): the flow through a method ----------------------------------------------------


def _flow_hits(facts: ModuleFacts, model: ShapeModel) -> Iterator[Hit]:
    families: dict[int, list[ClassInfo]] = {}
    for fn in facts.functions:
        if not isinstance(fn.node, cst.FunctionDef) or fn.name == "__init__":
            continue
        cls, instance = fn.cls, fn.instance
        relatives: list[ClassInfo] = []
        if cls is not None and cls.is_module and instance:
            relatives = families.setdefault(id(cls), facts.family(cls))
        flow = _Flow(model, fn, instance if relatives else None, relatives)
        if not flow.layers and not any(model.facts.call_qualname(c) == LINEAR for c in fn.calls):
            continue  # no layer of known size and no F.linear: nothing can mismatch here
        flow.block(fn.node.body)
        yield from flow.hits


class _Flow:
    """Walks a function's statements in order, keeping the feature of each local it knows."""

    def __init__(self, model: ShapeModel, fn: FunctionInfo, instance: str | None, relatives: list[ClassInfo]) -> None:
        self.model, self.fn, self.instance = model, fn, instance
        self.layers = model.attr_layers(relatives) if relatives else {}
        self.relatives = relatives
        self.env: dict[str, Feature | None] = {}
        self.hits: list[Hit] = []

    def report(self, node: cst.CSTNode, message: str) -> None:
        self.hits.append(Hit(node, message, self.fn.cls))

    # statements

    def block(self, body: cst.BaseSuite | cst.CSTNode) -> None:
        for stmt in getattr(body, "body", ()):
            self.statement(stmt)

    def statement(self, stmt: cst.CSTNode) -> None:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self.small(small)
        elif isinstance(stmt, cst.If):
            self.expr(stmt.test)
            before = dict(self.env)
            self.block(stmt.body)
            self.env = dict(before)
            if isinstance(stmt.orelse, cst.If):
                self.statement(stmt.orelse)
            elif stmt.orelse is not None:
                self.block(stmt.orelse.body)
            self.env = before
            self.forget(stmt)
        elif isinstance(stmt, (cst.For, cst.While)):
            self.expr(stmt.iter if isinstance(stmt, cst.For) else stmt.test)
            self.forget(stmt)
            self.block(stmt.body)
            self.forget(stmt)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                self.expr(item.item)
            self.forget(stmt)
            self.block(stmt.body)
        elif isinstance(stmt, cst.Try):
            before = dict(self.env)
            self.block(stmt.body)
            self.env = before
            self.forget(stmt)
        else:
            self.forget(stmt)

    def forget(self, stmt: cst.CSTNode) -> None:
        names = self.model.bound.get(stmt)
        if names is None:
            names = self.model.bound[stmt] = bound_in(stmt)
        for name in names:
            self.env[name] = None

    def small(self, small: cst.CSTNode) -> None:
        if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
            feature = self.expr(small.value)
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for target in targets:
                self.forget(target)
                if isinstance(target, cst.Name) and len(targets) == 1:
                    self.env[target.value] = feature
        elif isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name):
            value = self.expr(small.value)
            name = small.target.value
            if isinstance(small.operator, (cst.AddAssign, cst.SubtractAssign)):
                self.env[name] = self.combine(small, self.env.get(name), value, small.value, small.target)
            else:
                self.env[name] = None
        elif isinstance(small, (cst.Expr, cst.Return)) and small.value is not None:
            self.expr(small.value)
        else:
            self.forget(small)

    # expressions

    def expr(self, node: cst.CSTNode) -> Feature | None:
        if isinstance(node, cst.Name):
            return self.env.get(node.value)
        if isinstance(node, cst.Call):
            return self.call(node)
        if isinstance(node, cst.BinaryOperation):
            left, right = self.expr(node.left), self.expr(node.right)
            if isinstance(node.operator, (cst.Add, cst.Subtract)):
                return self.combine(node, left, right, node.right, node.left)
            if _is_number(node.right):
                return left
            return right if _is_number(node.left) else None
        if isinstance(node, cst.UnaryOperation):
            return self.expr(node.expression)
        if isinstance(node, _COMPREHENSIONS):
            return None
        if isinstance(node, cst.NamedExpr):
            self.expr(node.value)
            self.forget(node)
            return None
        for child in children(node):
            self.expr(child)
        return None

    def call(self, node: cst.Call) -> Feature | None:
        func = node.func
        features = [self.expr(a.value) for a in node.args]
        attr = self_attr(func, self.instance)
        if attr is not None:
            if attr in self.layers and len(node.args) == 1 and not node.args[0].keyword and not node.args[0].star:
                layer, _ = self.layers[attr]
                out, mismatch = feed(layer, features[0], lambda attr=attr, layer=layer: f"self.{attr} ({layer.label})")
                if mismatch:
                    self.report_layer(node, attr, layer, mismatch)
                return out
            return None
        info = self.model.call_info(node)
        q = self.model.facts.qualname(func, info.scope if info else None)
        positional = node.args and not node.args[0].keyword and not node.args[0].star
        if q == LINEAR:
            return self.linear(node, features)
        if q in ADDS and len(node.args) == 2 and not any(a.keyword or a.star for a in node.args):
            return self.combine(node, features[0], features[1], node.args[1].value, node.args[0].value)
        if q in SHAPE_KEEPING_FUNCTIONS and positional:
            return features[0]
        if isinstance(func, cst.Attribute):
            base = self.expr(func.value)
            if q is None and func.attr.value in SHAPE_KEEPING_METHODS:
                return base
        return None

    def report_layer(self, node: cst.Call, attr: str, layer: Layer, mismatch: Mismatch) -> None:
        got = mismatch.got
        self.report(
            node,
            f"self.{attr} is {layer.label}, which takes {_amount(mismatch.expected, got)}, but its "
            f"input has {_amount(got.size, got)} from {got.source}: this call fails with a shape "
            "error when it runs; make the sizes agree",
        )

    def combine(self, node: cst.CSTNode, left: Feature | None, right: Feature | None, right_expr, left_expr) -> Feature | None:
        """A residual add (or subtract): the sizes must agree or one of them be 1."""
        if left is not None and right is not None:
            if left.axis != right.axis:
                return None
            if left.size == right.size:
                return left
            if 1 in (left.size, right.size):
                return None
            wide, narrow = (left, right) if left.size > right.size else (right, left)
            fix = "a 1x1 convolution" if left.axis == CHANNEL else "a Linear"
            self.report(
                node,
                f"this adds a {left.size}-{_singular(left)} tensor (from {left.source}) and a "
                f"{right.size}-{_singular(right)} tensor (from {right.source}): the shapes cannot "
                f"broadcast, so it fails when it runs; project the {narrow.size}-{_singular(narrow)} "
                f"side to {wide.size} ({fix}) or make the widths agree",
            )
            return None
        if left is not None and _is_number(right_expr):
            return left
        if right is not None and _is_number(left_expr):
            return right
        return None

    # F.linear(input, weight, bias)

    def linear(self, node: cst.Call, features: list[Feature | None]) -> Feature | None:
        x, _ = find_arg(node, "input", 0)
        w, maybe_w = find_arg(node, "weight", 1)
        b, maybe_b = find_arg(node, "bias", 2)
        if w is None or maybe_w or maybe_b:
            return None
        weight = self.tensor_dims(w.value)
        if not weight or len(weight) != 2:
            return None
        out_dim, in_dim = weight
        w_text = _code(w.value)
        transposed = (
            f"F.linear wants the weight as (out_features, in_features), so {w_text} looks transposed; "
            f"build it as ({_show(in_dim)}, {_show(out_dim)}) or pass {w_text}.t()"
        )
        bias = self.tensor_dims(b.value) if b is not None else None
        if bias is not None and len(bias) == 1 and bias[0] is not None and bias[0] != out_dim:
            b_text, size = _code(b.value), bias[0]
            if size == in_dim and out_dim is not None:
                self.report(node, f"{w_text} is ({_show(out_dim)}, {_show(in_dim)}) but the bias {b_text} has {_show(size)} elements: {transposed}")
                return None
            if isinstance(size, int) and isinstance(out_dim, int):
                self.report(
                    node,
                    f"the bias {b_text} has {size} elements but {w_text} has {out_dim} output rows: "
                    "F.linear fails with a shape error when it runs; make the sizes agree",
                )
                return None
        feature = features[0] if x is not None and x.value is node.args[0].value else None
        if feature is not None and feature.axis == LAST and isinstance(in_dim, int) and feature.size != in_dim:
            if feature.size == out_dim:
                self.report(node, f"the input has {feature.size} features (from {feature.source}) and {w_text} is ({out_dim}, {in_dim}): {transposed}")
            else:
                self.report(
                    node,
                    f"the input has {feature.size} features (from {feature.source}) but {w_text} takes "
                    f"{in_dim}: F.linear fails with a shape error when it runs; make the sizes agree",
                )
            return None
        return Feature(out_dim, LAST, f"F.linear with {w_text}") if isinstance(out_dim, int) else None

    def tensor_dims(self, expr: cst.BaseExpression) -> tuple[Dim, ...] | None:
        """The shape of a weight or bias: an attribute assigned once, transposed or not."""
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("T", "mT"):
            inner = self.tensor_dims(expr.value)
            return inner[::-1] if inner and len(inner) == 2 else None
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "t" and not expr.args:
            inner = self.tensor_dims(expr.func.value)
            return inner[::-1] if inner and len(inner) == 2 else None
        attr = self_attr(expr, self.instance)
        if attr is None:
            return self.model.dims(expr, self.fn)
        assigns = [a for cls in self.relatives for a in cls.attr_assigns if a.name == attr]
        if len(assigns) != 1 or not isinstance(assigns[0].node, (cst.Assign, cst.AnnAssign)):
            return None
        return self.model.dims(assigns[0].value, assigns[0].method)


def _is_number(node: cst.CSTNode | None) -> bool:
    if isinstance(node, cst.UnaryOperation):
        node = node.expression
    return isinstance(node, (cst.Integer, cst.Float))


def _singular(feature: Feature) -> str:
    return feature.unit[:-1]


def _show(dim: Dim) -> str:
    return str(dim).split(":", 1)[-1] if dim is not None else "?"


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)
