"""The engine: files in, findings out. Read top to bottom, it is the path of one file:

    read bytes -> decode -> needles -> ast screen -> parse -> ModuleFacts -> rules -> positions -> noqa

Every adapter (CLI, flake8, language server) calls ``check_source`` or ``check_paths``.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import functools
import gc
import hashlib
import io
import multiprocessing
import os
import re
import sys
import time
import tokenize
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import libcst as cst
from libcst.metadata import CodeRange

from torchlint import notebook, screen
from torchlint.edits import import_edits
from torchlint.facts import ModuleFacts
from torchlint.finding import Finding, TextEdit, TextFix
from torchlint.incremental import DocumentTree
from torchlint.positions import Positions
from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE, PARSE_ERROR_NAME, Fix, Rule

if TYPE_CHECKING:
    from torchlint.cache import ResultCache

T = TypeVar("T")
R = TypeVar("R")

# Directories never descended into, as ruff's defaults.
SKIP_DIRS = {
    ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", "venv", "env", ".eggs",
    "__pycache__", "build", "dist", "node_modules", "site-packages", "__pypackages__",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".torchlint_cache", "_build", "buck-out",
}
PYTHON_SUFFIXES = (".py", ".pyi")
# How each file suffix is read: as Python, or as a Jupyter notebook (torchlint/notebook.py).
# ``--extension``/``extension`` add to it; a file named explicitly is read as Python otherwise.
DEFAULT_EXTENSIONS = {".py": "python", ".pyi": "python", ".ipynb": "ipynb"}


@dataclass
class Selection:
    """Which rules run on a file, and per-file ignores (glob -> code prefixes)."""

    codes: frozenset[str] = frozenset([PARSE_ERROR_CODE, *(c for c, r in ALL_RULES.items() if r.default_enabled)])
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    root: Path = field(default_factory=Path.cwd)
    target_version: tuple[int, int] | None = None  # the oldest torch the project supports; None: the latest
    extensions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EXTENSIONS))

    def for_file(self, path: Path) -> Selection:
        """The selection that applies to ``path``: this one (see config.PerFileSelection)."""
        return self

    def language(self, path: Path) -> str:
        """``ipynb`` for a file read as a notebook, else ``python``."""
        return self.extensions.get(path.suffix, "python")

    def codes_for(self, path: str) -> frozenset[str]:
        ignored = [p for glob, prefixes in self.per_file_ignores.items() if _glob_match(path, glob, self.root) for p in prefixes]
        if not ignored:
            return self.codes
        return frozenset(c for c in self.codes if not c.startswith(tuple(ignored)))

    def settings_key(self, path: str, project_index: bool) -> str:
        """What a file's cached findings depend on besides its content and torchlint's version."""
        return (f"{','.join(sorted(self.codes_for(path)))};{self.language(Path(path))};"
                f"target-version={self.target_version};project-index={project_index}")

    def excluded(self, path: Path) -> bool:
        return any(_glob_match(str(path), glob, self.root) for glob in self.exclude)


def _glob_match(path: str, glob: str, root: Path) -> bool:
    """Match a path against a glob as ruff does: relative to the config's root, or by name."""
    p = Path(path)
    try:
        rel = p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = p.as_posix()
    return fnmatch.fnmatch(rel, glob) or fnmatch.fnmatch(p.name, glob) or rel.startswith(glob.rstrip("/") + "/")


# --- discovery -------------------------------------------------------------------------------


def discover(paths: Sequence[str], selection: Selection) -> list[Path]:
    """Python files under the given paths, each once. A file named explicitly is always checked.
    A path that does not exist raises ``FileNotFoundError`` before any file is read."""
    for raw in paths:
        if not os.path.exists(raw):
            raise FileNotFoundError(raw)
    return list(dict.fromkeys(path for raw in paths for path in _walk(Path(raw), selection)))


def _walk(path: Path, selection: Selection) -> Iterator[Path]:
    if not path.is_dir():
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path):
        here = Path(dirpath)
        local = selection.for_file(here)  # the settings of the configuration nearest this directory
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info")
            and not (here / d / "pyvenv.cfg").exists() and not local.excluded(here / d)
        )
        for name in sorted(filenames):
            if Path(name).suffix in local.extensions and not local.excluded(here / name):
                yield here / name


# --- one file --------------------------------------------------------------------------------


class InternalError(Exception):
    """A bug in torchlint met while checking a file (the CLI exits 2 with this one line)."""


