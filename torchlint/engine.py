"""The engine: files in, findings out. Read top to bottom, it is the path of one file:

    read bytes -> decode -> prefilter -> parse -> ModuleFacts -> rules -> positions -> noqa

Every adapter (CLI, flake8, language server) calls ``check_source`` or ``check_paths``.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import os
import re
import tokenize
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from torchlint.facts import ModuleFacts
from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE, PARSE_ERROR_NAME, Fix, Rule

# Directories never descended into, as ruff's defaults.
SKIP_DIRS = {
    ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", "venv", "env", ".eggs",
    "__pycache__", "build", "dist", "node_modules", "site-packages", "__pypackages__",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".torchlint_cache", "_build", "buck-out",
}
PYTHON_SUFFIXES = (".py", ".pyi")


@dataclass(frozen=True)
class TextEdit:
    """Replace the text from (line, column) up to (end_line, end_column), 1-based, with ``content``
    (an insertion when the two positions are equal), as ruff's JSON ``edits``."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str


@dataclass(frozen=True)
class TextFix:
    message: str
    applicability: str  # "safe" or "unsafe", as ruff's
    edits: tuple[TextEdit, ...]
    imports: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, order=True)
class Finding:
    """One finding, with 1-based line and column (columns count characters, as ruff's)."""

    path: str
    line: int
    column: int
    code: str
    message: str
    end_line: int = 0
    end_column: int = 0
    name: str = field(default="", compare=False)
    fix: TextFix | None = field(default=None, compare=False)


@dataclass
class Selection:
    """Which rules run on a file, and per-file ignores (glob -> code prefixes)."""

    codes: frozenset[str] = frozenset([PARSE_ERROR_CODE, *(c for c, r in ALL_RULES.items() if r.default_enabled)])
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    root: Path = field(default_factory=Path.cwd)
    target_version: tuple[int, int] | None = None  # the oldest torch the project supports; None: the latest

    def codes_for(self, path: str) -> frozenset[str]:
        ignored = [p for glob, prefixes in self.per_file_ignores.items() if _glob_match(path, glob, self.root) for p in prefixes]
        if not ignored:
            return self.codes
        return frozenset(c for c in self.codes if not c.startswith(tuple(ignored)))

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
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in SKIP_DIRS and not d.startswith(".") and not d.endswith(".egg-info")
            and not (here / d / "pyvenv.cfg").exists() and not selection.excluded(here / d)
        )
        for name in sorted(filenames):
            if name.endswith(PYTHON_SUFFIXES) and not selection.excluded(here / name):
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
    """The enabled rules that could fire on this text (the cheap prefilter)."""
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


def check_source(
    text: str,
    path: str = "<stdin>",
    codes: Iterable[str] | None = None,
    module_name: str | None = None,
    apply_noqa: bool = True,
    project: Callable[[], object] | None = None,
    target_version: tuple[int, int] | None = None,
) -> list[Finding]:
    """The findings of the given codes (default: every rule, and TL000) in one source text, sorted.
    ``target_version``: the oldest torch the project supports (None: the latest)."""
    codes = frozenset([*ALL_RULES, PARSE_ERROR_CODE]) if codes is None else frozenset(codes)
    report_errors = PARSE_ERROR_CODE in codes
    rules = rules_for(text, codes, target_version)
    if not rules and (not report_errors or _cpython_parses(text)):
        return []  # no rule can fire; CPython's parser is the cheaper syntax check
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as e:
        return [_parse_error(path, *_syntax_error(text, e))] if report_errors else []
    except (RecursionError, MemoryError) as e:
        return [_parse_error(path, f"cannot parse: {type(e).__name__}", 1, 1)] if report_errors else []
    if not rules:
        return []
    try:
        facts = ModuleFacts(module, module_name, project, is_package=Path(path).name == "__init__.py")
        hits = [(rule, hit) for rule in rules for hit in rule.check(facts)]
        if not hits:
            return []
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    except RecursionError:
        return [_parse_error(path, "cannot check: nested too deeply", 1, 1)] if report_errors else []
    newline = module.default_newline
    lines = re.split(r"\r\n?|\n", text)
    findings = [
        _finding(path, rule, hit.full_message(), positions[hit.node], _text_fix(hit.fix, positions, lines, newline))
        for rule, hit in hits
    ]
    if apply_noqa:
        findings = _without_noqa(findings, positions)
    return sorted(set(findings))


