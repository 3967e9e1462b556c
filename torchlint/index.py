"""The project index: what every file of the project defines, so rules see across files.

A cheap pass (Python's own ``ast``, no LibCST, no rules) over every Python file under the project
root records each top-level class with its bases as qualified names, whether it defines
``forward`` and with how many inputs, its constructor parameters, and the evidence in its body
that it is a module; and each file's imports, so re-exports through ``__init__.py`` resolve.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torchlint import __version__, cache
from torchlint.engine import Selection, cache_digest, discover, module_name_for
from torchlint.facts import is_module_base

ROOT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")


@dataclass
class ClassEntry:
    name: str
    bases: list[str]  # qualified names; "?" for a base that is not a name
    defines_forward: bool = False
    forward_inputs: int | None = None  # positional inputs after self; None for *args
    init_params: list[str] = field(default_factory=list)
    layer_evidence: str = ""  # "assigns a layer to self.x" / "calls self.register_buffer()"


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
    tree = ast.parse(source)
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
    local = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
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
    for item in node.body:
        if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = item.args
        positional = [a.arg for a in (*args.posonlyargs, *args.args)]
        if item.name == "forward":
            entry.defines_forward = True
            entry.forward_inputs = None if args.vararg else max(len(positional) - 1 - len(args.defaults), 0)
        elif item.name == "__init__":
            entry.init_params = positional[1:] + [a.arg for a in args.kwonlyargs]
            entry.layer_evidence = entry.layer_evidence or _layer_evidence(item, imports)
    return entry


def _layer_evidence(init: ast.FunctionDef, imports: dict[str, str]) -> str:
    for node in ast.walk(init):
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


# --- the index -------------------------------------------------------------------------------


class ProjectIndex:
    """Classes and imports of every file under a root, answering cross-file questions."""

    def __init__(self, root: Path, files: dict[str, FileEntry]) -> None:
        self.root = root
        self.files = files  # module name -> entry
        self._module_cache: dict[str, tuple[bool | None, str]] = {}

    @functools.cached_property
    def digest(self) -> str:
        """Changes when any file of the project changes (what cached results that used the
        index are checked against)."""
        h = hashlib.blake2b(digest_size=16)
        for module in sorted(self.files):
            h.update(f"{module}\0{self.files[module].path}\0{self.files[module].digest}\n".encode())
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
    return (cache_dir or cache.default_dir(root)) / f"index-{__version__}.json"


def build(root: Path, cache_dir: Path | None = None, use_cache: bool = True) -> ProjectIndex:
    """The index of a project, reusing cached entries of files whose size and mtime (or, failing
    that, content) are unchanged, and writing the refreshed cache back atomically."""
    root = root.resolve()
    cache_path = _cache_file(root, cache_dir)
    cached: dict[str, dict] = {}
    if use_cache:
        try:
            cached = json.loads(cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cached = {}
    fresh: dict[str, dict] = {}
    files: dict[str, FileEntry] = {}
    changed = False
    for path in _python_files(root):
        key = str(path)
        try:
            st = path.stat()
        except OSError:
            continue
        stamp = [st.st_size, st.st_mtime_ns]
        old = cached.get(key)
        if old and old["stamp"] == stamp:
            record = old
        else:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            digest = cache_digest(data)
            if old and old["entry"]["digest"] == digest:
                record = {"stamp": stamp, "entry": old["entry"]}
            else:
                try:
                    entry = scan(data, module_name(path), key, digest)
                except (SyntaxError, ValueError, RecursionError):
                    entry = FileEntry(module_name(path), key, digest)
                record = {"stamp": stamp, "entry": asdict(entry)}
            changed = True
        fresh[key] = record
        files[record["entry"]["module"]] = _entry_from_dict(record["entry"])
    if use_cache and (changed or len(fresh) != len(cached)):
        cache.write_atomically(cache_path, json.dumps(fresh))
    return ProjectIndex(root, files)


class Loader:
    """A zero-argument function that builds the index on its first call and then keeps it. It
    pickles without the index (a process started afresh builds its own from the cache)."""

    def __init__(self, root: Path, cache_dir: Path | None = None, use_cache: bool = True) -> None:
        self.root, self.cache_dir, self.use_cache = root, cache_dir, use_cache
        self._index: ProjectIndex | None = None

    def __call__(self) -> ProjectIndex:
        if self._index is None:
            self._index = build(self.root, self.cache_dir, self.use_cache)
        return self._index

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_index": None}


def loader(root: Path, cache_dir: Path | None = None, use_cache: bool = True) -> Loader:
    return Loader(root, cache_dir, use_cache)


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
