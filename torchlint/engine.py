"""The engine: files in, findings out. Read top to bottom, it is the path of one file:

    read bytes -> decode -> prefilter -> parse -> ModuleFacts -> rules -> positions -> noqa

Every adapter (CLI, flake8, language server) calls ``check_source`` or ``check_paths``.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE, PARSE_ERROR_NAME, Rule

# Directories never descended into, as ruff's defaults.
SKIP_DIRS = {
    ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", "venv", "env", ".eggs",
    "__pycache__", "build", "dist", "node_modules", "site-packages", "__pypackages__",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".torchlint_cache", "_build", "buck-out",
}
PYTHON_SUFFIXES = (".py", ".pyi")


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


@dataclass
class Selection:
    """Which rules run on a file, and per-file ignores (glob -> code prefixes)."""

    codes: frozenset[str] = frozenset([PARSE_ERROR_CODE, *(c for c, r in ALL_RULES.items() if r.default_enabled)])
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    root: Path = field(default_factory=Path.cwd)

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


def discover(paths: Sequence[str], selection: Selection) -> Iterator[Path]:
    """Python files under the given paths. A file named explicitly is always checked."""
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            yield path
            continue
        if not path.is_dir():
            raise FileNotFoundError(raw)
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


def rules_for(text: str, codes: Iterable[str]) -> list[Rule]:
    """The enabled rules that could fire on this text (the cheap prefilter)."""
    return [ALL_RULES[c]() for c in sorted(codes) if c in ALL_RULES and any(n in text for n in ALL_RULES[c].needles)]


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
) -> list[Finding]:
    """All findings in one source text, sorted."""
    import libcst as cst

    from torchlint.facts import ModuleFacts

    codes = frozenset(ALL_RULES) if codes is None else frozenset(codes)
    rules = rules_for(text, codes)
    if not rules and PARSE_ERROR_CODE not in codes:
        return []
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as e:
        message = str(e.message).removeprefix("parser error: ")
        return [_parse_error(path, f"cannot parse: {message}", e.raw_line, e.raw_column + 1)]
    except (RecursionError, MemoryError) as e:
        return [_parse_error(path, f"cannot parse: {type(e).__name__}", 1, 1)]
    if not rules:
        return []
    facts = ModuleFacts(module, module_name)
    hits = [(rule, hit) for rule in rules for hit in rule.check(facts)]
    if not hits:
        return []
    findings = _locate(module, path, hits)
    if apply_noqa:
        findings = _without_noqa(findings, text)
    return sorted(set(findings))


def check_file(path: Path, selection: Selection, apply_noqa: bool = True) -> list[Finding]:
    codes = selection.codes_for(str(path))
    try:
        data = path.read_bytes()
    except OSError as e:
        return [_parse_error(str(path), f"cannot read: {e.strerror}", 1, 1)]
    try:
        text = decode(data)
    except SourceError as e:
        return [_parse_error(str(path), str(e), e.line, e.column)] if PARSE_ERROR_CODE in codes else []
    findings = check_source(text, str(path), codes, module_name_for(path), apply_noqa)
    return [f for f in findings if f.code in codes]


def check_paths(paths: Sequence[str], selection: Selection) -> list[Finding]:
    findings: list[Finding] = []
    for path in discover(paths, selection):
        findings.extend(check_file(path, selection))
    return sorted(findings)


def _parse_error(path: str, message: str, line: int, column: int) -> Finding:
    return Finding(path, max(line, 1), max(column, 1), PARSE_ERROR_CODE, message, name=PARSE_ERROR_NAME)


def _locate(module, path: str, hits) -> list[Finding]:
    """Positions are computed only for files with findings: one metadata pass, on demand."""
    from libcst.metadata import MetadataWrapper, PositionProvider

    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    out = []
    for rule, hit in hits:
        r = positions[hit.node]
        out.append(
            Finding(path, r.start.line, r.start.column + 1, rule.code, hit.message, r.end.line, r.end.column + 1, rule.name)
        )
    return out


# --- noqa ------------------------------------------------------------------------------------

_NOQA = re.compile(r"#\s*noqa(?::[\s]?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
_FILE_NOQA = re.compile(r"^#\s*torchlint:\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I | re.M)


def _without_noqa(findings: list[Finding], text: str) -> list[Finding]:
    """flake8's rules: ``# noqa`` silences the line, ``# noqa: TL2,TL301`` those code prefixes.
    ``# torchlint: noqa[: codes]`` on a line of its own silences the whole file."""
    lines = re.split(r"\r\n?|\n", text)
    file_codes = [m.group("codes") for m in _FILE_NOQA.finditer(text)]

    def suppressed(f: Finding) -> bool:
        if any(_matches(codes, f.code) for codes in file_codes):
            return True
        m = _NOQA.search(lines[f.line - 1]) if f.line <= len(lines) else None
        return bool(m and _matches(m.group("codes"), f.code))

    return [f for f in findings if not suppressed(f)]


def _matches(codes: str | None, code: str) -> bool:
    if not codes:
        return True
    return code.startswith(tuple(c.upper() for c in re.split(r"[,\s]+", codes) if c))
