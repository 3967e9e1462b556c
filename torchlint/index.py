"""The project index: what every file of the project defines, so rules see across files.

A cheap pass (Python's own ``ast``, no LibCST, no rules) over every Python file under the project
root records each top-level class with its bases as qualified names, whether it defines
``forward`` and with how many inputs, what that forward does with its input (adds it back, does
not, or cannot tell), which classes it uses as the branch of a skip it adds itself, its
constructor parameters, and the evidence in its body that it is a module; and each file's
imports, so re-exports through ``__init__.py`` resolve.
Entries are cached by file content in the cache directory and refreshed when a file changes.

``ProjectIndex.is_module("pkg.models.mlp.MLP")`` then answers across files, through any number
of hops, with the evidence used.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torchlint import __version__, cache
from torchlint.engine import Selection, cache_digest, discover, module_name_for
from torchlint.facts import is_module_base
from torchlint.screen import ast_nodes, child_nodes

ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
SCHEMA = 4  # the fields of ClassEntry: cached entries of another schema are not reused


@dataclass
class ClassEntry:
    name: str
    bases: list[str]  # qualified names; "?" for a base that is not a name
    defines_forward: bool = False
    forward_inputs: int | None = None  # positional inputs after self; None for *args
    init_params: list[str] = field(default_factory=list)
    layer_evidence: str = ""  # "assigns a layer to self.x" / "calls self.register_buffer()"
    forward_skip: str = ""  # "skip" / "none" (its input never rejoins the output) / "" (unknown)
    branches: list[str] = field(default_factory=list)  # classes whose output forward adds to its input
    plain_uses: list[str] = field(default_factory=list)  # classes it builds and does not add around


@dataclass
class FileEntry:
    module: str
    path: str
    digest: str
    classes: dict[str, ClassEntry] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)  # local name -> qualified name
    star_imports: list[str] = field(default_factory=list)  # modules of ``from m import *``


def find_root(path: Path) -> Path:
    """The project root: the nearest directory above ``path`` holding a project marker."""
    path = path.resolve()
    start = path if path.is_dir() else path.parent
    for directory in [start, *start.parents]:
        if any((directory / m).exists() for m in ROOT_MARKERS):
            return directory
    return start


def module_name(path: Path) -> str:
    """A file's dotted module name by its packages; a file outside any package is its stem."""
    return module_name_for(path) or path.stem


# --- the cheap pass --------------------------------------------------------------------------


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _absolute(module: str, level: int, target: str | None, is_package: bool) -> str | None:
    if not level:
        return target
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, target] if target else base) or None


def scan(source: bytes, module: str, path: str, digest: str) -> FileEntry:
    """One file's entry. Raises SyntaxError/ValueError for a file ``ast`` cannot parse."""
    return scan_tree(ast.parse(source), module, path, digest)


def scan_tree(tree: ast.Module, module: str, path: str = "", digest: str = "") -> FileEntry:
    """One file's entry, from its ``ast`` (the screen's, when the engine has read it)."""
    entry = FileEntry(module, path, digest)
    is_package = Path(path).stem == "__init__"
    for node in tree.body:
        for stmt in _flatten(node):
            if isinstance(stmt, ast.Import):
                for a in stmt.names:
                    if a.asname:
                        entry.imports[a.asname] = a.name
                    else:
                        root = a.name.split(".")[0]
                        entry.imports[root] = root
            elif isinstance(stmt, ast.ImportFrom):
                base = _absolute(module, stmt.level, stmt.module, is_package)
                for a in stmt.names if base else ():
                    if a.name == "*":
                        entry.star_imports.append(base)
                    else:
                        entry.imports[a.asname or a.name] = f"{base}.{a.name}"
    local = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            entry.classes[node.name] = _scan_class(node, entry.imports, local, module)
    return entry


def _flatten(node: ast.stmt):
    """Module-level statements, looking inside ``if``/``try`` (guarded imports)."""
    if isinstance(node, (ast.If, ast.Try)):
        for child in [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]:
            yield from _flatten(child)
        for handler in getattr(node, "handlers", []):
            for child in handler.body:
                yield from _flatten(child)
    else:
        yield node