def _cpython_parses(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


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
    codes = selection.codes_for(str(path))
    try:
        text = decode(path.read_bytes())
    except OSError as e:
        error = SourceError(f"cannot read: {e.strerror or e}")
    except SourceError as e:
        error = e
    else:
        return check_source(text, str(path), codes, module_name_for(path), apply_noqa, project, selection.target_version)
    return [_parse_error(str(path), str(error), error.line, error.column)] if PARSE_ERROR_CODE in codes else []


def check_paths(
    paths: Sequence[str], selection: Selection, project: Callable[[], object] | None = None
) -> list[Finding]:
    """Every finding under the given paths, sorted by path, line, column and code."""
    findings: list[Finding] = []
    for path in discover(paths, selection):
        try:
            findings.extend(check_file(path, selection, project=project))
        except Exception as e:
            raise InternalError(f"while checking {path}: {type(e).__name__}: {e}") from e
    return sorted(findings)


def _parse_error(path: str, message: str, line: int, column: int) -> Finding:
    return Finding(path, max(line, 1), max(column, 1), PARSE_ERROR_CODE, message, name=PARSE_ERROR_NAME)


def _finding(path: str, rule: Rule, message: str, r: CodeRange, fix: TextFix | None) -> Finding:
    return Finding(
        path, r.start.line, r.start.column + 1, rule.code, message, r.end.line, r.end.column + 1, rule.name, fix
    )


def _text_fix(fix: Fix | None, positions: Mapping[cst.CSTNode, CodeRange], lines: list[str], newline: str) -> TextFix | None:
    """A rule's node edits as text edits: replacements over the node's range; insertions of a
    statement line before a statement, with that statement's own indentation."""
    if fix is None:
        return None
    edits = []
    for e in fix.edits:
        r = positions[e.node]
        if e.before:
            line = lines[r.start.line - 1] if r.start.line <= len(lines) else ""
            indent = line[: len(line) - len(line.lstrip())]
            at = (r.start.line, r.start.column + 1)
            edits.append(TextEdit(*at, *at, e.code + newline + indent))
        else:
            edits.append(TextEdit(r.start.line, r.start.column + 1, r.end.line, r.end.column + 1, e.code))
    return TextFix(fix.message, "safe" if fix.safe else "unsafe", tuple(edits), fix.imports)


# --- noqa ------------------------------------------------------------------------------------

_CODES = r"(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*)"
_NOQA = re.compile(rf"#\s*noqa(?::\s?{_CODES})?", re.I)
_FILE_NOQA = re.compile(rf"#\s*torchlint:\s*noqa(?::\s*{_CODES})?\s*$", re.I)


def _without_noqa(findings: list[Finding], positions: Mapping[cst.CSTNode, CodeRange]) -> list[Finding]:
    """flake8's rules, read from the file's comments (never from strings): ``# noqa`` silences its
    line, ``# noqa: TL2,TL301`` those code prefixes; ``# torchlint: noqa[: codes]`` on a line of
    its own silences the whole file."""
    line_codes: dict[int, str | None] = {}
    file_codes: list[str | None] = []
    for node, r in positions.items():
        if isinstance(node, cst.Comment) and (m := _NOQA.search(node.value)):
            line_codes[r.start.line] = m.group("codes")
        elif isinstance(node, cst.EmptyLine) and node.comment and (m := _FILE_NOQA.match(node.comment.value)):
            file_codes.append(m.group("codes"))

    def suppressed(f: Finding) -> bool:
        if any(_matches(codes, f.code) for codes in file_codes):
            return True
        return f.line in line_codes and _matches(line_codes[f.line], f.code)

    return [f for f in findings if not suppressed(f)]


def _matches(codes: str | None, code: str) -> bool:
    if not codes:
        return True
    return code.startswith(tuple(c.upper() for c in re.split(r"[,\s]+", codes) if c))
