"""TL104 missing-super-init: an nn.Module ``__init__`` that never runs ``Module.__init__``."""

from __future__ import annotations

import ast
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
from torchlint.screen import TreeInfo, methods, own_nodes

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

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """A module class whose ``__init__`` calls no base initialiser, or one that may run the
        ``__init__`` of a class of this file."""
        return any(_may_miss_base_init(info, c) for c in info.init_classes)

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
                if events.base_init is not None or not events.uses_self:
                    continue
                if _initialised_by_subclass(facts, cls):
                    continue
                if events.stopped_at is None:
                    message = (
                        f"{cls.name}.__init__ never calls super().__init__(): nn.Module's state is "
                        f"never set up, so assigning a layer or Parameter, calling the module, "
                        f".to() or parameters() fail; call super().__init__() first"
                    )
                else:
                    message = (
                        f"{cls.name}.__init__ never runs nn.Module.__init__(): the initialiser it calls, "
                        f"{events.stopped_at}.__init__, does not go on to it (no super().__init__() "
                        f"there), so nn.Module's state is never set up; make {events.stopped_at}.__init__ "
                        f"call super().__init__(), or call nn.Module.__init__(self) first"
                    )
                yield Hit(init.node.name, message, cls, _insert_super_init(facts, cls, init))


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
    """Walks ``__init__`` in source order (not into nested functions): whether some call can run
    ``nn.Module.__init__``, the base whose ``__init__`` was called but cannot, and whether
    ``self`` is used."""

    def __init__(self, facts: ModuleFacts, cls: ClassInfo, init: FunctionInfo, instance: str) -> None:
        self.facts, self.cls, self.init, self.instance = facts, cls, init, instance
        self.base_init: cst.CSTNode | None = None
        self.stopped_at: str | None = None  # the class whose __init__ was called and ends the chain
        self.uses_self = False
        self.methods = methods_with_bases(facts, cls)
        self.foreign_base = _has_foreign_base(facts, cls)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._store(t.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._store(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._store(node.target)

    def _store(self, target: cst.BaseExpression) -> None:
        targets = [e.value for e in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [target]
        if any(self_attr(t, self.instance) for t in targets):
            self.uses_self = True

    def visit_Call(self, node: cst.Call) -> None:
        if self.base_init is not None:
            return
        func = node.func
        if _is_base_init(func, node, self.instance):
            self.uses_self = True
            stopped = _chain_stops_at(self.facts, self.cls, func.value)
            if stopped is None:
                self.base_init = node
            else:
                self.stopped_at = stopped.name
        elif self._passes_self(node):
            self.base_init = node
        elif isinstance(func, cst.Attribute) and (
            isinstance(func.value, cst.Name) and func.value.value == self.instance or _is_super(func.value)
        ):  # ``self.setup(...)``, ``super()._init(...)``: a method that may run the base's __init__
            self.uses_self = True
            method = self.methods.get(func.attr.value)
            if method is not None and method is not self.init and _reaches_base_init(self.facts, self.cls, method):
                self.base_init = node
            elif method is None and func.attr.value not in _MODULE_API and (self.foreign_base or _is_super(func.value)):
                # a method of a base from another file (torch's own subclasses too, for a method
                # reached through super(): ``super()._init(...)``) may initialise it
                self.base_init = node

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
    if _is_super(receiver):
        return True
    first = call.args[0].value if call.args else None
    return isinstance(first, cst.Name) and first.value == instance


def _is_super(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "super"


def _chain_stops_at(facts: ModuleFacts, cls: ClassInfo, receiver: cst.BaseExpression) -> ClassInfo | None:
    """For ``super().__init__()`` (or ``super(Cls, self)``) in ``cls``, or ``Base.__init__(self)``:
    the class of this file whose ``__init__`` that call runs and which certainly does not go on
    to ``nn.Module.__init__`` (it is no module, and its ``__init__`` calls no base initialiser);
    None when the call can initialise the module, or when that cannot be told (a base from
    another file, a ``super()`` that skips classes)."""
    if _is_super(receiver):
        args = receiver.args
        if args and not (isinstance(args[0].value, cst.Name) and args[0].value.value == cls.name):
            return None
        verdict = _first_init(facts, cls.bases, cls.scope, set())
    else:
        verdict = _first_init(facts, [receiver], cls.scope, set())
        if verdict is True:  # no class on the way defines __init__: object.__init__ runs
            return facts.local_class(receiver)
    return verdict if isinstance(verdict, ClassInfo) else None


def _first_init(
    facts: ModuleFacts, bases: list[cst.BaseExpression], scope, seen: set[int]
) -> ClassInfo | bool | None:
    """Where the next ``__init__`` along ``bases`` (depth first, as the MRO mostly is) leads:
    None when it can reach ``nn.Module.__init__`` (a module class, a class from elsewhere, a
    cooperative ``__init__`` that calls ``super().__init__()``), the local non-module class whose
    ``__init__`` ends the chain, or True when no class on the way defines ``__init__``."""
    for base in bases:
        local = facts.local_class(base)
        if local is None:
            if not _without_init(facts, base, scope):
                return None
            continue
        if id(local) in seen or local.module_status is not False:
            return None
        seen.add(id(local))
        init = local.methods.get("__init__")
        if init is not None:
            return None if _reaches_base_init(facts, local, init) else local
        found = _first_init(facts, local.bases, local.scope, seen)
        if found is not True:
            return found
    return True


_NO_INIT_BASES = {"abc.ABC", "typing.Generic", "typing.Protocol", "typing_extensions.Protocol"}


def _without_init(facts: ModuleFacts, base: cst.BaseExpression, scope) -> bool:
    """``object``, ``ABC``, ``Generic``: bases whose ``__init__`` is object's, which sets up nothing."""
    if isinstance(base, cst.Subscript):
        base = base.value
    if isinstance(base, cst.Name) and base.value == "object" and facts.qualname(base, scope) is None:
        return True
    return facts.qualname(base, scope) in _NO_INIT_BASES


def _reaches_base_init(
    facts: ModuleFacts, cls: ClassInfo, method: FunctionInfo, seen: set[int] | None = None
) -> bool:
    """Whether a method (or a method it calls on self) calls a base initialiser."""
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


def _may_miss_base_init(info: TreeInfo, cls: ast.ClassDef) -> bool:
    """The screen's reading of a class: an ``__init__`` without ``super().__init__()`` nor
    ``Base.__init__(self)`` (not counting nested functions), or with one whose chain may stop at
    a class of this file (a base of this file's top level)."""
    local_bases = any(isinstance(b, ast.Name) and b.id in info.top_class_names for b in cls.bases)
    for init in methods(cls):
        if init.name != "__init__":
            continue
        params = [*init.args.posonlyargs, *init.args.args]
        instance = params[0].arg if params else None
        calls = [
            n for n in own_nodes(init)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "__init__"
        ]
        found = False
        for call in calls:
            receiver = call.func.value
            if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "super":
                found = True
                if local_bases:
                    return True
            elif call.args and isinstance(call.args[0], ast.Name) and call.args[0].id == instance:
                found = True
                if isinstance(receiver, ast.Name) and receiver.id in info.top_class_names:
                    return True
        if not found:
            return True
    return False
