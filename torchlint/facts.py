"""ModuleFacts: the shared semantic model of one file, built in one walk of its LibCST tree.

Rules read these facts instead of walking the tree again. The walk records:

- every scope (module, class, function, lambda) with the names it binds and the imports it holds,
  so any ``Name``/``Attribute`` chain resolves to a qualified name (``F.dropout`` ->
  ``torch.nn.functional.dropout``) or to ``None`` when a local name shadows the import;
- every class with its bases, methods and ``self.<attr> = value`` assignments, and whether it is
  an ``nn.Module`` (directly, through a base in this file, through a known third-party base, or,
  when a base cannot be resolved, through evidence in its own body);
- every call, with the function and class it sits in and the ``if`` tests that guard it;
- per function, the values assigned to each local name and every place a name is read.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst

# --- what counts as an nn.Module base -----------------------------------------------------

_NOT_MODULES_IN_TORCH_NN = {
    "Parameter",
    "Buffer",
    "UninitializedParameter",
    "UninitializedBuffer",
    "UninitializedTensorMixin",
}
_TORCH_MODULE_EXTRA = {
    "torch.jit.ScriptModule",
    "torch.jit.RecursiveScriptModule",
    "torch.fx.GraphModule",
}
_LIGHTNING_ROOTS = {"pytorch_lightning", "lightning"}
_HF_MODEL_RE = re.compile(r"(PreTrainedModel|PretrainedModel|Model|For[A-Z]\w*)$")
_HF_NOT_MODEL_PREFIXES = ("TF", "Flax", "AutoModel", "DataCollator")
_HF_NOT_MODEL_SUFFIXES = ("Config", "Tokenizer", "TokenizerFast", "Output", "Processor", "FeatureExtractor")
_TORCH_NN_NOT_MODULE_PACKAGES = {"utils", "attention", "functional", "init"}
# names a ``from pkg import *`` of the project plausibly brings (it re-exports its own imports)
_STAR_TORCH_NAMES = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional"}
# PyTorch's hooks that move or convert a module's tensors
MOVING_OVERRIDES = frozenset({"_apply", "to", "cuda", "cpu", "type"})
_STATE_REGISTRARS = {"register_buffer", "register_parameter", "register_module", "add_module"}
_STATE_MAKERS = {"torch.nn.Parameter", "torch.nn.parameter.Parameter", "torch.nn.ParameterList", "torch.nn.ParameterDict"}
_STDLIB_ROOTS = {
    "abc", "argparse", "collections", "contextlib", "dataclasses", "enum", "functools", "io",
    "json", "logging", "multiprocessing", "os", "pathlib", "queue", "threading", "typing",
    "typing_extensions", "unittest", "numbers", "builtins", "types", "weakref", "pickle",
}


def is_module_base(qualname: str) -> bool | None:
    """Whether a qualified base-class name is an nn.Module: True, False, or None (unknown)."""
    parts = qualname.split(".")
    leaf = parts[-1]
    if qualname in _TORCH_MODULE_EXTRA:
        return True
    if parts[0] == "torch":
        if len(parts) >= 3 and parts[1] == "nn" and leaf.lstrip("_")[:1].isupper():
            if leaf in _NOT_MODULES_IN_TORCH_NN or parts[2] in _TORCH_NN_NOT_MODULE_PACKAGES:
                return False
            return True
        if parts[:3] == ["torch", "ao", "nn"] and leaf[:1].isupper():
            return True
        return False
    if leaf == "LightningModule" and parts[0] in _LIGHTNING_ROOTS:
        return True
    if parts[0] == "transformers":
        if leaf.startswith(_HF_NOT_MODEL_PREFIXES) or leaf.endswith(_HF_NOT_MODEL_SUFFIXES):
            return False
        return True if _HF_MODEL_RE.search(leaf) else None
    if parts[0] in _STDLIB_ROOTS or parts[0] in {"object", "Exception"}:
        return False
    return None


# --- the records ---------------------------------------------------------------------------


@dataclass(eq=False)
class Scope:
    """A namespace: the module, a class body, a function, a lambda or a comprehension."""

    kind: str  # "module" | "class" | "function" | "comprehension"
    node: cst.CSTNode
    parent: Scope | None
    imports: dict[str, str] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)  # names bound by anything but an import
    shadowing: set[str] = field(default_factory=set)  # names bound by def/class/assignment
    star_imports: list[str] = field(default_factory=list)
    declared_global: set[str] = field(default_factory=set)


@dataclass(eq=False)
class Guard:
    """An enclosing condition: ``test`` held (``positive``) or failed on the way to a node."""

    test: cst.BaseExpression
    positive: bool


@dataclass(eq=False)
class AttrAssign:
    """``self.<name> = value`` (or ``+=``, ``setattr``) inside a method."""

    name: str
    value: cst.BaseExpression | None
    node: cst.CSTNode  # the statement (Assign/AnnAssign/AugAssign) or the setattr call
    method: FunctionInfo


@dataclass(eq=False)
class CallInfo:
    node: cst.Call
    function: FunctionInfo | None
    guards: tuple[Guard, ...]
    scope: Scope | None = None  # the innermost scope (a comprehension or class body included)

    @property
    def cls(self) -> ClassInfo | None:
        return self.function.cls if self.function else None


@dataclass(eq=False)
class FunctionInfo:
    node: cst.FunctionDef | cst.Lambda
    name: str
    scope: Scope
    cls: ClassInfo | None  # the class this function is a method of (directly or nested inside one)
    is_method: bool  # defined directly in the class body
    params: list[str]
    assignments: dict[str, list[tuple[cst.CSTNode, cst.BaseExpression | None]]] = field(
        default_factory=dict
    )
    reads: dict[str, list[cst.Name]] = field(default_factory=dict)  # includes nested scopes
    calls: list[CallInfo] = field(default_factory=list)
    method: FunctionInfo | None = None  # the method this function is, or is nested in
    _local_reads: list[AttrUse] | None = field(default=None, repr=False)

    def local_reads(self) -> list[AttrUse]:
        """Every read of a local name in the function's body, with its ancestors (computed once)."""
        if self._local_reads is None:
            collector = _UseCollector("", self.name, True)
            walk(self.node.body, collector.on_visit, collector.on_leave)
            self._local_reads = collector.uses
        return self._local_reads

    @property
    def instance(self) -> str | None:
        """The name of the instance (``self``) visible in this function, if it is in a method and
        no function between here and the method rebinds that name."""
        name = self.method.self_name if self.method else None
        scope: Scope | None = self.scope
        while name and scope is not None and scope is not self.method.scope:
            if name in scope.bound:
                return None
            scope = scope.parent
        return name

    @property
    def self_name(self) -> str | None:
        """The name of the instance parameter of a method (usually ``self``)."""
        if not self.is_method or not self.params or not isinstance(self.node, cst.FunctionDef):
            return None
        for dec in self.node.decorators:
            d = dec.decorator
            if isinstance(d, cst.Name) and d.value in ("staticmethod", "classmethod"):
                return None
        return self.params[0]


