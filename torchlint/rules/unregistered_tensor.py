"""TL101 unregistered-tensor: a plain tensor attribute of an nn.Module, invisible to the module.

Also holds what TL102 shares with this rule: which methods run at construction time, the
classes of the file that share an instance with a class, and every use of ``self.<attr>``; and
what the fixes of this family share: rendering a changed node in place, spelling ``torch.nn``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import libcst as cst

from torchlint.edits import render, torch_nn
from torchlint.facts import (
    AttrAssign,
    AttrUse,
    CALLED,
    ClassInfo,
    FunctionInfo,
    MOVING_OVERRIDES,
    ModuleFacts,
    Scope,
    find_arg,
    is_false,
    is_true,
    references_attr,
    self_attr,
    walk,
)
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.loops import method_name
from torchlint.screen import TreeInfo, ast_nodes, methods

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
        "repeat_interleave", "nn.functional.normalize",
    )
}
# torch functions that join a list of tensors into a new one on their device
_JOINS = {"torch.cat", "torch.concat", "torch.concatenate", "torch.stack", "torch.hstack", "torch.vstack"}
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
# the device an unregistered tensor reports is where it was made, not where the module is
_DEVICE_READS = {"device", "is_cuda", "get_device"}
# reading these does not mix the tensor with data on another device
_METADATA = {
    "dtype", "shape", "size", "dim", "ndim", "ndimension", "numel", "nelement",
    "requires_grad", "is_cuda", "tolist", "item", "numpy", "is_floating_point", "data_ptr",
    "element_size", "grad", "is_leaf", "storage", "names", "layout", "nbytes",
    "new_empty", "new_zeros", "new_ones", "new_full", "new_tensor",
}
_INPLACE = {
    "copy_", "fill_", "zero_", "add_", "sub_", "mul_", "div_", "index_add_", "index_copy_",
    "index_fill_", "scatter_", "scatter_add_", "masked_fill_", "masked_scatter_", "clamp_",
    "lerp_", "addcmul_", "addcdiv_", "set_", "resize_", "put_", "uniform_", "normal_",
}
# ``x.type_as(self.t)``: only the type (and device) of the argument is read
_TAKES_TYPE_FROM = {"type_as", "to"}  # ``x.to(self.t)``: the device of ``self.t`` is read
_TAKES_SHAPE_FROM = {"expand_as", "view_as", "reshape_as", "new_zeros", "new_ones"}
# Python-side consumers: iterate, count or print the tensor on the host
_HOST_BUILTINS = {
    "len", "enumerate", "zip", "list", "tuple", "int", "float", "bool", "range", "sorted",
    "reversed", "sum", "any", "all", "str", "repr", "print", "isinstance", "set", "iter",
}
# unlike ``x[idx]``, these need their index on the tensor's device
_INDEX_FUNCTIONS = {"index_select", "take", "take_along_dim", "gather", "index_add", "index_copy"}
_WEIGHT_FUNCTIONS = {
    "torch.matmul", "torch.mm", "torch.bmm", "torch.einsum", "torch.nn.functional.linear",
    "torch.nn.functional.bilinear", "torch.nn.functional.conv1d", "torch.nn.functional.conv2d",
    "torch.nn.functional.conv3d", "torch.nn.functional.conv_transpose1d",
    "torch.nn.functional.conv_transpose2d", "torch.nn.functional.conv_transpose3d",
    "torch.nn.functional.embedding", "torch.addmm", "torch.baddbmm",
}
# torch functions whose result is their first argument, or a copy of it on the same device
_PASS_THROUGH = {"torch.as_tensor", "torch.clone", "torch.detach", "torch.flatten", "torch.squeeze", "torch.unsqueeze"}
# the tensor holds probabilities: the result is indices, which work on any device's tensors
_SAMPLERS = {"torch.multinomial"}
TENSOR_REGISTRARS = frozenset({"register_buffer", "register_parameter"})
_DTYPE_NAMES = {
    "float", "float16", "float32", "float64", "double", "half", "bfloat16", "long", "int", "int8",
    "int16", "int32", "int64", "uint8", "bool", "short", "complex64", "complex128", "cfloat",
}


# --- what runs at construction time, and which classes share the instance ----------------------


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
    return cls.reached(names) if names else names


def moves_own(facts: ModuleFacts, relatives: list[ClassInfo], name: str) -> bool:
    """Whether an override of ``_apply``/``to``/``cuda`` in the classes can move ``self.<name>``:
    any override but an ``_apply`` that only calls ``super()._apply(fn)`` and fixes up its
    registered buffers, without applying ``fn`` itself, assigning ``self.<name>`` or setting
    attributes under computed names."""
    for c in relatives:
        for method in MOVING_OVERRIDES & set(c.methods):
            fn = c.methods[method]
            if method != "_apply" or not isinstance(fn.node, cst.FunctionDef) or _applies_to(fn, name):
                return True
    return False


def _applies_to(fn: FunctionInfo, name: str) -> bool:
    params = fn.node.params.params
    applied = params[1].name.value if len(params) > 1 else None
    found = False

    def visit(node: cst.CSTNode) -> bool:
        nonlocal found
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Name) and func.value in (applied, "setattr", "vars"):
                found = True
        elif isinstance(node, cst.Attribute) and node.attr.value == "__dict__":
            found = True
        elif isinstance(node, (cst.Assign, cst.AugAssign)):
            targets = node.targets if isinstance(node, cst.Assign) else [node]
            found = found or any(self_attr(t.target, fn.instance) == name for t in targets)
        return not found

    walk(fn.node.body, visit)
    return found


_ENVIRONMENT_METHODS = {"reset", "step"}


def state_holder(facts: ModuleFacts, relatives: list[ClassInfo]) -> bool:
    """Whether the classes hold state for convenience, as an environment or simulator does: a
    gym-style ``reset``/``step`` and no ``forward``, no base other than ``nn.Module`` itself,
    no layer or Parameter attribute and no registered buffer."""
    if not any(name in c.methods for c in relatives for name in _ENVIRONMENT_METHODS):
        return False
    for c in relatives:
        if "forward" in c.methods or "__call__" in c.methods:
            return False
        for base in c.bases:
            if facts.local_class(base) is None and facts.qualname(base, c.scope) != "torch.nn.Module":
                return False
        for call in c.self_calls:
            func = call.node.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("register_buffer", "register_parameter", "add_module"):
                return False
        for a in c.attr_assigns:
            if isinstance(a.value, cst.Call):
                q = facts.qualname(a.value.func, a.method.scope) or ""
                if q.startswith("torch.nn.") or facts.is_module_class_expr(a.value.func, a.method.scope):
                    return False
    return True


def registered_names(
    facts: ModuleFacts, classes: list[ClassInfo], registrars: frozenset[str]
) -> tuple[set[str], bool]:
    """Names passed as string literals to the given ``self.<registrar>(name, value)`` methods, and
    whether any such call (or a ``setattr(self, ...)``) computes its name: a registering loop."""
    names, keys = registrations(facts, classes, registrars)
    return names, bool(keys)


def registrations(
    facts: ModuleFacts, classes: list[ClassInfo], registrars: frozenset[str], methods: set[str] | None = None
) -> tuple[set[str], list[tuple[cst.BaseExpression, FunctionInfo | None, cst.BaseExpression | None]]]:
    """The literal names of ``self.<registrar>(name, value)`` calls (only those in ``methods``
    when given), and the computed names of such calls and of ``setattr(self, ...)``: (name
    expression, its function and, for ``setattr``, the value set)."""
    names: set[str] = set()
    keys: list[tuple[cst.BaseExpression, FunctionInfo | None, cst.BaseExpression | None]] = []
    for c in classes:
        for call in c.self_calls:
            func = call.node.func
            if not isinstance(func, cst.Attribute) or func.attr.value not in registrars or not call.node.args:
                continue
            if methods is not None and (call.function is None or call.function.name not in methods):
                continue
            key = call.node.args[0].value
            if isinstance(key, cst.SimpleString):
                names.add(key.evaluated_value)
            else:
                keys.append((key, call.function, None))
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
            keys.append((node.args[1].value, fn, node.args[2].value))
    return names, keys


def _may_register(
    facts: ModuleFacts, fn: FunctionInfo | None, value: cst.BaseExpression | None, depth: int = 0
) -> bool:
    """Whether a computed-name registration can register a tensor: any ``register_buffer``; a
    ``setattr(self, name, value)`` only when the value is a Parameter or buffer, or is made from
    an attribute of the instance under a computed name (``getattr(self, name).to(device)``); a
    ``setattr`` of an optimizer, a layer or a bound method stores another object."""
    if value is None or fn is None:
        return True
    if isinstance(value, cst.Name):
        sources = [src for _, src in fn.assignments.get(value.value, []) if src is not None]
        return not sources or depth > 2 or any(_may_register(facts, fn, src, depth + 1) for src in sources)
    found = False

    def visit(node: cst.CSTNode) -> bool:
        nonlocal found
        if isinstance(node, cst.Call):
            q = facts.qualname(node.func, fn.scope) or ""
            if q.rsplit(".", 1)[-1] in ("Parameter", "Buffer"):
                found = True
            elif isinstance(node.func, cst.Name) and node.func.value == "getattr" and node.args:
                target = node.args[0].value
                found = found or (isinstance(target, cst.Name) and target.value == fn.instance)
        return not found

    walk(value, visit)
    return found


def may_name(key: cst.BaseExpression, name: str) -> bool:
    """Whether a computed attribute name can be ``name``: ``f"bias_{i}"`` and ``prefix + "_w"``
    only name attributes that fit their literal parts; any other expression may name anything."""
    return re.fullmatch(_name_pattern(key), name) is not None


def _name_pattern(key: cst.BaseExpression) -> str:
    if isinstance(key, cst.SimpleString):
        return re.escape(str(key.evaluated_value))
    if isinstance(key, cst.FormattedString):
        return "".join(
            re.escape(part.value) if isinstance(part, cst.FormattedStringText) else ".*" for part in key.parts
        )
    if isinstance(key, cst.BinaryOperation) and isinstance(key.operator, cst.Add):
        return _name_pattern(key.left) + _name_pattern(key.right)
    return ".*"


# --- the factory expression ---------------------------------------------------------------------


@dataclass
class Factory:
    """A tensor built by a torch factory: the call, and what the chain around it says."""

    call: cst.Call
    qualname: str
    requires_grad: bool
    frozen: bool = False  # ``requires_grad=False`` / ``.requires_grad_(False)`` written out
    random: bool = False  # drawn at random (randn, empty, ``.normal_()``, ``nn.init.trunc_normal_``)


# factories and in-place initialisers whose values are drawn at random (or left uninitialised)
_RANDOM = {
    "randn", "rand", "randint", "empty", "normal", "Tensor", "FloatTensor", "randn_like", "rand_like",
    "randint_like", "empty_like", "empty_strided",
}
_RANDOM_FILLS = {"normal_", "uniform_", "exponential_", "bernoulli_", "random_", "geometric_", "log_normal_", "cauchy_"}
_CONSTANT_INITS = {"constant_", "ones_", "zeros_", "eye_", "dirac_"}


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


def _draws(facts: ModuleFacts, a: AttrAssign, call: cst.Call, qualname: str) -> bool:
    """Whether a factory call draws random (or uninitialised) values: ``torch.randn``,
    ``torch.empty``; ``torch.Tensor(3, 4)`` given sizes, not ``torch.Tensor(weights)``."""
    leaf = qualname.rsplit(".", 1)[1]
    if leaf not in _RANDOM:
        return False
    if leaf != "Tensor" and leaf not in _TYPED_TENSORS:
        return True
    args = [arg for arg in call.args if arg.keyword is None]
    if any(arg.star == "*" for arg in args):
        return True  # ``torch.Tensor(*shape)``
    return len(args) > 1 or (len(args) == 1 and _scalar_like(facts, args[0].value, a))


def random_init(qualname: str | None, method: str | None) -> bool:
    """``torch.nn.init.trunc_normal_`` (not ``zeros_``/``constant_``), or a ``.normal_()`` fill."""
    if qualname and qualname.startswith("torch.nn.init.") and qualname.endswith("_"):
        return qualname.rsplit(".", 1)[1] not in _CONSTANT_INITS
    return method in _RANDOM_FILLS


def _factory_in(
    facts: ModuleFacts, a: AttrAssign, expr: cst.BaseExpression | None, depth: int = 0
) -> Factory | None:
    requires_grad = frozen = random = False
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
                frozen = frozen or bool(rg and is_false(rg.value))
                random = random or _draws(facts, a, expr, q)
                return Factory(expr, q, requires_grad or bool(rg and is_true(rg.value)), frozen, random)
            if q in _JOINS and expr.args and isinstance(expr.args[0].value, (cst.List, cst.Tuple)):
                for element in expr.args[0].value.elements:
                    found = _factory_in(facts, a, element.value, depth)
                    if found:
                        return found
                return None
            if q in _TENSOR_FUNCTIONS or (q and q.startswith("torch.nn.init.") and q.endswith("_")):
                random = random or random_init(q, None)
                expr = expr.args[0].value if expr.args else None
                continue
            if q is None and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in SAME_DEVICE_METHODS:
                method = expr.func.attr.value
                if method == "requires_grad_":
                    requires_grad = requires_grad or not expr.args or is_true(expr.args[0].value)
                    frozen = frozen or bool(expr.args) and is_false(expr.args[0].value)
                random = random or random_init(None, method)
                expr = expr.func.value
                continue
            return None
        if isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.BinaryOperation):
            found = _factory_in(facts, a, expr.left, depth) or _factory_in(facts, a, expr.right, depth)
            if found:
                found.requires_grad |= requires_grad
                found.frozen |= frozen
                found.random |= random
            return found
        elif isinstance(expr, cst.UnaryOperation):
            expr = expr.expression
        else:
            return None
    return None


def _is_scalar(facts: ModuleFacts, f: Factory, a: AttrAssign) -> bool:
    """``torch.tensor(0.5)``, ``torch.tensor(float(x))``, ``torch.tensor(dim)``: a 0-dim tensor."""
    if f.qualname not in ("torch.tensor", "torch.as_tensor") or not f.call.args:
        return False
    return _scalar_like(facts, f.call.args[0].value, a)


def _scalar_like(facts: ModuleFacts, expr: cst.BaseExpression, a: AttrAssign, depth: int = 0) -> bool:
    """A number: a literal, ``float(...)``/``int(...)``/``math.*(...)``, arithmetic on numbers, a
    floor division or remainder (``dim // heads``), a local name that also sizes a layer
    (``nn.Linear(d, attn_dim)``) or defaults to a number, or an attribute of the instance assigned
    a number in the class (``self.head_dim = self.dim // self.heads``)."""
    if isinstance(expr, cst.UnaryOperation):
        return _scalar_like(facts, expr.expression, a, depth)
    if isinstance(expr, cst.BinaryOperation):
        if isinstance(expr.operator, (cst.FloorDivide, cst.Modulo)) and not any(
            _factory_in(facts, a, side) for side in (expr.left, expr.right)
        ):
            return True
        if (
            isinstance(expr.operator, cst.Power)
            and _number_literal(expr.right)
            and not _factory_in(facts, a, expr.left)
        ):
            return True  # ``config.hidden_size ** -0.5``: a power of a number
        return _scalar_like(facts, expr.left, a, depth) and _scalar_like(facts, expr.right, a, depth)
    if isinstance(expr, cst.Attribute) and a.method.cls is not None and depth < 3:
        attr = self_attr(expr, a.method.instance)
        assigns = a.method.cls.assigns(attr) if attr else []
        return bool(assigns) and all(
            other.value is not None and _scalar_like(facts, other.value, other, depth + 1) for other in assigns
        )
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


def _number_literal(expr: cst.BaseExpression) -> bool:
    """``2``, ``-0.5``: a numeric literal, signed or not."""
    if isinstance(expr, cst.UnaryOperation):
        expr = expr.expression
    return isinstance(expr, (cst.Integer, cst.Float))


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
LOOPED = "looped"  # an element of the tuple a ``for`` iterates: read through the loop variable
HOST = "host"  # updated with values moved to the host: kept on the CPU on purpose
DEVICE = "device"  # ``self.x.device``: the module's device, read from a tensor .to() does not move
ELEMENT, ELEMENT_AT = "element", "element-at"  # ``self.t[0]``, ``self.t[epoch]``: 0-dim when ``t`` is 1-D
KEPT = "kept"  # ``self.k = self.k.view(...)``: reshaped or detached into the same attribute
RESAMPLED = "resampled"  # ``self.p.uniform_()`` at runtime: values redrawn at each use, no state to save


def use_kinds(
    facts: ModuleFacts, use: AttrUse, uses: list[AttrUse], depth: int = 0, relatives: list[ClassInfo] | None = None
) -> set[str]:
    """The kinds of one read, following ``mask = self.mask`` into the reads of ``mask`` and,
    given the classes, an argument into the helper of the file it is passed to."""
    kind = use_kind(facts, use)
    if kind == UNKNOWN and relatives is not None and depth <= 3:
        return _kinds_in_method(facts, use, uses, relatives, depth)
    if kind not in (ALIAS, LOOPED):
        return {kind}
    if depth > 2:
        return {USED}
    if kind == LOOPED:  # ``for t in (self.k, self.v):`` the loop variable takes the tensor
        loop = next(n for n in reversed(use.ancestors) if isinstance(n, (cst.For, cst.CompFor)))
        if not isinstance(loop.target, cst.Name):
            return {USED}
        local = loop.target.value
    else:
        statement = next(n for n in reversed(use.ancestors) if isinstance(n, cst.Assign))
        local = statement.targets[0].target.value
    reads = [u for u in uses if u.local and u.name == local and u.method == use.method]
    out: set[str] = set()
    for u in reads:
        kinds = use_kinds(facts, u, uses, depth + 1, relatives)
        out |= kinds
        if kinds == {MOVED} and _rebinds(u, local):
            break  # ``t = t.to(x.device)``: the reads that follow see the moved tensor
    return out


def _rebinds(read: AttrUse, local: str) -> bool:
    """Whether the statement holding this read assigns its value back to the same local."""
    statement = next((n for n in reversed(read.ancestors) if isinstance(n, cst.Assign)), None)
    return statement is not None and any(
        isinstance(t.target, cst.Name) and t.target.value == local for t in statement.targets
    )


def use_kind(facts: ModuleFacts, use: AttrUse) -> str:
    """What one read of ``self.x`` does (see ``_walk_kind``); one element taken first
    (``self.t[0] * x``) makes the read an ELEMENT unless it only reads metadata or indexes."""
    kind = _walk_kind(facts, use)
    parent = use.ancestors[-1] if use.ancestors else None
    if kind not in (META, INDEX, MOVED, MUTATED, KEPT, DEVICE) and isinstance(parent, cst.Subscript):
        index = _one_number(parent)
        if index is not None:
            return ELEMENT if isinstance(index, cst.Integer) else ELEMENT_AT
    return kind


def _walk_kind(facts: ModuleFacts, use: AttrUse) -> str:
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
            if method in _DEVICE_READS:
                return DEVICE
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
            if called and method in _RANDOM_FILLS:
                return RESAMPLED
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
        if isinstance(parent, cst.FormattedStringExpression):
            return META
        if isinstance(parent, (cst.Index, cst.Slice)):
            return INDEX
        if isinstance(parent, cst.Arg):
            call = grand
            if isinstance(call, cst.Call):
                if isinstance(call.func, cst.Attribute) and call.func.attr.value in _TAKES_TYPE_FROM:
                    return DEVICE
                if isinstance(call.func, cst.Attribute) and call.func.attr.value in _TAKES_SHAPE_FROM:
                    return META
                if isinstance(call.func, cst.Attribute) and call.func.attr.value == "new_tensor":
                    return MOVED
                if isinstance(call.func, cst.Name) and call.func.value in _HOST_BUILTINS:
                    return META
                if any(a.keyword is not None and a.keyword.value == "device" for a in call.args):
                    return MOVED
                if _MOVE_HELPER.search(method_name(call) or ""):
                    return MOVED  # ``to_device(x, self.t)``, ``move_to_device(self.t, device)``
                func = call.func
                q = facts.qualname(func)
                if q and _root_name(func) in _relative_imports(facts.module):
                    q = "." + q
                if q in _SAMPLERS:
                    return INDEX
                if q in _PASS_THROUGH and call.args[0] is parent:
                    cur, i = call, i - 2  # ``torch.as_tensor(self.t).to(x.device)``
                    continue
                if q in _WEIGHT_FUNCTIONS:
                    return LAYER_WEIGHT if q.startswith("torch.nn.functional.") else WEIGHT
                if not (q or "").startswith("torch.") and not (isinstance(func, cst.Attribute) and q is None
                                                              and not _on_instance(func)):
                    return UNKNOWN if _of_project(facts, q) else USED
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
        if isinstance(parent, (cst.Element, cst.DictElement)) and parent.value is cur and grand is not None:
            if isinstance(anc[i - 2] if i >= 2 else None, cst.Return):
                return UNKNOWN  # handed to the caller in a container (a dict of parameters)
            loop = anc[i - 2] if i >= 2 else None
            if isinstance(grand, (cst.Tuple, cst.List)) and isinstance(loop, (cst.For, cst.CompFor)) and loop.iter is grand:
                return LOOPED
            cur, i = grand, i - 2
            continue
        if isinstance(parent, cst.BooleanOperation) or (
            isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Not)
        ):
            cur, i = parent, i - 1  # ``a and self.t is not None``: still a truth value
            continue
        if isinstance(parent, (cst.If, cst.While, cst.IfExp)) and parent.test is cur:
            return META
        if isinstance(parent, (cst.For, cst.CompFor)) and parent.iter is cur:
            return META
        if isinstance(parent, cst.Assign) and parent.value is cur and len(parent.targets) == 1:
            target = parent.targets[0].target
            if isinstance(target, cst.Name):
                return ALIAS
            if self_attr(target, _instance(use)) == use.name:
                return KEPT
        return USED
    return USED


# a helper named for moving its argument to a device: ``to_device``, ``move_to_device``, ``to_cuda``
_MOVE_HELPER = re.compile(r"(^|_)(to|move|moved|send)_?(to_?)?(device|cuda|gpu)$", re.I)


def _on_instance(func: cst.Attribute) -> bool:
    """``self.helper(...)``: a method of the class, whose body is not followed."""
    return isinstance(func.value, cst.Name) and func.value.value in ("self", "cls")


def _root_name(expr: cst.BaseExpression) -> str | None:
    while isinstance(expr, cst.Attribute):
        expr = expr.value
    return expr.value if isinstance(expr, cst.Name) else None


@lru_cache(maxsize=4)
def _relative_imports(module: cst.Module) -> frozenset[str]:
    """Names the file's top-level ``from .x import y`` statements bind: the project's own."""
    names = set()
    for stmt in module.body:
        for small in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else ():
            if isinstance(small, cst.ImportFrom) and small.relative and not isinstance(small.names, cst.ImportStar):
                for alias in small.names:
                    bound = alias.asname.name if alias.asname else alias.name
                    if isinstance(bound, cst.Name):
                        names.add(bound.value)
    return frozenset(names)


def _one_number(subscript: cst.Subscript) -> cst.Integer | cst.Name | None:
    """The index of ``t[0]``, ``t[-1]``, ``t[i]``: one number or name, no slice."""
    if len(subscript.slice) != 1 or not isinstance(subscript.slice[0].slice, cst.Index):
        return None
    value = subscript.slice[0].slice.value
    if isinstance(value, cst.UnaryOperation):
        value = value.expression
    if isinstance(value, cst.Integer) or (isinstance(value, cst.Name) and value.value != "None"):
        return value
    return None


def _of_project(facts: ModuleFacts, qualname: str | None) -> bool:
    """Whether a callee is the project's own (defined or unresolved in the file, a relative
    import, the file's own top package), whose body may move the tensor; not a library such as
    einops."""
    if qualname is None or qualname.startswith("."):
        return True
    return bool(facts.module_name) and qualname.split(".")[0] == facts.module_name.split(".")[0]


def _is_literal(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.UnaryOperation):
        expr = expr.expression
    return isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)) or (
        isinstance(expr, cst.Name) and expr.value in ("True", "False", "None")
    )


