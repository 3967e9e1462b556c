"""Applying fixes to source text: the text edits of the chosen findings, in one pass, plus the
imports they need; the result is re-parsed before anyone writes it.

``fix_file`` is the path of one file under ``--fix``: read bytes -> decode -> (check -> choose ->
apply edits -> add imports -> re-parse) until no fix applies -> encode as read -> atomic write.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import stat
import tempfile
import tokenize
from collections.abc import Callable, Iterable, Sequence
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import libcst as cst

from torchlint import notebook
from torchlint.edits import with_imports
from torchlint.finding import Finding, TextEdit
from torchlint.engine import (
    InternalError,
    Selection,
    SourceError,
    TrackedProject,
    _check_one,
    cache_digest,
    cached_files,
    check_file,
    check_source,
    decode,
    map_files,
    module_name_for,
)

if TYPE_CHECKING:
    from torchlint.cache import ResultCache

# Fixes can enable or uncover other fixes; a file still changing after this many passes is left
# as it is after the last one, and the user is told to run --fix again.
MAX_PASSES = 10

_LINE_BREAK = re.compile(r"\r\n?|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _offsets(text: str) -> list[int]:
    """Offset of the first character of each line (lines split as LibCST counts them)."""
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def apply_edits(text: str, edits: Sequence[TextEdit]) -> str:
    """The text with every edit applied. Edits must not overlap (see ``choose``)."""
    starts = _offsets(text)
    spans = sorted(
        ((starts[e.line - 1] + e.column - 1, starts[e.end_line - 1] + e.end_column - 1, e.content) for e in edits),
        reverse=True,
    )
    for start, end, content in spans:
        text = text[:start] + content + text[end:]
    return text


def fixable(finding: Finding, unsafe: bool) -> bool:
    """Whether ``--fix`` applies this finding's fix: a safe one, or an unsafe one with ``--unsafe-fixes``."""
    return finding.fix is not None and (finding.fix.applicability == "safe" or unsafe)


def choose(findings: Iterable[Finding], unsafe: bool) -> tuple[list[Finding], list[Finding]]:
    """The fixable findings to apply now, and those left for the next pass because one of their
    edits overlaps an edit already chosen (two fixes of one node: one now, one next run)."""
    chosen: list[Finding] = []
    deferred: list[Finding] = []
    taken: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for f in sorted(findings):
        if not fixable(f, unsafe):
            continue
        spans = [((e.line, e.column), (e.end_line, e.end_column)) for e in f.fix.edits]
        if any(a[0] < b[1] and b[0] < a[1] or a[0] == b[0] for a in spans for b in taken):
            deferred.append(f)
            continue
        chosen.append(f)
        taken.extend(spans)
    return chosen, deferred


# --- one file --------------------------------------------------------------------------------


@dataclass
class FixResult:
    """What fixing one file did. ``remaining``: the findings left (all of them when the file was
    not fixed); ``before``/``after``: its decoded text (both empty for a file no fix applies to);
    ``problem``: why it was not fixed, or what is left to fix, for a one-line message; ``digest``:
    the content digest of the file on disk that ``remaining`` describes (None: not known)."""

    path: Path
    remaining: list[Finding]
    fixed_codes: Counter[str] = field(default_factory=Counter)  # how many findings fixed, by code
    before: str = ""
    after: str = ""
    problem: str | None = None
    digest: str | None = None

    @property
    def fixed(self) -> int:
        return sum(self.fixed_codes.values())

    @property
    def changed(self) -> bool:
        return self.after != self.before

    def diff(self) -> str:
        """A unified diff of the change, ``--- a/path`` / ``+++ b/path`` as git's (``patch -p1``)."""
        name = Path(self.path).as_posix()
        return unified_diff(self.before, self.after, f"a/{name}", f"b/{name}")


def unified_diff(before: str, after: str, old_name: str, new_name: str) -> str:
    lines = difflib.unified_diff(_LINE.findall(before), _LINE.findall(after), old_name, new_name)
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n" for line in lines)