class SourceError(Exception):
    """A file that cannot be decoded or parsed: reported as TL000 at ``line``."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def decode(data: bytes) -> str:
    """Bytes to text as Python reads a source file: BOM, PEP 263 cookie, else UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as e:
        raise SourceError(f"cannot decode: {e}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SourceError(f"cannot decode as {encoding}: invalid byte {data[e.start]:#04x}", line) from None
    except LookupError:
        raise SourceError(f"cannot decode: unknown encoding {encoding!r}") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SourceError("cannot parse: source contains a null byte", line)
    return text


def rules_for(text: str, codes: Iterable[str], target_version: tuple[int, int] | None = None) -> list[Rule]:
    """The enabled rules that could fire on this text (the needles, the first tier)."""
    rules = [ALL_RULES[c]() for c in sorted(codes) if c in ALL_RULES and any(n in text for n in ALL_RULES[c].needles)]
    for rule in rules:
        rule.target_version = target_version
    return rules


def module_name_for(path: Path) -> str | None:
    """The dotted module name of a file inside a package (``pkg/sub/mod.py`` -> ``pkg.sub.mod``)."""
    path = path.resolve()
    parts = [] if path.stem == "__init__" else [path.stem]
    parent = path.parent
    while (parent / "__init__.py").exists():
        parts.insert(0, parent.name)
        parent = parent.parent
    return ".".join(parts) or None


@contextlib.contextmanager
def _cycles_collected_once() -> Iterator[None]:
    """Python's cycle collector paused while a file is checked, then run once over what the
    check left. Parsing allocates millions of objects that live until the file is done, and the
    collector, triggered every 700 allocations, traverses them again and again (about a sixth of
    a cold run); one young-generation pass afterwards frees the check's reference cycles."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.collect(0)
        gc.enable()


def check_source(
    text: str,
    path: str = "<stdin>",
    codes: Iterable[str] | None = None,
    module_name: str | None = None,
    apply_noqa: bool = True,
    project: Callable[[], object] | None = None,
    tree: DocumentTree | None = None,
    lazy_fixes: bool = False,
    target_version: tuple[int, int] | None = None,
    syntax_tree: ast.Module | None = None,
) -> list[Finding]:
    """The findings of the given codes (default: every rule, and TL000) in one source text, sorted.
    ``tree``: the document's tree across edits (the language server), parsed again only where
    the text changed. ``lazy_fixes``: render each fix's edits only when they are read (the
    rendered text and the tree stay alive with the findings until then). ``target_version``: the
    oldest torch the project supports (None: the latest). ``syntax_tree``: CPython's ``ast`` of
    the text, when the caller has parsed it already (flake8), so that it is not parsed again."""
    with _cycles_collected_once():
        return _check_source(text, path, codes, module_name, apply_noqa, project, tree, lazy_fixes, target_version, syntax_tree)


def _check_source(
    text: str, path: str, codes: Iterable[str] | None, module_name: str | None, apply_noqa: bool,
    project: Callable[[], object] | None, tree: DocumentTree | None, lazy_fixes: bool,
    target_version: tuple[int, int] | None, syntax_tree: ast.Module | None,
) -> list[Finding]:
    codes = frozenset([*ALL_RULES, PARSE_ERROR_CODE]) if codes is None else frozenset(codes)
    report_errors = PARSE_ERROR_CODE in codes
    rules = rules_for(text, codes, target_version)
    if not rules and not report_errors:
        return []
    info = screen.read(text, syntax_tree) if not rules or screen.worth_screening(text) else None
    if info is not None:
        rules = screen.passing(rules, info)
        if not rules:
            return []  # no rule can fire; CPython's parser was the cheaper syntax check
    try:
        module = cst.parse_module(text) if tree is None else tree.parse(text)
    except cst.ParserSyntaxError as e:
        return [_parse_error(path, *_syntax_error(text, e))] if report_errors else []
    except (RecursionError, MemoryError) as e:
        return [_parse_error(path, f"cannot parse: {type(e).__name__}", 1, 1)] if report_errors else []
    if not rules:
        return []
    try:
        facts = ModuleFacts(
            module, module_name, project, is_package=Path(path).name == "__init__.py",
            syntax_tree=info.tree if info is not None else syntax_tree,
        )
        hits = [(rule, hit) for rule in rules for hit in rule.check(facts)]
        if not hits:
            return []
        positions = Positions(module) if tree is None else tree.positions()
    except RecursionError:
        return [_parse_error(path, "cannot check: nested too deeply", 1, 1)] if report_errors else []
    newline = module.default_newline
    lines = re.split(r"\r\n?|\n", text)
    imports_of = functools.cache(partial(import_edits, text))  # one rendering per set of imports
    findings = [
        _finding(path, rule, hit.full_message(), positions[hit.node], _text_fix(hit.fix, positions, lines, newline, lazy_fixes, imports_of))
        for rule, hit in hits
    ]
    if apply_noqa and _ANY_NOQA.search(text):
        findings = _without_noqa(findings, positions, text)
    return sorted(set(findings))


def _syntax_error(text: str, error: cst.ParserSyntaxError) -> tuple[str, int, int]:
    """Why and where a file does not parse, as CPython's parser says it (LibCST's own positions
    are coarse, often line 1); LibCST's message when CPython accepts the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except SyntaxError as e:
        return f"cannot parse: {e.msg}", e.lineno or 1, e.offset or 1
    except (ValueError, RecursionError, MemoryError):
        pass
    message = str(error.message).removeprefix("parser error: ")
    return f"cannot parse: {message}", error.raw_line, error.raw_column + 1