def _only_dtype(facts: ModuleFacts, call: cst.Call) -> bool:
    """``.to(torch.float32)`` / ``.to(x.dtype)`` / ``.to(dtype=...)``: converts, does not move."""
    for arg in call.args:
        if arg.keyword is not None:
            if arg.keyword.value != "dtype":
                return False
            continue
        if isinstance(arg.value, cst.Attribute) and arg.value.attr.value == "dtype":
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

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A module class with its own ``__init__``, and in one of its methods an attribute
        assigned a value that ``_factory_in`` may follow to a torch factory."""
        if not (info.init_classes and info.mentions(FACTORIES)):
            return False
        return any(_may_assign_factory(info, m) for c in info.init_classes for m in methods(c))

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.module_classes():
            candidates = _candidates(facts, cls)
            if not candidates:
                continue
            relatives = facts.family(cls)
            holder = state_holder(facts, relatives)
            construction = set().union(*(facts.construction_methods(c) for c in relatives))
            registered, keys = registrations(facts, relatives, TENSOR_REGISTRARS, construction)
            uses = facts.attr_uses(relatives, with_locals=True)
            init_methods = facts.construction_methods(cls)
            reported: set[str] = set()
            for a, factory in candidates:
                if a.name in reported or moves_own(facts, relatives, a.name) or any(
                    may_name(key, a.name) and _may_register(facts, fn, value) for key, fn, value in keys
                ):
                    continue
                judged = _judge(facts, relatives, a, factory, uses, init_methods, a.name in registered)
                if judged and (judged[1] or not holder):
                    reported.add(a.name)
                    message, parameter = judged
                    yield Hit(a.node, message, cls, _fix(facts, relatives, a, parameter))
        for cls in facts.module_classes():
            for a in _trainable_lists(facts, cls):
                yield Hit(
                    a.node,
                    f"self.{a.name} is a plain list of tensors that require grad: they are not in "
                    f"parameters(), so an optimizer built from it never updates them, and they are not "
                    f"saved in state_dict(); use nn.ParameterList([nn.Parameter(...) ...])",
                    cls,
                )


def _trainable_lists(facts: ModuleFacts, cls: ClassInfo) -> Iterator[AttrAssign]:
    """``self.ws = [torch.randn(d, d, requires_grad=True) for _ in range(n)]`` (or a literal list
    or tuple of such tensors) at construction, an attribute nothing else assigns."""
    init_methods = facts.construction_methods(cls)
    relatives = None
    for a in cls.attr_assigns:
        value = a.value
        if not isinstance(a.node, (cst.Assign, cst.AnnAssign)) or a.method.name not in init_methods:
            continue
        if isinstance(value, (cst.ListComp, cst.GeneratorExp)):
            elements = [value.elt]
        elif isinstance(value, (cst.List, cst.Tuple)) and value.elements:
            elements = [e.value for e in value.elements]
        else:
            continue
        factories = [_factory_in(facts, a, e) for e in elements]
        if not all(f is not None and f.requires_grad for f in factories):
            continue
        relatives = relatives or facts.family(cls)
        if all(other is a for c in relatives for other in c.assigns(a.name)):
            yield a


def _candidates(facts: ModuleFacts, cls: ClassInfo) -> list[tuple[AttrAssign, Factory]]:
    """``self.x = <torch factory chain>`` statements in construction-time methods."""
    init_methods = facts.construction_methods(cls)
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
    registered: bool = False,
) -> tuple[str, bool] | None:
    """The message for a candidate and whether the tensor should be a Parameter (else a
    buffer), or None when the tensor is handled: registered (on the same path: not in the
    other branch of an ``if``), rebuilt at runtime, moved at every use, kept on the host on
    purpose, only read for metadata or as an index, a 0-dim scalar."""
    mine = [u for u in uses if u.name == a.name and not u.local]
    where = next((u for u in mine if u.store and any(x is a.node for x in u.ancestors)), None)
    conditions = branch_conditions(facts, where.ancestors) | _call_conditions(facts, uses, a.method.name) if where else set()
    if registered and (not _registered_elsewhere_only(facts, a.name, uses, conditions) or _empty(factory)):
        return None  # registered; or an empty placeholder where the buffer is disabled
    if _rebuilt(facts, relatives, a, uses, conditions, init_methods, factory.frozen):
        return None
    loaders = data_loading_methods(relatives[0])
    runtime = [
        u
        for u in mine
        if u.method not in init_methods
        and u.method not in loaders
        and (not u.store or isinstance(u.ancestors[-1], cst.AugAssign))
        and not contradicts(conditions, branch_conditions(facts, u.ancestors))
    ]
    kinds = set().union(*(_runtime_kinds(facts, u, uses, relatives) for u in runtime))
    if kinds and any(_flags(facts, other, a) for c in relatives for other in c.assigns(a.name)):
        kinds.add(MUTATED)
    if not kinds and _state_key_read(relatives, a.name):
        return (
            f"self.{a.name} is a plain tensor attribute, but this class reads its state_dict key "
            f"('<prefix>.{a.name}'): the key is missing from every checkpoint it saves, so that code "
            f"never finds it; use self.register_buffer({a.name!r}, ...)"
        ), False
    init_uses = [u for u in mine if u.method in init_methods and not u.store]
    grad = [flag for flag in (_sets_requires_grad(u) for u in init_uses) if flag is not None]
    frozen = factory.frozen or False in grad
    requires_grad = not frozen and (factory.requires_grad or True in grad)
    fills = [u for u in init_uses if _fills_randomly(facts, u)]
    random = factory.random or bool(fills)
    if not kinds and not runtime and random and not frozen and _ndim(facts, a, factory) != 0 and not _empty(factory):
        if all(u in fills or _sets_requires_grad(u) is not None for u in init_uses):
            return (
                f"self.{a.name} is a plain tensor drawn at random that this class never reads: code "
                f"elsewhere that uses it as a weight trains nothing (it is not in parameters()), and it "
                f"is not saved in state_dict(), so a reloaded model draws new values; wrap it in nn.Parameter"
            ), True
    if not kinds or HOST in kinds:
        return None
    ndim = _ndim(facts, a, factory)
    harmless = {META, INDEX, KEPT, RESAMPLED} | ({ELEMENT} if ndim in (None, 1) else set()) | ({ELEMENT_AT} if ndim == 1 else set())
    data = kinds - harmless  # UNKNOWN: passed to a function of the project, which may move it
    attr = f"self.{a.name}"
    reparametrised = any(_reparametrised(facts, u) for u in runtime)
    learnable_constant = False
    if not init_uses and MUTATED not in kinds:
        uniform, zero = _uniform(facts, a) and _ndim(facts, a, factory) != 0, _zero_scalar(facts, a)
        if uniform or zero:
            forward = _forward_methods(relatives)
            learnable_constant = any(
                u.method in forward and _scales_data(u, multiply_only=not uniform) for u in runtime
            )
    if requires_grad or (not frozen and (LAYER_WEIGHT in kinds or random and data or reparametrised or learnable_constant)):
        drawn = ", and a reloaded model draws new random values" if random else ""
        return (
            f"{attr} is a plain tensor, not an nn.Parameter: the optimizer never updates it "
            f"(it is not in parameters()), and it is not saved in state_dict(){drawn}; wrap it in nn.Parameter"
        ), True
    if random and data:
        return (
            f"{attr} is a plain tensor drawn at random: not saved in state_dict(), so a reloaded model "
            f"draws new values, and left behind by .to(device); use self.register_buffer({a.name!r}, ...)"
        ), False
    if not data - {MOVED, UNKNOWN} or data == {MOVED, DEVICE}:
        return None  # moved at every use; or a host lookup table the data is brought to and back
    if _placed_beside_argument(a, factory):
        return None
    if _is_scalar(facts, factory, a) and not {MUTATED, DEVICE} & kinds:
        return None  # a 0-dim CPU scalar combines with GPU data; its .device is still the CPU
    if MUTATED in kinds and not data - {MUTATED, MOVED, UNKNOWN}:
        return (
            f"{attr} is a plain tensor attribute updated at runtime: not saved in state_dict(), so a "
            f"reloaded model loses its state and starts over; use self.register_buffer({a.name!r}, ...)"
        ), False
    if DEVICE in kinds and not data - {DEVICE, MOVED, UNKNOWN}:
        return (
            f"{attr} is a plain tensor the module reads its device from: .to(device)/.cuda() leave it on "
            f"the CPU, so {attr}.device keeps naming the CPU and what is built there misses the model's "
            f"device; use self.register_buffer({a.name!r}, ..., persistent=False)"
        ), False
    lost = "its updates are lost on save" if MUTATED in kinds else "not saved in state_dict()"
    return (
        f"{attr} is a plain tensor attribute: {lost} and left behind by .to(device)/.cuda() (a "
        f"device-mismatch error on GPU); use self.register_buffer({a.name!r}, ...)"
    ), False


def _placed_beside_argument(a: AttrAssign, factory: Factory) -> bool:
    """``torch.tensor([...], device=next(model.parameters()).device)``, ``device=ref.device``: a
    constant made on the device of a module or tensor the constructor receives, as a wrapper
    built around a model already in place does (an export or inference wrapper)."""
    arg, _ = find_arg(factory.call, "device")
    value = arg.value if arg else None
    if not (isinstance(value, cst.Attribute) and value.attr.value == "device"):
        return False
    owner = value.value
    if isinstance(owner, cst.Call) and isinstance(owner.func, cst.Name) and owner.func.value == "next" and owner.args:
        owner = owner.args[0].value  # next(model.parameters()), next(iter(model.buffers()))
        if isinstance(owner, cst.Call) and isinstance(owner.func, cst.Name) and owner.func.value == "iter" and owner.args:
            owner = owner.args[0].value
        if not (isinstance(owner, cst.Call) and isinstance(owner.func, cst.Attribute)
                and owner.func.attr.value in ("parameters", "buffers")):
            return False
        owner = owner.func.value
    return isinstance(owner, cst.Name) and owner.value in a.method.params[1:]


def _state_key_read(relatives: list[ClassInfo], name: str) -> bool:
    """Whether the class's code spells the attribute's state_dict key (``"{}.version".format(name)``,
    ``f"{prefix}.version"``): a tensor never read at runtime whose checkpoint entry is (upgrade or
    load hooks such as fairseq's ``upgrade_state_dict_named``)."""
    suffix = f".{name}"
    found = False

    def visit(node: cst.CSTNode) -> bool:
        nonlocal found
        if isinstance(node, cst.SimpleString):
            text = node.evaluated_value
            found = found or (isinstance(text, str) and text.endswith(suffix))
        elif isinstance(node, cst.FormattedString) and node.parts:
            last = node.parts[-1]
            found = found or (isinstance(last, cst.FormattedStringText) and last.value.endswith(suffix))
        return not found

    for c in relatives:
        for fn in c.methods.values():
            walk(fn.node.body, visit)
    return found


_ELEMENTWISE = {"exp", "log", "sqrt", "sin", "cos", "abs", "sigmoid", "tanh", "flip", "cumsum", "clamp", "round"}
_ONE_DIMENSIONAL = {"linspace", "logspace", "arange", "range", "randperm"}
_SIZED = {"zeros", "ones", "empty", "randn", "rand", "full"}


def _ndim(facts: ModuleFacts, a: AttrAssign, factory: Factory) -> int | None:
    """The number of dimensions of the assigned tensor when the statement shows it:
    ``torch.linspace(...)``, ``torch.tensor([1.0, 2.0])``, ``torch.zeros(3, 4)``."""
    value = a.value
    while isinstance(value, cst.Call) and value is not factory.call and value.args:
        q = facts.qualname(value.func, a.method.scope) or ""
        if not (q.startswith("torch.") and q.rsplit(".", 1)[1] in _ELEMENTWISE):
            return None
        value = value.args[0].value
    if value is not factory.call:
        return None
    leaf = factory.qualname.rsplit(".", 1)[1]
    args = [arg.value for arg in factory.call.args if arg.keyword is None]
    if leaf in _ONE_DIMENSIONAL:
        return 1
    if not args:
        return None
    if leaf in _SIZED:
        first = args[0]
        if isinstance(first, (cst.Tuple, cst.List)):
            return len(first.elements)
        return len(args) if all(_size_like(x) for x in args) else None
    if isinstance(args[0], (cst.List, cst.Tuple)) and len(args) == 1:
        nested = any(isinstance(e.value, (cst.List, cst.Tuple)) for e in args[0].elements)
        return 2 if nested else 1
    return None


def _size_like(expr: cst.BaseExpression) -> bool:
    """One size argument of a factory: ``3``, ``n``, ``self.dim``, ``len(self.blocks)``, ``2 * n``."""
    if isinstance(expr, (cst.Integer, cst.Name, cst.Attribute)):
        return True
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name):
        return expr.func.value in ("len", "int", "min", "max", "round", "abs")
    if isinstance(expr, cst.BinaryOperation):
        return _size_like(expr.left) and _size_like(expr.right)
    return False


