"""TL404 requires-grad-typo: a misspelled ``requires_grad``, or ``requires_grad`` set on a module.

Both are plain attribute writes that PyTorch never reads: nothing is frozen or unfrozen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from torchlint.facts import (
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    Scope,
    Walker,
    find_all,
    self_attr,
)
from torchlint.rules import Hit, Rule

TYPOS = {
    "require_grad", "require_grads", "requires_grads", "requires_gradient", "require_gradient",
    "requires_gradients", "require_gradients", "requieres_grad", "requires_gard", "requries_grad",
}
# calls that return a module: framework factories, and methods of a module that return itself
_MODULE_FACTORIES = {"timm.create_model", "timm.models.create_model", "torch.hub.load"}
_MODULE_FACTORY_PREFIXES = ("torchvision.models.",)
_LOADERS = {"from_pretrained", "from_config", "from_pretrained_module"}
_RETURNS_SELF = {"to", "cuda", "cpu", "eval", "train", "float", "half", "double", "bfloat16", "requires_grad_", "type"}
_MODULE_ITERATORS = {"modules", "children"}
_NAMED_MODULE_ITERATORS = {"named_modules", "named_children"}
_ITERABLE_CONTAINERS = {"torch.nn.ModuleList", "torch.nn.Sequential"}


@dataclass(eq=False)
class _Access:
    node: cst.Attribute
    store: bool
    fn: FunctionInfo | None
    cls: ClassInfo | None


class RequiresGradTypo(Rule):
    code = "TL404"
    name = "requires-grad-typo"
    summary = "a misspelled requires_grad, or module.requires_grad = False: freezes nothing"
    needles = ("requires_grad", "require_grad", "requires_gard", "requries_grad", "requieres_grad")

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        walk = _Walk(facts)
        walk.walk(facts.module)
        own = _own_attributes(facts, walk)
        for a in walk.accesses:
            attr = a.node.attr.value
            shown = _source(facts, a.node)
            if attr in TYPOS and not _custom_attribute(facts, a, own):
                verb = "sets an attribute PyTorch never reads: nothing is frozen or unfrozen" if a.store else (
                    "is not a PyTorch attribute"
                )
                yield Hit(a.node, f"{shown} {verb}; the flag is spelled requires_grad", a.cls)
            elif attr == "requires_grad_" and a.store:
                yield Hit(
                    a.node,
                    f"assigning {shown} replaces the method on this object and changes nothing; "
                    f"call {shown}(False) (or set .requires_grad)",
                    a.cls,
                )
            elif attr == "requires_grad" and a.store and _is_module(facts, walk, a):
                obj = _source(facts, a.node.value)
                yield Hit(
                    a.node,
                    f"{obj} is an nn.Module: setting {obj}.requires_grad stores a plain attribute and "
                    f"freezes nothing (its parameters keep training); call {obj}.requires_grad_(False)",
                    a.cls,
                )


def _on_instance(a: _Access) -> bool:
    return a.fn is not None and isinstance(a.node.value, cst.Name) and a.node.value.value == a.fn.instance


def _own_attributes(facts: ModuleFacts, walk: _Walk) -> dict[str, set[int]]:
    """Misspelled names a class stores on its instance and reads back: its own settings. Maps
    the name to the classes (and their relatives) that keep it."""
    stored: dict[str, set[int]] = {}
    for a in walk.accesses:
        if a.store and a.cls is not None and _on_instance(a):
            stored.setdefault(a.node.attr.value, set()).update(id(c) for c in facts.family(a.cls))
    read = {a.node.attr.value for a in walk.accesses if not a.store}
    return {name: classes for name, classes in stored.items() if name in read}


def _custom_attribute(facts: ModuleFacts, a: _Access, own: dict[str, set[int]]) -> bool:
    """A read of a name some class here keeps as its own setting, or any access to it on that
    class's instance."""
    classes = own.get(a.node.attr.value)
    if classes is None:
        return False
    return not a.store or (_on_instance(a) and a.cls is not None and id(a.cls) in classes)


def _source(facts: ModuleFacts, node: cst.CSTNode) -> str:
    return facts.module.code_for_node(node)


