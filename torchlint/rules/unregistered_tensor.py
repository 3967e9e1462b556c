"""TL101 unregistered-tensor: a plain tensor attribute of an nn.Module, invisible to the module.

Also holds what TL102 shares with this rule: which methods run at construction time, the
classes of the file that share an instance with a class, and every use of ``self.<attr>``; and
what the fixes of this family share: rendering a changed node in place, spelling ``torch.nn``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from torchlint.edits import render, torch_nn
from torchlint.facts import (
    AttrAssign,
    ClassInfo,
    ModuleFacts,
    find_arg,
    self_attr,
    walk,
)
from torchlint.rules import Fix, Hit, NodeEdit, Rule

_TYPED_TENSORS = {
    f"{kind}Tensor"
    for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
}
FACTORIES = {
    f"torch.{name}"
    for name in (
        "randn", "rand", "randint", "randperm", "normal", "zeros", "ones", "empty", "full", "eye",
        "arange", "range", "linspace", "logspace", "tensor", "as_tensor", "Tensor", "from_numpy",
        "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
        "randint_like", "empty_strided", "tril_indices", "triu_indices", "hann_window",
        "hamming_window", "blackman_window", "bartlett_window", "kaiser_window", *_TYPED_TENSORS,
    )
}
# torch functions whose first argument is a tensor and whose result is a new tensor like it
_TENSOR_FUNCTIONS = {
    f"torch.{name}"
    for name in (
        "tril", "triu", "exp", "log", "sin", "cos", "sqrt", "abs", "sigmoid", "tanh", "flip",
        "diag", "t", "transpose", "unsqueeze", "squeeze", "reshape", "outer", "cumsum", "cumprod",
        "clamp", "pow", "reciprocal", "round", "floor", "ceil", "rsqrt", "log2", "log10", "exp2",
        "repeat_interleave",
    )
}
# tensor methods that return a tensor on the same device (the chain still holds the factory)
SAME_DEVICE_METHODS = {
    "view", "reshape", "unsqueeze", "squeeze", "expand", "expand_as", "repeat", "permute",
    "transpose", "t", "T", "mT", "flatten", "contiguous", "float", "double", "half", "bfloat16",
    "long", "int", "bool", "byte", "short", "char", "detach", "clone", "requires_grad_", "uniform_",
    "normal_", "fill_", "zero_", "fmod", "exp", "log", "sqrt", "sin", "cos", "pow", "abs", "neg",
    "sigmoid", "tanh", "softmax", "log_softmax", "cumsum", "cumprod", "sum", "mean", "prod",
    "flip", "roll", "tril", "triu", "tril_", "triu_", "masked_fill", "masked_fill_", "clamp",
    "clamp_", "clamp_min", "clamp_max", "narrow", "chunk", "split", "type", "to", "repeat_interleave",
    "exponential_", "bernoulli_", "random_", "geometric_", "log_normal_", "cauchy_", "mul", "add",
    "div", "sub", "mul_", "add_", "div_", "sub_", "unflatten", "view_as", "reshape_as", "movedim",
    "outer", "reciprocal", "rsqrt", "round", "floor", "ceil", "sign", "square", "diag", "max", "min",
}
_VIEWS = {"data", "T", "mT", "H", "real", "imag"}
_MOVES = {"to", "type_as", "cuda", "cpu"}
# reading these does not mix the tensor with data on another device
_METADATA = {
    "device", "dtype", "shape", "size", "dim", "ndim", "ndimension", "numel", "nelement",
    "requires_grad", "is_cuda", "tolist", "item", "numpy", "is_floating_point", "data_ptr",
    "element_size", "grad", "is_leaf", "storage", "names", "layout", "nbytes",
}
_INPLACE = {
    "copy_", "fill_", "zero_", "add_", "sub_", "mul_", "div_", "index_add_", "index_copy_",
    "index_fill_", "scatter_", "scatter_add_", "masked_fill_", "masked_scatter_", "clamp_",
    "lerp_", "addcmul_", "addcdiv_", "set_", "resize_", "put_", "uniform_", "normal_",
}
# ``x.type_as(self.t)``: only the type (and device) of the argument is read
_TAKES_TYPE_FROM = {"type_as", "to", "expand_as", "view_as", "reshape_as", "new_tensor", "new_zeros", "new_ones"}
# Python-side consumers: iterate, count or print the tensor on the host
_HOST_BUILTINS = {
    "len", "enumerate", "zip", "list", "tuple", "int", "float", "bool", "range", "sorted",
    "reversed", "sum", "any", "all", "str", "repr", "print", "isinstance", "set", "iter",
}
_INDEX_FUNCTIONS = {"index_select", "take", "take_along_dim", "gather", "index_add", "index_copy"}
_WEIGHT_FUNCTIONS = {
    "torch.matmul", "torch.mm", "torch.bmm", "torch.einsum", "torch.nn.functional.linear",
    "torch.nn.functional.bilinear", "torch.nn.functional.conv1d", "torch.nn.functional.conv2d",
    "torch.nn.functional.conv3d", "torch.nn.functional.conv_transpose1d",
    "torch.nn.functional.conv_transpose2d", "torch.nn.functional.conv_transpose3d",
    "torch.nn.functional.embedding", "torch.addmm", "torch.baddbmm",
}
TENSOR_REGISTRARS = frozenset({"register_buffer", "register_parameter"})
MOVING_OVERRIDES = {"_apply", "to", "cuda", "cpu", "type"}
_DTYPE_NAMES = {
    "float", "float16", "float32", "float64", "double", "half", "bfloat16", "long", "int", "int8",
    "int16", "int32", "int64", "uint8", "bool", "short", "complex64", "complex128", "cfloat",
}


# --- what runs at construction time, and which classes share the instance ----------------------


def init_time_methods(cls: ClassInfo) -> set[str]:
    """``__init__`` and every method it reaches through ``self.method()`` calls."""
    return _closure(cls, {"__init__"})


def called_at_runtime(cls: ClassInfo, init_methods: set[str]) -> set[str]:
    """Construction-time methods that other methods call again (``self.extend_pe(x)`` in forward)."""
    out = set()
    for call in cls.self_calls:
        fn, func = call.function, call.node.func
        if fn and fn.method and fn.method.name not in init_methods and isinstance(func, cst.Attribute):
            out.add(func.attr.value)
    return out


def data_loading_methods(cls: ClassInfo) -> set[str]:
    """Methods the module hands to a DataLoader (``collate_fn=self._sample``) and the methods
    they call: they run on the host over CPU batches, not on the module's device."""
    names: set[str] = set()
    for fn in cls.methods.values():
        for call in fn.calls:
            for arg in call.node.args:
                name = self_attr(arg.value, fn.instance)
                if arg.keyword and arg.keyword.value in ("collate_fn", "worker_init_fn") and name in cls.methods:
                    names.add(name)
    return _closure(cls, names) if names else names


