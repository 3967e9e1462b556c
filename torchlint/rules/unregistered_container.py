"""TL102 unregistered-container: layers or Parameters kept in a plain list, dict or tuple."""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterator

import libcst as cst

from torchlint.edits import render, torch_nn
from torchlint.facts import (
    AttrAssign,
    AttrUse,
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    code_of,
    find_all,
    find_arg,
    self_attr,
    target_names,
    walk,
)
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.unregistered_tensor import (
    branch_conditions,
    contradicts,
    registered_names,
)
from torchlint.screen import TreeInfo, ast_nodes, methods, plain_names

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

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A module class with its own ``__init__``, an attribute assigned a container built in
        place (or a local name, which may hold one) and read after construction, holding (in
        its literal or put in later) something ``_Kinds.item`` may judge a layer or Parameter,
        or something built whose module attributes are read after construction."""
        candidates = [found for cls in info.init_classes for found in _container_items(info, cls)]
        if not candidates:
            return False
        read = _read_outside_init(info)
        grown = _grown_items(info)
        module_read: set[str] | None = None
        for attr, items in candidates:
            if attr in read:
                items = [*items, *grown.get(attr, ())]
                if any(_may_be_judged(info, e) for e in items):
                    return True
                if module_read is None:
                    module_read = _module_attributes_read(info)
                if attr in module_read and any(isinstance(e, ast.Call) for e in items):
                    return True
        return False

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.module_classes():
            init_methods = facts.construction_methods(cls)
            candidates = [
                a
                for a in cls.attr_assigns
                if isinstance(a.node, (cst.Assign, cst.AnnAssign))
                and a.method.name in init_methods
                and (_container_literal(a.value) or _local_container(a) is not None or _copied_parameter(a))
                and not (isinstance(a.node, cst.AnnAssign) and _says_callables(a.node.annotation))
            ]
            if not candidates:
                continue
            relatives = facts.family(cls)
            _, dynamic = registered_names(facts, relatives, _MODULE_REGISTRARS)
            uses = facts.attr_uses(relatives)
            covered = _registered_one_by_one(relatives, uses) if dynamic else set()
            methods = {name: fn for c in reversed(relatives) for name, fn in c.methods.items()}
            kinds = _Kinds(facts, cls, methods)
            seen: set[str] = set()
            for a in candidates:
                if a.name in seen or a.name in covered:
                    continue
                seen.add(a.name)
                mine = [u for u in uses if u.name == a.name]
                held = _held_kind(kinds, a, mine, methods, init_methods)
                if held is None or _registered_later(facts, relatives, a, mine, init_methods):
                    continue
                if _local_container(a) is not None and _local_kept(facts, a) or _before_module_init(a) or _hides_one(a):
                    continue
                if not any(u.method not in init_methods and not u.store or _feeds_hooks(u) for u in mine):
                    continue
                yield Hit(a.node, _message(a, held), cls, _fix(kinds, a, held, mine, methods))


_HOOK_REGISTRARS = {
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook",
}


def _feeds_hooks(u: AttrUse) -> bool:
    """A loop over the container that registers forward or backward hooks (``for layer, adapter in
    zip(blocks, self.adapters): layer.register_forward_hook(make_hook(adapter))``): the elements
    run at every forward, through the hooks."""
    for node in u.ancestors:
        if isinstance(node, cst.For) and any(n is u.node for n in find_all(node.iter, cst.CSTNode)):
            return any(
                isinstance(n.func, cst.Attribute) and n.func.attr.value in _HOOK_REGISTRARS
                for n in find_all(node.body, cst.Call)
            )
    return False


def _before_module_init(a: AttrAssign) -> bool:
    """Assigned before ``super().__init__()`` runs, where a ModuleList could not be assigned (and
    a layer would raise): kept out of the registry on purpose, as a shared layer or a list of
    metrics that the parent registers or drives."""
    inits: list[cst.Call] = []

    def enter(node: cst.CSTNode) -> None:
        func = node.func if isinstance(node, cst.Call) else None
        if isinstance(func, cst.Attribute) and func.attr.value == "__init__" and isinstance(func.value, cst.Call):
            if isinstance(func.value.func, cst.Name) and func.value.func.value == "super":
                inits.append(node)

    walk(a.method.node, enter)
    return bool(inits) and all(_precedes(a.node, init, a.method.node) for init in inits)


def _registered_one_by_one(relatives: tuple[ClassInfo, ...], uses: list[AttrUse]) -> set[str]:
    """The containers whose elements a registration with a computed name also registers
    (``self.add_module(f"layer{i}", layer)`` with ``self.layers.append(layer)`` in the same
    method, ``setattr(self, name, w)`` in a loop over ``self.weights``)."""
    covered: set[str] = set()
    for c in relatives:
        for stmt in c.node.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.params.params:
                covered |= _covered_in(stmt, stmt.params.params[0].name.value, uses)
    return covered


def _covered_in(method: cst.FunctionDef, instance: str, uses: list[AttrUse]) -> set[str]:
    covered: set[str] = set()
    stack: list[cst.CSTNode] = []

    def attrs_in(node: cst.CSTNode) -> set[str]:
        found: set[str] = set()
        walk(node, lambda n: found.add(n.attr.value) if self_attr(n, instance) else None)
        return found

    def enter(node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Call) and node.args:
            func, args = node.func, node.args
            registers = (
                self_attr(func, instance) in _MODULE_REGISTRARS and not isinstance(args[0].value, cst.SimpleString)
            ) or (
                isinstance(func, cst.Name) and func.value == "setattr" and len(args) >= 3
                and isinstance(args[0].value, cst.Name) and args[0].value.value == instance
                and not isinstance(args[1].value, cst.SimpleString)
            )
            if registers:
                value = args[-1].value
                covered.update(attrs_in(value))
                for loop in stack:
                    if isinstance(loop, (cst.For, cst.CompFor)):
                        covered.update(attrs_in(loop.iter))
                if isinstance(value, cst.Name):
                    for u in uses:
                        if u.method == method.name.value and any(
                            isinstance(e, cst.Name) and e.value == value.value
                            for e in (*_grown_with(u), *_elements(_assigned_value(u)))
                        ):
                            covered.add(u.name)
        stack.append(node)
        return True

    walk(method.body, enter, lambda node: stack.pop())
    return covered


def _assigned_value(use: AttrUse) -> cst.BaseExpression:
    """The value of ``self.x = value`` for a store use (an empty tuple otherwise)."""
    statement = use.ancestors[-2] if use.store and len(use.ancestors) >= 2 else None
    return statement.value if isinstance(statement, cst.Assign) else cst.Tuple([])


def _message(a: AttrAssign, held: str) -> str:
    kind = _container_kind(a)
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
    kinds: _Kinds, a: AttrAssign, held: str, mine: list[AttrUse], methods: dict[str, FunctionInfo]
) -> Fix | None:
    """The assigned container wrapped in nn.ModuleList / ModuleDict / ParameterList /
    ParameterDict, when everything put in it is a module (a Parameter) and a dict's keys are
    strings; an empty dict is left alone (its keys come later and may not be strings)."""
    facts, value = kinds.facts, a.value
    items = _assigned_items(a)
    for u in mine:
        items.extend((e, methods.get(u.method)) for e in _grown_with(u))
    if held == "parameter":
        fits = all(fn is not None and kinds.item(e, fn) == "parameter" for e, fn in items)
    else:
        fits = all(fn is not None and kinds.is_module(e, fn) for e, fn in items)
    spelling = torch_nn(facts, a.method.scope)
    if not fits or spelling is None:
        return None
    nn, imports = spelling
    is_dict = _container_kind(a) == "dict"
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


def _container_kind(a: AttrAssign) -> str:
    """"dict", "tuple" or "list": what the attribute is assigned."""
    value = a.value
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in ("list", "tuple", "dict"):
        return value.func.value
    local = _local_container(a)
    if local is not None:
        value = local[1][0]
    if isinstance(value, (cst.Dict, cst.DictComp)) or _empty_call(value) == "dict":
        return "dict"
    return "tuple" if isinstance(value, cst.Tuple) else "list"


def _assigned_items(a: AttrAssign) -> list[tuple[cst.BaseExpression, FunctionInfo]]:
    """What the assigned container holds when it is assigned: its literal's elements, or those
    of the local list it names and what the method put into that list."""
    local = _local_container(a)
    if local is None:
        return [(e, a.method) for e in _elements(a.value)]
    name, literals = local
    items = [e for lit in literals for e in _elements(lit)]
    for u in _local_uses(a.method, name):
        items.extend(_grown_with(u))
    for stmt, _ in a.method.assignments.get(name, []):
        if isinstance(stmt, cst.AugAssign):
            items.extend(_elements(stmt.value))
    return [(e, a.method) for e in items]


def _local_uses(method: FunctionInfo, name: str) -> list[AttrUse]:
    """Every read of the local ``name`` in a method, with its ancestors."""
    return [u for u in method.local_reads() if u.name == name]


def _local_container(a: AttrAssign) -> tuple[str, list[cst.BaseExpression]] | None:
    """``self.layers = layers`` (or ``list(layers)``) where every assignment of the local
    ``layers`` in the method is a container literal: the name and those literals."""
    value = _converter_arg(a.value) or a.value
    if not isinstance(value, cst.Name):
        return None
    assigned = a.method.assignments.get(value.value, [])
    literals = [v if v is not None else _unpacked(stmt, value.value) for stmt, v in assigned if not isinstance(stmt, cst.AugAssign)]
    if not literals or not all(_container_literal(v) for v in literals):
        return None
    return value.value, literals


def _hides_one(a: AttrAssign) -> bool:
    """``self._shared = [module]``: one module handed in, put in a list literal of its own. Such a
    list serves only to keep the module out of this class's registry: it is shared with, and
    registered by, its owner (a discriminator held by its loss, a base model's embedding)."""
    value = a.value
    if not isinstance(value, (cst.List, cst.Tuple)) or len(value.elements) != 1:
        return False
    element = value.elements[0].value
    return (
        isinstance(element, cst.Name)
        and _param(a.method, element.value) is not None
        and not a.method.assignments.get(element.value)
    )


def _copied_parameter(a: AttrAssign) -> bool:
    """``self.blocks = list(blocks)``, ``dict(heads)``: a constructor parameter copied into a
    plain container, the parameter reassigned at most from itself (``blocks = [blocks]``). What
    it holds is unknown here; it counts as layers when the elements are called as layers are."""
    arg = _converter_arg(a.value)
    param = _param(a.method, arg.value) if isinstance(arg, cst.Name) else None
    if param is None or _annotated_callables(param):
        return False
    name = arg.value
    return all(
        v is not None and _mentions_name(v, name) for _, v in a.method.assignments.get(name, [])
    )


def _annotated_callables(param: cst.Param) -> bool:
    """``fns: Sequence[Callable]``: the author says the elements are functions, not layers."""
    return param.annotation is not None and _says_callables(param.annotation)


def _says_callables(annotation: cst.Annotation) -> bool:
    """``Sequence[Callable]``, ``list[Callable[[GraphModule], object]]``: functions (hooks,
    callbacks), not layers."""
    return re.search(r"\bCallable\b", code_of(annotation.annotation)) is not None


def _mentions_name(expr: cst.CSTNode, name: str) -> bool:
    found = []
    walk(expr, lambda n: found.append(n) if isinstance(n, cst.Name) and n.value == name else None)
    return bool(found)


def _unpacked(stmt: cst.CSTNode, name: str) -> cst.BaseExpression | None:
    """The value ``name`` gets from ``a, b = [], []``."""
    if not (isinstance(stmt, cst.Assign) and isinstance(stmt.value, (cst.Tuple, cst.List))):
        return None
    for t in stmt.targets:
        if isinstance(t.target, (cst.Tuple, cst.List)) and len(t.target.elements) == len(stmt.value.elements):
            for el, v in zip(t.target.elements, stmt.value.elements):
                if isinstance(el.value, cst.Name) and el.value.value == name and not isinstance(v, cst.StarredElement):
                    return v.value
    return None


def _local_kept(facts: ModuleFacts, a: AttrAssign) -> bool:
    """The local list behind ``self.layers = layers`` is also handed to a call that may keep
    it (``self.net = nn.Sequential(*layers)``), not in the other branch of an ``if``: its layers
    are registered there."""
    uses = _local_uses(a.method, _local_container(a)[0])
    mine = next((u for u in uses if a.node in u.ancestors), None)
    conditions = branch_conditions(facts, mine.ancestors) if mine is not None else set()
    return any(_kept_elsewhere(u) and not contradicts(conditions, branch_conditions(facts, u.ancestors)) for u in uses)


def _container_literal(expr: cst.BaseExpression | None) -> bool:
    """A container built here: a literal, a comprehension, ``list()``, ``dict(dict())``,
    ``list(x for ...)``."""
    inner = _converter_arg(expr)
    return isinstance(expr, (cst.List, cst.Tuple, cst.Dict, cst.ListComp, cst.DictComp)) or bool(
        _empty_call(expr) or _converted(expr) or inner is not None and _container_literal(inner)
        or _concatenated(expr)
    )


def _concatenated(expr: cst.BaseExpression | None) -> bool:
    """``[...] + [...]``: two containers built here, joined."""
    return (
        isinstance(expr, cst.BinaryOperation)
        and isinstance(expr.operator, cst.Add)
        and _container_literal(expr.left)
        and _container_literal(expr.right)
    )


def _converter_arg(expr: cst.BaseExpression | None) -> cst.BaseExpression | None:
    """``x`` in ``list(x)`` / ``tuple(x)`` / ``dict(x)``."""
    if (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value in ("list", "tuple", "dict")
        and len(expr.args) == 1
        and not expr.args[0].keyword
        and not expr.args[0].star
    ):
        return expr.args[0].value
    return None


def _converted(expr: cst.BaseExpression | None) -> cst.BaseExpression | None:
    """The generator or comprehension in ``list(...)`` / ``tuple(...)`` / ``dict(...)``."""
    inner = _converter_arg(expr)
    return inner if isinstance(inner, (cst.GeneratorExp, cst.ListComp, cst.DictComp)) else None


def _elements(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(expr, (cst.List, cst.Tuple)):
        return [e.value for e in expr.elements]
    if isinstance(expr, cst.Dict):
        return [e.value for e in expr.elements if isinstance(e, cst.DictElement)]
    if isinstance(expr, (cst.ListComp, cst.GeneratorExp)):
        return [expr.elt]
    if isinstance(expr, cst.DictComp):
        return [expr.value]
    if _concatenated(expr):
        return _elements(expr.left) + _elements(expr.right)
    inner = _converter_arg(expr)
    if _concatenated(inner):
        return _elements(inner)
    inner = _converted(expr)
    if inner is not None:
        if isinstance(inner, cst.GeneratorExp) and expr.func.value == "dict":
            return [e.value for e in getattr(inner.elt, "elements", ())[1:2]]
        return _elements(inner)
    return []


def _held_kind(
    kinds: _Kinds, a: AttrAssign, mine: list[AttrUse], methods: dict[str, FunctionInfo], init_methods: set[str]
) -> str | None:
    """"layer" or "parameter" when the container holds constructed layers or Parameters (in its
    literal or put in later with append/extend/insert/``[k] = ...``/``+=``), else None."""
    items = _assigned_items(a)
    for u in mine:
        items.extend((e, methods.get(u.method)) for e in _grown_with(u))
    found = {kinds.item(e, fn) for e, fn in items if fn is not None and not _handed_elsewhere(kinds.facts, e, fn)}
    if _copied_parameter(a):
        found.add("unknown class")
    if "parameter" in found:
        return "parameter"
    if "layer" in found:
        return "layer"
    if "unknown class" in found and _elements_called(mine, init_methods, methods=methods):
        return "layer"
    built = [e for e, _ in items if isinstance(e, cst.Call)]
    return "layer" if built and _elements_called(mine, init_methods, calls=False) else None


def _handed_elsewhere(facts: ModuleFacts, expr: cst.BaseExpression, fn: FunctionInfo) -> bool:
    """The element is a local name that the method also passes to a call that may keep it
    (``set_module_by_path(net, path, wrapper)``, ``self.add_module(name, layer)``): the
    container only refers to a layer registered there."""
    if not isinstance(expr, cst.Name):
        return False
    method = fn.method or fn
    built = [stmt for stmt, v in method.assignments.get(expr.value, []) if isinstance(v, cst.Call)]
    for u in _local_uses(method, expr.value):
        if built and not any(_precedes(stmt, u.node, method.node) for stmt in built):
            continue  # an earlier binding of the name, not the element
        arg = next((n for n in reversed(u.ancestors) if isinstance(n, cst.Arg)), None)
        if arg is None or u.ancestors[-1] is not arg:
            continue
        call = _call_of(u, arg)
        func = call.func if call is not None else None
        if isinstance(func, cst.Attribute) and func.attr.value in _GROWERS or _rebinds(u, call, expr.value):
            continue
        if call is not None and _reads_attributes_only(facts, call, arg):
            continue
        if _kept_elsewhere(u):
            return True
    return False


def _reads_attributes_only(facts: ModuleFacts, call: cst.Call, arg: cst.Arg) -> bool:
    """``init_weights(layer, d)`` where the function, defined at this file's top level, only
    reads attributes of the parameter that gets the layer (``layer.weight``): it keeps nothing."""
    func = call.func
    helper = next(
        (f for f in facts.functions if isinstance(func, cst.Name) and f.name == func.value and f.scope.parent is facts.module_scope),
        None,
    )
    if helper is None or not isinstance(helper.node, cst.FunctionDef) or arg.star:
        return False
    params = [p.name.value for p in (*helper.node.params.posonly_params, *helper.node.params.params)]
    position = call.args.index(arg)
    name = arg.keyword.value if arg.keyword else params[position] if position < len(params) else None
    reads = helper.reads.get(name, []) if name else []
    bare: list[cst.Name] = []

    def enter(node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Attribute) and node.value in reads:
            return False
        if node in reads:
            bare.append(node)
        return True

    walk(helper.node.body, enter)
    return bool(reads) and not bare


def _precedes(first: cst.CSTNode, second: cst.CSTNode, root: cst.CSTNode) -> bool:
    """Whether ``first`` begins before ``second`` in the source of ``root``."""
    order: list[cst.CSTNode] = []
    walk(root, lambda n: order.append(n) if n is first or n is second else None)
    return bool(order) and order[0] is first


def _rebinds(use: AttrUse, call: cst.Call | None, name: str) -> bool:
    """``dec = Wrap(dec)``: the call's result replaces the name, so the wrapper, not the element
    handed to it, is what later goes into the container."""
    index = use.ancestors.index(call) if call in use.ancestors else 0
    statement = use.ancestors[index - 1] if index else None
    return isinstance(statement, cst.Assign) and statement.value is call and any(
        isinstance(t.target, cst.Name) and t.target.value == name for t in statement.targets
    )


def _elements_called(
    mine: list[AttrUse], init_methods: set[str], calls: bool = True, methods: dict[str, FunctionInfo] | None = None
) -> bool:
    """After construction, an element of the container is called as a layer is:
    ``self.layers[i](x)``, ``conv = self.convs[i]`` then ``conv(x)``, ``for layer in self.layers: x = layer(x)`` (also through
    ``zip``/``enumerate``/``.values()``/``.items()``), ``[h(x) for h in self.heads]``; or what
    only a module has is read from an element or the container (``layer.reset_parameters()``,
    ``self.layers.state_dict()``), the only evidence that counts when ``calls`` is False."""
    for u in mine:
        if u.store or u.method in init_methods:
            continue
        node: cst.CSTNode = u.node
        for parent in reversed(u.ancestors):
            if _module_attribute(parent) and parent.value is node and (node is u.node or isinstance(node, cst.Subscript)):
                return True
            if isinstance(parent, cst.Subscript) and parent.value is node:
                node = parent
                continue
            if isinstance(parent, cst.Assign) and parent.value is node and isinstance(node, cst.Subscript):
                names = {n.value for t in parent.targets for n in target_names(t.target)}
                if names and _calls_any(u.ancestors[0], names, calls, methods):  # ``conv = self.convs[i]`` ... ``conv(x)``
                    return True
                break
            if isinstance(parent, cst.Assign) and parent.value is node and node is not u.node:
                names = {n.value for t in parent.targets for n in target_names(t.target)}
                if _loop_calls(u.ancestors[0], names, calls, methods):  # ``blocks = list(zip(self.a, self.b))``
                    return True
                break
            if isinstance(parent, cst.Arg) and node is u.node and methods and _mapped_by_method(u, parent, methods):
                return True
            if isinstance(parent, cst.Call) and parent.func is node:
                if isinstance(node, cst.Subscript) and calls:
                    return True
                if isinstance(node, cst.Attribute):
                    node = parent
                    continue
                break
            if isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in ("items", "values"):
                node = parent
                continue
            if isinstance(parent, cst.Call) and isinstance(parent.func, cst.Name) and parent.func.value in ("zip", "enumerate", "reversed", "list"):
                node = parent
                continue
            if isinstance(parent, (cst.Arg, cst.Call)):
                node = parent
                continue
            if isinstance(parent, (cst.For, cst.CompFor)) and parent.iter is node:
                names = {n.value for n in target_names(parent.target)}
                scope = parent.body if isinstance(parent, cst.For) else u.ancestors[u.ancestors.index(parent) - 1]
                if _calls_any(scope, names, calls, methods):
                    return True
            break
    return False


def _loop_calls(
    root: cst.CSTNode, locals_: set[str], calls: bool, methods: dict[str, FunctionInfo] | None
) -> bool:
    """A loop over one of ``locals_`` (``for resnet, attn in blocks:``) calls its variables."""
    found = []

    def enter(node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.For, cst.CompFor)) and isinstance(node.iter, cst.Name) and node.iter.value in locals_:
            names = {n.value for n in target_names(node.target)}
            scope = node.body if isinstance(node, cst.For) else root
            if _calls_any(scope, names, calls, methods):
                found.append(node)
        return not found

    walk(root, enter)
    return bool(found)


def _mapped_by_method(use: AttrUse, arg: cst.Arg, methods: dict[str, FunctionInfo]) -> bool:
    """``map(self.forward_single, feats, self.scales)``: the container handed, after a method of
    the class, to a call that applies the method to its elements; the method calls the
    parameter that gets them."""
    call = _call_of(use, arg)
    if call is None or arg.keyword or not call.args or call.args[0] is arg:
        return False
    first = call.args[0].value
    method = methods.get(first.attr.value) if isinstance(first, cst.Attribute) and isinstance(first.value, cst.Name) else None
    if method is None or not isinstance(method.node, cst.FunctionDef):
        return False
    params = [p.name.value for p in (*method.node.params.posonly_params, *method.node.params.params)]
    position = call.args.index(arg)
    return position < len(params) and _calls_any(method.node.body, {params[position]})


# what only a module has: reading one of these from an element (or the container) shows that
# the elements are layers
_MODULE_ATTRIBUTES = {
    "parameters", "named_parameters", "buffers", "reset_parameters", "weight", "train", "eval",
    "state_dict", "load_state_dict", "requires_grad_", "zero_grad", "modules", "named_modules", "children",
}


def _module_attribute(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.Attribute) and node.attr.value in _MODULE_ATTRIBUTES


def _calls_any(
    node: cst.CSTNode, names: set[str], calls: bool = True, methods: dict[str, FunctionInfo] | None = None
) -> bool:
    """One of ``names`` is called (when ``calls``: also as ``map(f, xs)``, ``checkpoint(f, x)``,
    or handed to a method of ``methods`` that calls it) or has a module attribute read."""
    found = []

    def enter(n: cst.CSTNode) -> bool:
        if calls and isinstance(n, cst.Call) and isinstance(n.func, (cst.Name, cst.Attribute)):
            leaf = n.func.value if isinstance(n.func, cst.Name) else n.func.attr.value
            first = n.args[0].value if n.args and leaf in _CALLING else None
            if isinstance(n.func, cst.Name) and leaf in names or isinstance(first, cst.Name) and first.value in names:
                found.append(n)
        if calls and methods and isinstance(n, cst.Call) and _calls_handed(n, names, methods):
            found.append(n)
        elif _module_attribute(n) and isinstance(n.value, cst.Name) and n.value.value in names:
            found.append(n)
        return not found

    walk(node, enter)
    return bool(found)


# functions that call their first argument
_CALLING = {"map", "checkpoint"}


def _calls_handed(call: cst.Call, names: set[str], methods: dict[str, FunctionInfo]) -> bool:
    """``self.loss_of(encoder, x)`` where the method calls the parameter that gets ``encoder``."""
    func = call.func
    method = methods.get(func.attr.value) if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) else None
    if method is None or not isinstance(method.node, cst.FunctionDef):
        return False
    params = [p.name.value for p in (*method.node.params.posonly_params, *method.node.params.params)][1:]
    handed = set()
    for position, arg in enumerate(call.args):
        if isinstance(arg.value, cst.Name) and arg.value.value in names and not arg.star:
            handed.add(arg.keyword.value if arg.keyword else params[position] if position < len(params) else "")
    handed.discard("")
    return bool(handed) and _calls_any(method.node.body, handed)


