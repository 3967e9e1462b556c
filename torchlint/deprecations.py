"""The table of removed and deprecated PyTorch functions (``data/deprecated.toml``), and where a
file uses them: calls, ``from`` imports and decorators, in every import spelling.

Read by TL701 (removed) and TL702 (deprecated). A use inside a compatibility branch (an
``except ImportError:`` fallback, an ``if`` on the torch version or on ``hasattr``) is the code
that keeps old versions working: it is not reported.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import libcst as cst

from torchlint.facts import ModuleFacts, Scope, dotted_name, walk

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Version = tuple[int, int]


@dataclass(frozen=True)
class Entry:
    name: str
    deprecated: Version
    removed: Version | None
    use: str
    fix: str | None = None  # "rename" | "device"
    replacement: str | None = None
    safe: bool = False
    device: str | None = None
    keywords_only: bool = False
    only_args: int | None = None
    blocking: tuple[str, ...] = ()

    def applies(self, target: Version | None) -> bool:
        return target is None or target >= self.deprecated

    def is_removed(self, target: Version | None) -> bool:
        return self.removed is not None and (target is None or target >= self.removed)


def _version(text: str) -> Version:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


@cache
def table(resource: str = "deprecated.toml") -> dict[str, Entry]:
    """The entries by qualified name, read once from the package's data."""
    data = tomllib.loads(resources.files("torchlint").joinpath("data", resource).read_text(encoding="utf-8"))
    out = {}
    for row in data["symbol"]:
        out[row["name"]] = Entry(
            name=row["name"],
            deprecated=_version(row["deprecated"]),
            removed=_version(row["removed"]) if "removed" in row else None,
            use=row["use"],
            fix=row.get("fix"),
            replacement=row.get("replacement"),
            safe=row.get("safe", False),
            device=row.get("device"),
            keywords_only=row.get("keywords_only", False),
            only_args=row.get("only_args"),
            blocking=tuple(row.get("blocking", ())),
        )
    return out


def needles() -> tuple[str, ...]:
    """The strings a file must contain for an entry to be used in it: each entry's last name."""
    return tuple(sorted({name.rsplit(".", 1)[1] for name in table()}))


@dataclass(frozen=True)
class Use:
    """One use of a table entry. ``kind``: "call", "import" (``node`` is the ImportAlias),
    "decorator" (``node`` is the decorator's expression) or "reference" (an attribute chain
    read but not called, such as ``collate_fn=torch.utils.data._utils.collate.default_collate``)."""

    entry: Entry
    kind: str
    node: cst.CSTNode
    scope: Scope
    statement: cst.ImportFrom | None = None


_COMPAT_ERRORS = {"ImportError", "ModuleNotFoundError", "AttributeError"}
_FEATURE_TESTS = ("hasattr", "getattr")
_VERSION_WORDS = ("version", "_ge_", "_gt_", "_lt_", "_le_", "greater", "less", "older", "newer")


def uses(facts: ModuleFacts, qualnames: dict[str, Entry], references: bool = False) -> Iterator[Use]:
    """Every call, ``from`` import and decorator of a name in ``qualnames`` (with
    ``references``, every other read of it as an attribute chain too), outside compatibility
    branches. Calls come from the facts; the walk reads statements only (expressions only for
    ``references``), so it is cheap on the many files that merely mention a name like ``norm``."""
    walker = _Uses(facts, qualnames, references)
    walker.block(facts.module.body)
    yield from walker.found
    leaves = walker.leaves
    for call in facts.calls:
        func = call.node.func
        if isinstance(func, cst.Attribute) and func.attr.value not in leaves:
            continue  # cheap: most calls are methods of other names (a bare name may be an alias)
        if id(call.node) in walker.compat_calls or _root(func) in walker.compat_names:
            continue  # in a compatibility branch, or through a name one of them imports
        entry = qualnames.get(facts.call_qualname(call) or "")
        scope = call.scope or facts.module_scope
        if entry is not None and not _through_star_import(facts, func, scope):
            yield Use(entry, "call", call.node, scope)


def compatibility_calls(facts: ModuleFacts) -> set[int]:
    """The ids of the calls inside compatibility branches (``except ImportError:``, an ``if`` on a
    version or on ``hasattr``), for rules that find their calls another way."""
    walker = _Uses(facts, {}, False)
    walker.block(facts.module.body)
    return walker.compat_calls


