"""TL104 missing-super-init: an nn.Module ``__init__`` that never runs ``Module.__init__``, or
assigns a layer or Parameter before it does."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from torchlint.facts import (
    ClassInfo,
    FunctionInfo,
    ModuleFacts,
    ScopeWalker,
    self_attr,
)
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.rules.parameter_converted import PARAMETER

# self.<method>() calls that store into the module's registries
_REGISTERING = {"register_buffer", "register_parameter", "add_module", "register_module"}
# nn.Module's (and Lightning's) own methods: calling one never initialises the base
_MODULE_API = _REGISTERING | {
    "apply", "to", "cuda", "cpu", "float", "double", "half", "train", "eval", "parameters",
    "named_parameters", "modules", "named_modules", "children", "buffers", "load_state_dict",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "requires_grad_", "save_hyperparameters",
}
_GENERATES_INIT = {"dataclass", "define", "frozen", "mutable", "attrs", "s"}
_NOT_HELPERS = {"setattr", "getattr", "hasattr", "isinstance", "type", "id", "print", "vars", "super"}


class MissingSuperInit(Rule):
    code = "TL104"
    name = "missing-super-init"
    summary = "an nn.Module __init__ that sets attributes without calling super().__init__()"
    needles = ("__init__",)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        for cls in facts.module_classes():
            if cls.module_inferred or _custom_construction(cls):
                continue
            for init in _init_definitions(facts, cls):
                instance = init.self_name
                if not instance:
                    continue
                events = _Events(facts, cls, init, instance)
                events.walk(init.node.body)
                if events.base_init is None:
                    if not events.uses_self or _initialised_by_subclass(facts, cls):
                        continue
                    yield Hit(
                        init.node.name,
                        f"{cls.name}.__init__ never calls super().__init__(): nn.Module's state is "
                        f"never set up, so assigning a layer or Parameter, calling the module, "
                        f".to() or parameters() fail; call super().__init__() first",
                        cls,
                        _insert_super_init(facts, cls, init),
                    )
                elif events.early_layer is not None:
                    yield Hit(
                        init.node.name,
                        f"{cls.name}.__init__ assigns a layer or Parameter before super().__init__(): "
                        f"nn.Module raises \"cannot assign ... before Module.__init__() call\"; "
                        f"call super().__init__() first",
                        cls,
                    )


_NO_ARGUMENT_BASES = {"torch.nn.Module", "torch.nn.modules.module.Module"}


def _insert_super_init(facts: ModuleFacts, cls: ClassInfo, init: FunctionInfo) -> Fix | None:
    """``super().__init__()`` as the first statement (after the docstring), when the one base is
    ``nn.Module`` or ``LightningModule``, whose ``__init__`` needs no arguments: the call only sets
    up the module's state. Other bases may need arguments only the user knows."""
    if len(cls.bases) != 1 or cls.node.keywords:
        return None
    base = facts.qualname(cls.bases[0], cls.scope) or ""
    root, leaf = base.split(".")[0], base.rsplit(".", 1)[-1]
    lightning = leaf == "LightningModule" and root in ("lightning", "pytorch_lightning")
    body = init.node.body
    if not (base in _NO_ARGUMENT_BASES or lightning) or not isinstance(body, cst.IndentedBlock):
        return None
    statements = list(body.body)
    if statements and _is_docstring(statements[0]):
        statements.pop(0)
    if not statements:
        return None
    return Fix("Call super().__init__() first", (NodeEdit(statements[0], "super().__init__()", before=True),))


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _init_definitions(facts: ModuleFacts, cls: ClassInfo) -> list[FunctionInfo]:
    """The class's own ``__init__`` definitions, ``@overload`` stubs left out."""
    return [
        fn
        for fn in facts.functions
        if fn.cls is cls
        and fn.is_method
        and fn.name == "__init__"
        and isinstance(fn.node, cst.FunctionDef)
        and not any(_decorator_name(d.decorator) == "overload" for d in fn.node.decorators)
    ]


def _decorator_name(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Call):
        expr = expr.func
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    return expr.value if isinstance(expr, cst.Name) else None


def _custom_construction(cls: ClassInfo) -> bool:
    """A metaclass, ``__new__``, or a class decorator that writes ``__init__`` (``@dataclass``,
    attrs' ``@define``)."""
    return (
        any(_decorator_name(d.decorator) in _GENERATES_INIT for d in cls.node.decorators)
        or any(k.keyword is not None and k.keyword.value == "metaclass" for k in cls.node.keywords)
        or "__new__" in cls.methods
    )