@dataclass(eq=False)
class ClassInfo:
    node: cst.ClassDef
    name: str
    scope: Scope  # the scope the class statement sits in
    body_scope: Scope
    bases: list[cst.BaseExpression]
    methods: dict[str, FunctionInfo] = field(default_factory=dict)
    attr_assigns: list[AttrAssign] = field(default_factory=list)
    self_calls: list[CallInfo] = field(default_factory=list)  # self.<method>(...) calls
    module_status: bool | None = None  # filled after the walk
    module_evidence: str = ""
    module_inferred: bool = False  # a module only by evidence in its body: its bases are unknown
    _uses: list[AttrUse] | None = field(default=None, repr=False)  # with the local names read
    _attr_uses: list[AttrUse] | None = field(default=None, repr=False)  # ``self.<attr>`` only

    @property
    def is_module(self) -> bool:
        return bool(self.module_status)

    @property
    def docstring(self) -> str:
        return self.node.get_docstring() or ""

    def assigns(self, name: str) -> list[AttrAssign]:
        return [a for a in self.attr_assigns if a.name == name]

    def reached(self, names: set[str]) -> set[str]:
        """``names`` and every method of the class they reach through ``self.method()`` calls."""
        names = set(names)
        changed = True
        while changed:
            changed = False
            for call in self.self_calls:
                fn, func = call.function, call.node.func
                if fn and fn.method and fn.method.name in names and isinstance(func, cst.Attribute):
                    if func.attr.value in self.methods and func.attr.value not in names:
                        names.add(func.attr.value)
                        changed = True
        return names

    def uses(self, with_locals: bool = True) -> list[AttrUse]:
        """Every ``self.<attr>`` in the class's own methods, and with ``with_locals`` every local
        name they read, each with its ancestors and context (computed once, on first request:
        most files never ask, and most that do need no local names, the costlier part)."""
        if self._uses is not None:
            return self._uses if with_locals else [u for u in self._uses if not u.local]
        if not with_locals:
            if self._attr_uses is None:
                self._attr_uses = self._collect_uses(False)
            return self._attr_uses
        found = self._collect_uses(True)
        if self._attr_uses is not None:  # the same objects as those handed out already
            known = {id(u.node): u for u in self._attr_uses}
            found = [u if u.local else known.get(id(u.node), u) for u in found]
        self._uses = found
        return found

    def _collect_uses(self, with_locals: bool) -> list[AttrUse]:
        found: list[AttrUse] = []
        for stmt in self.node.body.body:
            if not isinstance(stmt, cst.FunctionDef):
                continue
            params = stmt.params.posonly_params or stmt.params.params
            decorators = {d.decorator.value for d in stmt.decorators if isinstance(d.decorator, cst.Name)}
            if not params or decorators & {"staticmethod", "classmethod"}:
                continue
            collector = _UseCollector(params[0].name.value, stmt.name.value, with_locals)
            walk(stmt.body, collector.on_visit, collector.on_leave)
            found.extend(collector.uses)
        return found


# --- uses of self.<attr> ------------------------------------------------------------------------

# How a use of ``self.<attr>`` meets the code around it (``AttrUse.context``).
STORE, MOVED, CALLED, ARGUMENT, READ = "store", "moved", "called", "argument", "read"
_MOVE_METHODS = frozenset({"to", "cuda", "cpu", "type", "type_as", "half", "float", "double", "bfloat16"})


@dataclass(frozen=True)
class AttrUse:
    """One occurrence of ``self.<name>`` with its ancestors (innermost last), from the method body
    down; or, with ``local``, a read of the local name ``name``."""

    name: str
    node: cst.Attribute | cst.Name
    ancestors: tuple[cst.CSTNode, ...]
    method: str
    store: bool  # the occurrence is an assignment target (``self.x = ...``, ``self.n += 1``, ``del self.x``)
    local: bool = False  # a read of a local name (``name`` is the variable), not ``self.<name>``

    @property
    def context(self) -> str:
        """``store`` (assigned, augmented or deleted), ``moved`` (``self.x.to(...)``, ``.cuda()``,
        ...), ``called`` (``self.x(...)`` or ``self.x.method(...)``), ``argument`` (passed to a
        call), or ``read``."""
        if self.store:
            return STORE
        parent = self.ancestors[-1] if self.ancestors else None
        if isinstance(parent, cst.Call) and parent.func is self.node:
            return CALLED
        if isinstance(parent, cst.Attribute) and parent.value is self.node and len(self.ancestors) > 1:
            call = self.ancestors[-2]
            if isinstance(call, cst.Call) and call.func is parent:
                return MOVED if parent.attr.value in _MOVE_METHODS else CALLED
        if isinstance(parent, cst.Arg):
            return ARGUMENT
        return READ


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
        if isinstance(node, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.Del, cst.For, cst.CompFor)):
            self.targets.add(id(node.target))
        elif self.with_locals:  # names that are not reads of a variable: ``x.name``, ``f(name=...)``
            if isinstance(node, cst.Attribute):
                self.targets.add(id(node.attr))
            elif isinstance(node, cst.Arg) and node.keyword is not None:
                self.targets.add(id(node.keyword))
            elif isinstance(node, (cst.Param, cst.FunctionDef)):
                self.targets.add(id(node.name))
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