class _Uses:
    """The statements of a file, with the scope each sits in and whether it is in a
    compatibility branch: ``from`` imports and decorators are read from them; the calls of
    compatibility branches are noted, to be skipped."""

    def __init__(self, facts: ModuleFacts, qualnames: dict[str, Entry], references: bool) -> None:
        self.facts, self.qualnames, self.references = facts, qualnames, references
        self.leaves = {q.rsplit(".", 1)[1] for q in qualnames}
        self.scopes: list[Scope] = [facts.module_scope]
        self.compat = 0  # depth of compatibility branches around the current statement
        self.compat_calls: set[int] = set()
        self.compat_names: set[str] = set()  # names imported in compatibility branches
        self.found: list[Use] = []
        self.scopes_of = {id(f.node): f.scope for f in facts.functions} | {id(c.node): c.body_scope for c in facts.classes}
        self.callees = {id(c.node.func) for c in facts.calls} if references else set()

    def block(self, statements: Sequence[cst.CSTNode]) -> None:
        for statement in statements:
            self.statement(statement)

    def body(self, suite: cst.BaseSuite | None) -> None:
        if suite is not None:
            self.block(suite.body)

    def statement(self, node: cst.CSTNode) -> None:
        if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in node.body:
                if isinstance(small, cst.ImportFrom):
                    self.import_from(small)
                if self.compat and isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                    self.compat_names.update(_bound_name(alias) for alias in small.names)
            self.expressions(node)
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            for d in node.decorators:
                self.decorator(d.decorator)
            scope = self.scopes_of.get(id(node))
            self.scopes.append(scope or self.scopes[-1])
            self.body(node.body)
            self.scopes.pop()
        elif isinstance(node, cst.If):
            compat = _is_compat_test(_words(node.test))
            self.compat += compat
            self.expressions(node.test)
            self.body(node.body)
            if node.orelse is not None:
                self.statement(node.orelse)
            self.compat -= compat
        elif isinstance(node, cst.Else):
            self.body(node.body)
        elif isinstance(node, (cst.Try, cst.TryStar)):
            self.body(node.body)
            for handler in node.handlers:
                caught = {n.value for n in _names(handler.type)} if handler.type is not None else set()
                compat = bool(caught & _COMPAT_ERRORS)
                self.compat += compat
                self.body(handler.body)
                self.compat -= compat
            for suite in (node.orelse, node.finalbody):
                if suite is not None:
                    self.body(suite.body)
        elif isinstance(node, (cst.For, cst.While, cst.With)):
            self.expressions(node.iter if isinstance(node, cst.For) else node.test if isinstance(node, cst.While) else node)
            self.body(node.body)
            if not isinstance(node, cst.With) and node.orelse is not None:
                self.body(node.orelse.body)
        elif isinstance(node, cst.Match):
            for case in node.cases:
                self.body(case.body)

    def expressions(self, node: cst.CSTNode) -> None:
        """The calls of a compatibility branch (to skip), and, with ``references``, the
        attribute chains that name an entry. Nested blocks (a ``with``'s body) are walked by
        ``statement``, so this stays in the node's own expressions."""
        if not (self.compat or self.references):
            return
        walk(node, self._expression)

    def _expression(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.BaseSuite):
            return False
        if self.compat:
            if isinstance(node, cst.Call):
                self.compat_calls.add(id(node))
            return True
        if isinstance(node, cst.Attribute) and node.attr.value in self.leaves and id(node) not in self.callees:
            entry = self.qualnames.get(self.facts.qualname(node, self.scopes[-1]) or "")
            if entry is not None:
                self.found.append(Use(entry, "reference", node, self.scopes[-1]))
                return False
        return True

    def decorator(self, expr: cst.BaseExpression) -> None:
        if isinstance(expr, cst.Attribute) and not self.compat and expr.attr.value in self.leaves:
            entry = self.qualnames.get(self.facts.qualname(expr, self.scopes[-1]) or "")
            if entry is not None:
                self.found.append(Use(entry, "decorator", expr, self.scopes[-1]))
        self.expressions(expr)

    def import_from(self, node: cst.ImportFrom) -> None:
        if node.relative or isinstance(node.names, cst.ImportStar) or self.compat or node.module is None:
            return
        module = dotted_name(node.module)
        for alias in node.names:
            if isinstance(alias.name, cst.Name):
                entry = self.qualnames.get(f"{module}.{alias.name.value}")
                if entry is not None:
                    self.found.append(Use(entry, "import", alias, self.scopes[-1], node))


def _words(test: cst.BaseExpression) -> list[str]:
    """The names and attributes of a condition (cheaper than its code); not its strings, which
    name checkpoint fields (``state_dict.get("decoder.version")``) as often as versions."""
    words: list[str] = []

    def enter(node: cst.CSTNode) -> None:
        if isinstance(node, cst.Name):
            words.append(node.value)
        elif isinstance(node, cst.Attribute):
            words.append(node.attr.value)

    walk(test, enter)
    return words


def _is_compat_test(words: list[str]) -> bool:
    """From a condition's words: ``if hasattr(torch, "func"):``, ``if torch.__version__ >=
    "2.0":``, ``if TORCH_GE_1_9:``; not ``if state_dict["version"] < 2:`` (a checkpoint's)."""
    if any(w in _FEATURE_TESTS for w in words):
        return True
    low = " ".join(words).lower()
    return "torch" in low and any(word in low for word in _VERSION_WORDS)


def _bound_name(alias: cst.ImportAlias) -> str:
    """The name an import alias binds: ``x`` of ``import a.b as x``, ``a`` of ``import a.b``."""
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    return (dotted_name(alias.name) or "").split(".")[0]


def _root(expr: cst.BaseExpression) -> str | None:
    while isinstance(expr, cst.Attribute):
        expr = expr.value
    return expr.value if isinstance(expr, cst.Name) else None