def check_file(
    path: Path, selection: Selection, apply_noqa: bool = True, project: Callable[[], object] | None = None
) -> list[Finding]:
    """The findings of one file; ``project`` lazily gives the project index (see ModuleFacts)."""
    return _check_one(path, selection, project, apply_noqa)[0]


def check_bytes(
    path: Path, data: bytes, selection: Selection, apply_noqa: bool = True, project: Callable[[], object] | None = None
) -> list[Finding]:
    """The findings of a file's content (a notebook's located by cell)."""
    selection = selection.for_file(path)
    codes = selection.codes_for(str(path))
    if selection.language(path) == "ipynb":
        try:
            text = notebook.decode(data)
        except notebook.NotebookError as e:
            return _read_error(path, selection, SourceError(str(e), e.line, e.column))
        return check_notebook(text, str(path), codes, apply_noqa, project, selection.target_version)[1]
    try:
        text = decode(data)
    except SourceError as e:
        return _read_error(path, selection, e)
    return check_source(text, str(path), codes, module_name_for(path), apply_noqa, project, target_version=selection.target_version)


def check_notebook(
    text: str, path: str, codes: Iterable[str], apply_noqa: bool = True, project: Callable[[], object] | None = None,
    target_version: tuple[int, int] | None = None,
) -> tuple[notebook.Notebook | None, list[Finding]]:
    """The notebook in a notebook's JSON text and its findings, located by cell (None and a
    TL000 when it is not a notebook torchlint can read)."""
    codes = frozenset(codes)
    try:
        nb = notebook.load(text)
    except notebook.NotebookError as e:
        return None, [_parse_error(path, str(e), e.line, e.column)] if PARSE_ERROR_CODE in codes else []
    return nb, check_cells(nb, path, codes, apply_noqa, project, target_version)


def check_cells(
    nb: notebook.Notebook, path: str, codes: Iterable[str], apply_noqa: bool = True,
    project: Callable[[], object] | None = None, target_version: tuple[int, int] | None = None,
) -> list[Finding]:
    """The findings of a notebook's code cells, checked as one module, located by cell."""
    findings = check_source(nb.source, path, codes, None, apply_noqa, project, target_version=target_version)
    return sorted(nb.to_cells(f) for f in findings)


def _read_error(path: Path, selection: Selection, error: SourceError) -> list[Finding]:
    if PARSE_ERROR_CODE not in selection.for_file(path).codes_for(str(path)):
        return []
    return [_parse_error(str(path), str(error), error.line, error.column)]


def check_paths(
    paths: Sequence[str],
    selection: Selection,
    project: Callable[[], object] | None = None,
    cache: ResultCache | None = None,
    jobs: int = 1,
) -> list[Finding]:
    """Every finding under the given paths, sorted by path, line, column and code.

    Files found in ``cache`` unchanged are not checked again; the others are checked as
    ``map_files`` runs them, their results collected as they come and sorted at the end, so the
    output does not depend on the order they finish in. No file's content is kept after its
    check: memory grows with the largest file, not their number."""
    findings: list[Finding] = []
    todo: list[tuple[Path, str]] = []
    for path, key, _, cached in cached_files(paths, selection, project, cache):
        if cached is not None:
            findings.extend(cached)
        else:
            todo.append((path, key))
    todo_paths = [path for path, _ in todo]
    for (path, key), (result, digest, used_index) in zip(todo, map_files(_check_one, todo_paths, todo_paths, selection, project, jobs)):
        findings.extend(result)
        if cache is not None and digest is not None:
            cache.put(path, digest, key, used_index, result)
    if cache is not None:
        cache.save()
    return sorted(findings)