def _empty(factory: Factory) -> bool:
    """``torch.Tensor()``, ``torch.empty(0)``: a placeholder with no elements (``torch.tensor(0)``
    is a scalar)."""
    if factory.qualname in ("torch.tensor", "torch.as_tensor"):
        return False
    args = [arg.value for arg in factory.call.args if arg.keyword is None]
    return not args or (len(args) == 1 and isinstance(args[0], cst.Integer) and args[0].value == "0")


def _registered_elsewhere_only(
    facts: ModuleFacts, name: str, uses: list[AttrUse], conditions: set[tuple[str, bool]]
) -> bool:
    """Whether every ``self.register_buffer(name, ...)`` sits in the other branch of an ``if``
    than the plain assignment (``if isinstance(k, float): self.k = torch.tensor(k) else:
    self.register_buffer("k", k)``)."""
    calls = [
        u
        for u in uses
        if u.name in TENSOR_REGISTRARS
        and not u.local
        and u.context == CALLED
        and isinstance(u.ancestors[-1], cst.Call)
        and u.ancestors[-1].args
        and isinstance(u.ancestors[-1].args[0].value, cst.SimpleString)
        and u.ancestors[-1].args[0].value.evaluated_value == name
    ]
    return bool(calls) and all(contradicts(conditions, branch_conditions(facts, u.ancestors)) for u in calls)