def _names(expr: cst.BaseExpression) -> Iterator[cst.Name]:
    """The last names of ``except`` types: ``ImportError``, ``(ImportError, builtins.X)``."""
    if isinstance(expr, cst.Name):
        yield expr
    elif isinstance(expr, cst.Attribute):
        yield expr.attr
    elif isinstance(expr, cst.Tuple):
        for el in expr.elements:
            yield from _names(el.value)


def _through_star_import(facts: ModuleFacts, func: cst.BaseExpression, scope: Scope) -> bool:
    """Whether a bare callee name resolves only through ``from torch import *`` (a guess)."""
    if not isinstance(func, cst.Name):
        return False
    s: Scope | None = scope
    while s is not None:
        if func.value in s.imports:
            return False
        s = s.parent
    return True


def spell(facts: ModuleFacts, scope: Scope, qualname: str) -> tuple[str, tuple[tuple[str, str | None], ...]] | None:
    """How code in ``scope`` can name ``qualname``: through the longest prefix of it that a name
    here is bound to (``th.linalg.qr`` when torch is imported as ``th``), else through its root
    package with ``import <root>`` added; None when the root's name means something else here."""
    parts = qualname.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        local = _local_name_for(facts, scope, prefix)
        if local is not None:
            return ".".join([local, *parts[i:]]), ()
    root = parts[0]
    s: Scope | None = scope
    while s is not None:
        if root in s.imports or root in s.bound or s.star_imports:
            return None
        s = s.parent
    return qualname, ((root, None),)


def _local_name_for(facts: ModuleFacts, scope: Scope, qualname: str) -> str | None:
    s: Scope | None = scope
    candidates = []
    while s is not None:
        candidates += [local for local, q in s.imports.items() if q == qualname]
        s = s.parent
    for local in sorted(candidates, key=lambda n: (n != qualname.rsplit(".", 1)[-1], n)):
        if facts.resolve_name(local, scope) == qualname:
            return local
    return None


def fix_for(facts: ModuleFacts, use: Use, entries: dict[str, Entry] | None = None):
    """The rewrite a table entry allows for one use (a ``rules.Fix``); None when the entry has
    none or this use does not allow it. ``entries``: the table the use was found with (the
    other names of a ``from`` import are looked up in it)."""
    from torchlint.edits import render  # here: the rules package imports this module
    from torchlint.rules import Fix, NodeEdit

    entry = use.entry
    if entry.fix is None or entry.replacement is None:
        return None
    if use.kind == "import":
        return _import_fix(use, table() if entries is None else entries)
    if use.kind == "reference":
        spelled = spell(facts, use.scope, entry.replacement)
        if entry.fix != "rename" or spelled is None:
            return None
        return Fix(f"Replace with {entry.replacement}", (NodeEdit(use.node, spelled[0]),), entry.safe, spelled[1])
    if use.kind != "call":
        return None
    call = use.node
    if not isinstance(call.func, cst.Attribute):
        return None  # a bare name: its import is reported, and fixed, on its own
    positional = [a for a in call.args if a.keyword is None]
    if any(a.star for a in call.args):
        return None
    if entry.only_args is not None and len(positional) > entry.only_args:
        return None
    if any(a.keyword is not None and a.keyword.value in entry.blocking for a in call.args):
        return None
    spelled = spell(facts, use.scope, entry.replacement)
    if spelled is None:
        return None
    code, imports = spelled
    if entry.fix == "rename":
        return Fix(f"Replace with {entry.replacement}", (NodeEdit(call.func, code),), entry.safe, imports)
    if entry.fix == "device":
        if entry.keywords_only and positional:
            return None
        device = cst.Arg(cst.SimpleString(f'"{entry.device}"'))
        args = list(call.args)
        if args:
            device = device.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        new = call.with_changes(func=cst.parse_expression(code), args=[device, *args])
        return Fix(
            f'Replace with {entry.replacement}("{entry.device}", ...)',
            (NodeEdit(call, render(facts.module, call, new)),),
            entry.safe,
            imports,
        )
    return None


def _import_fix(use: Use, entries: dict[str, Entry]):
    """``from functorch import vmap, grad`` -> ``from torch.func import vmap, grad``: only when
    every name of the statement is renamed to the same name in one new module."""
    from torchlint.rules import Fix, NodeEdit

    statement = use.statement
    entry = use.entry
    if entry.fix != "rename" or entry.only_args is not None or entry.blocking or statement is None or statement.module is None:
        return None  # a rewrite that holds for some calls only cannot move the import of all of them
    new_module, _, leaf = entry.replacement.rpartition(".")
    module = dotted_name(statement.module)
    for alias in statement.names:
        other = entries.get(f"{module}.{alias.name.value}") if isinstance(alias.name, cst.Name) else None
        if other is None or other.fix != "rename" or other.replacement != f"{new_module}.{alias.name.value}":
            return None
    if leaf != use.node.name.value:
        return None
    return Fix(f"Import from {new_module}", (NodeEdit(statement.module, new_module),), entry.safe, ())