def _initialised_by_subclass(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """A subclass in this file calls ``Cls.__init__(self, ...)`` itself: it runs
    ``Module.__init__`` first and then this class's ``__init__`` as a plain initialiser."""
    for other in facts.classes:
        if other is cls or not any(facts.local_class(b) is cls for b in other.bases):
            continue
        for call in facts.calls:
            func = call.node.func
            if (
                call.cls is other
                and isinstance(func, cst.Attribute)
                and func.attr.value == "__init__"
                and facts.local_class(func.value) is cls
            ):
                return True
    return False


class _Events(ScopeWalker):
    """Walks ``__init__`` in source order (not into nested functions): where the base class is
    initialised, where the first layer or Parameter is stored, and whether ``self`` is used."""

    def __init__(self, facts: ModuleFacts, cls: ClassInfo, init: FunctionInfo, instance: str) -> None:
        self.facts, self.cls, self.init, self.instance = facts, cls, init, instance
        self.base_init: cst.CSTNode | None = None
        self.early_layer: cst.CSTNode | None = None
        self.uses_self = False
        self.methods = methods_with_bases(facts, cls)
        self.foreign_base = _has_foreign_base(facts, cls)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._store(t.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._store(node.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._store(node.target, None)

    def _store(self, target: cst.BaseExpression, value: cst.BaseExpression | None) -> None:
        targets = [e.value for e in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [target]
        for t in targets:
            if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == self.instance:
                self.uses_self = True
                if self.base_init is None and self.early_layer is None and self._is_layer(value):
                    self.early_layer = t

    def _is_layer(self, value: cst.BaseExpression | None) -> bool:
        if not isinstance(value, cst.Call):
            return False
        scope = self.init.scope
        return self.facts.qualname(value.func, scope) in PARAMETER or self.facts.is_module_class_expr(value.func, scope)

    def visit_Call(self, node: cst.Call) -> None:
        if self.base_init is not None:
            return
        func = node.func
        if _is_base_init(func, node, self.instance) or self._passes_self(node):
            self.base_init = node
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == self.instance:
            self.uses_self = True
            method = self.methods.get(func.attr.value)
            if method is not None and method is not self.init and _reaches_base_init(self.facts, self.cls, method):
                self.base_init = node
            elif method is None and func.attr.value not in _MODULE_API and self.foreign_base:
                self.base_init = node  # a method of a base from another file may initialise it
            elif func.attr.value in _REGISTERING and self.early_layer is None:
                self.early_layer = node

    def _passes_self(self, node: cst.Call) -> bool:
        """A helper given the instance (``init_module(self, cfg)``) may initialise the base."""
        if isinstance(node.func, cst.Name) and node.func.value in _NOT_HELPERS:
            return False
        return any(isinstance(a.value, cst.Name) and a.value.value == self.instance for a in node.args)


def _is_base_init(func: cst.BaseExpression, call: cst.Call, instance: str) -> bool:
    """``super().__init__(...)``, ``super(Cls, self).__init__(...)``, ``Base.__init__(self, ...)``."""
    if not (isinstance(func, cst.Attribute) and func.attr.value == "__init__"):
        return False
    receiver = func.value
    if isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Name) and receiver.func.value == "super":
        return True
    first = call.args[0].value if call.args else None
    return isinstance(first, cst.Name) and first.value == instance


def _reaches_base_init(
    facts: ModuleFacts, cls: ClassInfo, method: FunctionInfo, seen: set[int] | None = None
) -> bool:
    """Whether a method (or a method it calls on self) initialises the base class."""
    seen = seen if seen is not None else set()
    if id(method) in seen or not method.self_name:
        return False
    seen.add(id(method))
    methods = methods_with_bases(facts, cls)
    for call in facts.calls:
        if call.function is None or call.function.method is not method:
            continue
        func = call.node.func
        if _is_base_init(func, call.node, method.self_name):
            return True
        if isinstance(func, cst.Attribute) and self_attr(func, method.self_name):
            callee = methods.get(func.attr.value)
            if callee is not None and _reaches_base_init(facts, cls, callee, seen):
                return True
    return False


def methods_with_bases(facts: ModuleFacts, cls: ClassInfo) -> dict[str, FunctionInfo]:
    """The methods the instance resolves through the class and its bases in this file."""
    methods: dict[str, FunctionInfo] = {}
    todo, seen = [cls], set()
    while todo:
        c = todo.pop(0)
        if id(c) in seen:
            continue
        seen.add(id(c))
        for name, fn in c.methods.items():
            methods.setdefault(name, fn)
        todo.extend(b for b in (facts.local_class(e) for e in c.bases) if b is not None)
    return methods


def _has_foreign_base(facts: ModuleFacts, cls: ClassInfo) -> bool:
    """Whether the class (or a base in this file) has a base that is neither torch's nor here."""
    todo, seen = [cls], set()
    while todo:
        c = todo.pop()
        if id(c) in seen:
            continue
        seen.add(id(c))
        for base in c.bases:
            local = facts.local_class(base)
            if local is not None:
                todo.append(local)
            elif not (facts.qualname(base, c.scope) or "").startswith("torch."):
                return True
    return False