def _runtime_kinds(facts: ModuleFacts, use: AttrUse, uses: list[AttrUse], relatives: list[ClassInfo]) -> set[str]:
    """The kinds of one runtime read or update; an update with values moved to the host
    (``self.hist += counts.cpu()``) keeps the tensor on the CPU on purpose."""
    kinds = use_kinds(facts, use, uses, 0, relatives)
    if _assigned_back(use) and kinds != {KEPT}:
        kinds.add(MUTATED)
    if MUTATED in kinds:
        statement = next((n for n in reversed(use.ancestors) if isinstance(n, cst.BaseSmallStatement)), None)
        if statement is not None and _on_host(facts, statement):
            return {HOST}
    return kinds


def _assigned_back(use: AttrUse) -> bool:
    """``self.x = f(self.x, ...)``: the read sits in an assignment to the same attribute."""
    for node in reversed(use.ancestors):
        if isinstance(node, cst.Assign):
            return any(self_attr(t.target, _instance(use)) == use.name for t in node.targets)
    return False


def _instance(use: AttrUse) -> str | None:
    value = use.node.value
    return value.value if isinstance(value, cst.Name) else None


def _on_host(facts: ModuleFacts, node: cst.CSTNode) -> bool:
    """Whether a statement moves data to the host: ``.cpu()``, ``.to("cpu")``, ``device="cpu"``."""
    found = False

    def visit(n: cst.CSTNode) -> bool:
        nonlocal found
        if isinstance(n, cst.Call):
            func = n.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("cpu", "numpy"):
                found = True
            for arg in n.args:
                if isinstance(arg.value, cst.SimpleString) and arg.value.evaluated_value == "cpu":
                    found = found or arg.keyword is None or arg.keyword.value == "device"
        return not found

    walk(node, visit)
    return found


