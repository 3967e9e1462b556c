"""The cache directory (``.torchlint_cache/`` at the project root, as ruff's ``.ruff_cache``) and
the results cache kept in it.

A file's findings are reused when its content, torchlint's version and the settings that apply
to it are unchanged, and, for a file whose check consulted the project index (a base class from
another file), when the index is unchanged too. The cache is one JSON file per torchlint
version, read once at the start of a run and written back atomically at its end, merged with
what another run may have written meanwhile: two runs at once lose at most some entries, never
the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from torchlint import __version__
from torchlint.finding import Finding, TextEdit, TextFix

CACHE_DIR = ".torchlint_cache"
CACHEDIR_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# torchlint cache: https://bford.info/cachedir/\n"


def default_dir(root: Path) -> Path:
    """``$TORCHLINT_CACHE_DIR``, else ``.torchlint_cache`` in the project root."""
    return Path(os.environ.get("TORCHLINT_CACHE_DIR") or root / CACHE_DIR)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, creating the cache
    directory with its ``CACHEDIR.TAG`` and a ``.gitignore`` of ``*``. A directory that cannot
    be written is no error: the run goes on without a cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for name, content in (("CACHEDIR.TAG", CACHEDIR_TAG), (".gitignore", "*\n")):
            if not (path.parent / name).exists():
                (path.parent / name).write_text(content)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass


def clean(directories: list[Path]) -> list[Path]:
    """Remove these cache directories (only those marked with torchlint's CACHEDIR.TAG)."""
    removed = []
    for directory in directories:
        tag = directory / "CACHEDIR.TAG"
        if tag.is_file() and "torchlint" in tag.read_text(encoding="utf-8", errors="replace"):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


class ResultCache:
    """Findings per file, keyed by the file's absolute path and checked against its content
    digest, the settings key and (when the check used it) the project index's digest."""

    def __init__(self, directory: Path, index_digest: Callable[[], str | None]) -> None:
        self.path = directory / f"results-{__version__}.json"
        self._index_digest = index_digest  # called only when an entry depends on the index
        self._entries = self._read()
        self._new: dict[str, dict] = {}

    def _read(self) -> dict[str, dict]:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, path: Path, content: str, settings: str) -> list[Finding] | None:
        entry = self._entries.get(str(path.resolve()))
        if not entry or entry.get("content") != content or entry.get("settings") != settings:
            return None
        if entry.get("index") is not None and entry["index"] != self._index_digest():
            return None
        try:
            return [_finding(d, str(path)) for d in entry["findings"]]
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, path: Path, content: str, settings: str, used_index: bool, findings: list[Finding]) -> None:
        self._new[str(path.resolve())] = {
            "content": content,
            "settings": settings,
            "index": self._index_digest() if used_index else None,
            "findings": [_json(f) for f in findings],
        }

    def save(self) -> None:
        if self._new:
            write_atomically(self.path, json.dumps({**self._read(), **self._new}))


def _json(f: Finding) -> dict:
    d = {field.name: getattr(f, field.name) for field in dataclasses.fields(f) if field.name not in ("path", "fix")}
    if f.fix is not None:
        d["fix"] = {
            "message": f.fix.message,
            "applicability": f.fix.applicability,
            "edits": [dataclasses.astuple(e) for e in f.fix.edits],
            "imports": [list(i) for i in f.fix.imports],
            "import_edits": [dataclasses.astuple(e) for e in f.fix.import_edits],
        }
    return d


def _finding(d: dict, path: str) -> Finding:
    fix = d.pop("fix", None)
    if fix is not None:
        fix = TextFix(
            fix["message"], fix["applicability"], tuple(TextEdit(*e) for e in fix["edits"]),
            tuple(tuple(i) for i in fix["imports"]), tuple(TextEdit(*e) for e in fix["import_edits"]),
        )
    return Finding(path=path, fix=fix, **d)