class _Walk(Walker):
    """Collects ``requires_grad``-like attribute accesses with the function they sit in, and the
    names that hold modules by construction: loop targets over ``.modules()``/``.children()`` and
    module-level assignments (functions have theirs in the facts)."""

    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self.by_node = {id(f.node): f for f in facts.functions}
        self.stack: list[FunctionInfo] = []
        self.classes: list[ClassInfo] = []
        self.by_class = {id(c.node): c for c in facts.classes}
        self.stores: set[int] = set()
        self.assigned: dict[int, cst.BaseExpression] = {}  # attribute target -> assigned value
        self.accesses: list[_Access] = []
        self.module_assignments: dict[str, list[cst.BaseExpression]] = {}
        self.module_loops: dict[tuple[int, str], list[cst.BaseExpression]] = {}

    def _scope_key(self) -> int:
        return id(self.stack[-1].node) if self.stack else 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.stack.append(self.by_node[id(node)])

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.stack.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.stack.append(self.by_node[id(node)])

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self.stack.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(self.by_class[id(node)])

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._mark_store(t.target)
            self.assigned[id(t.target)] = node.value
            if not self.stack and not self.classes and isinstance(t.target, cst.Name):
                self.module_assignments.setdefault(t.target.value, []).append(node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._mark_store(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._mark_store(node.target)

    def _mark_store(self, target: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._mark_store(el.value)
        elif isinstance(target, cst.Attribute):
            self.stores.add(id(target))

    def visit_For(self, node: cst.For) -> None:
        it = node.iter
        if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute)):
            if isinstance(it, cst.Attribute):
                self._record_loop(node.target, it)
            return
        method = it.func.attr.value
        if method in _MODULE_ITERATORS:
            self._record_loop(node.target, it)
        elif method in _NAMED_MODULE_ITERATORS and isinstance(node.target, cst.Tuple):
            if len(node.target.elements) == 2:
                self._record_loop(node.target.elements[1].value, it)

    def _record_loop(self, target: cst.BaseExpression, it: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.module_loops.setdefault((self._scope_key(), target.value), []).append(it)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        attr = node.attr.value
        if attr in TYPOS or attr in ("requires_grad", "requires_grad_"):
            fn = self.stack[-1] if self.stack else None
            cls = fn.cls if fn else (self.classes[-1] if self.classes else None)
            self.accesses.append(_Access(node, id(node) in self.stores, fn, cls))


def _is_module(facts: ModuleFacts, walk: _Walk, a: _Access) -> bool:
    """Whether the object whose ``requires_grad`` is set is an nn.Module: the instance of a module
    class that never reads its own ``requires_grad``, a ``self.<layer>`` built as a module, a local
    name assigned a module, or a loop variable over ``.modules()``/``.children()``/a ModuleList."""
    obj = a.node.value
    fn = a.fn
    scope = fn.scope if fn else facts.module_scope
    instance = fn.instance if fn else None
    if isinstance(obj, cst.Name) and instance and obj.value == instance:
        return (
            bool(a.cls and a.cls.is_module)
            and _assigns_literal(walk, a.node)
            and not _reads_own_flag(facts, walk, a.cls)
        )
    attr = self_attr(obj, instance)
    if attr and a.cls:
        return _attr_is_module(facts, a.cls, attr)
    if not isinstance(obj, cst.Name):
        return False
    name = obj.value
    loops = walk.module_loops.get((id(fn.node) if fn else 0, name), [])
    if any(_iterates_modules(facts, it, a) for it in loops):
        return True
    if fn is None:
        values = walk.module_assignments.get(name, [])
    else:
        values = [v for _, v in fn.assignments.get(name, [])]
        if not values and name in fn.params:
            return _param_is_module(facts, fn, name, a.node)
    return bool(values) and all(v is not None and is_module_value(facts, v, scope) for v in values)


def _assigns_literal(walk: _Walk, node: cst.Attribute) -> bool:
    """``self.requires_grad = False``: a literal, not a constructor argument kept as a setting."""
    value = walk.assigned.get(id(node))
    return isinstance(value, cst.Name) and value.value in ("True", "False")


def _reads_own_flag(facts: ModuleFacts, walk: _Walk, cls: ClassInfo) -> bool:
    """A class that reads ``self.requires_grad`` keeps it as its own setting (a config flag)."""
    relatives = {id(c) for c in facts.family(cls)}
    return any(
        not x.store
        and x.cls is not None
        and id(x.cls) in relatives
        and _on_instance(x)
        and x.node.attr.value == "requires_grad"
        for x in walk.accesses
    )


def _attr_is_module(facts: ModuleFacts, cls: ClassInfo, attr: str) -> bool:
    """``self.<attr>`` is assigned a module somewhere in the class (or a relative), and nothing else."""
    values = [(a.value, a.method) for c in facts.family(cls) for a in c.assigns(attr)]
    if not values:
        return False
    found = False
    for value, method in values:
        if value is None:
            return False
        if is_module_value(facts, value, method.scope):
            found = True
        elif isinstance(value, cst.Name) and value.value in method.params:
            if not _param_is_module(facts, method, value.value):
                return False
            found = True
        else:
            return False
    return found


def is_module_value(facts: ModuleFacts, expr: cst.BaseExpression, scope: Scope) -> bool:
    """An expression that builds or loads a module: ``nn.Linear(...)``, ``MyNet(...)``,
    ``AutoModel.from_pretrained(...)``, ``torchvision.models.resnet50()``, ``timm.create_model()``,
    and ``.to(device)``/``.eval()``/... on one of these (they return the module)."""
    if not isinstance(expr, cst.Call):
        return False
    func = expr.func
    if isinstance(func, cst.Attribute) and func.attr.value in _RETURNS_SELF:
        return is_module_value(facts, func.value, scope)
    if isinstance(func, cst.Attribute) and func.attr.value in _LOADERS:
        q = facts.qualname(func.value, scope) or ""
        if q.startswith("transformers.Auto") and "Model" in q:
            return True
        return facts.is_module_class_expr(func.value, scope)
    if facts.is_module_class_expr(func, scope):
        return True
    q = facts.qualname(func, scope) or ""
    leaf = q.rsplit(".", 1)[-1]
    return q in _MODULE_FACTORIES or (q.startswith(_MODULE_FACTORY_PREFIXES) and leaf[:1].islower())


def _param_is_module(facts: ModuleFacts, fn: FunctionInfo, name: str, access: cst.CSTNode | None = None) -> bool:
    """A parameter annotated as a module, or known to be one by ``isinstance(name, <module
    class>)``: asserted, checked with a raise (``if not isinstance(...): raise``), or the test of
    an ``if`` around ``access``."""
    node = fn.node
    if not isinstance(node, cst.FunctionDef):
        return False
    for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params):
        if p.name.value == name and p.annotation is not None:
            if facts.is_module_class_expr(p.annotation.annotation, fn.scope):
                return True

    def checks(test: cst.BaseExpression) -> bool:
        return _isinstance_module(facts, fn, test, name)

    for stmt in find_all(node.body, (cst.If, cst.Assert)):
        if isinstance(stmt, cst.Assert):
            if checks(stmt.test):
                return True
        elif isinstance(stmt.test, cst.UnaryOperation) and isinstance(stmt.test.operator, cst.Not):
            if checks(stmt.test.expression) and find_all(stmt.body, cst.Raise):
                return True
        elif access is not None and checks(stmt.test):
            if any(x is access for x in find_all(stmt.body, cst.Attribute)):
                return True
    return False


def _isinstance_module(facts: ModuleFacts, fn: FunctionInfo, test: cst.BaseExpression, name: str) -> bool:
    """``isinstance(name, M)`` with M a module class (or a tuple of them), alone or in an ``and``."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return _isinstance_module(facts, fn, test.left, name) or _isinstance_module(facts, fn, test.right, name)
    if not (isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance"):
        return False
    args = test.args
    if len(args) != 2 or not (isinstance(args[0].value, cst.Name) and args[0].value.value == name):
        return False
    classes = args[1].value
    elements = [e.value for e in classes.elements] if isinstance(classes, cst.Tuple) else [classes]
    return all(facts.is_module_class_expr(e, fn.scope) for e in elements)


def _iterates_modules(facts: ModuleFacts, it: cst.BaseExpression, a: _Access) -> bool:
    if isinstance(it, cst.Call):
        return True  # .modules(), .children(), .named_modules(), .named_children()
    attr = self_attr(it, a.fn.instance if a.fn else None)
    if not attr or not a.cls:
        return False
    for c in facts.family(a.cls):
        for assign in c.assigns(attr):
            v = assign.value
            if not isinstance(v, cst.Call) or facts.qualname(v.func, assign.method.scope) not in _ITERABLE_CONTAINERS:
                return False
    return bool(a.cls.assigns(attr))