def cached_files(
    paths: Sequence[str], selection: Selection, project: Callable[[], object] | None, cache: ResultCache | None
) -> Iterator[tuple[Path, str, str | None, list[Finding] | None]]:
    """Each file under the paths with the settings key its cache entry has, its content digest
    (None without a cache, or when it cannot be read) and its cached findings (None: not cached)."""
    for path in discover(paths, selection):
        key = selection.for_file(path).settings_key(str(path), project is not None)
        digest = cached = None
        if cache is not None:
            try:
                digest = cache_digest(path.read_bytes())
            except OSError:
                pass
            else:
                cached = cache.get(path, digest, key)
        yield path, key, digest, cached


def map_files(
    work: Callable[[T, Selection, Callable[[], object] | None], R],
    items: list[T],
    paths: list[Path],
    selection: Selection,
    project: Callable[[], object] | None,
    jobs: int,
) -> Iterable[R]:
    """``work(item, selection, project)`` for each item (``paths``: the file each stands for), in
    order: in this process first, then, once the files left would take it more than
    ``_POOL_AFTER_SECONDS`` at its pace so far, in a pool of ``jobs`` processes forked from it."""
    if jobs <= 1 or len(items) < 2:
        return (work(item, selection, project) for item in items)
    return _here_then_pool(work, items, paths, selection, project, jobs)


# A pool of workers costs about this much (starting them, each warming up as this process did):
# the files are checked here until the rest, at this process's pace, would take longer, which a
# small run never does. The pace is measured over at least _MEASURE_SECONDS.
_POOL_AFTER_SECONDS = 1.0
_MEASURE_SECONDS = 0.2


def _here_then_pool(
    work: Callable, items: list, paths: list[Path], selection: Selection, project: Callable[[], object] | None, jobs: int
) -> Iterator:
    sizes = [_size(path) for path in paths]
    left = total = sum(sizes)
    start = time.perf_counter()
    for i, item in enumerate(items):
        elapsed = time.perf_counter() - start
        done = total - left
        if elapsed >= _MEASURE_SECONDS and done and len(items) - i > 1 and left * elapsed / done > _POOL_AFTER_SECONDS:
            if project is not None:
                project()  # the workers inherit the index and what it has scanned
            yield from _in_processes(work, items[i:], selection, project, jobs)
            return
        yield work(item, selection, project)
        left -= sizes[i]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def cache_digest(data: bytes) -> str:
    """The content digest the results cache and the project index key files by."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class TrackedProject:
    """A project index loader that remembers whether it was called (whether a check's findings
    depend on the index)."""

    def __init__(self, project: Callable[[], object]) -> None:
        self.project, self.used = project, False

    def __call__(self) -> object:
        self.used = True
        return self.project()


def _check_one(
    path: Path, selection: Selection, project: Callable[[], object] | None, apply_noqa: bool = True
) -> tuple[list[Finding], str | None, bool]:
    """One file's findings, the digest of the content they are for (None: unreadable), and
    whether the check consulted the project index."""
    tracked = TrackedProject(project) if project is not None else None
    try:
        data = path.read_bytes()
    except OSError as e:
        return _read_error(path, selection, SourceError(f"cannot read: {e.strerror or e}")), None, False
    try:
        findings = check_bytes(path, data, selection, apply_noqa, tracked)
    except Exception as e:
        raise InternalError(f"while checking {path}: {type(e).__name__}: {e}") from e
    return findings, cache_digest(data), tracked is not None and tracked.used


_worker_state: tuple[Callable, Selection, Callable[[], object] | None] | None = None


def _start_worker(work: Callable, selection: Selection, project: Callable[[], object] | None) -> None:
    global _worker_state
    _worker_state = (work, selection, project)


def _work(item):
    assert _worker_state is not None
    work, selection, project = _worker_state
    return work(item, selection, project)


def _in_processes(
    work: Callable, items: list, selection: Selection, project: Callable[[], object] | None, jobs: int
) -> Iterator:
    """``work(item, selection, project)`` for each item, in order, from a pool of processes."""
    chunksize = max(1, min(16, len(items) // (jobs * 8)))
    with process_pool(jobs, initializer=_start_worker, initargs=(work, selection, project)) as pool:
        yield from pool.map(_work, items, chunksize=chunksize)


def process_pool(jobs: int, **kwargs) -> ProcessPoolExecutor:
    """A pool of ``jobs`` processes; where the platform can fork, they start from this process's
    memory (its imports, the project index)."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin" else "spawn"
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(method), **kwargs)


