"""The screen: what CPython's ``ast`` tells of a file, read once for every rule, so that LibCST
parses only the files where some selected rule can fire.

Each rule may declare ``screen(info) -> bool``, a cheap *necessary* condition for its findings,
read from a ``TreeInfo``: a False answer must mean the rule reports nothing on that file, with or
without the project index. A rule without a screen always passes. The screen of a file depends
on that file alone. ``TORCHLINT_NO_SCREEN=1`` turns the screen off (the differential tests
compare findings with and without it).

``TreeInfo`` computes each fact on first use, so a file pays only for what its rules ask.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import warnings
from collections.abc import Iterable
from functools import cached_property
from typing import TypeVar

from torchlint.facts import _STAR_TORCH_NAMES, _STDLIB_ROOTS

R = TypeVar("R")

_WORD = re.compile(r"[^\W\d]\w*")


# A file longer than this is not screened. Nearly every such file passes some rule's screen (it is
# model code), so CPython's parse and the screens would only add to LibCST's parse; a short file
# is cheap to screen and often kept from LibCST (benchmarks/README.md).
MAX_CHARS = 8_000


def worth_screening(text: str) -> bool:
    """Whether the screen is likely to save more than it costs on this text."""
    return len(text) <= MAX_CHARS


def enabled() -> bool:
    """Whether the screen is on (``TORCHLINT_NO_SCREEN`` unset or empty)."""
    return not os.environ.get("TORCHLINT_NO_SCREEN")


def read(text: str, tree: ast.Module | None = None) -> TreeInfo | None:
    """The file's ``TreeInfo``, or None when CPython cannot parse it. ``tree``: CPython's
    ``ast`` of the text, when the caller has it (flake8 gives its plugins the one it parsed)."""
    if tree is not None:
        return TreeInfo(text, tree)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return TreeInfo(text, tree)


def passing(rules: list[R], info: TreeInfo) -> list[R]:
    """The rules whose screen passes on the file (all of them with the screen off)."""
    if not enabled():
        return rules
    return [rule for rule in rules if rule.screen(info)]


class TreeInfo:
    """The facts of one file the rules' screens read, from its text and its ``ast``."""

    def __init__(self, text: str, tree: ast.Module) -> None:
        self.text, self.tree = text, tree

    @cached_property
    def names(self) -> frozenset[str]:
        """Every identifier-like word of the text, in strings and comments too: a superset of the
        names the code spells (a name LibCST reads is spelled as written, so the text has it)."""
        return frozenset(_WORD.findall(self.text))

    def spells(self, names: Iterable[str]) -> bool:
        """Whether one of these names is spelled in the file: for a rule that matches a resolved
        name by its last part only (``torch.nn.modules.conv.Conv2d`` as ``Conv2d``)."""
        return not self.names.isdisjoint(names)

    def mentions(self, qualnames: Iterable[str]) -> bool:
        """Whether a name in the code may resolve to exactly one of these qualified names
        (through imports, aliases and star imports, as ``ModuleFacts.qualname`` resolves them).
        A prefix (a name ending in ``.``) always may."""
        return any(q.endswith(".") or self._may_resolve_to(q) for q in qualnames)

    def _may_resolve_to(self, qualname: str) -> bool:
        parts = qualname.split(".")
        leaf = parts[-1]
        if leaf not in self.names:
            return False  # the last part of a resolved name is always spelled in the file
        if len(parts) == 1 or self._star_modules and qualname in _STAR_TORCH_NAMES.values():
            return True
        parent = parts[-2]
        for owner in self._attribute_owners.get(leaf, ()):
            # ``<owner>.leaf``: the owner resolves to a name ending in itself, in what it was
            # imported as, or (after a star import) in what _STAR_TORCH_NAMES gives it
            if owner == parent or parent in self.imported_as.get(owner, ()):
                return True
            if self._star_modules and _STAR_TORCH_NAMES.get(owner, "").endswith("." + parent):
                return True
        if (parent, leaf) in self._imported or (".", leaf) in self._imported:
            return True
        return leaf in self._name_ids and (parent in self._star_modules or "." in self._star_modules)

    @cached_property
    def _name_ids(self) -> frozenset[str]:
        return frozenset(n.id for n in self.nodes if isinstance(n, ast.Name))

    @cached_property
    def _attribute_owners(self) -> dict[str, set[str]]:
        """For each attribute name, the last names of what it is read from (``a.b.c`` -> ``b``)."""
        found: dict[str, set[str]] = {}
        for node in self.nodes:
            if isinstance(node, ast.Attribute):
                value = node.value
                owner = value.id if isinstance(value, ast.Name) else value.attr if isinstance(value, ast.Attribute) else None
                if owner is not None:
                    found.setdefault(node.attr, set()).add(owner)
        return found

    @cached_property
    def _imported(self) -> frozenset[tuple[str, str]]:
        """(last part of the module, name) of every name imported; the module is ``.`` for a
        relative import (whose package is the project's, whatever it is called)."""
        found: set[tuple[str, str]] = set()
        for node in self.nodes:
            if isinstance(node, ast.ImportFrom):
                module = "." if node.level else (node.module or "").rsplit(".", 1)[-1]
                found.update((module, a.name) for a in node.names if a.name != "*")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    found.update(zip(parts, parts[1:]))
        return frozenset(found)

    @cached_property
    def _star_modules(self) -> frozenset[str]:
        """The last parts of the modules star-imported (``.`` for a relative one)."""
        return frozenset(
            "." if n.level else (n.module or "").rsplit(".", 1)[-1]
            for n in self.nodes if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
        )

    @property
    def nodes(self) -> list[ast.AST]:
        """Every node of the tree but the load/store contexts, parents before children (depth
        first)."""
        return self._preorder[0]

    def subtree(self, node: ast.AST) -> list[ast.AST]:
        """A node of the file and every node under it but the contexts, parents before children
        (depth first), sliced from one walk of the file instead of walking the node again."""
        order, start, end = self._preorder
        return order[start[id(node)] : end[id(node)]]

    @cached_property
    def _preorder(self) -> tuple[list[ast.AST], dict[int, int], dict[int, int]]:
        order: list[ast.AST] = []
        start: dict[int, int] = {}
        end: dict[int, int] = {}
        todo: list = [self.tree]
        while todo:
            item = todo.pop()
            if type(item) is int:  # the id of a node whose subtree is done
                end[item] = len(order)
                continue
            start[id(item)] = len(order)
            order.append(item)
            todo.append(id(item))
            children = child_nodes(item)
            children.reverse()
            todo.extend(children)
        return order, start, end

    @cached_property
    def classes(self) -> list[ast.ClassDef]:
        """Every class statement, nested ones too."""
        return [n for n in self.nodes if isinstance(n, ast.ClassDef)]

    @cached_property
    def based_classes(self) -> list[ast.ClassDef]:
        """The classes that may be nn.Modules, as ``ModuleFacts`` decides with any project index:
        a class with a base that is not certainly something else (a builtin not rebound here, a
        name imported from the standard library, a class of this file that is no module)."""
        by_name: dict[str, list[ast.ClassDef]] = {}
        for c in self.classes:
            if c.name in self.top_class_names:
                by_name.setdefault(c.name, []).append(c)
        verdicts: dict[int, bool] = {}

        def may_be_module(cls: ast.ClassDef) -> bool:
            if id(cls) not in verdicts:
                verdicts[id(cls)] = True  # on the current chain (a cycle): may be
                verdicts[id(cls)] = any(may_be_module_base(b) for b in cls.bases)
            return verdicts[id(cls)]

        def may_be_module_base(base: ast.expr) -> bool:
            if isinstance(base, ast.Name) and base.id in by_name and base.id not in self._import_bound:
                return any(may_be_module(c) for c in by_name[base.id])
            return not self._certainly_not_module(base)

        return [c for c in self.classes if may_be_module(c)]

    def _certainly_not_module(self, base: ast.expr) -> bool:
        """A builtin not bound in the file, or a name bound only by imports from the standard
        library (``Enum``, ``abc.ABC``)."""
        root = base
        while isinstance(root, ast.Attribute):
            root = root.value
        if not isinstance(root, ast.Name) or root.id in self._locally_bound:
            return False
        if root is base and hasattr(builtins, root.id) and root.id not in self._import_bound:
            return True
        sources = self._import_bound.get(root.id)
        return bool(sources) and all(source in _STDLIB_ROOTS for source in sources)

    def binds(self, name: str) -> bool:
        """Whether the file binds ``name`` anywhere: by assignment, definition, parameter, import
        (a builtin it does not bind is the builtin everywhere)."""
        return name in self._locally_bound or name in self._import_bound

    @cached_property
    def _import_bound(self) -> dict[str, set[str]]:
        """Each name an import binds, with the first part of the module it comes from (``.`` for
        a relative import)."""
        found: dict[str, set[str]] = {}
        for node in self.nodes:
            if isinstance(node, ast.Import):
                for a in node.names:
                    found.setdefault(a.asname or a.name.split(".")[0], set()).add(a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                source = "." if node.level else (node.module or "").split(".")[0]
                for a in node.names:
                    found.setdefault(a.asname or a.name, set()).add(source)
        return found

    @cached_property
    def _locally_bound(self) -> frozenset[str]:
        """The names bound other than by imports: assigned, defined, parameters, ``global``."""
        found = {n.id for n in self.nodes if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        found.update(n.name for n in self.nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
        found.update(n.arg for n in self.nodes if isinstance(n, ast.arg))
        found.update(name for n in self.nodes if isinstance(n, (ast.Global, ast.Nonlocal)) for name in n.names)
        return frozenset(found)

    @cached_property
    def init_classes(self) -> list[ast.ClassDef]:
        """The classes with a base that define methods: the only ones whose construction-time
        methods (``__init__``, a builder method a base or the user calls, and what they call) may
        be in this file."""
        return [c for c in self.based_classes if any(methods(c))]

    @cached_property
    def top_class_names(self) -> frozenset[str]:
        """The names of the classes defined in the module's scope (under ``if`` or ``try`` too)."""
        return frozenset(n.name for n in own_nodes(self.tree) if isinstance(n, ast.ClassDef))

    @cached_property
    def imported_as(self) -> dict[str, frozenset[str]]:
        """For each name an import binds with ``as``, the last parts of the names it may be."""
        found: dict[str, set[str]] = {}
        for node in self.nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.asname:
                        found.setdefault(alias.asname, set()).add(alias.name.rsplit(".", 1)[-1])
        return {name: frozenset(leaves) for name, leaves in found.items()}

    def callee_leaves(self, call: ast.Call) -> frozenset[str]:
        """The last parts of the names a call's callee may resolve to: its own last name, and
        what an import bound it from (``from torch.nn import Linear as L``)."""
        func = call.func
        leaf = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if leaf is None:
            return frozenset()
        return frozenset({leaf}) | self.imported_as.get(leaf, frozenset())

    @cached_property
    def functions(self) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        return [n for n in self.nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]

    @cached_property
    def method_names(self) -> frozenset[str]:
        """The names of the functions defined directly in a class body with a base."""
        return frozenset(
            m.name for c in self.based_classes for m in methods(c)
        )

    @cached_property
    def calls(self) -> list[ast.Call]:
        return [n for n in self.nodes if isinstance(n, ast.Call)]


def methods(cls: ast.ClassDef) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions defined in a class's own scope (under ``if`` or ``try`` too)."""
    return [n for n in own_nodes(cls) if _is_function(n)]


def own_nodes(scope: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """The nodes of a module's, class's or function's body in its own scope: the functions,
    lambdas and classes in it, not their insides."""
    out: list[ast.AST] = list(scope.body)
    for node in out:
        if not isinstance(node, _SCOPES):
            _extend_children(node, out)
    return out


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_FIELDS: dict[type, tuple[str, ...]] = {}
_LEAF_FIELDS = {"ctx", "id", "attr", "arg", "module", "level", "kind", "type_comment", "conversion", "is_async"}


def ast_nodes(root: ast.AST) -> list[ast.AST]:
    """``root`` and every node under it but the load/store contexts, parents before children
    (what ``ast.walk`` gives, a few times faster)."""
    out: list[ast.AST] = [root]
    for node in out:
        _extend_children(node, out)
    return out


def plain_names(expr: ast.AST) -> set[str]:
    """The plain names of a name or of a (nested, starred) tuple or list of names: what an
    assignment target binds, or what a literal of names lists; nothing for ``a.b`` or ``a[i]``."""
    if isinstance(expr, ast.Name):
        return {expr.id}
    if isinstance(expr, (ast.Tuple, ast.List)):
        return set().union(*(plain_names(e) for e in expr.elts))
    return plain_names(expr.value) if isinstance(expr, ast.Starred) else set()


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """A node's children but the load/store contexts (what ``ast.iter_child_nodes`` gives)."""
    out: list[ast.AST] = []
    _extend_children(node, out)
    return out


def _extend_children(node: ast.AST, out: list[ast.AST]) -> None:
    kind = type(node)
    fields = _FIELDS.get(kind)
    if fields is None:
        fields = _FIELDS[kind] = tuple(f for f in kind._fields if f not in _LEAF_FIELDS)
    for name in fields:
        value = getattr(node, name, None)
        if type(value) is list:
            out.extend([v for v in value if isinstance(v, ast.AST)])
        elif isinstance(value, ast.AST):
            out.append(value)


def _is_function(node: ast.AST) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