def _kinds_in_method(
    facts: ModuleFacts, use: AttrUse, uses: list[AttrUse], relatives: list[ClassInfo], depth: int
) -> set[str]:
    """``self.helper(self.x)``, ``helper(x, self.x)``: the kinds of the parameter's reads inside
    ``helper`` when it is a method of the classes or a function of the file; a sub-module
    (``self.embed(self.idx)``) uses the tensor on its own device; any other function of the
    project is not followed (unknown)."""
    k = next((k for k in range(len(use.ancestors) - 1, 0, -1) if isinstance(use.ancestors[k], cst.Arg)), 0)
    call, arg = use.ancestors[k - 1], use.ancestors[k]
    if not (isinstance(call, cst.Call) and isinstance(arg, cst.Arg)) or arg.star:
        return {UNKNOWN}
    func = call.func
    called = func.attr.value if isinstance(func, cst.Attribute) and _on_instance(func) else None
    if isinstance(func, cst.Name) and func.value == _instance(use):
        called = "forward"
    if called:
        method = next((c.methods[called] for c in relatives if called in c.methods), None)
        if method is None:
            return {USED}
        params, scope = method.params[1:], [u for u in uses if u.local and u.method == method.name]
    elif isinstance(func, cst.Name):
        function = next((f for f in facts.functions if f.name == func.value and f.scope.parent is facts.module_scope
                         and isinstance(f.node, cst.FunctionDef)), None)
        if function is None:
            return {UNKNOWN}
        params, scope = function.params, function.local_reads()
    else:
        return {UNKNOWN}
    if arg.keyword is not None:
        name = arg.keyword.value
    else:
        position = next(k for k, x in enumerate(a for a in call.args if a.keyword is None) if x is arg)
        name = params[position] if position < len(params) else None
    reads = [u for u in scope if u.name == name]
    if not reads:
        return {UNKNOWN}
    return set().union(*(use_kinds(facts, u, scope, depth + 1, relatives) for u in reads))


