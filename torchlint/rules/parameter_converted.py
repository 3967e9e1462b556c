"""TL103 parameter-converted: ``self.w = nn.Parameter(t).to(device)`` keeps a plain tensor, not the
Parameter; ``self.w = self.w.cuda()`` after ``self.w = nn.Parameter(t)`` raises at construction."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import partial

import libcst as cst

from torchlint.edits import render
from torchlint.facts import (
    AttrAssign,
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    find_arg,
    references_attr,
    self_attr,
    walk,
)
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo, ast_nodes

PARAMETER = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}
# methods of a Parameter that return the Parameter itself or something that is not a tensor
_NOT_CONVERSIONS = {
    "requires_grad_", "share_memory_", "retain_grad", "register_hook", "register_post_accumulate_grad_hook",
    "size", "dim", "ndimension", "numel", "nelement", "item", "tolist", "numpy", "data_ptr",
    "element_size", "stride", "storage", "untyped_storage", "get_device", "is_contiguous",
    "is_floating_point", "is_complex", "is_shared", "equal", "allclose",
}
_REGISTRARS = ("register_parameter", "register_buffer")


class ParameterConverted(Rule):
    code = "TL103"
    name = "parameter-converted"
    summary = "self.w = nn.Parameter(...).to()/.cuda()/.double()/...: a plain tensor, not a registered parameter"
    needles = ("Parameter",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """In a class with a base: an ``nn.Parameter(...)`` call converted in place or bound to a
        local name (which may be converted), or an attribute assigned an expression of itself."""
        for cls in info.based_classes:
            nodes = info.subtree(cls)
            if any(_converts_parameter(info, n) or _assigns_own_expression(n) for n in nodes):
                return True
        return False

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.module_classes():
            registered = _rewrapped_or_registered(facts, cls)
            init_methods = facts.construction_methods(cls)
            deleted: set[str] | None = None  # read only for a name a Parameter held before
            for k, a in enumerate(cls.attr_assigns):
                if not isinstance(a.node, (cst.Assign, cst.AnnAssign)) or a.value is None:
                    continue
                converted = _converted_parameter(facts, a.method, a.value)
                if converted and a.name not in registered:
                    yield Hit(a.node, _message(a.name, converted), cls, _fix(facts, converted))
                    continue
                if not _parameter_before(facts, cls, k, init_methods):
                    continue
                if deleted is None:
                    deleted = _deletes_parameters(facts, cls)
                if a.name in deleted:
                    continue
                construction = a.method.name in init_methods
                what = _reassigned_plain(facts, a, construction)
                if what:
                    when = "whenever it converts (another device or dtype)" if what.startswith(".") else "whenever it runs"
                    yield Hit(
                        a.node,
                        f"self.{a.name} is an nn.Parameter, and {_spell(what, a.name)} returns a plain "
                        f"tensor: assigning it back raises TypeError (\"cannot assign ... as parameter\") "
                        f"{when}; {_advice(what)}",
                        cls,
                    )


def _spell(what: str, name: str) -> str:
    if what.startswith("."):
        return f"self.{name}{what}()"
    if what == "arithmetic":
        return f"arithmetic on self.{name}"
    return f"{what}(self.{name})"


def _advice(what: str) -> str:
    if what.startswith("."):
        return "move the whole module (model.to(device)) or convert the tensor before wrapping it"
    return "compute the value into a local name where it is used, or wrap it: nn.Parameter(...) at construction"


def _parameter_before(facts: ModuleFacts, cls: ClassInfo, k: int, init_methods: set[str]) -> bool:
    """Whether ``self.<name>`` already holds an ``nn.Parameter`` when ``cls.attr_assigns[k]`` runs:
    assigned earlier in the same method, in construction code when this runs later, or in the
    construction code of a base class in the file."""
    a = cls.attr_assigns[k]
    later = a.method.name not in init_methods
    for j, other in enumerate(cls.attr_assigns):
        if other.name != a.name or not _parameter_source(facts, other.method, other.value):
            continue
        if (other.method is a.method and j < k) or (later and other.method.name in init_methods):
            return True
    for base in facts.local_bases(cls):
        construction = facts.construction_methods(base)
        for other in base.assigns(a.name):
            if other.method.name in construction and _parameter_source(facts, other.method, other.value):
                return True
    return False


def _deletes_parameters(facts: ModuleFacts, cls: ClassInfo) -> set[str]:
    """Names the classes ``del self.<name>`` (weight-norm style code that re-sets the attribute
    as a plain tensor afterwards); every name when they touch ``self._parameters`` directly."""
    names: set[str] = set()
    for c in facts.family(cls):
        for fn in c.methods.values():
            instance = fn.instance
            if instance and references_attr(fn.node, instance, "_parameters"):
                return {a.name for a in cls.attr_assigns}
            for node in _dels(fn.node):
                for target in _del_targets(node.target):
                    name = self_attr(target, instance)
                    if name:
                        names.add(name)
    return names


def _dels(node: cst.CSTNode) -> Iterator[cst.Del]:
    found: list[cst.Del] = []
    walk(node, lambda n: found.append(n) if isinstance(n, cst.Del) else True)
    return iter(found)


def _del_targets(target: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    if isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield el.value
    else:
        yield target


def _fix(facts: ModuleFacts, converted: tuple[cst.BaseExpression, cst.Call]) -> Fix | None:
    """``nn.Parameter(t).to(d)`` -> ``nn.Parameter(t.to(d))``: the conversion moved onto the data,
    when it is a method called on the Parameter construction itself."""
    expr, parameter = converted
    if not (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.value is parameter):
        return None
    data, maybe = find_arg(parameter, "data", 0)
    if data is None or maybe:
        return None
    value = data.value
    if not isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) and not value.lpar:
        value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    moved = expr.with_changes(func=expr.func.with_changes(value=value))
    args = [arg.with_changes(value=moved) if arg is data else arg for arg in parameter.args]
    fixed = parameter.with_changes(args=args)
    method = expr.func.attr.value
    return Fix(
        f"Move .{method}() inside the Parameter", (NodeEdit(expr, partial(render, facts.module, expr, fixed)),), safe=False
    )


def _converted_parameter(
    facts: ModuleFacts, fn: FunctionInfo, expr: cst.BaseExpression, depth: int = 0
) -> tuple[cst.BaseExpression, cst.Call] | None:
    """``(conversion, Parameter call)`` when ``expr`` is computed from an ``nn.Parameter(...)``
    construction (``.to()``, ``.cuda()``, ``* 0.02``, ``[0]``): a new tensor, not the Parameter."""
    if isinstance(expr, cst.IfExp):
        return _converted_parameter(facts, fn, expr.body, depth) or _converted_parameter(facts, fn, expr.orelse, depth)
    if isinstance(expr, cst.Name) and depth < 2:
        for _, value in fn.assignments.get(expr.value, []):
            found = value is not None and _converted_parameter(facts, fn, value, depth + 1)
            if found:
                return found
        return None
    operands: list[cst.BaseExpression] = []
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
        method = expr.func.attr.value
        if method not in _NOT_CONVERSIONS and not method.endswith("_"):
            operands = [expr.func.value]
    elif isinstance(expr, cst.BinaryOperation):
        operands = [expr.left, expr.right]
    elif isinstance(expr, cst.Subscript):
        operands = [expr.value]
    elif isinstance(expr, cst.UnaryOperation) and not isinstance(expr.operator, cst.Not):
        operands = [expr.expression]
    for operand in operands:
        source = _parameter_source(facts, fn, operand, depth)
        if source:
            return expr, source
        inner = _converted_parameter(facts, fn, operand, depth)
        if inner:
            return expr, inner[1]
    return None


def _parameter_source(
    facts: ModuleFacts, fn: FunctionInfo, expr: cst.BaseExpression | None, depth: int = 0
) -> cst.Call | None:
    """The ``nn.Parameter(...)`` call an expression is (directly, or through a local name)."""
    if isinstance(expr, cst.Call) and facts.qualname(expr.func, fn.scope) in PARAMETER:
        return expr
    if isinstance(expr, cst.Name) and depth < 2:
        values = [v for _, v in fn.assignments.get(expr.value, [])]
        if len(values) == 1:
            return _parameter_source(facts, fn, values[0], depth + 1)
    return None


def _rewrapped_or_registered(facts: ModuleFacts, cls: ClassInfo) -> set[str]:
    """Attributes that another statement registers: ``self.w = nn.Parameter(self.w)``,
    ``self.register_parameter("w", ...)``."""
    names = set()
    for a in cls.attr_assigns:
        source = _parameter_source(facts, a.method, a.value)
        instance = a.method.instance
        if source and instance and references_attr(source, instance, a.name):
            names.add(a.name)
    for call in cls.self_calls:
        func = call.node.func
        if isinstance(func, cst.Attribute) and func.attr.value in _REGISTRARS and call.node.args:
            key = call.node.args[0].value
            if isinstance(key, cst.SimpleString):
                names.add(key.evaluated_value)
    return names


def _reassigned_plain(facts: ModuleFacts, a: AttrAssign, construction: bool) -> str | None:
    """What makes ``self.w = <value>`` a plain tensor computed from the Parameter ``self.w``: a
    conversion method (``.cuda()``, reported in construction code only: later the module has
    been moved and it returns the Parameter), a torch function (``torch.exp(self.w)``) or
    arithmetic (``self.w * 2``)."""
    value, instance = a.value, a.method.instance
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        method = value.func.attr.value
        if self_attr(value.func.value, instance) == a.name:
            if method in _NOT_CONVERSIONS or method.endswith("_") or not construction:
                return None
            return f".{method}"
    if isinstance(value, cst.Call):
        q = facts.qualname(value.func, a.method.scope) or ""
        leaf = q.rsplit(".", 1)[-1]
        plain = (
            q.startswith("torch.")
            and not q.startswith(_NOT_TENSOR_FUNCTIONS)
            and not leaf.endswith("_")
            and leaf[:1].islower()
        )
        if plain and any(_chain_of(arg.value, instance, a.name) for arg in value.args):
            return q.replace("torch.nn.functional.", "F.")
    if isinstance(value, cst.BinaryOperation) and (
        _chain_of(value.left, instance, a.name) or _chain_of(value.right, instance, a.name)
    ):
        return "arithmetic"
    return None


# torch namespaces whose functions do not compute a new tensor from their argument
_NOT_TENSOR_FUNCTIONS = ("torch.nn.init.", "torch.nn.utils.", "torch.jit.", "torch.distributed.", "torch.cuda.")


def _chain_of(expr: cst.BaseExpression, instance: str | None, name: str) -> bool:
    """``self.w``, ``self.w.t()``, ``self.w[0]``, ``self.w.data``: an expression of the attribute."""
    while True:
        if self_attr(expr, instance) == name:
            return True
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            expr = expr.func.value
        elif isinstance(expr, (cst.Attribute, cst.Subscript)):
            expr = expr.value
        else:
            return False


def _message(name: str, converted: tuple[cst.BaseExpression, cst.Call]) -> str:
    expr, parameter = converted
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
        what = f"nn.Parameter(...).{expr.func.attr.value}() returns a new plain tensor whenever it converts"
        fix = f"convert the tensor inside: nn.Parameter(t.{expr.func.attr.value}(...)), or move the whole module"
    else:
        what = "an expression of nn.Parameter(...) is a new plain tensor computed from it"
        fix = "compute the value first and wrap the result: nn.Parameter(t * scale)"
    frozen, _ = find_arg(parameter, "requires_grad", 1)
    lost = (
        "not in parameters() or state_dict(), and .to() does not move it"
        if frozen is not None and isinstance(frozen.value, cst.Name) and frozen.value.value == "False"
        else "not in parameters() or state_dict(): the optimizer never updates it"
    )
    return f"{what}, not the Parameter: self.{name} is not registered ({lost}); {fix}"


def _converts_parameter(info: TreeInfo, node: ast.AST) -> bool:
    """``nn.Parameter(t)`` as the operand of a conversion (``.to()``, arithmetic, ``[0]``, ``-``)
    or bound to a local name (``p = nn.Parameter(t)``): what ``_converted_parameter`` and
    ``_parameter_source`` follow."""
    if isinstance(node, ast.Attribute):
        operands = [node.value]
    elif isinstance(node, ast.BinOp):
        operands = [node.left, node.right]
    elif isinstance(node, ast.Subscript):
        operands = [node.value]
    elif isinstance(node, ast.UnaryOp):
        operands = [node.operand]
    elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) for t in node.targets):
        operands = [node.value]
    elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and isinstance(node.target, ast.Name):
        operands = [node.value]
    else:
        return False
    return any(isinstance(e, ast.Call) and "Parameter" in info.callee_leaves(e) for e in operands)


def _assigns_own_expression(node: ast.AST) -> bool:
    """``self.w = <a call or arithmetic reading some .w>``: what ``_reassigned_plain`` reports."""
    if isinstance(node, ast.Assign):
        targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign):
        targets, value = [node.target], node.value
    else:
        return False
    attrs = {t.attr for target in targets for t in ast_nodes(target) if isinstance(t, ast.Attribute)}
    if not attrs or not isinstance(value, (ast.Call, ast.BinOp, ast.Tuple, ast.List)):
        return False
    return any(isinstance(n, ast.Attribute) and n.attr in attrs for n in ast_nodes(value))