def _qualify(expr: ast.expr, imports: dict[str, str], local: set[str], module: str) -> str:
    dotted = _dotted(expr)
    if not dotted:
        return "?"
    head, _, rest = dotted.partition(".")
    if head in imports:
        return imports[head] + (f".{rest}" if rest else "")
    if head in local:
        return f"{module}.{dotted}"
    return dotted if head in ("object", "Exception") else "?"


def _scan_class(node: ast.ClassDef, imports: dict[str, str], local: set[str], module: str) -> ClassEntry:
    entry = ClassEntry(node.name, [_qualify(b, imports, local, module) for b in node.bases])
    methods = {m.name: m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
    entry.branches, entry.plain_uses = skip_branches(methods, lambda e: _qualify(e, imports, local, module))
    for item in node.body:
        if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = item.args
        positional = [a.arg for a in (*args.posonlyargs, *args.args)]
        if item.name == "forward":
            entry.defines_forward = True
            entry.forward_inputs = None if args.vararg else max(len(positional) - 1 - len(args.defaults), 0)
            entry.forward_skip = forward_skip(item, set(methods))
        elif item.name == "__init__":
            entry.init_params = positional[1:] + [a.arg for a in args.kwonlyargs]
            entry.layer_evidence = entry.layer_evidence or _layer_evidence(item, imports)
    return entry


def _layer_evidence(init: ast.FunctionDef, imports: dict[str, str]) -> str:
    for node in ast_nodes(init):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            callee = _dotted(node.value.func)
            head, _, rest = (callee or "").partition(".")
            q = imports.get(head, "") + (f".{rest}" if rest else "") if head in imports else None
            for t in node.targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    if q and is_module_base(q):
                        return f"assigns a layer to self.{t.attr}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "self" and node.func.attr in (
                "register_buffer",
                "register_parameter",
                "add_module",
            ):
                return f"calls self.{node.func.attr}()"
    return ""


# --- skips: what a forward does with its input, and which blocks a forward adds back ---------

_META_ATTRS = {"shape", "device", "dtype", "ndim", "is_cuda", "requires_grad", "layout"}
_META_METHODS = {"size", "dim", "ndimension", "numel", "get_device", "stride", "new_zeros", "new_ones", "new_empty"}
_JOIN_CALLS = {"add", "sub", "cat", "concat", "concatenate", "stack", "lerp", "addcmul", "sum"}
_CAST_METHODS = {"to", "float", "half", "double", "bfloat16", "type", "type_as", "contiguous", "clone"}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast_nodes(node) if type(n) is ast.Name}


def _bindings(nodes: list[ast.AST]) -> list[tuple[set[str], ast.AST]]:
    """What each binding among ``nodes`` binds, with the value it binds it from."""
    bindings: list[tuple[set[str], ast.AST]] = []
    for node in nodes:
        if isinstance(node, ast.Assign):
            bindings.append((set().union(*(_names(t) for t in node.targets)), node.value))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            bindings.append((_names(node.target), node.value))
        elif isinstance(node, (ast.For, ast.comprehension)):
            bindings.append((_names(node.target), node.iter))
    return bindings


def _derived(fn: ast.AST, seeds: set[str], through=lambda value: True, bindings=None) -> set[str]:
    """The names of a function bound, directly or through other names, from ``seeds``
    (flow-insensitive; metadata such as ``x.shape`` or ``x.size()`` is not data), by values that
    ``through`` lets pass. ``bindings``: the function's ``_bindings``, when already known."""
    if bindings is None:
        bindings = _bindings(ast_nodes(fn))
    out = set(seeds)
    bindings = [(names, value) for names, value in bindings if through(value)]
    changed = True
    while changed:
        changed = False
        for names, value in bindings:
            if not names <= out and _carries(value, out):
                out |= names
                changed = True
    return out