# --- the walk ------------------------------------------------------------------------------


def dotted_name(expr: cst.BaseExpression) -> str | None:
    """``a.b.c`` as written (no import resolution); None for anything but names and attributes."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        base = dotted_name(expr.value)
        return f"{base}.{expr.attr.value}" if base else None
    return None


def target_names(target: cst.BaseExpression) -> Iterator[cst.Name]:
    """The names an assignment target binds: ``a``, ``a, (b, *c)``; not ``a[i]`` or ``a.b``."""
    if isinstance(target, cst.Name):
        yield target
    elif isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield from target_names(el.value)
    elif isinstance(target, cst.StarredElement):
        yield from target_names(target.value)


def is_true(expr: cst.BaseExpression) -> bool:
    """The literal ``True``."""
    return isinstance(expr, cst.Name) and expr.value == "True"


def is_false(expr: cst.BaseExpression) -> bool:
    """The literal ``False``."""
    return isinstance(expr, cst.Name) and expr.value == "False"


def self_attr(expr: cst.BaseExpression, self_name: str | None) -> str | None:
    """``self.x`` -> ``"x"`` (only one level, and only on the instance name)."""
    if (
        self_name
        and isinstance(expr, cst.Attribute)
        and isinstance(expr.value, cst.Name)
        and expr.value.value == self_name
    ):
        return expr.attr.value
    return None


_SYNTAX_ONLY_FIELDS = ("whitespace", "lpar", "rpar", "leading_lines", "lines_after_decorators",
                       "comma", "semicolon", "header", "footer", "colon", "equal", "dot", "operator")


def _child_fields(kind: type) -> tuple[str, ...]:
    """The fields of a node type that can hold expressions or statements (not whitespace,
    parentheses, commas or operators), in the order the source has them."""
    return tuple(
        f.name for f in dataclasses.fields(kind) if not any(part in f.name for part in _SYNTAX_ONLY_FIELDS)
    )


def _node_types() -> frozenset[type]:
    """Every LibCST node class: a set lookup of ``type(value)`` is much cheaper than
    ``isinstance`` against the abstract CSTNode, and the walk asks it of every field."""
    found, todo = set(), [cst.CSTNode]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return frozenset(found)


_NODE_TYPES = _node_types()


def _children(node: cst.CSTNode, fields: tuple[str, ...]) -> Iterator[cst.CSTNode]:
    node_types = _NODE_TYPES
    for name in fields:
        value = getattr(node, name)
        kind = type(value)
        if kind in node_types:
            yield value
        elif kind is tuple or kind is list:
            for item in value:
                if type(item) in node_types:
                    yield item


_FIELDS_OF: dict[type, tuple[str, ...]] = {}


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """A node's expression and statement children, without building LibCST's ``children`` list
    (which visits the node to collect them)."""
    kind = type(node)
    fields = _FIELDS_OF.get(kind)
    if fields is None:
        fields = _FIELDS_OF[kind] = _child_fields(kind)
    return _children(node, fields)


def walk(node: cst.CSTNode, enter, leave=None) -> None:
    """Depth first over ``node`` and the expressions and statements below it, in source order,
    reading the tree without LibCST's visitor (which rebuilds every node it passes).
    ``enter(node)`` returns False to skip a node's children; ``leave(node)`` follows them."""
    if enter(node) is False:
        return
    kind = type(node)
    fields = _FIELDS_OF.get(kind)
    if fields is None:
        fields = _FIELDS_OF[kind] = _child_fields(kind)
    for child in _children(node, fields):
        walk(child, enter, leave)
    if leave is not None:
        leave(node)


def code_of(node: cst.CSTNode) -> str:
    """The source of a node on its own (one line for an expression), to compare or show it."""
    return cst.Module([]).code_for_node(node)


def find_all(node: cst.CSTNode, kinds: type | tuple[type, ...]) -> list[cst.CSTNode]:
    """The expressions and statements of these kinds at or below ``node``, in ``walk``'s order:
    the nodes ``libcst.matchers.findall`` finds with a matcher of node types alone (``m.Name() |
    m.Attribute()``), without importing the matchers, which cost more than all the rules."""
    found: list[cst.CSTNode] = []
    walk(node, lambda n: found.append(n) if isinstance(n, kinds) else None)
    return found