def _closure(cls: ClassInfo, names: set[str]) -> set[str]:
    """``names`` and every method of the class they reach through ``self.method()`` calls."""
    names = set(names)
    changed = True
    while changed:
        changed = False
        for call in cls.self_calls:
            fn, func = call.function, call.node.func
            if fn and fn.method and fn.method.name in names and isinstance(func, cst.Attribute):
                if func.attr.value in cls.methods and func.attr.value not in names:
                    names.add(func.attr.value)
                    changed = True
    return names


def overrides_moving(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether the class (or a local relative) moves its own state: ``_apply``/``to``/``cuda``."""
    return any(name in c.methods for c in facts.family(cls) for name in MOVING_OVERRIDES)


def is_network(facts: ModuleFacts, relatives: list[ClassInfo]) -> bool:
    """Whether the classes compute something: a ``forward``, or a layer or Parameter attribute.
    An nn.Module with neither is a state holder (an environment, a simulator, a cache)."""
    for c in relatives:
        if "forward" in c.methods or "__call__" in c.methods:
            return True
        for a in c.attr_assigns:
            if isinstance(a.value, cst.Call):
                q = facts.qualname(a.value.func, a.method.scope) or ""
                if q.startswith("torch.nn.") or facts.is_module_class_expr(a.value.func, a.method.scope):
                    return True
    return False


def registered_names(
    facts: ModuleFacts, classes: list[ClassInfo], registrars: frozenset[str]
) -> tuple[set[str], bool]:
    """Names passed as string literals to the given ``self.<registrar>(name, value)`` methods, and
    whether any such call (or a ``setattr(self, ...)``) computes its name: a registering loop."""
    names: set[str] = set()
    dynamic = False
    for c in classes:
        for call in c.self_calls:
            func = call.node.func
            if not isinstance(func, cst.Attribute) or func.attr.value not in registrars or not call.node.args:
                continue
            key = call.node.args[0].value
            if isinstance(key, cst.SimpleString):
                names.add(key.evaluated_value)
            else:
                dynamic = True
    for call in facts.calls:
        fn = call.function
        node = call.node
        if (
            fn is not None
            and fn.cls in classes
            and isinstance(node.func, cst.Name)
            and node.func.value == "setattr"
            and len(node.args) >= 3
            and isinstance(node.args[0].value, cst.Name)
            and node.args[0].value.value == fn.instance
            and not isinstance(node.args[1].value, cst.SimpleString)
        ):
            dynamic = True
    return names, dynamic


# --- every use of self.<attr> -------------------------------------------------------------------


@dataclass(frozen=True)
class AttrUse:
    """One occurrence of ``self.<name>`` with its ancestors (innermost last)."""

    name: str
    node: cst.Attribute
    ancestors: tuple[cst.CSTNode, ...]
    method: str
    store: bool  # the occurrence is an assignment target (``self.x = ...``, ``del self.x``)
    local: bool = False  # a read of a local name (``name`` is the variable), not ``self.<name>``


class _UseCollector:
    def __init__(self, self_name: str, method: str, with_locals: bool) -> None:
        self.self_name = self_name
        self.method = method
        self.with_locals = with_locals
        self.stack: list[cst.CSTNode] = []
        self.uses: list[AttrUse] = []
        self.targets: set[int] = set()

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.ClassDef):
            return False
        if isinstance(node, cst.AssignTarget):
            self.targets.add(id(node.target))
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign)):
            self.targets.add(id(node.target))
        elif isinstance(node, cst.Del):
            self.targets.add(id(node.target))
        if isinstance(node, cst.Attribute):
            name = self_attr(node, self.self_name)
            if name:
                self.uses.append(AttrUse(name, node, tuple(self.stack), self.method, id(node) in self.targets))
        elif self.with_locals and isinstance(node, cst.Name) and id(node) not in self.targets:
            self.uses.append(AttrUse(node.value, node, tuple(self.stack), self.method, False, True))
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()


def attribute_uses(classes: list[ClassInfo], with_locals: bool = False) -> list[AttrUse]:
    """Every ``self.<attr>`` in the methods of the given classes (and every local name read)."""
    uses: list[AttrUse] = []
    for c in classes:
        for stmt in c.node.body.body:
            if not isinstance(stmt, cst.FunctionDef):
                continue
            params = stmt.params.posonly_params or stmt.params.params
            decorators = {d.decorator.value for d in stmt.decorators if isinstance(d.decorator, cst.Name)}
            if not params or decorators & {"staticmethod", "classmethod"}:
                continue
            collector = _UseCollector(params[0].name.value, stmt.name.value, with_locals)
            walk(stmt.body, collector.on_visit, collector.on_leave)
            uses.extend(collector.uses)
    return uses


# --- the factory expression ---------------------------------------------------------------------


@dataclass
class Factory:
    """A tensor built by a torch factory: the call, and what the chain around it says."""

    call: cst.Call
    qualname: str
    requires_grad: bool
    frozen: bool = False  # ``requires_grad=False`` / ``.requires_grad_(False)`` written out


def tensor_factory(facts: ModuleFacts, a: AttrAssign) -> Factory | None:
    """The torch factory call an assigned value is built from, through chains and local names."""
    return _factory_in(facts, a, a.value)


def _chain_base(expr: cst.BaseExpression) -> str | None:
    while True:
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            expr = expr.func.value
        elif isinstance(expr, (cst.Subscript, cst.Attribute)):
            expr = expr.value
        elif isinstance(expr, cst.Name):
            return expr.value
        else:
            return None


def _factory_in(
    facts: ModuleFacts, a: AttrAssign, expr: cst.BaseExpression | None, depth: int = 0
) -> Factory | None:
    requires_grad = frozen = False
    scope = a.method.scope
    while expr is not None:
        if isinstance(expr, cst.Name) and depth < 2:
            for _, source in a.method.assignments.get(expr.value, []):
                if source is not None and _chain_base(source) != expr.value:
                    return _factory_in(facts, a, source, depth + 1)
            return None
        if isinstance(expr, cst.Call):
            q = facts.qualname(expr.func, scope)
            if q in FACTORIES:
                rg, _ = find_arg(expr, "requires_grad")
                frozen = frozen or bool(rg and _is_false(rg.value))
                return Factory(expr, q, requires_grad or bool(rg and _is_true(rg.value)), frozen)
            if q in _TENSOR_FUNCTIONS or (q and q.startswith("torch.nn.init.") and q.endswith("_")):
                expr = expr.args[0].value if expr.args else None
                continue
            if q is None and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in SAME_DEVICE_METHODS:
                if expr.func.attr.value == "requires_grad_":
                    requires_grad = requires_grad or not expr.args or _is_true(expr.args[0].value)
                    frozen = frozen or bool(expr.args) and _is_false(expr.args[0].value)
                expr = expr.func.value
                continue
            return None
        if isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.BinaryOperation):
            left = _factory_in(facts, a, expr.left, depth)
            if left:
                return left
            expr = expr.right
        elif isinstance(expr, cst.UnaryOperation):
            expr = expr.expression
        else:
            return None
    return None


def _is_true(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "True"


def _is_false(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "False"


def _is_scalar(facts: ModuleFacts, f: Factory, a: AttrAssign) -> bool:
    """``torch.tensor(0.5)``, ``torch.tensor(float(x))``, ``torch.tensor(dim)``: a 0-dim tensor."""
    if f.qualname not in ("torch.tensor", "torch.as_tensor") or not f.call.args:
        return False
    return _scalar_like(facts, f.call.args[0].value, a)


def _scalar_like(facts: ModuleFacts, expr: cst.BaseExpression, a: AttrAssign) -> bool:
    """A number: a literal, ``float(...)``/``int(...)``/``math.*(...)``, arithmetic on numbers, or
    a local name that also sizes a layer (``nn.Linear(d, attn_dim)``) or defaults to a number."""
    if isinstance(expr, cst.UnaryOperation):
        return _scalar_like(facts, expr.expression, a)
    if isinstance(expr, cst.BinaryOperation):
        return _scalar_like(facts, expr.left, a) and _scalar_like(facts, expr.right, a)
    if isinstance(expr, (cst.Integer, cst.Float)):
        return True
    if isinstance(expr, cst.Call):
        if isinstance(expr.func, cst.Name) and expr.func.value in ("float", "int", "bool"):
            return True
        q = facts.qualname(expr.func, a.method.scope) or ""
        return q.startswith("math.")
    if isinstance(expr, cst.Name):
        return expr.value in ("True", "False") or _names_a_number(facts, expr.value, a)
    return False


def _names_a_number(facts: ModuleFacts, name: str, a: AttrAssign) -> bool:
    fn = a.method
    node = fn.node
    if isinstance(node, cst.FunctionDef):
        for p in (*node.params.params, *node.params.kwonly_params):
            if p.name.value == name and isinstance(p.default, (cst.Integer, cst.Float)):
                return True
            if p.name.value == name and p.annotation and isinstance(p.annotation.annotation, cst.Name):
                if p.annotation.annotation.value in ("int", "float"):
                    return True
    for call in fn.calls:
        if facts.is_module_class_expr(call.node.func, fn.scope) and any(
            isinstance(arg.value, cst.Name) and arg.value.value == name for arg in call.node.args
        ):
            return True
    return False


# --- what each use does with the tensor ---------------------------------------------------------

MOVED, META, INDEX, ARITH, WEIGHT, MUTATED, USED = "moved", "meta", "index", "arith", "weight", "mutated", "used"
LAYER_WEIGHT = "layer-weight"  # the weight or bias of F.linear / F.conv2d / ...: a parameter
UNKNOWN, ALIAS = "unknown", "alias"


def use_kinds(facts: ModuleFacts, use: AttrUse, uses: list[AttrUse], depth: int = 0) -> set[str]:
    """The kinds of one read, following ``mask = self.mask`` into the reads of ``mask``."""
    kind = use_kind(facts, use)
    if kind != ALIAS:
        return {kind}
    if depth > 2:
        return {USED}
    statement = next(n for n in reversed(use.ancestors) if isinstance(n, cst.Assign))
    local = statement.targets[0].target.value
    reads = [u for u in uses if u.local and u.name == local and u.method == use.method]
    out: set[str] = set()
    for u in reads:
        out |= use_kinds(facts, u, uses, depth + 1)
    return out


def use_kind(facts: ModuleFacts, use: AttrUse) -> str:
    """What one read of ``self.x`` does: moved to the data's device first, only read for
    metadata, used as an index, arithmetic, a weight, mutated in place, copied to a local name
    (alias), passed to a function of the project (unknown), or used as it is."""
    anc = use.ancestors
    cur: cst.CSTNode = use.node
    i = len(anc) - 1
    while i >= 0:
        parent = anc[i]
        grand = anc[i - 1] if i >= 1 else None
        if isinstance(parent, cst.Attribute) and parent.value is cur:
            method = parent.attr.value
            called = isinstance(grand, cst.Call) and grand.func is parent
            if method in _METADATA:
                return META
            if not called and method in _VIEWS:
                cur, i = parent, i - 1
                continue
            if called and method in _MOVES:
                if method == "to" and _only_dtype(facts, grand):
                    cur, i = grand, i - 2
                    continue
                return MOVED
            if called and method in _INPLACE:
                return MUTATED
            if called and method in _INDEX_FUNCTIONS:
                return USED
            if called and method in SAME_DEVICE_METHODS:
                cur, i = grand, i - 2
                continue
            return USED
        if isinstance(parent, cst.Subscript) and parent.value is cur:
            if isinstance(grand, (cst.AssignTarget, cst.AugAssign)) and grand.target is parent:
                return MUTATED
            cur, i = parent, i - 1
            continue
        if isinstance(parent, (cst.Index, cst.Slice)):
            return INDEX
        if isinstance(parent, cst.Arg):
            call = grand
            if isinstance(call, cst.Call):
                if isinstance(call.func, cst.Attribute) and call.func.attr.value in _TAKES_TYPE_FROM:
                    return META
                if isinstance(call.func, cst.Name) and call.func.value in _HOST_BUILTINS:
                    return META
                if any(a.keyword is not None and a.keyword.value == "device" for a in call.args):
                    return MOVED
                func = call.func
                name = func.attr.value if isinstance(func, cst.Attribute) else None
                if name in _INDEX_FUNCTIONS and call.args and call.args[0] is not parent:
                    return INDEX
                q = facts.qualname(func)
                if q in _WEIGHT_FUNCTIONS:
                    return LAYER_WEIGHT if q.startswith("torch.nn.functional.") else WEIGHT
                if not (q or "").startswith("torch.") and not (isinstance(func, cst.Attribute) and q is None
                                                              and not _on_instance(func)):
                    return UNKNOWN
            return USED
        if isinstance(parent, cst.BinaryOperation):
            return WEIGHT if isinstance(parent.operator, cst.MatrixMultiply) else ARITH
        if isinstance(parent, cst.AugAssign) and parent.target is cur:
            return MUTATED
        if isinstance(parent, cst.ComparisonTarget):
            parent, i = anc[i - 1], i - 1
        if isinstance(parent, cst.Comparison):
            operands = [parent.left, *(t.comparator for t in parent.comparisons)]
            if all(o is cur or _is_literal(o) for o in operands):
                cur, i = parent, i - 1
                continue
            return ARITH
        if isinstance(parent, (cst.If, cst.While, cst.IfExp)) and parent.test is cur:
            return META
        if isinstance(parent, (cst.For, cst.CompFor)) and parent.iter is cur:
            return META
        if (
            isinstance(parent, cst.Assign)
            and parent.value is cur
            and len(parent.targets) == 1
            and isinstance(parent.targets[0].target, cst.Name)
        ):
            return ALIAS
        return USED
    return USED


def _on_instance(func: cst.Attribute) -> bool:
    """``self.helper(...)``: a method of the class, whose body is not followed."""
    return isinstance(func.value, cst.Name) and func.value.value in ("self", "cls")


def _is_literal(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.UnaryOperation):
        expr = expr.expression
    return isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)) or (
        isinstance(expr, cst.Name) and expr.value in ("True", "False", "None")
    )


def _only_dtype(facts: ModuleFacts, call: cst.Call) -> bool:
    """``.to(torch.float32)`` / ``.to(dtype=...)``: converts, does not move."""
    for arg in call.args:
        if arg.keyword is not None:
            if arg.keyword.value != "dtype":
                return False
            continue
        q = facts.qualname(arg.value)
        if not (q and q.startswith("torch.") and q.split(".")[-1] in _DTYPE_NAMES):
            return False
    return bool(call.args)


# --- fixes: a changed node rendered in place, torch.nn spelled as the file can ---------------


# --- the rule -----------------------------------------------------------------------------------


class UnregisteredTensor(Rule):
    code = "TL101"
    name = "unregistered-tensor"
    summary = "self.x = torch.<factory>(...) in an nn.Module: not a parameter or buffer"

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.module_classes():
            candidates = _candidates(facts, cls)
            if not candidates or overrides_moving(facts, cls):
                continue
            relatives = facts.family(cls)
            if not is_network(facts, relatives):
                continue
            registered, dynamic = registered_names(facts, relatives, TENSOR_REGISTRARS)
            if dynamic:
                continue
            uses = attribute_uses(relatives, with_locals=True)
            init_methods = init_time_methods(cls)
            reported: set[str] = set()
            for a, factory in candidates:
                if a.name in reported or a.name in registered:
                    continue
                judged = _judge(facts, relatives, a, factory, uses, init_methods)
                if judged:
                    reported.add(a.name)
                    message, parameter = judged
                    yield Hit(a.node, message, cls, _fix(facts, relatives, a, parameter))


def _candidates(facts: ModuleFacts, cls: ClassInfo) -> list[tuple[AttrAssign, Factory]]:
    """``self.x = <torch factory chain>`` statements in construction-time methods."""
    init_methods = init_time_methods(cls)
    out = []
    for a in cls.attr_assigns:
        if isinstance(a.node, (cst.Assign, cst.AnnAssign)) and a.method.name in init_methods:
            factory = tensor_factory(facts, a)
            if factory:
                out.append((a, factory))
    return out


def _fix(facts: ModuleFacts, relatives: list[ClassInfo], a: AttrAssign, parameter: bool) -> Fix | None:
    """``self.x = nn.Parameter(...)``, or the statement made ``self.register_buffer("x", ...)``:
    only for a plain one-target assignment that nothing else in the classes assigns (registering
    a name that already exists raises)."""
    node, instance = a.node, a.method.instance
    one_target = isinstance(node, cst.Assign) and len(node.targets) == 1 or isinstance(node, cst.AnnAssign)
    if not one_target or a.value is None or not instance:
        return None
    if any(other is not a for c in relatives for other in c.assigns(a.name)):
        return None
    value = render(facts.module, a.value)
    if parameter:
        spelling = torch_nn(facts, a.method.scope)
        if spelling is None:
            return None
        nn, imports = spelling
        edit = NodeEdit(a.value, f"{nn}.Parameter({value})")
        return Fix(f"Wrap self.{a.name} in {nn}.Parameter", (edit,), safe=False, imports=imports)
    edit = NodeEdit(node, f'{instance}.register_buffer("{a.name}", {value})')
    return Fix(f"Register self.{a.name} as a buffer", (edit,), safe=False)


def _judge(
    facts: ModuleFacts,
    relatives: list[ClassInfo],
    a: AttrAssign,
    factory: Factory,
    uses: list[AttrUse],
    init_methods: set[str],
) -> tuple[str, bool] | None:
    """The message for a candidate and whether the tensor should be a Parameter (else a
    buffer), or None when nothing would break."""
    mine = [u for u in uses if u.name == a.name and not u.local]
    where = next((u for u in mine if u.store and any(x is a.node for x in u.ancestors)), None)
    conditions = branch_conditions(facts, where.ancestors) if where else set()
    if _rebound(facts, relatives, a, mine, conditions, init_methods, factory.frozen):
        return None
    runtime = [
        u
        for u in mine
        if u.method not in init_methods
        and not u.store
        and not contradicts(conditions, branch_conditions(facts, u.ancestors))
    ]
    if not runtime or all(u.method in data_loading_methods(relatives[0]) for u in runtime):
        return None
    init_uses = [u for u in mine if u.method in init_methods and not u.store]
    requires_grad = factory.requires_grad or any(_sets_requires_grad(u) for u in init_uses)
    kinds = set().union(*(use_kinds(facts, u, uses) for u in runtime))
    attr = f"self.{a.name}"
    if requires_grad or LAYER_WEIGHT in kinds or (WEIGHT in kinds and factory.qualname.split(".")[-1] in _RANDOM):
        return (
            f"{attr} is a plain tensor, not an nn.Parameter: the optimizer never updates it "
            f"(it is not in parameters()), and it is not saved in state_dict(); wrap it in nn.Parameter"
        ), True
    if kinds <= {MOVED, META, INDEX, UNKNOWN}:
        return None
    if _is_scalar(facts, factory, a) and MUTATED not in kinds:
        return None
    return (
        f"{attr} is a plain tensor attribute: not saved in state_dict() and left behind by "
        f".to(device)/.cuda() (a device-mismatch error on GPU); use "
        f"self.register_buffer({a.name!r}, ...)"
    ), False


_RANDOM = {"randn", "rand", "empty", "normal", "Tensor", "FloatTensor", "randn_like", "rand_like", "empty_like"}


def _sets_requires_grad(use: AttrUse) -> bool:
    """``self.x.requires_grad = True`` or ``self.x.requires_grad_()`` at construction time."""
    anc = use.ancestors
    if not anc or not isinstance(anc[-1], cst.Attribute) or anc[-1].value is not use.node:
        return False
    attr = anc[-1].attr.value
    if attr == "requires_grad_":
        return True
    return attr == "requires_grad" and len(anc) >= 2 and isinstance(anc[-2], cst.AssignTarget)


def branch_conditions(facts: ModuleFacts, ancestors: tuple[cst.CSTNode, ...]) -> set[tuple[str, bool]]:
    """The ``if`` tests a node sits under, as (test source without ``self.``, taken branch)."""
    out = set()
    for k, node in enumerate(ancestors[:-1]):
        if isinstance(node, cst.If):
            test = facts.module.code_for_node(node.test).replace("self.", "")
            out.add((test, ancestors[k + 1] is node.body))
    return out


def contradicts(a: set[tuple[str, bool]], b: set[tuple[str, bool]]) -> bool:
    """Two nodes in opposite branches of the same test never both run."""
    return any((test, not taken) in b for test, taken in a)


def _rebound(
    facts: ModuleFacts,
    relatives: list[ClassInfo],
    a: AttrAssign,
    mine: list[AttrUse],
    conditions: set[tuple[str, bool]],
    init_methods: set[str],
    frozen: bool,
) -> bool:
    """Another assignment registers the tensor (``self.x = nn.Parameter(self.x)``), a relative
    class sets it, or a method outside construction rebuilds it (a cache the class keeps on the
    data's device itself; also when the assigning method is called again at runtime). An ``nn.Parameter`` in the opposite branch of an ``if`` counts only
    when the plain tensor is marked ``requires_grad=False``: a "disabled" placeholder whose flag
    the code checks."""
    if a.method.name in called_at_runtime(relatives[0], init_methods):
        return True
    for c in relatives:
        for other in c.assigns(a.name):
            if other is a:
                continue
            if other.method.name not in init_methods or c is not relatives[0]:
                return True
            value = other.value
            if not isinstance(value, cst.Call):
                continue
            q = facts.qualname(value.func, other.method.scope) or ""
            if not (q.startswith("torch.nn.") or facts.is_module_class_expr(value.func, other.method.scope)):
                continue
            where = next((u for u in mine if u.store and any(x is other.node for x in u.ancestors)), None)
            if where is None or frozen or not contradicts(conditions, branch_conditions(facts, where.ancestors)):
                return True
    return False