def _sets_requires_grad(use: AttrUse) -> bool | None:
    """``self.x.requires_grad = True``/``.requires_grad_()`` at construction time (True), the
    same with ``False`` (False), or None."""
    anc = use.ancestors
    if not anc or not isinstance(anc[-1], cst.Attribute) or anc[-1].value is not use.node:
        return None
    attr = anc[-1].attr.value
    if attr == "requires_grad_" and len(anc) >= 2 and isinstance(anc[-2], cst.Call):
        args = anc[-2].args
        return not args or not is_false(args[0].value)
    if attr == "requires_grad" and len(anc) >= 3 and isinstance(anc[-2], cst.AssignTarget):
        assign = anc[-3]
        return isinstance(assign, cst.Assign) and not is_false(assign.value)
    return None


_REPARAMETRISATIONS = {"exp", "sigmoid", "softplus", "tanh"}
_REPARAMETRISING = {
    "torch.exp", "torch.sigmoid", "torch.tanh", "torch.special.expit", "torch.nn.functional.softplus",
    "torch.nn.functional.sigmoid",
}


def _reparametrised(facts: ModuleFacts, use: AttrUse) -> bool:
    """``self.logit_scale.exp()``, ``torch.sigmoid(self.alpha)``, ``F.softplus(self.beta)``: a
    value kept in a reparametrised form and mapped back at each use, which is how a learnable
    scalar is written; a constant would be stored as it is used."""
    anc = use.ancestors
    if len(anc) < 2:
        return False
    parent, grand = anc[-1], anc[-2]
    if isinstance(parent, cst.Attribute) and parent.value is use.node:
        return parent.attr.value in _REPARAMETRISATIONS and isinstance(grand, cst.Call) and grand.func is parent
    if isinstance(parent, cst.Arg) and isinstance(grand, cst.Call) and grand.args and grand.args[0] is parent:
        return facts.qualname(grand.func) in _REPARAMETRISING
    return False


