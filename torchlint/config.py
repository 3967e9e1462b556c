"""Configuration as ruff's: each file takes its settings from the nearest ``torchlint.toml`` or
``pyproject.toml`` with [tool.torchlint] above it (``extend`` inherits from another), and rule
selection as ruff does it."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from torchlint.engine import DEFAULT_EXTENSIONS, Selection
from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE

KNOWN_KEYS = {
    "select", "ignore", "extend-select", "per-file-ignores", "exclude", "extend-exclude", "project-index",
    "extension", "cache-dir", "target-version", "output-format", "show-fixes", "extend",
}
# ``full`` (the default, as ruff's) shows each finding with its source; ``concise`` is one line a
# finding (``text``: its old name, kept).
OUTPUT_FORMATS = ("full", "concise", "text", "json", "sarif", "github")
LANGUAGES = ("python", "pyi", "ipynb")  # what a file suffix can be read as (``pyi`` is Python)
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")


class ConfigError(Exception):
    """A configuration or command-line value that cannot be used (exit 2)."""


@dataclass
class Settings:
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    project_index: bool = True  # resolve names across the project's files
    cache_dir: Path | None = None  # relative to the pyproject.toml; default: <project root>/.torchlint_cache
    extension: dict[str, str] = field(default_factory=dict)  # suffix (".ipynb") -> language
    target_version: tuple[int, int] | None = None  # the oldest torch the project supports; None: the latest
    output_format: str | None = None  # None: full
    show_fixes: bool = False  # with --fix, list the fixes applied
    root: Path = field(default_factory=Path.cwd)
    source: Path | None = None  # the configuration file read, if any


CONFIG_NAMES = ("torchlint.toml", "pyproject.toml")  # in one directory, the first one found wins


def find_config(start: Path) -> Path | None:
    """The configuration nearest to ``start`` (a file or a directory), upwards: a
    ``torchlint.toml``, or a ``pyproject.toml`` with a [tool.torchlint] table."""
    start = start.resolve()
    for directory in [start, *start.parents] if start.is_dir() else start.parents:
        found = config_in(directory)
        if found is not None:
            return found
    return None


def config_in(directory: Path) -> Path | None:
    """The configuration file of this directory, if it has one."""
    for name in CONFIG_NAMES:
        candidate = directory / name
        if candidate.is_file() and (name == "torchlint.toml" or "torchlint" in _read(candidate).get("tool", {})):
            return candidate
    return None


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None


def _table(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The settings table of a configuration file ([tool.torchlint] of a pyproject.toml or of a
    file that has one; else the whole file, as a torchlint.toml), merged over the one its ``extend`` names, with ``cache-dir`` made absolute
    where it is written."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: extend makes a cycle: {' -> '.join(map(str, (*seen, path)))}")
    data = _read(path)
    nested = path.name == "pyproject.toml" or "torchlint" in data.get("tool", {})
    table = dict(data.get("tool", {}).get("torchlint", {}) if nested else data)
    header = "[tool.torchlint]" if nested else path.name
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key in {header}: {', '.join(unknown)} (known: {', '.join(sorted(KNOWN_KEYS))})")
    if isinstance(table.get("cache-dir"), str) and table["cache-dir"]:
        table["cache-dir"] = str(path.parent / Path(table["cache-dir"]).expanduser())
    extend = table.pop("extend", None)
    if extend is None:
        return table
    if not isinstance(extend, str) or not extend:
        raise ConfigError(f"{path}: extend must be the path of another configuration file")
    parent_path = path.parent / Path(extend).expanduser()
    if not parent_path.is_file():
        raise ConfigError(f"{path}: extend: no such file: {parent_path}")
    return _merge(_table(parent_path, (*seen, path)), table)


def _merge(parent: dict, child: dict) -> dict:
    """A child configuration over the one it extends: its keys win; its ``ignore`` and
    ``extend-select`` add to the parent's, and replace them when it sets ``select``; tables (``per-file-ignores``,
    ``extension``) and ``extend-exclude`` add up."""
    merged = {**parent, **child}
    for key in ("ignore", "extend-select"):
        if "select" in child:  # a new selection, as ruff's: the parent's ignores no longer apply
            merged[key] = child.get(key, [])
        elif isinstance(parent.get(key), list) and isinstance(child.get(key), list):
            merged[key] = [*parent[key], *child[key]]
    for key in ("per-file-ignores", "extension"):
        if isinstance(parent.get(key), dict) and isinstance(child.get(key), dict):
            merged[key] = {**parent[key], **child[key]}
    if isinstance(parent.get("extend-exclude"), list) and isinstance(child.get("extend-exclude"), list):
        merged["extend-exclude"] = [*parent["extend-exclude"], *child["extend-exclude"]]
    return merged


def load(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    table = _table(path)
    settings = Settings(root=path.parent, source=path)
    settings.project_index = table.get("project-index", True)
    if not isinstance(settings.project_index, bool):
        raise ConfigError(f"{path}: project-index must be true or false")
    if "cache-dir" in table:
        if not isinstance(table["cache-dir"], str) or not table["cache-dir"]:
            raise ConfigError(f"{path}: cache-dir must be a path")
        settings.cache_dir = Path(table["cache-dir"])
    if "target-version" in table:
        settings.target_version = parse_target_version(table["target-version"], f"{path}: target-version")
    settings.show_fixes = table.get("show-fixes", False)
    if not isinstance(settings.show_fixes, bool):
        raise ConfigError(f"{path}: show-fixes must be true or false")
    if "output-format" in table:
        if table["output-format"] not in OUTPUT_FORMATS:
            raise ConfigError(f"{path}: output-format must be one of {', '.join(OUTPUT_FORMATS)}")
        settings.output_format = table["output-format"]
    if "select" in table:
        settings.select = _codes(table["select"], f"{path}: select")
    settings.ignore = _codes(table.get("ignore", []), f"{path}: ignore")
    settings.extend_select = _codes(table.get("extend-select", []), f"{path}: extend-select")
    pfi = table.get("per-file-ignores", {})
    if not isinstance(pfi, dict):
        raise ConfigError(f"{path}: per-file-ignores must be a table of glob = [codes]")
    settings.per_file_ignores = {glob: _codes(codes, f"{path}: per-file-ignores {glob!r}") for glob, codes in pfi.items()}
    ext = table.get("extension", {})
    if not isinstance(ext, dict) or not all(isinstance(v, str) for v in ext.values()):
        raise ConfigError(f'{path}: extension must be a table of suffix = language, e.g. {{ ipynb = "python" }}')
    settings.extension = {suffix(k): language(v, f"{path}: extension {k!r}") for k, v in ext.items()}
    settings.exclude = _strings(table.get("exclude", []), f"{path}: exclude") + _strings(
        table.get("extend-exclude", []), f"{path}: extend-exclude"
    )
    return settings


def suffix(extension: str) -> str:
    """``ipynb`` or ``.ipynb`` as the suffix ``.ipynb``."""
    return "." + extension.strip().lstrip(".")


def language(value: str, where: str) -> str:
    value = value.strip().lower()
    if value not in LANGUAGES:
        raise ConfigError(f"{where}: unknown language {value!r} (known: {', '.join(LANGUAGES)})")
    return "python" if value == "pyi" else value


def parse_extensions(values: Iterable[str]) -> dict[str, str]:
    """``--extension ipynb:python,nb:ipynb`` as a mapping of suffixes to languages."""
    out = {}
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            ext, sep, lang = item.partition(":")
            if not sep or not ext.strip():
                raise ConfigError(f"--extension: expected EXTENSION:LANGUAGE (e.g. ipynb:python), got {item!r}")
            out[suffix(ext)] = language(lang, f"--extension {item!r}")
    return out


def parse_target_version(value, where: str = "target-version") -> tuple[int, int]:
    """A PyTorch version, ``"2.4"`` (a patch, ``"2.4.1"``, is accepted and ignored), as (2, 4)."""
    m = _VERSION.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(f"{where} must be a PyTorch version such as \"2.4\", got {value!r}")
    return int(m.group(1)), int(m.group(2))


def _strings(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return value


def _codes(value, where: str) -> list[str]:
    return [validate_code(c, where) for c in _strings(value, where)]


def validate_code(code: str, where: str = "") -> str:
    """A rule code or prefix (``TL201``, ``TL2``, ``TL``, ``ALL``); anything else is an error."""
    code = code.strip().upper()
    if code == "ALL" or any(c.startswith(code) for c in [*ALL_RULES, PARSE_ERROR_CODE]):
        return code
    where = f"{where}: " if where else ""
    raise ConfigError(f"{where}unknown rule code or prefix {code!r} (see `torchlint rules`)")


def _expand(prefixes: Iterable[str]) -> set[str]:
    every = [*ALL_RULES, PARSE_ERROR_CODE]
    return {c for p in prefixes for c in every if p == "ALL" or c.startswith(p)}


def selection(
    settings: Settings,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    extend_select: Sequence[str] = (),
    extension: dict[str, str] | None = None,
    target_version: tuple[int, int] | None = None,
) -> Selection:
    """Resolve the enabled codes: command-line select replaces the configured one; ignores and
    extend-selects from both add up. TL000 (unreadable file) is always on unless ignored.
    ``extension`` (``--extension``) adds to the configured suffix languages, which add to the
    defaults (.py, .pyi: python; .ipynb: ipynb). A command-line ``target_version`` replaces the
    configured one."""
    chosen = select if select is not None else settings.select
    if chosen is None:
        codes = {c for c, r in ALL_RULES.items() if r.default_enabled} | {PARSE_ERROR_CODE}
    else:
        codes = _expand(chosen) | {PARSE_ERROR_CODE}
    codes |= _expand([*settings.extend_select, *extend_select])
    codes -= _expand([*settings.ignore, *ignore])
    return Selection(
        codes=frozenset(codes),
        per_file_ignores={g: tuple(c) for g, c in settings.per_file_ignores.items()},
        exclude=tuple(settings.exclude),
        root=settings.root,
        extensions={**DEFAULT_EXTENSIONS, **settings.extension, **(extension or {})},
        target_version=target_version or settings.target_version,
    )


@dataclass
class PerFileSelection(Selection):
    """As ruff's hierarchical configuration: this is the selection of the configuration nearest
    the first path given, and ``for_file`` gives each file (or directory) the selection of the
    configuration nearest to it, with the command line's options over it."""

    overrides: dict = field(default_factory=dict, compare=False, repr=False)
    _by_directory: dict = field(default_factory=dict, compare=False, repr=False)
    _by_source: dict = field(default_factory=dict, compare=False, repr=False)

    def for_file(self, path: Path) -> Selection:
        directory = path.parent if not path.is_dir() else path
        if directory not in self._by_directory:
            source = find_config(directory)
            if source not in self._by_source:
                self._by_source[source] = selection(load(source), **self.overrides)
            self._by_directory[directory] = self._by_source[source]
        return self._by_directory[directory]


def per_file_selection(start: Path, **overrides) -> PerFileSelection:
    """The selection of each file from its nearest configuration; ``overrides``: the command
    line's ``select``, ``ignore``, ``extend_select``, ``extension``, ``target_version``."""
    first = selection(load(find_config(start)), **overrides)
    return PerFileSelection(**{f.name: getattr(first, f.name) for f in fields(Selection)}, overrides=overrides)