def _carries(node: ast.AST, names: set[str]) -> bool:
    """Whether an expression carries data of ``names``."""
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Attribute):
        return node.attr not in _META_ATTRS and _carries(node.value, names)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _META_METHODS:
            return False
        if isinstance(func, ast.Name) and func.id in ("len", "isinstance", "print", "range"):
            return False
    return any(_carries(c, names) for c in child_nodes(node))


def _data_count(args: list[ast.expr], names: set[str]) -> int:
    n = 0
    for a in args:
        if isinstance(a, (ast.List, ast.Tuple)):
            n += _data_count(a.elts, names)
        elif isinstance(a, (ast.Starred, ast.ListComp, ast.GeneratorExp)) and _carries(a, names):
            n += 2
        elif _carries(a, names):
            n += 1
    return n


def _is_self_attr(node: ast.AST, attrs: set[str] | None = None) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        if attrs is None or node.attr in attrs:
            return node.attr
    return None


def forward_skip(fn: ast.FunctionDef | ast.AsyncFunctionDef, methods: set[str]) -> str:
    """``"skip"`` when forward joins two values of its first input, ``"none"`` when it plainly
    does not (one input, no helper, no ``super()``, no unknown function of two of them, returns
    its data), ``""`` when it cannot tell."""
    positional = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)][1:]
    if not positional or fn.args.vararg:
        return ""
    if len(positional) - len(fn.args.defaults) > 1:
        return ""  # a second input may be the stream the first is added to
    data = _derived(fn, {positional[0]})
    unknown = False
    returns = False
    for node in ast_nodes(fn):
        if isinstance(node, (ast.Yield, ast.YieldFrom, ast.Lambda)) or node is not fn and isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef)
        ):
            return ""
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            if _carries(node.left, data) and _carries(node.right, data):
                return "skip"
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Add, ast.Sub)):
            if _carries(node.target, data) and _carries(node.value, data):
                return "skip"
        elif isinstance(node, ast.Return) and node.value is not None and _carries(node.value, data):
            returns = True
            unknown |= isinstance(node.value, (ast.Tuple, ast.List, ast.Dict))
        elif isinstance(node, ast.Call):
            func = node.func
            leaf = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            two = _data_count(node.args, data) >= 2 or isinstance(func, ast.Attribute) and _carries(
                func.value, data
            ) and _data_count(node.args, data) >= 1
            if leaf in _JOIN_CALLS and two:
                return "skip"
            if _is_self_attr(func, methods) or "super" in _names(func) or two and not _is_self_attr(func):
                unknown = True
    return "none" if returns and not unknown else ""


def skip_branches(methods: dict[str, ast.FunctionDef | ast.AsyncFunctionDef], qualify) -> tuple[list[str], list[str]]:
    """The classes a class builds into an attribute (``self.blocks = ModuleList([Block(...)])``)
    and then adds around: a method joins the attribute's output with its own input (``x = x +
    blk(x)`` over the blocks, ``conv_out + res_out``, ``torch.cat([x, self.b(x)])``); and the
    classes it builds into attributes it does not add around."""
    built: dict[str, set[str]] = {}
    init = methods.get("__init__")
    for node in ast_nodes(init) if init else ():
        target = value = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("append", "extend"):
            target, value = node.func.value, node
        attr = _is_self_attr(target) if target is not None else None
        if attr:
            classes = {qualify(c.func) for c in ast_nodes(value) if isinstance(c, ast.Call)}
            classes = {q for q in classes if q != "?" and not q.startswith("torch.")}
            if classes:
                built.setdefault(attr, set()).update(classes)
    joined: set[str] = set()
    for name, fn in methods.items():
        if name != "__init__" and built:
            joined |= _joined_attrs(fn, set(built))
    branches = {q for attr in joined for q in built[attr]}
    plain = {q for attr, classes in built.items() if attr not in joined for q in classes}
    return sorted(branches), sorted(plain)