class Walker:
    """A read-only visitor with LibCST's hooks (``on_visit``/``on_leave``, ``visit_<Node>``
    returning False to skip the children, ``leave_<Node>``) that walks the tree's fields
    directly: LibCST's own ``visit`` rebuilds and re-validates every node it passes, which costs
    more than the parse. Whitespace, parentheses, commas and operators are not visited."""

    _hooks: dict[tuple[type, type], tuple] = {}

    def walk(self, node: cst.CSTNode) -> None:
        if self.on_visit(node):
            kind = type(node)
            fields = _FIELDS_OF.get(kind)
            if fields is None:
                fields = _FIELDS_OF[kind] = _child_fields(kind)
            for child in _children(node, fields):
                self.walk(child)
        self.on_leave(node)

    def _hook(self, node: cst.CSTNode) -> tuple:
        key = (type(self), type(node))
        hooks = Walker._hooks.get(key)
        if hooks is None:
            name = type(node).__name__
            hooks = Walker._hooks[key] = (getattr(type(self), f"visit_{name}", None), getattr(type(self), f"leave_{name}", None))
        return hooks

    def on_visit(self, node: cst.CSTNode) -> bool:
        visit = self._hook(node)[0]
        return visit is None or visit(self, node) is not False

    def on_leave(self, node: cst.CSTNode) -> None:
        leave = self._hook(node)[1]
        if leave is not None:
            leave(self, node)


class ScopeWalker(Walker):
    """A Walker that stays in the scope it starts in: nested functions, lambdas and classes are
    not entered (their statements run elsewhere, or not at all)."""

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


