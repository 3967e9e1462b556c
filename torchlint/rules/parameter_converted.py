"""TL103 parameter-converted: ``self.w = nn.Parameter(t).to(device)`` keeps a plain tensor, not the
Parameter; ``self.w = self.w.cuda()`` after ``self.w = nn.Parameter(t)`` raises at construction."""

from __future__ import annotations

from functools import partial

from collections.abc import Iterator

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
)
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.unregistered_tensor import init_time_methods

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

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.module_classes():
            registered = _rewrapped_or_registered(facts, cls)
            parameters = {a.name for a in cls.attr_assigns if _parameter_source(facts, a.method, a.value)}
            init_methods = init_time_methods(cls)
            for a in cls.attr_assigns:
                if not isinstance(a.node, (cst.Assign, cst.AnnAssign)) or a.value is None:
                    continue
                converted = _converted_parameter(facts, a.method, a.value)
                if converted and a.name not in registered:
                    yield Hit(a.node, _message(a.name, converted), cls, _fix(facts, converted))
                elif a.name in parameters and a.method.name in init_methods:
                    method = _reconverts(a)
                    if method:
                        yield Hit(
                            a.node,
                            f"self.{a.name} is an nn.Parameter, and self.{a.name}.{method}() returns a plain "
                            f"tensor: assigning it back raises TypeError (\"cannot assign ... as parameter\") "
                            f"whenever it converts (another device or dtype); move the whole module "
                            f"(model.to(device)) or convert the tensor before wrapping it",
                            cls,
                        )


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


def _reconverts(a: AttrAssign) -> str | None:
    """``self.w = self.w.cuda()``: the conversion method, when the value converts the attribute."""
    value = a.value
    if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)):
        return None
    method = value.func.attr.value
    if method in _NOT_CONVERSIONS or method.endswith("_"):
        return None
    return method if self_attr(value.func.value, a.method.instance) == a.name else None


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