_UNIFORM = {"torch.ones", "torch.zeros", "torch.full"}


def _reshaping_index(index: cst.BaseSlice) -> bool:
    """``:``, ``None``, ``...``: an index that only reshapes."""
    if isinstance(index, cst.Slice):
        return index.lower is None and index.upper is None and index.step is None
    value = index.value if isinstance(index, cst.Index) else None
    return isinstance(value, cst.Ellipsis) or isinstance(value, cst.Name) and value.value == "None"


def _uniform(facts: ModuleFacts, a: AttrAssign) -> bool:
    """``torch.ones(dim)``, ``init_values * torch.ones(1, 1, dim)``, ``torch.full((dim,), 0.1)``:
    one value in every element of a per-channel vector (one size that is not 1), as assigned (no
    chain that changes the values). Not ``torch.ones(out, inp)`` or ``torch.ones(w.shape)``: a
    mask the size of a weight, which pruning code changes in place."""
    value = a.value
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Multiply):
        sides = [value.left, value.right]
        calls = [v for v in sides if isinstance(v, cst.Call)]
        if len(calls) != 1 or not any(_scalar_like(facts, v, a) or isinstance(v, cst.Name) for v in sides if v is not calls[0]):
            return False
        value = calls[0]
    q = facts.qualname(value.func, a.method.scope) if isinstance(value, cst.Call) else None
    if q not in _UNIFORM:
        return False
    positional = [arg.value for arg in value.args if arg.keyword is None]
    sizes = positional[:1] if q == "torch.full" else positional
    if len(sizes) == 1 and isinstance(sizes[0], (cst.Tuple, cst.List)):
        sizes = [e.value for e in sizes[0].elements]
    if any(isinstance(n, (cst.StarredElement, cst.Attribute, cst.Call)) for n in sizes):
        return False  # ``*shape``, ``w.shape``, ``x.size(0)``: sized like another tensor
    return sum(1 for n in sizes if not (isinstance(n, cst.Integer) and n.value == "1")) == 1


def _forward_methods(relatives: list[ClassInfo]) -> set[str]:
    """``forward`` and the methods it reaches through ``self.method()``, in the class's family."""
    return set().union(*(c.reached({"forward"}) for c in relatives))


def _zero_scalar(facts: ModuleFacts, a: AttrAssign) -> bool:
    """``torch.tensor(0.)``, ``torch.zeros(1)``, as assigned: a scalar zero. Data multiplied by it
    is zero unless it is learned (ReZero's and EDM's gains start at zero)."""
    value = a.value
    if not isinstance(value, cst.Call) or not value.args or value.args[0].keyword is not None:
        return False
    q = facts.qualname(value.func, a.method.scope)
    first = value.args[0].value
    if q in ("torch.tensor", "torch.as_tensor"):
        return isinstance(first, (cst.Integer, cst.Float)) and float(first.evaluated_value) == 0.0
    return q == "torch.zeros" and len(value.args) == 1 and isinstance(first, cst.Integer) and first.value == "1"


def _scales_data(use: AttrUse, multiply_only: bool = False) -> bool:
    """The read is an operand of ``*``, ``+`` or ``-`` (also after a move or a reshape: ``x *
    self.gamma.to(x.device)``, ``self.gamma[:, None]``, or ``x *= self.g``): applied elementwise to
    the data. A uniform vector used so is a learnable scale or bias; as a constant it would be a
    plain number. Not an element picked by an index (``w * self.class_weights[target]``)."""
    for node in reversed(use.ancestors):
        if isinstance(node, cst.Subscript) and not all(_reshaping_index(e.slice) for e in node.slice):
            return False
        if isinstance(node, cst.BinaryOperation):
            other = node.right if any(a is node.left for a in use.ancestors) or node.left is use.node else node.left
            if self_attr(other, _instance(use)) is not None:
                return False  # ``self.bias * self.bias_mask``: applied to a weight, not to the data
            return isinstance(node.operator, cst.Multiply if multiply_only else (cst.Multiply, cst.Add, cst.Subtract))
        if isinstance(node, cst.AugAssign):
            kinds = cst.MultiplyAssign if multiply_only else (cst.MultiplyAssign, cst.AddAssign, cst.SubtractAssign)
            return isinstance(node.operator, kinds)
        if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.Arg)):
            return False
    return False


def _fills_randomly(facts: ModuleFacts, use: AttrUse) -> bool:
    """``nn.init.trunc_normal_(self.x, std=0.02)`` or ``self.x.normal_()`` at construction time."""
    anc = use.ancestors
    cur: cst.CSTNode = use.node
    for k in range(len(anc) - 1, 0, -1):
        parent, grand = anc[k], anc[k - 1]
        if isinstance(parent, cst.Attribute) and parent.value is cur:
            if parent.attr.value == "data":
                cur = parent
                continue
            return isinstance(grand, cst.Call) and grand.func is parent and random_init(None, parent.attr.value)
        if isinstance(parent, cst.Arg) and isinstance(grand, cst.Call) and grand.args and grand.args[0] is parent:
            return random_init(facts.qualname(grand.func), None)
        return False
    return False


def branch_conditions(facts: ModuleFacts, ancestors: tuple[cst.CSTNode, ...]) -> set[tuple[str, bool]]:
    """The ``if`` tests a node sits under, as (test source without ``self.``, taken branch)."""
    out = set()
    for k, node in enumerate(ancestors[:-1]):
        if isinstance(node, cst.If):
            test = facts.module.code_for_node(node.test).replace("self.", "")
            out.add((test, ancestors[k + 1] is node.body))
    return out


def _call_conditions(facts: ModuleFacts, uses: list[AttrUse], method: str, depth: int = 0) -> set[tuple[str, bool]]:
    """The ``if`` tests around the only ``self.<method>()`` call of the class (and around the
    call of the method that makes it), or none when the method is called from several places."""
    calls = [u for u in uses if u.name == method and not u.local and u.context == CALLED]
    if len(calls) != 1 or depth > 4:
        return set()
    call = calls[0]
    return branch_conditions(facts, call.ancestors) | _call_conditions(facts, uses, call.method, depth + 1)


def contradicts(a: set[tuple[str, bool]], b: set[tuple[str, bool]]) -> bool:
    """Two nodes in opposite branches of the same test never both run."""
    return any((test, not taken) in b for test, taken in a)