def _wrapped_elements(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The elements of the literal in ``nn.ModuleDict({name: layer})``, a call of one argument."""
    if isinstance(expr, cst.Call) and len(expr.args) == 1 and not expr.args[0].keyword and not expr.args[0].star:
        return _elements(expr.args[0].value)
    return []


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
            return _elements(args[0]) or _wrapped_elements(args[0]) or [args[0]]
        if method in ("update", "setdefault") and args:
            return _elements(args[-1]) or _wrapped_elements(args[-1])
        return []
    if isinstance(parent, cst.Subscript) and parent.value is use.node and isinstance(grand, cst.AssignTarget):
        statement = anc[-3] if len(anc) >= 3 else None
        return [statement.value] if isinstance(statement, cst.Assign) else []
    if isinstance(parent, cst.AugAssign) and parent.target is use.node:
        return _elements(parent.value)
    return []


# nn.Module methods that return the module itself
_RETURN_SELF = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval",
                "requires_grad_", "apply", "type", "to_empty", "share_memory"}
# what a module is built with, moved to a device or mode, that only modules and tensors take
_MOVES = {"to", "cuda", "train", "eval", "requires_grad_"}
_COPIES = {"copy.deepcopy", "copy.copy"}
# functions that return the module they are given
_WRAPPERS = {
    "torch.nn.utils.weight_norm", "torch.nn.utils.spectral_norm",
    "torch.nn.utils.parametrizations.weight_norm", "torch.nn.utils.parametrizations.spectral_norm",
    "torch.nn.utils.parametrizations.orthogonal", "torch.nn.utils.parametrize.register_parametrization",
    "torch.nn.SyncBatchNorm.convert_sync_batchnorm",
}
# a constructor parameter that by its name holds a layer class or factory: block, norm_layer, ...
_LAYER_PARAM = re.compile(
    r"(^|_)(layer|block|module|model|norm|conv|cell|head|expert|encoder|decoder|net|branch|stage|discriminator)(s|es)?"
    r"(_?(cls|class|type|fn|factory|builder|ctor))?$"
    r"|_(cls|class)$"
)


# a factory function named for what it builds: build_conv_layer, get_motion_module, make_block
_BUILDER = re.compile(r"^_?(build|get|make|create|new)_(\w+_)?(layer|block|module|conv|norm|head|net|encoder|decoder|stage)s?$")


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


class _Kinds:
    """What an expression put in a container is: "parameter", a stateful "layer", or None."""

    def __init__(self, facts: ModuleFacts, cls: ClassInfo, methods: dict[str, FunctionInfo]) -> None:
        self.facts, self.cls, self.methods = facts, cls, methods

    def item(self, expr: cst.BaseExpression, fn: FunctionInfo, depth: int = 0) -> str | None:
        """"parameter" for ``nn.Parameter(...)``, "layer" for a constructed layer that holds state
        (directly, through ``.to(device)``/``.cuda()``, a copy, a local name assigned one, a
        layer class held by a name or a constructor parameter, or a helper that returns one)."""
        if depth > 3:
            return None
        if isinstance(expr, cst.Name):
            assigned = fn.assignments.get(expr.value, [])
            param = _param(fn.method or fn, expr.value)
            if not assigned and param is not None:
                return self._handed_in(param, fn.method or fn)
            found = {self.item(v, fn, depth + 1) for _, v in assigned if v is not None}
            return next((k for k in ("parameter", "layer", "unknown class") if k in found), None)
        if isinstance(expr, cst.IfExp):
            found = {self.item(e, fn, depth + 1) for e in (expr.body, expr.orelse) if not _is_none(e)}
            return next((k for k in ("parameter", "layer", "unknown class") if k in found), None)
        if not isinstance(expr, cst.Call):
            return None
        func = expr.func
        q = self.facts.qualname(func, fn.scope) or ""
        if q in _PARAMETERS:
            return "parameter"
        if isinstance(func, cst.Attribute) and func.attr.value in _RETURN_SELF and isinstance(func.value, (cst.Call, cst.Name)):
            inner = self.item(func.value, fn, depth + 1)
            if inner == "unknown class" and func.attr.value in _MOVES:
                return "layer"  # moved to a device as it is built: a module (a tensor's class resolves)
            return inner if inner in ("layer", "unknown class") else None
        if (q in _COPIES or q in _WRAPPERS) and expr.args:
            return self.item(expr.args[0].value, fn, depth + 1)
        if self.facts.is_module_class_expr(func, fn.scope):
            return None if _stateless(q, expr) else "layer"
        if self._layer_class(func, fn, depth):
            return "layer"
        held = self._held_by_attribute(func, fn, depth)
        if held:
            return held
        returned = self._returns_layer(func, fn, depth)
        if returned:
            return returned
        if self._unknown_class(func, q) or self._held_class_unknown(func, fn):
            return "unknown class"
        return None

    def _held_by_attribute(self, func: cst.BaseExpression, fn: FunctionInfo, depth: int) -> str | None:
        """``self.operator_block(...)`` where ``self.operator_block = operator_block`` keeps a
        constructor parameter that holds a layer class ("layer") or a class this file cannot
        resolve ("unknown class"), by its default, annotation or name."""
        attr = self_attr(func, fn.instance) if fn.instance else None
        assigns = self.cls.assigns(attr) if attr else []
        if not assigns or not all(isinstance(a.value, cst.Name) and _param(a.method, a.value.value) for a in assigns):
            return None
        if all(self._layer_class(a.value, a.method, depth) for a in assigns):
            return "layer"
        if all(self._held_class_unknown(a.value, a.method) for a in assigns):
            return "unknown class"
        return None

    def _handed_in(self, param: cst.Param, method: FunctionInfo) -> str | None:
        """What a constructor parameter holds (``copy.deepcopy(encoder_layer)``): "layer" when its
        annotation names a module class, "unknown class" when its name says layer or its
        annotation names a class this file cannot resolve (``base_metric: Metric``)."""
        annotation = param.annotation.annotation if param.annotation is not None else None
        if annotation is not None and _mentions_module(self.facts, annotation, method):
            return "layer"
        if _LAYER_PARAM.search(param.name.value) or annotation is not None and self._unresolved_class(annotation, method):
            return "unknown class"
        return None

    def _held_class_unknown(self, func: cst.BaseExpression, fn: FunctionInfo) -> bool:
        """A local name or constructor parameter that holds a class this file cannot resolve:
        ``block = TriangularBlock``, ``block_fn=Block`` (also through ``partial``)."""
        if not isinstance(func, cst.Name):
            return False
        method = fn.method or fn
        values = [v for _, v in fn.assignments.get(func.value, [])]
        if not values:
            param = _param(method, func.value)
            values = [param.default] if param is not None and param.default is not None else []
        return bool(values) and all(v is not None and self._unresolved_class(v, method) for v in values)

    def _unresolved_class(self, expr: cst.BaseExpression, fn: FunctionInfo) -> bool:
        if isinstance(expr, cst.IfExp):  # either of two classes, one of them at least unresolved
            branches = (expr.body, expr.orelse)
            return any(self._unresolved_class(e, fn) for e in branches) and all(
                self._unresolved_class(e, fn) or self._class_value(e, fn) for e in branches
            )
        if isinstance(expr, cst.Call) and (self.facts.qualname(expr.func, fn.scope) or "").endswith("partial") and expr.args:
            expr = expr.args[0].value
        if not isinstance(expr, (cst.Name, cst.Attribute)):
            return False
        leaf = expr.attr.value if isinstance(expr, cst.Attribute) else expr.value
        return leaf[:1].isupper() and self._unknown_class(expr, self.facts.qualname(expr, fn.scope) or "")

    def _unknown_class(self, func: cst.BaseExpression, qualname: str) -> bool:
        """A class-like callee (``VectorQuantize``, ``layers.ConvBlock``) whose module-ness cannot
        be told here: imported from a file or package this run does not see."""
        leaf = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "")
        if not leaf[:1].isupper():
            return bool(_BUILDER.match(leaf) or leaf == "build" and isinstance(func, cst.Attribute)) and self.facts.local_class(func) is None and (
                not qualname or self.facts.base_is_module(qualname)[0] is None
            )
        local = self.facts.local_class(func)
        if local is not None:
            return local.module_status is None
        if not qualname:
            return isinstance(func, cst.Name) and not hasattr(builtins, leaf)
        return self.facts.base_is_module(qualname)[0] is None

    def is_module(self, expr: cst.BaseExpression, fn: FunctionInfo) -> bool:
        """Certainly a module (a layer, stateless ones included), for the wrapping fix."""
        if isinstance(expr, cst.Name):
            values = [v for _, v in fn.assignments.get(expr.value, [])]
            return bool(values) and all(v is not None and self.is_module(v, fn) for v in values)
        if isinstance(expr, cst.Call) and self.facts.is_module_class_expr(expr.func, fn.scope):
            return True
        return self.item(expr, fn) == "layer"

    def _layer_class(self, func: cst.BaseExpression, fn: FunctionInfo, depth: int) -> bool:
        """``func`` names a layer class: a local name assigned only layer classes
        (``block = Bottleneck if deep else BasicBlock``), or a parameter of the method that holds
        one by its default, its annotation, the arguments this file passes it, or its name."""
        if not isinstance(func, cst.Name):
            return False
        name = func.value
        values = [v for _, v in fn.assignments.get(name, [])]
        if values:
            return all(v is not None and self._class_value(v, fn) for v in values)
        method = fn.method or fn
        param = _param(method, name)
        if param is None or name in fn.scope.bound and fn is not method:
            return False
        default = param.default
        if default is not None and not (isinstance(default, cst.Name) and default.value == "None"):
            return self._class_value(default, method)
        if param.annotation is not None and _mentions_module(self.facts, param.annotation.annotation, method):
            return True
        passed = self._passed_to(method, name)
        if any(self._class_value(v, None) for v in passed):
            return True
        if passed and all(isinstance(v, (cst.Lambda, cst.BaseString, cst.Integer, cst.Float)) for v in passed):
            return False
        return bool(_LAYER_PARAM.search(name))

    def _class_value(self, expr: cst.BaseExpression, fn: FunctionInfo | None) -> bool:
        """A module class (``nn.BatchNorm2d``, ``partial(nn.LayerNorm, eps=1e-6)``, either of two)."""
        scope = fn.scope if fn else self.facts.module_scope
        if isinstance(expr, cst.IfExp):
            return self._class_value(expr.body, fn) and self._class_value(expr.orelse, fn)
        if isinstance(expr, cst.Call) and (self.facts.qualname(expr.func, scope) or "").endswith("partial") and expr.args:
            expr = expr.args[0].value
        if not isinstance(expr, (cst.Name, cst.Attribute)):
            return False
        if not self.facts.is_module_class_expr(expr, scope):
            return False
        return not _stateless(self.facts.qualname(expr, scope) or "", None)

    def _passed_to(self, method: FunctionInfo, name: str) -> list[cst.BaseExpression]:
        """The arguments this file passes for parameter ``name`` of the class's ``__init__``:
        ``ResNet(Bottleneck, [3, 4, 6, 3])``, ``super().__init__(block=BasicBlock)``."""
        if method.name != "__init__" or not isinstance(method.node, cst.FunctionDef):
            return []
        params = [p.name.value for p in (*method.node.params.posonly_params, *method.node.params.params)][1:]
        out = []
        for call in self.facts.calls:
            func = call.node.func
            target = self.facts.local_class(func) if isinstance(func, cst.Name) else None
            is_super = (
                isinstance(func, cst.Attribute)
                and func.attr.value == "__init__"
                and isinstance(func.value, cst.Call)
                and isinstance(func.value.func, cst.Name)
                and func.value.func.value == "super"
                and call.cls is not None
                and any(self.facts.local_class(b) is self.cls for b in call.cls.bases)
            )
            if target is not self.cls and not is_super:
                continue
            position = 0
            for arg in call.node.args:
                if arg.star:
                    break
                if arg.keyword is not None:
                    if arg.keyword.value == name:
                        out.append(arg.value)
                elif position < len(params):
                    if params[position] == name:
                        out.append(arg.value)
                    position += 1
        return out

    def _returns_layer(self, func: cst.BaseExpression, fn: FunctionInfo, depth: int) -> str | None:
        """What a helper of this file returns on every path, when that is a layer ("layer") or
        a layer or an unresolved class ("unknown class"): a function, a function or lambda
        defined in the method, or a method called on self."""
        returns: list[cst.BaseExpression | None] = []
        helper = None
        if isinstance(func, cst.Name):
            helper = next((f for f in self.facts.functions if f.name == func.value and f.scope.parent is fn.scope), None)
            if helper is None and func.value not in fn.scope.bound:
                helper = next(
                    (f for f in self.facts.functions if f.name == func.value and f.scope.parent is self.facts.module_scope),
                    None,
                )
            values = [v for stmt, v in fn.assignments.get(func.value, []) if not _rewraps(stmt, func.value)]
            if helper is None and values and all(isinstance(v, cst.Lambda) for v in values):
                returns, helper = [v.body for v in values], fn
            elif helper is None and not values and func.value not in fn.scope.bound:
                lambdas = _module_lambdas(self.facts, func.value)
                helper = next((f for f in self.facts.functions if lambdas and f.node is lambdas[0]), None)
                returns = [v.body for v in lambdas]
        elif isinstance(func, cst.Attribute) and fn.instance and self_attr(func, fn.instance):
            helper = self.methods.get(func.attr.value)
        if helper is None or (helper is fn and not returns):
            return None
        if not returns and isinstance(helper.node, cst.FunctionDef):
            returns = _return_values(helper.node)
        found = {self.item(v, helper, depth + 1) if v is not None else None for v in returns}
        if not found or None in found or "parameter" in found:
            return None
        return "layer" if found == {"layer"} else "unknown class"


def _rewraps(stmt: cst.CSTNode, name: str) -> bool:
    """``f = cache_fn(f)``, ``f, g = map(cache_fn, (f, g))``: the name rebound to a wrapper of
    itself, which calls what it held."""
    value = stmt.value if isinstance(stmt, cst.Assign) else None
    return isinstance(value, cst.Call) and _mentions_name(value, name)


def _module_lambdas(facts: ModuleFacts, name: str) -> list[cst.Lambda]:
    """The lambdas a top-level ``name = lambda ...: ...`` binds, when every top-level assignment
    of ``name`` is one."""
    values = [
        stmt.value
        for line in facts.module.body if isinstance(line, cst.SimpleStatementLine)
        for stmt in line.body
        if isinstance(stmt, cst.Assign) and any(isinstance(t.target, cst.Name) and t.target.value == name for t in stmt.targets)
    ]
    return values if values and all(isinstance(v, cst.Lambda) for v in values) else []


def _stateless(qualname: str, call: cst.Call | None) -> bool:
    """A torch.nn layer with no parameters, buffers or train/eval behaviour (a loss without
    ``weight=``): nothing is lost when it is kept in a plain list."""
    if not qualname.startswith("torch.nn."):
        return False
    leaf = qualname.rsplit(".", 1)[-1]
    if leaf in _STATELESS:
        return True
    return leaf.endswith("Loss") and not (call is not None and any(find_arg(call, k)[0] for k in _LOSS_WEIGHTS))


def _param(fn: FunctionInfo, name: str) -> cst.Param | None:
    if not isinstance(fn.node, cst.FunctionDef):
        return None
    params = fn.node.params
    return next((p for p in (*params.posonly_params, *params.params, *params.kwonly_params) if p.name.value == name), None)


def _mentions_module(facts: ModuleFacts, annotation: cst.BaseExpression, fn: FunctionInfo) -> bool:
    """An annotation naming a module class anywhere (``Type[nn.Module]``, ``Callable[...,
    nn.Module]``, ``type[Block]``)."""
    found = []

    def enter(node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.Name, cst.Attribute)) and facts.is_module_class_expr(node, fn.scope):
            found.append(node)
            return False
        return not found

    walk(annotation, enter)
    return bool(found)


def _return_values(fn: cst.FunctionDef) -> list[cst.BaseExpression | None]:
    """The values of the ``return`` statements of a function (not of nested functions)."""
    out: list[cst.BaseExpression | None] = []

    def enter(node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)) and node is not fn:
            return False
        if isinstance(node, cst.Return):
            out.append(node.value)
        return True

    walk(fn, enter)
    return out


# --- registration after the fact -----------------------------------------------------------------


def _registered_later(
    facts: ModuleFacts, relatives: list[ClassInfo], a: AttrAssign, mine: list[AttrUse], init_methods: set[str]
) -> bool:
    """The container is registered another way: the attribute is reassigned to something built
    from a call (``nn.ModuleList(self.layers)``, not ``list(self.layers)``, nor in the other
    branch of an ``if``, nor under a test of something else that the container's assignment is
    not under, nor before it), or, at construction, it is passed to a call that may keep it
    (``nn.Sequential(*self.layers)``, a registering helper)."""
    mine_store = next((u for u in mine if u.store and a.node in u.ancestors), None)
    mine_branches = branch_conditions(facts, mine_store.ancestors) if mine_store is not None else set()
    bases = facts.local_bases(relatives[0])
    for c in relatives:
        for other in c.assigns(a.name):
            value = other.value
            if other is a or not isinstance(value, cst.Call) or _empty_call(value) or _converter_arg(value) is not None:
                continue
            if _runs_before(other, a, c in bases) or c is not relatives[0] and (
                _overrides(a, other) if c in bases else _overrides(other, a)
            ):
                continue
            store = next((u for u in mine if u.store and other.node in u.ancestors), None)
            theirs = branch_conditions(facts, store.ancestors) if store is not None else set()
            if contradicts(mine_branches, theirs) or store is not None and _tested_elsewhere(store, mine_store, a.name):
                continue
            return True
    earlier = {id(u) for c in bases for u in c.uses(with_locals=False)} if a.method.name == "__init__" and not _before_module_init(a) else set()
    for u in mine:
        if u.store or u.method not in init_methods or u.method == "__init__" and id(u) in earlier:
            continue
        if _kept_elsewhere(u):
            return True
    return False


def _runs_before(other: AttrAssign, a: AttrAssign, in_base: bool) -> bool:
    """``other`` runs before ``a`` and is overwritten by it: earlier in the same method, or in a
    base's ``__init__`` that ``a``'s ``__init__`` calls (``super().__init__()``) before it."""
    if other.method is a.method:
        return _precedes(other.node, a.node, a.method.node)
    return in_base and other.method.name == "__init__" == a.method.name and not _before_module_init(a)


def _overrides(lower: AttrAssign, upper: AttrAssign) -> bool:
    """``lower`` is in a subclass's override of the method ``upper`` is in, one that does not call
    the method it overrides (``super()._init_layers()``): ``upper`` never runs for an instance of
    the subclass, nor ``lower`` for one of the base."""
    if lower.method.name != upper.method.name or lower.method.name == "__init__":
        return False
    found: list[cst.CSTNode] = []

    def enter(node: cst.CSTNode) -> None:
        func = node.func if isinstance(node, cst.Call) else None
        if isinstance(func, cst.Attribute) and func.attr.value == upper.method.name and isinstance(func.value, cst.Call):
            found.append(node)

    walk(lower.method.node, enter)
    return not found


def _tested_elsewhere(store: AttrUse, mine_store: AttrUse | None, name: str) -> bool:
    """The reassignment sits under an ``if`` that the container's assignment is not under and
    whose test reads something besides the container (``if self.complex_data: self.norm =
    nn.ModuleList(...)``, not ``if self.norm is not None:``): it registers it only sometimes."""
    outer = {id(n) for n in mine_store.ancestors} if mine_store is not None else set()
    return any(
        isinstance(node, cst.If) and id(node) not in outer and _reads_besides(node.test, name)
        for node in store.ancestors
    )


def _reads_besides(test: cst.BaseExpression, name: str) -> bool:
    """Whether ``test`` reads an attribute other than ``name`` or a name that is not a builtin."""
    found: list[cst.CSTNode] = []

    def enter(node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            if node.attr.value != name:
                found.append(node)
            return False
        if isinstance(node, cst.Name) and not hasattr(builtins, node.value):
            found.append(node)
        return not found

    walk(test, enter)
    return bool(found)


# calls that pass a container's elements on unchanged, as in ``nn.Sequential(*list(self.layers))``
_PASS_THROUGH = {"list", "tuple", "dict", "reversed", "sorted", "iter"}


def _kept_elsewhere(use: AttrUse) -> bool:
    """The container itself (not something read from it) is passed to a call that may keep it:
    ``nn.Sequential(*self.layers)``, ``nn.ModuleList(self.layers + [head])``, a registering
    helper, ``nn.ModuleList([m for m in self.layers])``. ``Adam(self.layers[0].parameters())``
    or ``len(self.layers)`` only read it."""
    node: cst.CSTNode = use.node
    for parent in reversed(use.ancestors):
        if isinstance(parent, cst.Arg):
            call = _call_of(use, parent)
            if call is None:
                return False
            name = call.func.value if isinstance(call.func, cst.Name) else None
            if name in _PASS_THROUGH:
                node = call
                continue
            return name not in _READERS and not _result_dropped(use, call) and not _tested(use, call)
        if isinstance(parent, cst.CompFor) and parent.iter is node:
            node = parent
            continue
        if isinstance(parent, (cst.ListComp, cst.GeneratorExp)) and node is parent.for_in:
            if not _identity_comprehension(parent):
                return False
        elif isinstance(parent, (cst.Element, cst.StarredElement, cst.List, cst.Tuple)):
            pass
        elif isinstance(parent, cst.BinaryOperation):
            pass
        elif not isinstance(parent, cst.Call):
            return False
        node = parent
    return False


def _result_dropped(use: AttrUse, call: cst.Call) -> bool:
    """``reset(self.layers)`` as a statement of its own, given neither the instance nor called
    on it: a helper that only reads or re-initialises the layers; registering them would need
    the module."""
    index = use.ancestors.index(call)
    if index == 0 or not isinstance(use.ancestors[index - 1], cst.Expr) or use.local:
        return False
    instance = use.node.value.value if isinstance(use.node, cst.Attribute) and isinstance(use.node.value, cst.Name) else None
    func = call.func
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == instance:
        return False
    return not any(isinstance(a.value, cst.Name) and a.value.value == instance for a in call.args)


def _tested(use: AttrUse, call: cst.Call) -> bool:
    """``if exists(layers):``, ``assert valid(layers)``: a call whose result is only a condition."""
    index = use.ancestors.index(call)
    parent = use.ancestors[index - 1] if index else None
    if isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Not) or isinstance(parent, cst.BooleanOperation):
        return True
    return isinstance(parent, (cst.If, cst.While, cst.Assert)) and parent.test is call


def _call_of(use: AttrUse, arg: cst.Arg) -> cst.Call | None:
    index = use.ancestors.index(arg)
    call = use.ancestors[index - 1] if index else None
    return call if isinstance(call, cst.Call) else None


def _identity_comprehension(comp: cst.ListComp | cst.GeneratorExp) -> bool:
    """``[m for m in xs]``: the elements themselves, not something read from them."""
    return (
        isinstance(comp.elt, cst.Name)
        and isinstance(comp.for_in.target, cst.Name)
        and comp.elt.value == comp.for_in.target.value
        and comp.for_in.inner_for_in is None
    )


_CONTAINER_NODES = (ast.List, ast.Tuple, ast.Dict, ast.ListComp, ast.DictComp)


def _container_items(info: TreeInfo, cls: ast.ClassDef) -> list[tuple[str, list[ast.expr]]]:
    """The screen's reading of the candidates: each attribute that, in a method of the class, is
    assigned ``<literal, comprehension or call of list/tuple/dict/OrderedDict>`` or ``name`` (in
    ``list()`` etc. too) where the method also assigns ``name``, with what the container may hold
    there (a ``list(param)`` copy holds a stand-in name: what it holds is unknown)."""
    found: list[tuple[str, list[ast.expr]]] = []
    for method in methods(cls):
        nodes = info.subtree(method)
        assigned = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for node in nodes:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            attrs = {n.attr for t in targets for n in ast_nodes(t) if isinstance(n, ast.Attribute)}
            if not attrs:
                continue
            value = node.value
            converted = _converter_arg_ast(value)
            if converted is not None and isinstance(converted, ast.Name):
                items = [converted]  # list(blocks): a copied parameter, or a local container
            elif isinstance(value, ast.Name) and value.id in assigned:
                items = _local_items(nodes, value.id)
            elif _built_container(value):
                items = _screen_elements(value) + _screen_elements(converted) if converted is not None else _screen_elements(value)
            else:
                continue
            found.extend((attr, items) for attr in attrs)
    return found


def _converter_arg_ast(expr: ast.expr) -> ast.expr | None:
    """``x`` in ``list(x)`` / ``tuple(x)`` / ``dict(x)`` (``_converter_arg`` over CPython's ast)."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in ("list", "tuple", "dict"):
        if len(expr.args) == 1 and not expr.keywords and not isinstance(expr.args[0], ast.Starred):
            return expr.args[0]
    return None


def _built_container(expr: ast.expr) -> bool:
    """``_container_literal`` over CPython's ast: a literal, a comprehension, ``list()``,
    ``dict(dict())``, ``list(x for ...)``."""
    if isinstance(expr, _CONTAINER_NODES):
        return True
    if isinstance(expr, ast.Call) and not expr.args and not expr.keywords and _callee_leaf(expr) in ("list", "dict", "OrderedDict"):
        return True
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _built_container(expr.left) and _built_container(expr.right)
    inner = _converter_arg_ast(expr)
    return inner is not None and (isinstance(inner, ast.GeneratorExp) or _built_container(inner))


def _local_items(nodes: list[ast.AST], name: str) -> list[ast.expr]:
    """What a method may put into its local container ``name``: the elements of what it assigns
    it, and what it appends, inserts, extends, updates, stores or adds into it."""
    items: list[ast.expr] = []
    for node in nodes:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast_nodes(t)):
                items += _screen_elements(node.value) + [e for v in _screen_elements(node.value) for e in _screen_elements(v)]
    return items + _grown_items_of(nodes, lambda owner: isinstance(owner, ast.Name) and owner.id == name)


def _grown_items(info: TreeInfo) -> dict[str, list[ast.expr]]:
    """For each attribute, what ``<x>.<attr>.append(v)`` and the like put into it in the file."""
    found: dict[str, list[ast.expr]] = {}
    for node in info.nodes:
        owner = _grown_owner(node)
        if isinstance(owner, ast.Attribute):
            found.setdefault(owner.attr, []).extend(_grown_items_of([node], lambda o: True))
    return found


def _grown_owner(node: ast.AST) -> ast.expr | None:
    """The container a statement or call grows: ``<c>.append(...)`` (``insert``, ``extend``,
    ``update``, ``setdefault``), ``<c>[k] = v``, ``<c> += ...``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _GROWING:
        return node.func.value
    if isinstance(node, ast.Assign):
        subscripts = [t for t in node.targets if isinstance(t, ast.Subscript)]
        return subscripts[0].value if subscripts else None
    if isinstance(node, ast.AugAssign):
        return node.target
    return None


def _grown_items_of(nodes: list[ast.AST], owned) -> list[ast.expr]:
    """What the growing statements and calls among ``nodes`` whose container ``owned`` accepts
    put into it."""
    items: list[ast.expr] = []
    for node in nodes:
        owner = _grown_owner(node)
        if owner is None or not owned(owner):
            continue
        if isinstance(node, ast.Call):
            for arg in node.args:
                items += [arg, *_screen_elements(arg)]
        elif isinstance(node, ast.Assign):
            items.append(node.value)
        else:
            items += _screen_elements(node.value)
    return items


_GROWING = {"append", "insert", "extend", "update", "setdefault"}


def _screen_elements(expr: ast.expr) -> list[ast.expr]:
    """``_elements`` over CPython's ast, wider: a literal's elements (a dict's values), a
    comprehension's element (and a pair's parts), a call's arguments' elements."""
    if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
        return [e.value if isinstance(e, ast.Starred) else e for e in expr.elts]
    if isinstance(expr, ast.Dict):
        return list(expr.values)
    if isinstance(expr, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
        return [expr.elt, *(expr.elt.elts if isinstance(expr.elt, ast.Tuple) else ())]
    if isinstance(expr, ast.DictComp):
        return [expr.value]
    if isinstance(expr, ast.Call):
        return [e for a in expr.args for e in _screen_elements(a)]
    if isinstance(expr, ast.BinOp):
        return _screen_elements(expr.left) + _screen_elements(expr.right)
    return []


def _may_be_judged(info: TreeInfo, item: ast.expr) -> bool:
    """Whether ``_Kinds.item`` may take ``item`` for a layer or Parameter: a name, a conditional
    or a call, but not a call of a builtin the file does not bind (``dict(...)``)."""
    if isinstance(item, (ast.Name, ast.IfExp)):
        return True
    if not isinstance(item, ast.Call):
        return False
    func = item.func
    return not (isinstance(func, ast.Name) and hasattr(builtins, func.id) and not info.binds(func.id))


def _module_attributes_read(info: TreeInfo) -> set[str]:
    """The attributes from which a function not named ``__init__`` reads what only a module has
    (``_elements_called`` without calls): ``<x>.<attr>.weight``, ``<x>.<attr>[i].weight``, a loop
    over the attribute reading ``.weight`` from its variable in the loop, or ``conv =
    <x>.<attr>[i]`` with ``conv.weight`` read."""
    found: set[str] = set()
    functions = [fn for fn in info.functions if fn.name != "__init__"]
    read_from = {
        node.value.id
        for fn in functions for node in info.subtree(fn)
        if isinstance(node, ast.Attribute) and node.attr in _MODULE_ATTRIBUTES and isinstance(node.value, ast.Name)
    }
    for fn in functions:
        for node in info.subtree(fn):
            if isinstance(node, ast.Attribute) and node.attr in _MODULE_ATTRIBUTES:
                owner = node.value
                while isinstance(owner, ast.Subscript):
                    owner = owner.value
                if isinstance(owner, ast.Attribute):
                    found.add(owner.attr)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                loops = [node] if isinstance(node, (ast.For, ast.AsyncFor)) else node.generators
                body = node.body if isinstance(node, (ast.For, ast.AsyncFor)) else [node]
                read = {n.value.id for b in body for n in ast_nodes(b) if isinstance(n, ast.Attribute) and n.attr in _MODULE_ATTRIBUTES and isinstance(n.value, ast.Name)}
                for loop in loops:
                    if plain_names(loop.target) & read:
                        found |= {n.attr for n in ast_nodes(loop.iter) if isinstance(n, ast.Attribute)}
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Subscript):
                if any(plain_names(t) & read_from for t in node.targets):
                    found |= {n.attr for n in ast_nodes(node.value) if isinstance(n, ast.Attribute)}
    return found


def _read_outside_init(info: TreeInfo) -> set[str]:
    """The attributes read (``<name>.<attr>`` not as a target) in a function not named
    ``__init__``, or iterated by a loop that registers hooks (``_feeds_hooks``): a candidate is
    reported only when its elements are used after construction."""
    found: set[str] = set()
    seen: set[int] = set()  # the nodes of functions already read (a nested function's are)
    for fn in info.functions:
        if fn.name != "__init__" and id(fn) not in seen:
            for n in info.subtree(fn):
                seen.add(id(n))
                if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load) and isinstance(n.value, ast.Name):
                    found.add(n.attr)
    for loop in info.nodes:
        if isinstance(loop, ast.For) and any(
            isinstance(n, ast.Call) and _callee_leaf(n) in _HOOK_REGISTRARS for n in info.subtree(loop)
        ):
            found |= {n.attr for n in info.subtree(loop.iter) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    return found


def _callee_leaf(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