def _loop_bindings(target: ast.expr, iterable: ast.expr, attrs: set[str]) -> dict[str, str]:
    """Loop variables that hold one of ``attrs``' blocks: ``for blk in self.blocks``, ``for i, blk
    in enumerate(self.blocks)``, ``for a, b in zip(self.attns, self.ffs)`` (element-wise), ``for
    attn, ff in self.layers`` (a ModuleList of pairs)."""
    attr = _is_self_attr(iterable, attrs)
    if attr:
        return {v: attr for v in _names(target)}
    if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and isinstance(target, ast.Tuple):
        if iterable.func.id == "enumerate" and iterable.args and len(target.elts) == 2:
            return _loop_bindings(target.elts[1], iterable.args[0], attrs)
        if iterable.func.id == "zip" and len(iterable.args) == len(target.elts):
            out: dict[str, str] = {}
            for t, it in zip(target.elts, iterable.args):
                out.update(_loop_bindings(t, it, attrs))
            return out
    return {}


def _joined_attrs(fn: ast.AST, attrs: set[str]) -> set[str]:
    """The attributes among ``attrs`` whose output ``fn`` joins with the input it gave them."""
    nodes = ast_nodes(fn)
    loop_vars: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, (ast.For, ast.comprehension)):
            loop_vars.update(_loop_bindings(node.target, node.iter, attrs))

    def held(node: ast.AST) -> str | None:
        node = node.value if isinstance(node, ast.Subscript) else node
        return _is_self_attr(node, attrs) or (loop_vars.get(node.id) if isinstance(node, ast.Name) else None)

    def held_call(call: ast.Call) -> str | None:
        """The attribute a call runs a block of: ``blk(x)``, ``self.blocks[i](x)``, ``checkpoint(blk, x)``."""
        return held(call.func) or next((a for a in map(held, call.args[:1]) if a), None)

    def branch_calls(node: ast.AST) -> list[tuple[str, ast.Call]]:
        """Calls of a held block under ``node``."""
        return [(attr, c) for c in ast_nodes(node) if type(c) is ast.Call and (attr := held_call(c))]

    # names that only ever hold a held block's output (or its sum with something): a name also
    # bound by other layers (``x`` down a U-Net) says nothing about one block
    results: dict[str, set[str]] = {}
    mixed: set[str] = set()
    fed: dict[str, set[str]] = {}  # attribute -> the names its calls are given
    for node in nodes:
        if isinstance(node, ast.Assign):
            calls = branch_calls(node.value)
            for n in set().union(*(_names(t) for t in node.targets)):
                if calls:
                    results.setdefault(n, set()).update(a for a, _ in calls)
                elif not (isinstance(node.value, ast.BinOp) and n in _names(node.value)):
                    mixed.add(n)
        elif type(node) is ast.Call and (attr := held_call(node)):
            fed.setdefault(attr, set()).update(*(_names(a) - {"self"} for a in node.args))

    branches_of: dict[int, set[str]] = {}

    def branch_of(node: ast.AST) -> set[str]:
        found = branches_of.get(id(node))
        if found is None:
            held_names = (n for n in _names(node) if n not in mixed)
            found = {a for a, _ in branch_calls(node)} | {a for n in held_names for a in results.get(n, ())}
            branches_of[id(node)] = found
        return found

    # what each block was given, and what else flows from it, not through the block's output
    bindings = _bindings(nodes) if fed else []
    inputs = {
        attr: _derived(fn, names, lambda value, attr=attr: attr not in branch_of(value), bindings)
        for attr, names in fed.items()
    }
    sequences = _sequence_names(nodes)
    joined: set[str] = set()
    for node in nodes:
        pairs: list[tuple[ast.AST, ast.AST]] = []
        sides: tuple[ast.AST, ...] = ()
        if isinstance(node, ast.BinOp):
            sides = (node.left, node.right)
        elif isinstance(node, ast.AugAssign):
            sides = (node.target, node.value)
        if any(_is_sequence(side, sequences) for side in sides):
            continue  # ``outputs += layer_outputs[1:]`` concatenates tuples, it adds no tensors
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            pairs = [(node.left, node.right), (node.right, node.left)]
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            pairs = [(node.target, node.value), (node.value, node.target)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _JOIN_CALLS:
            parts = [e for a in node.args for e in (a.elts if isinstance(a, (ast.List, ast.Tuple)) else [a])]
            pairs = [(p, q) for p in parts for q in parts if p is not q]
        for branch, other in pairs:
            # another call of the same blocks is a parallel branch (``res += self.blocks[j](h)``)
            parallel = {a for a, _ in branch_calls(other)}
            joined |= {a for a in branch_of(branch) - parallel if _carries(other, inputs.get(a, set()))}
    return joined


def _sequence_names(nodes: list[ast.AST]) -> set[str]:
    """Names only ever bound to a tuple or list display (``outputs = (h, attn)``, ``() if keep
    else None``)."""
    bound: dict[str, bool] = {}
    for node in nodes:
        if isinstance(node, ast.Assign):
            for name in set().union(*(_names(t) for t in node.targets)):
                bound[name] = bound.get(name, True) and _display(node.value)
    return {name for name, only in bound.items() if only}


def _display(node: ast.AST) -> bool:
    """A tuple or list display, also one or None by a condition (``() if keep else None``)."""
    if isinstance(node, ast.IfExp):
        return _display(node.body) and _display(node.orelse) and not (_is_none(node.body) and _is_none(node.orelse))
    return isinstance(node, (ast.Tuple, ast.List, ast.ListComp)) or _is_none(node)


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _is_sequence(node: ast.AST, sequences: set[str]) -> bool:
    """A tuple or list display, a name of ``sequences``, or a slice of one (``outs[1:]``)."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        node = node.value
        return isinstance(node, ast.Name) and node.id in sequences
    return isinstance(node, (ast.Tuple, ast.List, ast.ListComp)) or isinstance(node, ast.Name) and node.id in sequences


def only_branches(files, canonical=lambda q: q) -> set[str]:
    """Classes some class of ``files`` uses as the branch of a skip it adds, none using them
    otherwise."""
    branches, plain = set(), set()
    for file in files:
        for cls in file.classes.values():
            branches.update(map(canonical, cls.branches))
            plain.update(map(canonical, cls.plain_uses))
    return branches - plain


# --- the index -------------------------------------------------------------------------------


class ProjectIndex:
    """Classes and imports of every file under a root, answering cross-file questions."""

    def __init__(self, root: Path, files: Mapping[str, FileEntry]) -> None:
        self.root = root
        self.files = files  # module name -> entry
        self._module_cache: dict[str, tuple[bool | None, str]] = {}

    @functools.cached_property
    def digest(self) -> str:
        """Changes when what the index records of any file changes (what cached results that
        used the index are checked against); an edit the index does not see, in a function's
        body or by a fix, leaves the other files' results valid."""
        h = hashlib.blake2b(digest_size=16)
        for module in sorted(self.files):
            e = self.files[module]
            h.update(repr((module, e.path, e.classes, e.imports, e.star_imports)).encode())
        return h.hexdigest()

    def find_class(self, qualname: str, hops: int = 0) -> tuple[FileEntry, ClassEntry] | None:
        """The entry for a class by qualified name, following re-exports (``from .a import B``)."""
        module, _, name = qualname.rpartition(".")
        entry = self.files.get(module)
        if entry is None or hops > 10:
            return None
        if name in entry.classes:
            return entry, entry.classes[name]
        target = entry.imports.get(name)
        if target and target != qualname:
            return self.find_class(target, hops + 1)
        for star in entry.star_imports:
            found = self.find_class(f"{star}.{name}", hops + 1)
            if found:
                return found
        return None

    def imported_name(self, qualname: str, hops: int = 0) -> str | None:
        """What a name of a project module stands for when that module imports it (``from einops
        import rearrange`` in ``common.py`` for ``common.rearrange``), also through its own
        wildcard imports: the qualified name, or None."""
        module, _, name = qualname.rpartition(".")
        entry = self.files.get(module)
        if entry is None or hops > 10 or name in entry.classes:
            return None
        target = entry.imports.get(name)
        if target:
            return self.imported_name(target, hops + 1) or target
        for star in entry.star_imports:
            found = self.imported_name(f"{star}.{name}", hops + 1)
            if found:
                return found
        return None

    def forward_kind(self, qualname: str, hops: int = 0) -> str:
        """What the forward a class runs does with its input: ``"skip"``, ``"none"``,
        ``"sequential"`` (an nn.Sequential subclass that inherits Sequential's chain), or ``""``."""
        found = self.find_class(qualname)
        if found is None or hops > 10:
            return ""
        cls = found[1]
        if cls.defines_forward:
            return cls.forward_skip
        for base in cls.bases:
            if base in ("torch.nn.Sequential", "torch.nn.modules.container.Sequential"):
                return "sequential"
            kind = self.forward_kind(base, hops + 1)
            if kind:
                return kind
        return ""

    @functools.cached_property
    def branch_classes(self) -> set[str]:
        """Classes that the project only uses as the branch of a skip the user adds itself."""
        return only_branches(self.files.values(), self._canonical)

    def _canonical(self, qualname: str) -> str:
        found = self.find_class(qualname)
        return f"{found[0].module}.{found[1].name}" if found else qualname

    def is_module(self, qualname: str) -> tuple[bool | None, str]:
        """Whether the named class is an nn.Module (True/False/None) and the evidence."""
        if qualname not in self._module_cache:
            self._module_cache[qualname] = (None, "")  # cycles resolve to unknown
            self._module_cache[qualname] = self._is_module(qualname)
        return self._module_cache[qualname]

    def _is_module(self, qualname: str) -> tuple[bool | None, str]:
        known = is_module_base(qualname)
        found = self.find_class(qualname)
        if found is None:
            return known, f"subclass of {qualname}" if known else ""
        file, cls = found
        where = os.path.relpath(file.path, self.root)
        status: bool | None = False
        for base in cls.bases:
            b, _ = (None, "") if base == "?" else self.is_module(base)
            if b:
                return True, f"{cls.name} ({where}) derives from {base}"
            if b is None and base != "object":
                status = None
        if status is None:
            if cls.defines_forward:
                return True, f"{cls.name} ({where}) defines forward()"
            if cls.layer_evidence:
                return True, f"{cls.name} ({where}) {cls.layer_evidence}"
        return status, ""


# --- building and caching --------------------------------------------------------------------


def _python_files(root: Path) -> list[Path]:
    return [p for p in discover([str(root)], Selection(root=root)) if p.suffix == ".py"]


def _cache_file(root: Path, cache_dir: Path | None) -> Path:
    return (cache_dir or cache.default_dir(root)) / f"index-{__version__}-{SCHEMA}.json"


def build(root: Path, cache_dir: Path | None = None, use_cache: bool = True, jobs: int = 1, save: bool = True) -> ProjectIndex:
    """The index of a project, reusing cached entries of files whose size and mtime (or, failing
    that, content) are unchanged, and writing the refreshed cache back atomically (unless not
    ``save``: ``--diff`` writes nothing). The files to scan are scanned in ``jobs`` processes
    when there are enough of them. Without the cache, each file is scanned when the index is
    first asked about it (``LazyFiles``)."""
    root = root.resolve()
    if not use_cache:
        return ProjectIndex(root, LazyFiles(_python_files(root)))
    cache_path = _cache_file(root, cache_dir)
    try:
        cached: dict[str, dict] = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    records: dict[str, dict | None] = {}  # in the files' order; None: to scan
    stale: list[tuple[Path, list[int]]] = []
    for path in _python_files(root):
        try:
            st = path.stat()
        except OSError:
            continue
        stamp = [st.st_size, st.st_mtime_ns]
        old = cached.get(str(path))
        records[str(path)] = old if old and old["stamp"] == stamp else None
        if records[str(path)] is None:
            stale.append((path, stamp))
    todo = [(path, cached[str(path)]["entry"] if str(path) in cached else None) for path, _ in stale]
    for (path, stamp), entry in zip(stale, _scan_all(todo, jobs)):
        records[str(path)] = {"stamp": stamp, "entry": entry} if entry is not None else None
    fresh = {key: record for key, record in records.items() if record is not None}
    files = {record["entry"]["module"]: _entry_from_dict(record["entry"]) for record in fresh.values()}
    if save and (stale or len(fresh) != len(cached)):
        cache.write_atomically(cache_path, json.dumps(fresh))
    return ProjectIndex(root, files)


# Fewer files than this are scanned in this process: starting workers would cost more.
_FILES_PER_POOL = 64


def _scan_all(todo: list[tuple[Path, dict | None]], jobs: int) -> list[dict | None]:
    if jobs > 1 and len(todo) >= _FILES_PER_POOL:
        from torchlint.engine import process_pool

        with process_pool(jobs) as pool:
            return list(pool.map(_scan_file, todo, chunksize=max(1, min(16, len(todo) // (jobs * 8)))))
    return [_scan_file(item) for item in todo]


def _scan_file(item: tuple[Path, dict | None]) -> dict | None:
    """A file's entry as a dict (the previous one when its content is unchanged); None for a
    file that cannot be read."""
    path, previous = item
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest = cache_digest(data)
    if previous and previous["digest"] == digest:
        return previous
    try:
        entry = scan(data, module_name(path), str(path), digest)
    except (SyntaxError, ValueError, RecursionError):
        entry = FileEntry(module_name(path), str(path), digest)
    return asdict(entry)


class LazyFiles(Mapping[str, FileEntry]):
    """The entries of a project's files by module name, each file scanned when it is first
    asked for: a run that asks the index about a few classes scans their files alone. The same
    mapping as ``build`` makes from a full scan: of files with one module name the last readable
    one, in the order of ``_python_files``."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths: dict[str, list[Path]] = {}
        for path in paths:
            self._paths.setdefault(module_name(path), []).append(path)
        self._entries: dict[str, FileEntry | None] = {}

    def __getitem__(self, module: str) -> FileEntry:
        if module not in self._entries:
            self._entries[module] = self._scan(module)
        entry = self._entries[module]
        if entry is None:
            raise KeyError(module)
        return entry

    def _scan(self, module: str) -> FileEntry | None:
        for path in reversed(self._paths.get(module, ())):
            record = _scan_file((path, None))
            if record is not None:
                return _entry_from_dict(record)
        return None

    def __contains__(self, module: object) -> bool:
        return isinstance(module, str) and self.get(module) is not None

    def __iter__(self) -> Iterator[str]:
        return (module for module in self._paths if module in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Loader:
    """A zero-argument function that builds the index on its first call and then keeps it. It
    pickles without the index (a process started afresh builds its own from the cache)."""

    def __init__(self, root: Path, cache_dir: Path | None = None, use_cache: bool = True, jobs: int = 1, save: bool = True) -> None:
        self.root, self.cache_dir, self.use_cache, self.jobs, self.save = root, cache_dir, use_cache, jobs, save
        self._index: ProjectIndex | None = None

    def __call__(self) -> ProjectIndex:
        if self._index is None:
            self._index = build(self.root, self.cache_dir, self.use_cache, self.jobs, self.save)
        return self._index

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_index": None}


def loader(root: Path, cache_dir: Path | None = None, use_cache: bool = True, jobs: int = 1, save: bool = True) -> Loader:
    """``jobs``: the processes the build may scan files in (the CLI's ``--jobs``); ``save``:
    whether it writes its cache back."""
    return Loader(root, cache_dir, use_cache, jobs, save)


def loader_for(path: Path) -> Callable[[], ProjectIndex]:
    """The index loader of the project a file belongs to, one per project root per process
    (for adapters that see one file at a time: flake8, the language server)."""
    return _shared_loader(find_root(path))


@functools.cache
def _shared_loader(root: Path) -> Callable[[], ProjectIndex]:
    return loader(root)


def _entry_from_dict(d: dict) -> FileEntry:
    classes = {name: ClassEntry(**c) for name, c in d["classes"].items()}
    return FileEntry(d["module"], d["path"], d["digest"], classes, d["imports"], d["star_imports"])