class _Collector(Walker):
    """The one walk. Visits each expression once, in evaluation order, so that every ``Name``
    read is recorded in the function it occurs in (and its enclosing functions), and binding
    positions (targets, parameters, imports, keywords, attribute members) are not reads."""

    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self.scope = facts.module_scope
        self.functions: list[FunctionInfo] = []
        self.classes: list[ClassInfo] = []
        self.guards: list[Guard] = []
        self.guard_marks: list[int] = []  # guard-stack heights at each function boundary

    # scopes and bindings

    def _binding_scope(self, name: str) -> Scope:
        scope = self.scope
        while scope.kind == "comprehension":
            scope = scope.parent
        return self.facts.module_scope if name in scope.declared_global else scope

    def _bind(self, name: str, shadow: bool = True) -> None:
        scope = self._binding_scope(name)
        scope.bound.add(name)
        if shadow:
            scope.shadowing.add(name)

    def _record_assignment(self, name: str, stmt: cst.CSTNode, value) -> None:
        if self.functions and self._binding_scope(name) is self.functions[-1].scope:
            self.functions[-1].assignments.setdefault(name, []).append((stmt, value))

    def _bind_target(self, target: cst.BaseExpression, stmt: cst.CSTNode, value) -> None:
        """Bind the names of an assignment target and visit its read parts (``a[i]``, ``self``)."""
        if isinstance(target, cst.Name):
            shadow = not (isinstance(value, cst.Name) and value.value == "None")
            self._bind(target.value, shadow)
            self._record_assignment(target.value, stmt, value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._bind_target(el.value, stmt, None)
        elif isinstance(target, cst.StarredElement):
            self._bind_target(target.value, stmt, None)
        else:
            self.walk(target)

    def _record_read(self, node: cst.Name) -> None:
        for fn in self.functions:
            fn.reads.setdefault(node.value, []).append(node)

    def _record_attr_assign(self, target, value, stmt) -> None:
        fn = self.functions[-1] if self.functions else None
        if not fn or not fn.cls:
            return
        self_name = _method_self(self.functions)
        targets = [e.value for e in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [target]
        values = [value] if targets == [target] else [None] * len(targets)
        if (
            targets != [target]
            and isinstance(value, (cst.Tuple, cst.List))
            and len(value.elements) == len(targets)
            and not any(isinstance(e, cst.StarredElement) for e in value.elements)
        ):
            values = [e.value for e in value.elements]
        for t, v in zip(targets, values):
            name = self_attr(t, self_name)
            if name:
                method = _method_of(self.functions)
                fn.cls.attr_assigns.append(AttrAssign(name, v, stmt, method))

    def _enter_function(self, node, name: str) -> None:
        parent_fn = self.functions[-1] if self.functions else None
        in_class_body = self.scope.kind == "class"
        cls = self.classes[-1] if in_class_body else (parent_fn.cls if parent_fn else None)
        scope = Scope("function", node, self.scope)
        params = [p.name.value for p in _all_params(node.params)]
        info = FunctionInfo(node, name, scope, cls, in_class_body, params)
        info.method = info if in_class_body else (parent_fn.method if parent_fn else None)
        scope.bound.update(params)
        scope.shadowing.update(params)
        self.facts.functions.append(info)
        if in_class_body and isinstance(node, cst.FunctionDef):
            self.classes[-1].methods.setdefault(name, info)
        self.functions.append(info)
        self.scope = scope
        self.guard_marks.append(len(self.guards))

    def _leave_function(self) -> None:
        self.scope = self.scope.parent
        self.functions.pop()
        del self.guards[self.guard_marks.pop() :]

    # imports

    def _import(self, local: str, qualname: str) -> None:
        self._binding_scope(local).imports[local] = qualname

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:
            dotted = dotted_name(alias.name)
            if not dotted:
                continue
            if alias.asname and isinstance(alias.asname.name, cst.Name):
                self._import(alias.asname.name.value, dotted)
            else:
                root = dotted.split(".")[0]
                self._import(root, root)
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        module = dotted_name(node.module) if node.module else ""
        if node.relative:
            module = self.facts.resolve_relative("." * len(node.relative), module or "")
        if isinstance(node.names, cst.ImportStar):
            if module is not None:
                self.scope.star_imports.append(module)
            return False
        for alias in node.names:
            if not isinstance(alias.name, cst.Name):
                continue
            local = alias.name.value
            if alias.asname and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            if module is None:
                self._bind(local)  # a relative import above the top package: an unknown name
            else:
                sep = "." if module and not module.endswith(".") else ""
                self._import(local, f"{module}{sep}{alias.name.value}")
        return False

    def visit_Global(self, node: cst.Global) -> bool:
        self.scope.declared_global.update(n.name.value for n in node.names)
        return False

    def visit_Nonlocal(self, node: cst.Nonlocal) -> bool:
        return False

    # definitions

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        for d in node.decorators:
            self.walk(d)
        for b in (*node.bases, *node.keywords):
            self.walk(b)
        self._bind(node.name.value)
        info = ClassInfo(
            node=node,
            name=node.name.value,
            scope=self.scope,
            body_scope=Scope("class", node, self.scope),
            bases=[a.value for a in node.bases if a.keyword is None],
        )
        self.facts.classes.append(info)
        self.classes.append(info)
        self.scope = info.body_scope
        self.walk(node.body)
        self.scope = self.scope.parent
        self.classes.pop()
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        for d in node.decorators:
            self.walk(d)
        self.walk(node.params)
        if node.returns:
            self.walk(node.returns)
        self._bind(node.name.value)
        self._enter_function(node, node.name.value)
        self.walk(node.body)
        self._leave_function()
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        self.walk(node.params)
        self._enter_function(node, "<lambda>")
        self.walk(node.body)
        self._leave_function()
        return False

    def visit_Param(self, node: cst.Param) -> bool:
        if node.default:
            self.walk(node.default)
        if node.annotation:
            self.walk(node.annotation)
        return False

    # assignments

    def visit_Assign(self, node: cst.Assign) -> bool:
        self.walk(node.value)
        for t in node.targets:
            self._bind_target(t.target, node, node.value)
            self._record_attr_assign(t.target, node.value, node)
        return False

    def visit_AnnAssign(self, node: cst.AnnAssign) -> bool:
        if node.value:
            self.walk(node.value)
        self.walk(node.annotation)
        self._bind_target(node.target, node, node.value)
        self._record_attr_assign(node.target, node.value, node)
        return False

    def visit_AugAssign(self, node: cst.AugAssign) -> bool:
        self.walk(node.value)
        if isinstance(node.target, cst.Name):
            self._record_read(node.target)
            self._bind(node.target.value)
            self._record_assignment(node.target.value, node, None)
        else:
            self.walk(node.target)
        self._record_attr_assign(node.target, None, node)
        return False

    def visit_NamedExpr(self, node: cst.NamedExpr) -> bool:
        self.walk(node.value)
        self._bind_target(node.target, node, node.value)
        return False

    def visit_For(self, node: cst.For) -> bool:
        self.walk(node.iter)
        self._bind_target(node.target, node, None)
        self.walk(node.body)
        if node.orelse:
            self.walk(node.orelse)
        return False

    def visit_CompFor(self, node: cst.CompFor) -> bool:
        self.walk(node.iter)
        for name in target_names(node.target):
            self.scope.bound.add(name.value)
            self.scope.shadowing.add(name.value)
        for cond in node.ifs:
            self.walk(cond)
        if node.inner_for_in:
            self.walk(node.inner_for_in)
        return False

    def _visit_comprehension(self, node, elements: Sequence[cst.BaseExpression]) -> bool:
        # the for clause binds its target before the element expression is evaluated
        self.scope = Scope("comprehension", node, self.scope)
        self.walk(node.for_in)
        for el in elements:
            self.walk(el)
        self.scope = self.scope.parent
        return False

    def visit_ListComp(self, node: cst.ListComp) -> bool:
        return self._visit_comprehension(node, [node.elt])

    def visit_SetComp(self, node: cst.SetComp) -> bool:
        return self._visit_comprehension(node, [node.elt])

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> bool:
        return self._visit_comprehension(node, [node.elt])

    def visit_DictComp(self, node: cst.DictComp) -> bool:
        return self._visit_comprehension(node, [node.key, node.value])

    def visit_WithItem(self, node: cst.WithItem) -> bool:
        self.walk(node.item)
        if node.asname:
            self._bind_target(node.asname.name, node, None)
        return False

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> bool:
        if node.type:
            self.walk(node.type)
        if node.name and isinstance(node.name.name, cst.Name):
            self._bind(node.name.name.value)
        self.walk(node.body)
        return False

    def visit_MatchAs(self, node: cst.MatchAs) -> bool:
        if node.pattern:
            self.walk(node.pattern)
        if node.name:
            self._bind(node.name.value)
        return False

    def visit_MatchStar(self, node: cst.MatchStar) -> bool:
        if node.name:
            self._bind(node.name.value)
        return False

    def visit_MatchMapping(self, node: cst.MatchMapping) -> bool:
        for el in node.elements:
            self.walk(el)
        if node.rest:
            self._bind(node.rest.value)
        return False

    def visit_MatchKeywordElement(self, node: cst.MatchKeywordElement) -> bool:
        self.walk(node.pattern)  # the keyword names an attribute, not a variable
        return False

    def visit_TypeAlias(self, node: cst.TypeAlias) -> bool:
        self.walk(node.value)
        self._bind(node.name.value)
        return False

    def visit_Del(self, node: cst.Del) -> bool:
        return False

    # reads

    def visit_Name(self, node: cst.Name) -> None:
        self._record_read(node)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self.walk(node.value)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        self.walk(node.value)
        return False

    # calls and guards

    def visit_Call(self, node: cst.Call) -> None:
        fn = self.functions[-1] if self.functions else None
        call = CallInfo(node, fn, tuple(self.guards), self.scope)
        self.facts.calls.append(call)
        if not fn:
            return
        fn.calls.append(call)
        self_name = _method_self(self.functions)
        if not (fn.cls and self_name):
            return
        if self_attr(node.func, self_name):
            fn.cls.self_calls.append(call)
        elif isinstance(node.func, cst.Name) and node.func.value == "setattr" and len(node.args) >= 3:
            obj, key = node.args[0].value, node.args[1].value
            if isinstance(obj, cst.Name) and obj.value == self_name and isinstance(key, cst.SimpleString):
                method = _method_of(self.functions)
                fn.cls.attr_assigns.append(AttrAssign(key.evaluated_value, node.args[2].value, node, method))

    def _visit_branches(self, test, body, orelse, loop: bool = False) -> bool:
        self.walk(test)
        self.guards.append(Guard(test, True))
        self.walk(body)
        self.guards.pop()
        if orelse is not None:
            if not loop:
                self.guards.append(Guard(test, False))
            self.walk(orelse)
            if not loop:
                self.guards.pop()
        return False

    def visit_If(self, node: cst.If) -> bool:
        return self._visit_branches(node.test, node.body, node.orelse)

    def visit_IfExp(self, node: cst.IfExp) -> bool:
        return self._visit_branches(node.test, node.body, node.orelse)

    def visit_While(self, node: cst.While) -> bool:
        return self._visit_branches(node.test, node.body, node.orelse, loop=True)


def _all_params(params: cst.Parameters) -> list[cst.Param]:
    out = list(params.posonly_params) + list(params.params)
    if isinstance(params.star_arg, cst.Param):
        out.append(params.star_arg)
    out += list(params.kwonly_params)
    if params.star_kwarg:
        out.append(params.star_kwarg)
    return out


def _method_of(stack: Sequence[FunctionInfo]) -> FunctionInfo:
    for fn in reversed(stack):
        if fn.is_method:
            return fn
    return stack[-1]


def _method_self(stack: Sequence[FunctionInfo]) -> str | None:
    """The instance name visible at the innermost function (closures see the method's self)."""
    for i in range(len(stack) - 1, -1, -1):
        fn = stack[i]
        if fn.is_method:
            name = fn.self_name
            if name and any(name in inner.scope.bound for inner in stack[i + 1 :]):
                return None  # a nested function rebinds the name
            return name
    return None


# --- the facts -----------------------------------------------------------------------------


class ModuleFacts:
    """Everything the rules know about one parsed file."""

    def __init__(
        self,
        module: cst.Module,
        module_name: str | None = None,
        project=None,
        is_package: bool = False,
        syntax_tree: ast.Module | None = None,
    ) -> None:
        """``project``: a zero-argument callable returning the project index (or None); called
        only when a name cannot be resolved within the file, so small runs never build it.
        ``syntax_tree``: CPython's ``ast`` of the same text, when the engine has read it."""
        self.module = module
        self._syntax_tree = syntax_tree
        self.module_name = module_name  # dotted, when the file sits in a package
        self.is_package = is_package  # the file is a package's __init__.py: ``.`` is the package
        self._project = project
        self.module_scope = Scope("module", module, None)
        self.classes: list[ClassInfo] = []
        self.functions: list[FunctionInfo] = []
        self.calls: list[CallInfo] = []
        self._qualname_cache: dict[int, str | None] = {}
        self._star_names: dict[str, str | None] = {}  # names a project wildcard import brings
        _Collector(self).walk(module)
        self._classes_by_name = {c.name: c for c in self.classes if c.scope is self.module_scope}
        self._subclasses: dict[int, list[ClassInfo]] | None = None  # by id of the local base
        self._families: dict[int, tuple[ClassInfo, ...]] = {}
        self._resolving: set[int] = set()
        self._construction: dict[int, frozenset[str]] = {}
        for cls in self.classes:
            self._resolve_module_status(cls)

    def syntax_tree(self) -> ast.Module:
        """CPython's ``ast`` of the file: the screen's, or parsed once from the module's code.
        Raises SyntaxError/ValueError/RecursionError where CPython does not accept the code."""
        if self._syntax_tree is None:
            self._syntax_tree = ast.parse(self.module.code)
        return self._syntax_tree

    def attr_uses(self, classes: Sequence[ClassInfo], with_locals: bool = False) -> list[AttrUse]:
        """Every ``self.<attr>`` in the methods of the given classes (a class's family, say), and
        with ``with_locals`` every local name those methods read."""
        return [u for c in classes for u in c.uses(with_locals)]

    # names

    def resolve_relative(self, dots: str, module: str) -> str | None:
        """Turn ``from ..a import b`` into an absolute module name when the package is known."""
        if not self.module_name:
            return dots + module
        parts = self.module_name.split(".")
        up = len(dots) - self.is_package
        if up > len(parts):
            return None
        base = parts[: len(parts) - up]
        return ".".join([*base, module] if module else base) or None

    def qualname(self, expr: cst.BaseExpression, scope: Scope | None = None) -> str | None:
        """The fully qualified name an expression refers to, through imports; None if local."""
        if isinstance(expr, cst.Attribute):
            base = self.qualname(expr.value, scope)
            return f"{base}.{expr.attr.value}" if base else None
        if isinstance(expr, cst.Name):
            return self.resolve_name(expr.value, scope or self.module_scope)
        return None

    def call_qualname(self, call: CallInfo) -> str | None:
        key = id(call.node)
        if key not in self._qualname_cache:
            scope = call.scope or (call.function.scope if call.function else self.module_scope)
            self._qualname_cache[key] = self.qualname(call.node.func, scope)
        return self._qualname_cache[key]

    def resolve_name(self, name: str, scope: Scope) -> str | None:
        s: Scope | None = scope
        first = True
        while s is not None:
            if s.kind == "class" and not first:
                s = s.parent
                continue
            if name in s.imports and name not in s.shadowing:
                return s.imports[name]
            if name in s.bound:
                if s.kind == "module" and name in self._classes_by_name_safe():
                    return f"{self.module_name}.{name}" if self.module_name else None
                return None
            if s.kind == "module" and s.star_imports and not hasattr(builtins, name):
                for star in s.star_imports:
                    if star.startswith("torch"):
                        return f"{star}.{name}"
                found = self._star_imported(name, s.star_imports)
                if found or name in _STAR_TORCH_NAMES:
                    return found or _STAR_TORCH_NAMES[name]
            first = False
            s = s.parent
        return None

    def _star_imported(self, name: str, stars: list[str]) -> str | None:
        """What a ``from <project module> import *`` brings under ``name``, read from the project
        index (the module's own imports, as Python would re-export them)."""
        if name not in self._star_names:
            index = self.project_index()
            found = None
            for star in stars if index is not None else ():
                found = index.imported_name(f"{star}.{name}")
                if found:
                    break
            self._star_names[name] = found
        return self._star_names[name]

    def _classes_by_name_safe(self) -> dict[str, ClassInfo]:
        return getattr(self, "_classes_by_name", {})

    def calls_to(self, *qualnames: str) -> Iterator[tuple[CallInfo, str]]:
        """Calls whose callee resolves to one of the given qualified names (or prefixes ending in '.')."""
        exact = {q for q in qualnames if not q.endswith(".")}
        prefixes = tuple(q for q in qualnames if q.endswith("."))
        for call in self.calls:
            q = self.call_qualname(call)
            if q and (q in exact or (prefixes and q.startswith(prefixes))):
                yield call, q

    def calls_in_module_methods(self, *qualnames: str) -> Iterator[tuple[CallInfo, str, FunctionInfo, str]]:
        """Calls to the given functions inside a method of an nn.Module (or a function nested
        in one), with the function they sit in and the method's instance name (``self``)."""
        for call, q in self.calls_to(*qualnames):
            fn = call.function
            if fn and fn.cls and fn.cls.is_module and fn.instance:
                yield call, q, fn, fn.instance

    # classes

    def family(self, cls: ClassInfo) -> tuple[ClassInfo, ...]:
        """The class with its bases and its subclasses defined in this file (one instance holds
        the attributes of them all): the bases, then each direct subclass and its own subclasses
        in file order. Computed once per class."""
        if self._subclasses is None:
            self._subclasses = {}
            for other in self.classes:
                for base in other.bases:
                    parent = self.local_class(base)
                    if parent is not None and other not in self._subclasses.setdefault(id(parent), []):
                        self._subclasses[id(parent)].append(other)
        found = self._families.get(id(cls))
        if found is None:
            out = [cls]
            for c in out:
                for base in c.bases:
                    local = self.local_class(base)
                    if local is not None and local not in out:
                        out.append(local)
            for other in self._subclasses.get(id(cls), ()):
                if other not in out:
                    down = [other]
                    for c in down:
                        down.extend(s for s in self._subclasses.get(id(c), ()) if s not in down and s not in out)
                    out.extend(down)
            found = self._families[id(cls)] = tuple(out)
        return found

    def construction_methods(self, cls: ClassInfo) -> frozenset[str]:
        """The methods that run while the instance is built: ``__init__``, the builders, and every
        method they reach through ``self.method()`` calls.

        A builder builds state (registers a buffer, parameter or module, or assigns a layer, an
        ``nn.Parameter`` or a parameter container to the instance) or calls a builder; no method
        that runs after construction calls it; and it does not rebuild what ``__init__`` sets up.
        That is construction run from elsewhere: a base class's ``__init__`` in another file
        (mmdet's ``_init_layers``, and the ``_init_cls_convs`` it calls) or the user's set-up code
        (``model.register_stats(path)``, Lightning's ``setup``). Not ``forward``, a dunder or a
        PyTorch hook such as ``_apply``; not ``set_window_size`` or ``reset_classifier``, which
        rebuild what ``__init__`` built (a ``None`` placeholder in ``__init__`` builds nothing)."""
        key = id(cls)
        if key not in self._construction:
            init = cls.reached({"__init__"})
            self._construction[key] = frozenset(cls.reached(init | self._builders(cls, init)))
        return self._construction[key]

    def _builders(self, cls: ClassInfo, init: set[str]) -> set[str]:
        """The builder methods of ``construction_methods``."""
        builds: set[str] = set()
        names: dict[str, set[str]] = {}  # per method, the attributes it assigns or registers
        made: set[str] = set()  # what ``__init__`` (and what it calls) sets to something
        callers: dict[str, set[str]] = {}  # per method, the methods that call it
        for call in cls.self_calls:
            func = call.node.func
            method = call.function.method.name if call.function and call.function.method else None
            if not isinstance(func, cst.Attribute) or method is None:
                continue
            callers.setdefault(func.attr.value, set()).add(method)
            if func.attr.value in _STATE_REGISTRARS and call.node.args:
                key = call.node.args[0].value
                name = key.evaluated_value if isinstance(key, cst.SimpleString) else None
                builds.add(method)
                names.setdefault(method, set()).add(name if isinstance(name, str) else "")
                made |= {name} if method in init and isinstance(name, str) else set()
        for a in cls.attr_assigns:
            names.setdefault(a.method.name, set()).add(a.name)
            if a.method.name in init and not (isinstance(a.value, cst.Name) and a.value.value == "None"):
                made.add(a.name)
            if isinstance(a.value, cst.Call) and self._builds_state(a.value.func, a.method.scope):
                builds.add(a.method.name)

        def eligible(m: str) -> bool:
            return (
                m in cls.methods and m not in init and m != "forward" and m not in MOVING_OVERRIDES
                and not m.startswith("__") and not names.get(m, set()) & made
            )

        builders = {m for m in builds if eligible(m)}
        grown = True
        while grown:  # a method that calls a builder builds too
            more = {c for b in builders for c in callers.get(b, ()) if c not in builders and eligible(c)}
            builders |= more
            grown = bool(more)
        pruned = True
        while pruned:  # called after construction: it runs again at runtime
            runtime = {b for b in builders if not callers.get(b, set()) <= init | builders}
            builders -= runtime
            pruned = bool(runtime)
        return builders

    def _builds_state(self, func: cst.BaseExpression, scope: Scope) -> bool:
        """``nn.Linear``, ``MyBlock``, ``nn.ModuleList``, ``nn.Parameter``: a call that makes a
        layer or a parameter."""
        return self.is_module_class_expr(func, scope) or self.qualname(func, scope) in _STATE_MAKERS

    def local_bases(self, cls: ClassInfo) -> list[ClassInfo]:
        """The bases of a class defined in this file, and theirs: their constructors run first."""
        out: list[ClassInfo] = []
        todo = [cls]
        while todo:
            for expr in todo.pop().bases:
                base = self.local_class(expr)
                if base is not None and base is not cls and base not in out:
                    out.append(base)
                    todo.append(base)
        return out

    def local_class(self, expr: cst.BaseExpression) -> ClassInfo | None:
        """The class defined at this file's top level that ``expr`` names, if any."""
        if isinstance(expr, cst.Name) and expr.value not in self.module_scope.imports:
            return self._classes_by_name.get(expr.value)
        return None

    def is_module_class_expr(self, expr: cst.BaseExpression, scope: Scope | None = None) -> bool:
        """Whether an expression (a callee) names an nn.Module class: torch's, known, or local."""
        local = self.local_class(expr)
        if local is not None:
            return bool(self._resolve_module_status(local))
        q = self.qualname(expr, scope)
        return bool(q and self.base_is_module(q)[0])

    def base_is_module(self, qualname: str) -> tuple[bool | None, str]:
        """Whether a class named by qualified name is an nn.Module, and the evidence: torch's and
        known third-party bases first, then the project index for the project's own classes."""
        known = is_module_base(qualname)
        if known is None and self._project is not None:
            index = self._project()
            if index is not None:
                return index.is_module(qualname)
        return known, f"subclass of {qualname}" if known else ""

    def project_index(self):
        """The project index (``index.ProjectIndex``), or None when there is none."""
        return self._project() if self._project is not None else None

    def project_class(self, qualname: str):
        """The project index's entry (``index.ClassEntry``) for a class defined in another file of
        the project, or None (no index, or not the project's class)."""
        index = self.project_index()
        found = index.find_class(qualname) if index is not None else None
        return found[1] if found else None

    def _resolve_module_status(self, cls: ClassInfo) -> bool | None:
        if cls.module_evidence or id(cls) in self._resolving:
            return cls.module_status  # resolved, or on the current chain (a cycle): unknown
        self._resolving.add(id(cls))
        status: bool | None = False
        evidence = ""
        for base in cls.bases:
            local = self.local_class(base)
            if local is not None:
                b = self._resolve_module_status(local)
                if b:
                    status, evidence = True, f"subclass of {local.name}"
                    break
                if b is None:
                    status = None
                continue
            q = self.qualname(base, cls.scope)
            b, found = self.base_is_module(q) if q else (None, "")
            if b:
                status, evidence = True, found
                break
            if b is None and not self._is_builtin(base, cls.scope):
                status = None
        if status is None:
            found = self._module_evidence_in_body(cls)
            if found:
                status, evidence = True, found
                cls.module_inferred = True
        cls.module_status = status
        cls.module_evidence = evidence or "not a module"
        return status

    def _is_builtin(self, expr: cst.BaseExpression, scope: Scope) -> bool:
        """Whether ``expr`` names a builtin (``object``, ``Exception``, ``dict``) not bound here."""
        if not (isinstance(expr, cst.Name) and hasattr(builtins, expr.value)):
            return False
        s: Scope | None = scope
        while s is not None:
            if expr.value in s.bound or expr.value in s.imports:
                return False
            s = s.parent
        return True

    def _module_evidence_in_body(self, cls: ClassInfo) -> str:
        if "forward" in cls.methods:
            return "defines forward()"
        for a in cls.attr_assigns:
            if isinstance(a.value, cst.Call) and self.is_module_class_expr(a.value.func, a.method.scope):
                return f"assigns a layer to self.{a.name}"
        for call in cls.self_calls:
            func = call.node.func
            if isinstance(func, cst.Attribute) and func.attr.value in (
                "register_buffer",
                "register_parameter",
                "add_module",
            ):
                return f"calls self.{func.attr.value}()"
        return ""

    def module_classes(self) -> Iterator[ClassInfo]:
        return (c for c in self.classes if c.is_module)


def references_attr(expr: cst.CSTNode, owner: str, attr: str) -> bool:
    """Whether ``owner.attr`` (e.g. ``self.training``) appears anywhere inside ``expr``."""
    finder = _AttrFinder(owner, attr)
    finder.walk(expr)
    return finder.found


class _AttrFinder(Walker):
    def __init__(self, owner: str, attr: str) -> None:
        self.owner, self.attr, self.found = owner, attr, False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if node.attr.value == self.attr and isinstance(node.value, cst.Name) and node.value.value == self.owner:
            self.found = True
        return not self.found


def find_arg(
    call: cst.Call, keyword: str, position: int | None = None
) -> tuple[cst.Arg | None, bool]:
    """The argument bound to a parameter, by keyword or position.

    Returns ``(arg, maybe)``: ``arg`` when it is given; ``maybe`` is True when it is not
    given explicitly but a ``*args``/``**kwargs`` could carry it.
    """
    maybe = False
    positional = 0
    for arg in call.args:
        if arg.keyword is not None:
            if arg.keyword.value == keyword:
                return arg, False
            continue
        if arg.star == "**":
            maybe = True
        elif arg.star == "*":
            maybe = True
        else:
            if position is not None and positional == position and not maybe:
                return arg, False
            positional += 1
    return None, maybe