def fix_file(
    path: Path,
    selection: Selection,
    project: Callable[[], object] | None = None,
    unsafe: bool = False,
    write: bool = True,
    known: tuple[str, list[Finding]] | None = None,
) -> FixResult:
    """Apply every fix that applies to one file, pass after pass, and write the result back in
    the file's own encoding (BOM kept) when ``write``. A result that does not parse, or cannot be
    encoded or written, leaves the file untouched. ``known``: a content digest and that content's
    findings (from the cache or a check), used for the first pass when the file still has that
    content. A notebook goes through ``fix_notebook``."""
    selection = selection.for_file(path)
    if selection.language(path) == "ipynb":
        return fix_notebook(path, selection, project, unsafe, write)
    try:
        data = path.read_bytes()
        before = decode(data)
    except (OSError, SourceError):
        return FixResult(path, check_file(path, selection, project=project))
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    codes, module_name = selection.codes_for(str(path)), module_name_for(path)
    digest = cache_digest(data)

    def check(text: str) -> list[Finding]:
        return check_source(text, str(path), codes, module_name, project=project, target_version=selection.target_version)

    findings = known[1] if known is not None and known[0] == digest else None
    try:
        text, fixed, findings, first, problem = fix_text(before, check, unsafe, findings=findings)
    except FixFailed as e:
        return _untouched(path, e.findings, before, e.problem, digest)
    if text == before:
        return FixResult(path, findings, Counter(), before, text, problem, digest)
    try:
        encoded = text.encode(encoding)
    except UnicodeEncodeError:
        return _untouched(path, first, before, f"the fixed code cannot be encoded as {encoding}", digest)
    if not write:
        return FixResult(path, findings, fixed, before, text, problem)
    try:
        write_atomically(path, encoded)
    except OSError as e:
        return _untouched(path, first, before, f"cannot write: {e.strerror or e}", digest)
    return FixResult(path, findings, fixed, before, text, problem, cache_digest(encoded))


class _DoesNotParse(Exception):
    """Fixes whose result is not Python: the file is left as it was."""


class FixFailed(Exception):
    """Fixes that cannot be applied: ``findings`` (those before any fix) and why."""

    def __init__(self, findings: list[Finding], problem: str) -> None:
        super().__init__(problem)
        self.findings, self.problem = findings, problem


def fix_text(
    text: str,
    check: Callable[[str], list[Finding]],
    unsafe: bool,
    add_imports: Callable[[str, Iterable[tuple[str, str | None]]], str] | None = None,
    findings: list[Finding] | None = None,
) -> tuple[str, Counter[str], list[Finding], list[Finding], str | None]:
    """Apply the fixes ``check`` finds, pass after pass: the text, how many were fixed by code, the
    findings that remain, those of the first pass, and what is left to say (or None).
    ``add_imports`` puts the imports fixes need in (default: ``with_imports``); ``findings``: those
    of ``text`` when they are known already. FixFailed when the fixed text does not parse."""
    fixed, first, problem = Counter(), None, None
    for done in range(MAX_PASSES + 1):
        findings = check(text) if done or findings is None else findings
        first = findings if first is None else first
        chosen, _ = choose(findings, unsafe)
        if not chosen:
            break
        if done == MAX_PASSES:
            problem = f"fixes still apply after {MAX_PASSES} passes; run --fix again"
            break
        try:
            text = _fixed_text(text, chosen, add_imports or with_imports)
        except _DoesNotParse as e:
            applied = ", ".join(sorted({f.code for f in chosen}))
            raise FixFailed(first, f"the fixed code does not parse ({e}; fixes of {applied})") from None
        fixed.update(f.code for f in chosen)
    return text, fixed, findings, first, problem


def _fixed_text(text: str, chosen: Sequence[Finding], add_imports=with_imports) -> str:
    """The text with the chosen fixes and the imports they need, checked to parse."""
    edited = apply_edits(text, [e for f in chosen for e in f.fix.edits])
    try:
        fixed = add_imports(edited, [i for f in chosen for i in f.fix.imports])
        cst.parse_module(fixed)
    except cst.ParserSyntaxError as e:
        message = str(e.message).strip().splitlines()
        raise _DoesNotParse(f"line {e.raw_line}: {message[0] if message else 'syntax error'}") from None
    except RecursionError:
        raise _DoesNotParse("nested too deeply") from None
    return fixed