def _parse_error(path: str, message: str, line: int, column: int) -> Finding:
    return Finding(path, max(line, 1), max(column, 1), PARSE_ERROR_CODE, message, name=PARSE_ERROR_NAME)


def _finding(path: str, rule: Rule, message: str, r: CodeRange, fix: TextFix | None) -> Finding:
    return Finding(
        path, r.start.line, r.start.column + 1, rule.code, message, r.end.line, r.end.column + 1, rule.name, fix
    )


def _text_fix(
    fix: Fix | None, positions: Positions, lines: list[str], newline: str, lazy: bool,
    imports_of: Callable[[tuple], tuple[TextEdit, ...]],
) -> TextFix | None:
    """A rule's fix as text edits, with the edits adding the imports it needs."""
    if fix is None:
        return None
    edits = partial(_text_edits, fix, positions, lines, newline)
    added = partial(imports_of, fix.imports) if fix.imports else tuple
    return TextFix(fix.message, "safe" if fix.safe else "unsafe", edits if lazy else edits(), fix.imports, added if lazy else added())


def _text_edits(fix: Fix, positions: Positions, lines: list[str], newline: str) -> tuple[TextEdit, ...]:
    """A rule's node edits as text edits: replacements over the node's range; insertions of a
    statement line before a statement, with that statement's own indentation."""
    edits = []
    for e in fix.edits:
        r = positions[e.node]
        code = e.code() if callable(e.code) else e.code
        if e.before:
            line = lines[r.start.line - 1] if r.start.line <= len(lines) else ""
            indent = line[: len(line) - len(line.lstrip())]
            at = (r.start.line, r.start.column + 1)
            edits.append(TextEdit(*at, *at, code + newline + indent))
        else:
            edits.append(TextEdit(r.start.line, r.start.column + 1, r.end.line, r.end.column + 1, code))
    return tuple(edits)


# --- noqa ------------------------------------------------------------------------------------

_CODES = r"(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*)"
_ANY_NOQA = re.compile("noqa", re.I)
NOQA = re.compile(rf"#\s*noqa(?::\s?{_CODES})?", re.I)
_FILE_NOQA = re.compile(rf"#\s*torchlint:\s*noqa(?::\s*{_CODES})?\s*$", re.I)


def noqa_lines(text: str) -> dict[int, int]:
    """As flake8: the line whose ``# noqa`` applies to a line that cannot hold a comment, a line
    ending inside a multi-line string or in a backslash continuation: the line where that string
    or continuation ends. Lines that can hold their own comment are not in the mapping."""
    out: dict[int, int] = {}
    first = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(text, newline="").readline):
            if token.type in (tokenize.ENDMARKER, tokenize.DEDENT):
                continue
            first = token.start[0] if first is None else first
            if token.type in (tokenize.NL, tokenize.NEWLINE):
                out.update(dict.fromkeys(range(first, token.start[0]), token.start[0]))
                first = None
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def _without_noqa(findings: list[Finding], positions: Positions, text: str) -> list[Finding]:
    """flake8's rules, read from the file's comments (never from strings): ``# noqa`` silences its
    line (and, at the end of a multi-line string or continuation, the lines it spans: see
    ``noqa_lines``), ``# noqa: TL2,TL301`` those code prefixes; ``# torchlint: noqa[: codes]`` on
    a line of its own silences the whole file."""
    line_codes: dict[int, str | None] = {}
    file_codes: list[str | None] = []
    for comment, line in positions.comments():
        if m := NOQA.search(comment.value):
            line_codes[line] = m.group("codes")
    for comment in positions.own_line_comments():
        if m := _FILE_NOQA.match(comment.value):
            file_codes.append(m.group("codes"))

    spanned = noqa_lines(text) if any(f.line not in line_codes for f in findings) else {}

    def suppressed(f: Finding) -> bool:
        if any(_matches(codes, f.code) for codes in file_codes):
            return True
        line = spanned.get(f.line, f.line)
        return line in line_codes and _matches(line_codes[line], f.code)

    return [f for f in findings if not suppressed(f)]


def _matches(codes: str | None, code: str) -> bool:
    if not codes:
        return True
    return code.startswith(tuple(c.upper() for c in re.split(r"[,\s]+", codes) if c))