def _rebuilt(
    facts: ModuleFacts,
    relatives: list[ClassInfo],
    a: AttrAssign,
    uses: list[AttrUse],
    conditions: set[tuple[str, bool]],
    init_methods: set[str],
    frozen: bool,
) -> bool:
    """Another assignment registers the tensor (``self.x = nn.Parameter(self.x)``), a relative
    class sets it to something else, or a method outside construction rebuilds it (a cache the
    class keeps on the data's device itself; also when the assigning method is called again at
    runtime). An update (``self.n += 1``, ``self.mean = m * self.mean + ...``) rebuilds nothing.
    An ``nn.Parameter`` in the opposite branch of an ``if`` counts only when the plain tensor is
    marked ``requires_grad=False``: a "disabled" placeholder whose flag the code checks; one
    under a test the plain assignment is not under registers it only sometimes. The tests
    around the one call of an assigning method count too (``if sr == 8000:
    self._constants_8k() else: self._constants_16k()``)."""
    mine = [u for u in uses if u.name == a.name and not u.local]
    if a.method.name in called_at_runtime(relatives[0], init_methods):
        return True
    for c in relatives:
        own = c is relatives[0]
        construction = init_methods if own else facts.construction_methods(c)
        for other in c.assigns(a.name):
            if other is a:
                continue
            if other.method.name not in construction:
                if _updates(facts, other, mine) or _flags(facts, other, a):
                    continue
                return True
            if not own:
                if tensor_factory(facts, other):
                    continue
                return True
            value = other.value
            if not isinstance(value, cst.Call):
                continue
            q = facts.qualname(value.func, other.method.scope) or ""
            wraps = q.startswith("torch.nn.") and q.rsplit(".", 1)[1][:1].isupper()  # nn.Parameter, a layer
            if not (wraps or facts.is_module_class_expr(value.func, other.method.scope)):
                continue
            where = next((u for u in mine if u.store and any(x is other.node for x in u.ancestors)), None)
            if where is None:
                return True
            others = branch_conditions(facts, where.ancestors) | _call_conditions(facts, uses, other.method.name)
            if contradicts(conditions, others):
                if frozen:
                    return True
            elif others <= conditions:
                return True
    return False


def _flags(facts: ModuleFacts, other: AttrAssign, a: AttrAssign) -> bool:
    """``self.initted = torch.tensor(True)`` after ``self.initted = torch.tensor(False)`` at
    construction: a state the run sets to a new constant (a fit or an init done), which a reload
    loses, not a cache rebuilt from the data."""
    if other is a or other.value is None or a.value is None or not tensor_factory(facts, other):
        return False
    code = facts.module.code_for_node
    return _constant(facts, other.value, other.method.scope) and code(other.value) != code(a.value)


def _constant(facts: ModuleFacts, expr: cst.BaseExpression, scope: Scope | None) -> bool:
    """An expression of literals and torch names only: ``torch.BoolTensor([True])``."""
    constant = True

    def visit(node: cst.CSTNode) -> bool:
        nonlocal constant
        if isinstance(node, cst.Arg):
            walk(node.value, visit)
            return False
        if isinstance(node, (cst.Attribute, cst.Name)):
            q = facts.qualname(node, scope) or ""
            literal = isinstance(node, cst.Name) and node.value in ("True", "False", "None")
            constant = constant and (literal or q == "torch" or q.startswith("torch."))
            return False
        return constant

    walk(expr, visit)
    return constant


def _updates(facts: ModuleFacts, other: AttrAssign, mine: list[AttrUse]) -> bool:
    """``self.n += 1`` or ``self.x = f(self.x, ...)`` where ``self.x`` is not moved (nor only
    lends its shape or dtype, ``self.x.new_empty(n)``): the state is updated where it is, or
    rebuilt on its own device (``torch.randn(n).type_as(self.x)``), not on the data's."""
    if isinstance(other.node, cst.AugAssign):
        return True
    instance = other.method.instance
    if other.value is None or not instance:
        return False
    return _reads_state(facts, other.method, other.node, other.value, instance, other.name, mine, 3)


def _reads_state(
    facts: ModuleFacts,
    method: FunctionInfo,
    stmt: cst.CSTNode,
    value: cst.BaseExpression,
    instance: str,
    name: str,
    mine: list[AttrUse],
    depth: int,
) -> bool:
    """Whether ``value`` (of ``stmt``) reads ``self.<name>`` as data, directly or through a local
    of the method every value of which does (``new_mean = self.mean + d; self.mean = new_mean``),
    ``depth`` assignments deep. A local that is also given a fresh value (``t = self.t; if
    short: t = torch.randn(n, device=x.device)``) is a cache rebuilt on the data's device."""
    if references_attr(value, instance, name):
        reads = [u for u in mine if not u.store and any(x is stmt for x in u.ancestors)]
        if any(use_kind(facts, u) not in (MOVED, META) for u in reads):
            return True
    if depth == 0:
        return False
    locals_read: list[str] = []
    walk(value, lambda n: locals_read.append(n.value) if isinstance(n, cst.Name) else None)
    for local in dict.fromkeys(locals_read):
        assigned = method.assignments.get(local, [])
        if assigned and all(
            v is not None and _reads_state(facts, method, s, v, instance, name, mine, depth - 1) for s, v in assigned
        ):
            return True
    return False


_FACTORY_LEAVES = {q.rsplit(".", 1)[1] for q in FACTORIES}
_JOIN_LEAVES = {q.rsplit(".", 1)[1] for q in _JOINS}
_TENSOR_FUNCTION_LEAVES = {q.rsplit(".", 1)[1] for q in _TENSOR_FUNCTIONS}


def _may_assign_factory(info: TreeInfo, method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """``self.<x> = <value>`` in the method (and the functions nested in it) with a value
    ``_factory_in`` may follow to a factory call, through the method's local names."""
    local: dict[str, list[ast.expr]] = {}
    stores: list[ast.expr] = []
    for node in info.subtree(method):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                local.setdefault(target.id, []).append(value)
            elif any(isinstance(t, ast.Attribute) for t in ast_nodes(target)):
                # ``self.a, self.b = x, y`` assigns each attribute its element
                stores.extend(value.elts if isinstance(value, (ast.Tuple, ast.List)) else [value])
    return any(_may_hold_factory(info, value, local) for value in stores)


def _may_hold_factory(info: TreeInfo, expr: ast.expr, local: dict[str, list[ast.expr]], depth: int = 0) -> bool:
    """The screen's ``_factory_in``: whether ``expr`` may be a factory call's chain."""
    while True:
        if isinstance(expr, ast.Name):
            return depth < 2 and any(_may_hold_factory(info, v, local, depth + 1) for v in local.get(expr.id, ()))
        if isinstance(expr, ast.Call):
            leaves = info.callee_leaves(expr)
            if leaves & _FACTORY_LEAVES:
                return True
            values = [*expr.args, *(k.value for k in expr.keywords)]
            if leaves & _JOIN_LEAVES and any(
                _may_hold_factory(info, e, local, depth) for v in values if isinstance(v, (ast.List, ast.Tuple)) for e in v.elts
            ):
                return True
            if leaves & _TENSOR_FUNCTION_LEAVES or any(leaf.endswith("_") for leaf in leaves):
                if any(_may_hold_factory(info, v, local, depth) for v in values):
                    return True
            if not (isinstance(expr.func, ast.Attribute) and expr.func.attr in SAME_DEVICE_METHODS):
                return False
            expr = expr.func.value
        elif isinstance(expr, ast.Subscript):
            expr = expr.value
        elif isinstance(expr, ast.BinOp):
            return _may_hold_factory(info, expr.left, local, depth) or _may_hold_factory(info, expr.right, local, depth)
        elif isinstance(expr, ast.UnaryOp):
            expr = expr.operand
        elif isinstance(expr, ast.Starred):
            expr = expr.value
        elif isinstance(expr, (ast.ListComp, ast.GeneratorExp)):
            expr = expr.elt  # ``_trainable_lists``
        else:
            return False