def _untouched(path: Path, findings: list[Finding], text: str, problem: str, digest: str | None = None) -> FixResult:
    return FixResult(path, findings, Counter(), text, text, problem, digest)


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same directory and a rename, so that a reader sees
    the old file or the new one, never half of one; the file keeps its permission bits (and a
    symlink stays a symlink: its target is written)."""
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".torchlint-fix")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def fix_paths(
    paths: Sequence[str],
    selection: Selection,
    project: Callable[[], object] | None = None,
    unsafe: bool = False,
    write: bool = True,
    cache: ResultCache | None = None,
    jobs: int = 1,
) -> list[FixResult]:
    """What ``--fix`` (``write=False``: ``--diff``) does to every file under the given paths, in
    their order, run as ``check_paths`` runs a check: a file whose findings in ``cache`` have no fix
    to apply is neither parsed nor touched; the others are checked (the screen first) and, when
    a fix applies, go through ``fix_file``, in ``jobs`` processes when they are worth a pool.
    ``cache`` is read; with ``write`` it also gets each checked file's entry, a fixed file's for
    its new content."""
    results: dict[Path, FixResult] = {}
    todo: list[tuple[Path, str, str | None, list[Finding] | None]] = []
    for path, key, digest, cached in cached_files(paths, selection, project, cache):
        results[path] = FixResult(path, cached or [])
        if cached is None or any(fixable(f, unsafe) for f in cached):
            todo.append((path, key, digest, cached))
    work = partial(_fix_one, unsafe=unsafe, write=write)
    items = [(path, digest, cached) for path, _, digest, cached in todo]
    done = map_files(work, items, [path for path, *_ in todo], selection, project, jobs)
    for (path, key, _, _), (result, used_index) in zip(todo, done):
        results[path] = result
        if write and cache is not None and result.digest is not None:
            cache.put(path, result.digest, key, used_index, result.remaining)
    if write and cache is not None:
        cache.save()
    return list(results.values())


def _fix_one(
    item: tuple[Path, str | None, list[Finding] | None], selection: Selection, project: Callable[[], object] | None,
    unsafe: bool, write: bool,
) -> tuple[FixResult, bool]:
    """A file under ``--fix``: its findings (those given with their content digest, else a check),
    then ``fix_file`` when one of them has a fix to apply; and whether the project index was
    consulted."""
    path, digest, findings = item
    tracked = TrackedProject(project) if project is not None else None
    if findings is None:
        findings, digest, used_index = _check_one(path, selection, tracked)
        if not any(fixable(f, unsafe) for f in findings):
            return FixResult(path, findings, digest=digest), used_index
    try:
        result = fix_file(path, selection, tracked, unsafe, write, (digest, findings) if digest else None)
    except Exception as e:
        raise InternalError(f"while fixing {path}: {type(e).__name__}: {e}") from e
    return result, tracked is not None and tracked.used


# --- a notebook ------------------------------------------------------------------------------


def fix_notebook(path: Path, selection: Selection, project, unsafe: bool, write: bool) -> FixResult:
    """``fix_file`` for a notebook: the fixes applied to the joined module, which is then split
    back into its cells and written into the notebook's text."""
    codes = selection.codes_for(str(path))
    try:
        data = path.read_bytes()
        nb = notebook.load(notebook.decode(data))
    except (OSError, notebook.NotebookError):
        return NotebookFixResult(path, check_file(path, selection, project=project))

    def check(text: str) -> list[Finding]:
        return check_source(text, str(path), codes, None, project=project, target_version=selection.target_version)

    before = nb.with_sources({})
    cells = {c.number: c.source for c in nb.cells}

    def untouched(findings: list[Finding], problem: str | None) -> NotebookFixResult:
        located = sorted(nb.to_cells(f) for f in findings)
        return NotebookFixResult(path, located, Counter(), before, before, problem, cache_digest(data), cells, cells)

    try:
        text, fixed, findings, first, problem = fix_text(nb.source, check, unsafe, imports_in_first_cell)
    except FixFailed as e:
        return untouched(e.findings, e.problem)
    if text == nb.source:
        return untouched(findings, problem)
    try:
        sources = nb.split(text)
    except notebook.NotebookError as e:
        return untouched(first, str(e))
    after = nb.with_sources(sources)
    fixed_notebook = notebook.load(after)
    if fixed_notebook.source != text:  # the masks of the new sources differ: check them as they are
        findings = check(fixed_notebook.source)
    remaining = sorted(fixed_notebook.to_cells(f) for f in findings)
    if not write:
        return NotebookFixResult(path, remaining, fixed, before, after, problem, None, cells, sources)
    encoded = after.encode("utf-8")
    try:
        write_atomically(path, encoded)
    except OSError as e:
        return untouched(first, f"cannot write: {e.strerror or e}")
    return NotebookFixResult(path, remaining, fixed, before, after, problem, cache_digest(encoded), cells, sources)


def imports_in_first_cell(module: str, imports: Iterable[tuple[str, str | None]]) -> str:
    """Add the imports fixes need to the first code cell (after its own imports), where a reader
    of a notebook looks for them; to the whole module when that cell does not parse alone."""
    imports = list(imports)
    if not imports:
        return module
    head, rest = notebook.split_first_cell(module)
    try:
        head = with_imports(head, imports)
    except cst.ParserSyntaxError:
        return with_imports(module, imports)
    if rest and not head.endswith(("\n", "\r")):
        head += "\n"
    return head + rest


@dataclass
class NotebookFixResult(FixResult):
    """``FixResult`` with the cells' sources before and after, for a diff per cell."""

    cells_before: dict[int, str] = field(default_factory=dict)
    cells_after: dict[int, str] = field(default_factory=dict)

    def diff(self) -> str:
        """A unified diff of each changed cell, ``--- a/nb.ipynb:cell 3`` / ``+++ b/nb.ipynb:cell 3``."""
        name = Path(self.path).as_posix()
        out = []
        for number, old in self.cells_before.items():
            new = self.cells_after.get(number, old)
            if new != old:
                out.append(unified_diff(old, new, f"a/{name}:cell {number}", f"b/{name}:cell {number}"))
        return "".join(out)
