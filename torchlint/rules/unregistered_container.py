"""TL102 unregistered-container: layers or Parameters kept in a plain list, dict or tuple."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.edits import render, torch_nn
from torchlint.facts import AttrAssign, ClassInfo, FunctionInfo, ModuleFacts, find_arg
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.unregistered_tensor import (
    AttrUse,
    attribute_uses,
    init_time_methods,
    registered_names,
)

_MODULE_REGISTRARS = frozenset({"add_module", "register_module", "register_parameter"})
# calls that read a container without keeping it
_READERS = {
    "len", "enumerate", "zip", "range", "print", "isinstance", "reversed", "sorted", "iter", "list",
    "tuple", "sum", "any", "all", "max", "min", "str", "repr", "type", "id", "hasattr", "getattr",
}
_PARAMETERS = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}
# torch.nn layers with no parameters, buffers or train/eval behaviour: nothing is lost in a list
_STATELESS = {
    "ReLU", "ReLU6", "GELU", "SiLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "SELU", "CELU", "GLU",
    "Mish", "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus", "Softsign", "Softshrink",
    "Hardshrink", "Tanhshrink", "Threshold", "LogSigmoid", "Softmax", "Softmax2d", "LogSoftmax",
    "Softmin", "Identity", "Flatten", "Unflatten", "Upsample", "UpsamplingNearest2d",
    "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle", "ChannelShuffle", "MaxPool1d",
    "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
    "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d",
    "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d",
    "CircularPad1d", "CircularPad2d", "CircularPad3d", "CosineSimilarity", "PairwiseDistance",
    "Fold", "Unfold",
}
_LOSS_WEIGHTS = ("weight", "pos_weight")
_GROWERS = {"append", "extend", "insert", "__setitem__", "update", "setdefault", "add"}


class UnregisteredContainer(Rule):
    code = "TL102"
    name = "unregistered-container"
    summary = "layers or Parameters in a plain list/dict/tuple on an nn.Module: use ModuleList/ModuleDict/ParameterList"

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.module_classes():
            init_methods = init_time_methods(cls)
            candidates = [
                a
                for a in cls.attr_assigns
                if isinstance(a.node, (cst.Assign, cst.AnnAssign))
                and a.method.name in init_methods
                and _container_literal(a.value)
            ]
            if not candidates:
                continue
            relatives = facts.family(cls)
            _, dynamic = registered_names(facts, relatives, _MODULE_REGISTRARS)
            if dynamic:
                continue
            uses = attribute_uses(relatives)
            methods = {name: fn for c in reversed(relatives) for name, fn in c.methods.items()}
            seen: set[str] = set()
            for a in candidates:
                if a.name in seen:
                    continue
                seen.add(a.name)
                mine = [u for u in uses if u.name == a.name]
                held = _held_kind(facts, a, mine, methods)
                if held is None or _registered_later(facts, relatives, a, mine, init_methods):
                    continue
                if not any(u.method not in init_methods and not u.store for u in mine):
                    continue
                yield Hit(a.node, _message(a, held), cls, _fix(facts, a, held, mine, methods))


def _message(a: AttrAssign, held: str) -> str:
    kind = "dict" if isinstance(a.value, (cst.Dict, cst.DictComp)) or _empty_call(a.value) == "dict" else (
        "tuple" if isinstance(a.value, cst.Tuple) else "list"
    )
    if held == "parameter":
        return (
            f"self.{a.name} is a plain {kind} of Parameters: they are not in model.parameters() "
            f"(the optimizer never trains them), not moved by .to(), not saved in state_dict(); "
            f"use nn.ParameterList / nn.ParameterDict"
        )
    return (
        f"self.{a.name} is a plain {kind} of layers: the layers' parameters are not in "
        f"model.parameters() (the optimizer never trains them), not moved by .to(), not saved in "
        f"state_dict(), and eval() does not reach them; use nn.ModuleList / nn.ModuleDict"
    )


def _fix(
    facts: ModuleFacts, a: AttrAssign, held: str, mine: list[AttrUse], methods: dict[str, FunctionInfo]
) -> Fix | None:
    """The assigned container wrapped in nn.ModuleList / ModuleDict / ParameterList /
    ParameterDict, when everything put in it is a module (a Parameter) and a dict's keys are
    strings; an empty dict is left alone (its keys come later and may not be strings)."""
    value = a.value
    items = [(e, a.method) for e in _elements(value)]
    for u in mine:
        items.extend((e, methods.get(u.method)) for e in _grown_with(u))
    if held == "parameter":
        fits = all(fn is not None and _item_kind(facts, e, fn) == "parameter" for e, fn in items)
    else:
        fits = all(fn is not None and _is_module(facts, e, fn) for e, fn in items)
    spelling = torch_nn(facts, a.method.scope)
    if not fits or spelling is None:
        return None
    nn, imports = spelling
    is_dict = isinstance(value, (cst.Dict, cst.DictComp)) or _empty_call(value) == "dict"
    if is_dict and not _string_keys(value):
        return None
    wrapper = f"{nn}.{'Parameter' if held == 'parameter' else 'Module'}{'Dict' if is_dict else 'List'}"
    if _empty_call(value) or isinstance(value, (cst.List, cst.Dict)) and not value.elements:
        inner = ""
    elif isinstance(value, cst.Tuple) and not value.lpar:
        inner = f"({render(facts.module, value)})"
    else:
        inner = render(facts.module, value)
    return Fix(f"Wrap self.{a.name} in {wrapper}", (NodeEdit(value, f"{wrapper}({inner})"),), safe=False, imports=imports)


def _is_module(facts: ModuleFacts, expr: cst.BaseExpression, fn: FunctionInfo, depth: int = 0) -> bool:
    """A module construction, directly or through a local name assigned only such."""
    if isinstance(expr, cst.Name) and depth < 2:
        values = [v for _, v in fn.assignments.get(expr.value, [])]
        return bool(values) and all(v is not None and _is_module(facts, v, fn, depth + 1) for v in values)
    return isinstance(expr, cst.Call) and facts.is_module_class_expr(expr.func, fn.scope)


def _string_keys(value: cst.BaseExpression | None) -> bool:
    """Whether every key of a dict literal or comprehension is a string (a literal without a dot,
    an f-string, ``str(...)``): ModuleDict takes no other."""
    if isinstance(value, cst.Dict):
        keys = [e.key if isinstance(e, cst.DictElement) else None for e in value.elements]
    elif isinstance(value, cst.DictComp):
        keys = [value.key]
    else:
        return False
    return bool(keys) and all(_string_key(k) for k in keys)


def _string_key(key: cst.BaseExpression | None) -> bool:
    if isinstance(key, cst.SimpleString):
        text = key.evaluated_value
        return isinstance(text, str) and bool(text) and "." not in text
    if isinstance(key, cst.FormattedString):
        return True
    return isinstance(key, cst.Call) and isinstance(key.func, cst.Name) and key.func.value == "str"


# --- the container and what goes into it ---------------------------------------------------------


def _empty_call(expr: cst.BaseExpression | None) -> str | None:
    """``list()``, ``dict()``, ``OrderedDict()``: the container kind, or None."""
    if isinstance(expr, cst.Call) and not expr.args:
        func = expr.func
        name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
        if name in ("list", "dict", "OrderedDict"):
            return "list" if name == "list" else "dict"
    return None


def _container_literal(expr: cst.BaseExpression | None) -> bool:
    return isinstance(expr, (cst.List, cst.Tuple, cst.Dict, cst.ListComp, cst.DictComp)) or bool(
        _empty_call(expr)
    )


def _elements(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(expr, (cst.List, cst.Tuple)):
        return [e.value for e in expr.elements]
    if isinstance(expr, cst.Dict):
        return [e.value for e in expr.elements if isinstance(e, cst.DictElement)]
    if isinstance(expr, cst.ListComp):
        return [expr.elt]
    if isinstance(expr, cst.DictComp):
        return [expr.value]
    return []


def _held_kind(
    facts: ModuleFacts, a: AttrAssign, mine: list[AttrUse], methods: dict[str, FunctionInfo]
) -> str | None:
    """"layer" or "parameter" when the container holds constructed layers or Parameters (in its
    literal or put in later with append/extend/insert/``[k] = ...``/``+=``), else None."""
    items = [(e, a.method) for e in _elements(a.value)]
    for u in mine:
        items.extend((e, methods.get(u.method)) for e in _grown_with(u))
    kinds = {_item_kind(facts, e, fn) for e, fn in items if fn is not None}
    if "parameter" in kinds:
        return "parameter"
    return "layer" if "layer" in kinds else None


def _grown_with(use: AttrUse) -> list[cst.BaseExpression]:
    """What ``self.x.append(v)``, ``.extend([...])``, ``.insert(i, v)``, ``self.x[k] = v`` and
    ``self.x += [...]`` put into the container."""
    anc = use.ancestors
    if not anc:
        return []
    parent = anc[-1]
    grand = anc[-2] if len(anc) >= 2 else None
    if isinstance(parent, cst.Attribute) and isinstance(grand, cst.Call) and grand.func is parent:
        method, args = parent.attr.value, [arg.value for arg in grand.args]
        if method == "append" and args:
            return [args[0]]
        if method == "insert" and len(args) >= 2:
            return [args[1]]
        if method == "extend" and args:
            return _elements(args[0]) or [args[0]]
        if method in ("update", "setdefault") and args:
            return _elements(args[-1])
        return []
    if isinstance(parent, cst.Subscript) and parent.value is use.node and isinstance(grand, cst.AssignTarget):
        statement = anc[-3] if len(anc) >= 3 else None
        return [statement.value] if isinstance(statement, cst.Assign) else []
    if isinstance(parent, cst.AugAssign) and parent.target is use.node:
        return _elements(parent.value)
    return []


def _item_kind(facts: ModuleFacts, expr: cst.BaseExpression, fn: FunctionInfo, depth: int = 0) -> str | None:
    """"parameter" for ``nn.Parameter(...)``, "layer" for a constructed layer that holds state
    (directly, or through a local name assigned one), None for anything else."""
    if isinstance(expr, cst.Name) and depth < 2:
        kinds = {_item_kind(facts, v, fn, depth + 1) for _, v in fn.assignments.get(expr.value, []) if v is not None}
        return "parameter" if "parameter" in kinds else ("layer" if "layer" in kinds else None)
    if not isinstance(expr, cst.Call):
        return None
    q = facts.qualname(expr.func, fn.scope) or ""
    if q in _PARAMETERS:
        return "parameter"
    if not facts.is_module_class_expr(expr.func, fn.scope):
        return None
    if q.startswith("torch.nn."):
        leaf = q.rsplit(".", 1)[-1]
        if leaf in _STATELESS:
            return None
        if leaf.endswith("Loss") and not any(find_arg(expr, k)[0] for k in _LOSS_WEIGHTS):
            return None
    return "layer"


# --- registration after the fact -----------------------------------------------------------------


def _registered_later(
    facts: ModuleFacts, relatives: list[ClassInfo], a: AttrAssign, mine: list[AttrUse], init_methods: set[str]
) -> bool:
    """The container is registered another way: the attribute is reassigned to something built
    from a call (``nn.ModuleList(self.layers)``), or, at construction, it is passed to a call that
    may keep it (``nn.Sequential(*self.layers)``, a registering helper)."""
    for c in relatives:
        for other in c.assigns(a.name):
            if other is not a and isinstance(other.value, cst.Call) and not _empty_call(other.value):
                return True
    for u in mine:
        if u.store or u.method not in init_methods:
            continue
        if _kept_elsewhere(u):
            return True
    return False


def _kept_elsewhere(use: AttrUse) -> bool:
    for k in range(len(use.ancestors) - 1, -1, -1):
        node = use.ancestors[k]
        if isinstance(node, cst.Arg):
            call = use.ancestors[k - 1]
            if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value in _READERS):
                return True
        elif isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
            return False
    return False
