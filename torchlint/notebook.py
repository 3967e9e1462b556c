"""Jupyter notebooks (``.ipynb``, nbformat 4) as one Python module, and back.

A notebook is JSON. Its code cells, in order, are joined into one module (a class defined in one
cell and used in another is one class), with a marker comment line before each cell after the
first, so that a line of the module maps back to a cell and a line in it, and an edited module
splits back into cells. IPython syntax is masked line for line so that the module parses: line
magics, shell escapes and help (``%timeit f()``, ``!pip install x``, ``x = !ls``, ``obj?``) become
a placeholder comment (``pass`` and the comment in an indented block, ``x = ...`` and the comment
for an assignment); a cell magic (``%%bash``) masks its whole
cell, except those whose body runs as Python in the notebook's namespace (``%%time``,
``%%timeit``, ``%%capture``, ``%%prun``, ``%%debug``), which mask only their first line. Markdown
and raw cells are left out. Cells are numbered from 1 among all cells, markdown included: the
n-th cell from the top.

Writing back replaces only the ``source`` values of the cells that changed, in the file's own
text: every other byte (indentation, key order, outputs, metadata, the final newline) stays, and
within a changed cell the lines that did not change keep their exact JSON spelling.

This module only reads and writes notebooks: the engine checks the joined module
(``engine.check_notebook``) and maps findings back with ``Notebook.to_cells``; ``fixes`` fixes it.
"""

from __future__ import annotations

import bisect
import difflib
import io
import json
import re
import tokenize
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from json.decoder import WHITESPACE, scanstring
from pathlib import Path

from torchlint.finding import Finding, TextEdit, TextFix

# Cell magics whose body is Python run in the notebook's own namespace (as ruff's list, less
# %%python/%%pypy, which run their body in another process).
TRANSPARENT_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
# Line magics IPython runs without their ``%`` (automagic), masked when the line is not Python.
AUTOMAGICS = {
    "pip", "conda", "mamba", "cd", "ls", "pwd", "cat", "cp", "mv", "rm", "mkdir", "env", "load_ext",
    "reload_ext", "matplotlib", "timeit", "time", "who", "whos", "reset", "run", "alias", "history",
    "store", "autoreload", "pinfo", "psearch", "sx", "system", "config", "precision", "xmode",
}
CELL_MARKER = "# %% [torchlint cell {}]"
_CELL_MARKER = re.compile(r"# %% \[torchlint cell (\d+)\]")
_MAGIC_MARK = "torchlint-magic:{}"
_MAGIC_PLACEHOLDER = re.compile(r"#\s*torchlint-magic:(\d+)\s*$")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_SOURCE_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")  # how nbformat splits a cell's source into a list
_HELP = re.compile(r"(\?\??[\w.*\[\]]+|[\w.*\[\]%]+\?\??)\s*")
_ASSIGN_MAGIC = re.compile(r"([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*[!%]")
_AUTOMAGIC = re.compile(rf"(?:{'|'.join(sorted(AUTOMAGICS))})(?:\s+\S.*)?")


class NotebookError(Exception):
    """A file that is not a notebook torchlint can read: reported as TL000 at ``line``."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.line, self.column = line, column


# --- masking ---------------------------------------------------------------------------------


def _split_ending(line: str) -> tuple[str, str]:
    body = line.rstrip("\r\n")
    return body, line[len(body):]


def _inside_statement(text: str) -> bool:
    """Whether the end of ``text`` is inside a bracket, a string or a continued line (so the next
    line is not the start of a statement)."""
    if text.rstrip("\r\n").endswith("\\"):
        return True
    try:
        for _ in tokenize.generate_tokens(io.StringIO(text).readline):
            pass
    except tokenize.TokenError:
        return True
    except (SyntaxError, ValueError):
        return False
    return False


def _parses(line: str) -> bool:
    try:
        compile(line, "<line>", "exec", dont_inherit=True, flags=0x400)  # PyCF_ONLY_AST
    except (SyntaxError, ValueError):
        return False
    return True


def _magic_kind(body: str) -> str | None:
    """``line`` for an IPython line (magic, shell escape, help, autocall), ``assign`` for
    ``x = !ls`` / ``x = %magic``, None for a line that is Python as far as it shows."""
    stripped = body.strip()
    if not stripped:
        return None
    if stripped[0] in "%!" or stripped[0] == "?" or (stripped[0] in "/;," and len(stripped) > 1 and stripped[1].isalpha()):
        return "line"
    if _ASSIGN_MAGIC.match(stripped):
        return "assign"
    if "?" in stripped and _HELP.fullmatch(stripped):
        return "line"
    if _AUTOMAGIC.fullmatch(stripped) and not _parses(stripped):
        return "line"
    return None


def mask(source: str) -> tuple[str, dict[int, str]]:
    """The cell's source with its IPython syntax masked, line for line, and the original of each
    masked line by the number its placeholder carries."""
    lines = _LINE.findall(source)
    originals: dict[int, str] = {}
    out: list[str] = []

    def placeholder(body: str, code: str) -> str:
        n = len(originals)
        originals[n] = body
        indent = body[: len(body) - len(body.lstrip())]
        return f"{indent}{code}# {_MAGIC_MARK.format(n)}"

    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        name = re.match(r"%%([\w.]*)", first).group(1)
        body, ending = _split_ending(lines[0])
        if name not in TRANSPARENT_CELL_MAGICS:
            return "".join(placeholder(b, "") + e for b, e in map(_split_ending, lines)), originals
        out.append(placeholder(body, "") + ending)
        lines = lines[1:]
    i = 0
    while i < len(lines):
        body, ending = _split_ending(lines[i])
        kind = _magic_kind(body)
        if kind is None or _inside_statement("".join(out)):
            out.append(lines[i])
            i += 1
            continue
        if kind == "assign":
            target = _ASSIGN_MAGIC.match(body.strip()).group(1)
            out.append(placeholder(body, f"{target} = ...  ") + ending)
        else:  # a comment where no statement is needed, so the cell's imports stay one block
            out.append(placeholder(body, "pass  " if body[:1].isspace() else "") + ending)
        i += 1
        while body.endswith("\\") and i < len(lines):  # the magic goes on on the next line
            body, ending = _split_ending(lines[i])
            out.append(placeholder(body, "") + ending)
            i += 1
    return "".join(out), originals


def unmask(masked: str, originals: dict[int, str]) -> str:
    """The masked lines back as they were; NotebookError when a placeholder went missing."""
    seen: set[int] = set()
    out = []
    for line in _LINE.findall(masked):
        body, ending = _split_ending(line)
        m = _MAGIC_PLACEHOLDER.search(body)
        if m and int(m.group(1)) in originals:
            n = int(m.group(1))
            seen.add(n)
            line = originals[n] + ending
        out.append(line)
    if seen != set(originals):
        raise NotebookError("a fix removed a masked IPython line")
    return "".join(out)


# --- the notebook ----------------------------------------------------------------------------


@dataclass
class Cell:
    """One code cell: ``number`` among all cells (1-based), its source as in the notebook, the
    masked source, and where it starts in the joined module."""

    number: int
    source: str
    masked: str
    originals: dict[int, str]
    start: int = 0  # the module's line of the cell's first line
    lines: int = 0  # how many lines of the module are the cell's
    added_newline: bool = False


@dataclass
class Span:
    """Where a cell's ``source`` value is in the notebook's text; ``items``: the spans of its
    strings when it is a list."""

    start: int
    end: int
    items: list[tuple[int, int]] | None = None


@dataclass
class Notebook:
    text: str  # the notebook's JSON text (without a byte-order mark)
    cells: list[Cell]  # the code cells, in order
    spans: dict[int, Span] = field(default_factory=dict)  # by cell number
    bom: bool = False
    source: str = ""  # the joined, masked module

    def locate(self, line: int) -> tuple[int, int]:
        """The cell and line in it of a line of the module (a marker line counts as the end of
        the cell before it)."""
        starts = [c.start for c in self.cells]
        i = max(bisect.bisect_right(starts, line) - 1, 0)
        cell = self.cells[i]
        if line >= cell.start + cell.lines and i + 1 < len(self.cells):
            return cell.number, max(cell.lines, 1)
        return cell.number, max(line - cell.start + 1, 1)

    def module_line(self, cell: int, line: int) -> int:
        """The module's line of a line in a cell."""
        for c in self.cells:
            if c.number == cell:
                return c.start + line - 1
        raise KeyError(cell)

    def to_cells(self, f: Finding) -> Finding:
        """A finding on the module as a finding on a cell (its fix's edits too)."""
        if not self.cells:
            return f
        cell, line = self.locate(f.line)
        end_line, end_column = f.end_line, f.end_column
        if end_line:
            end_cell, end_line = self.locate(end_line)
            if end_cell != cell:  # cannot happen for a node; keep the end in the cell
                end_line, end_column = line, f.column + 1
        fix = f.fix
        if fix is not None:
            fix = TextFix(
                fix.message, fix.applicability, partial(self._edits_to_cells, fix, "edits"), fix.imports,
                partial(self._edits_to_cells, fix, "import_edits"),
            )
        return replace(f, line=line, end_line=end_line, end_column=end_column, fix=fix, cell=cell)

    def _edits_to_cells(self, fix: TextFix, which: str) -> tuple[TextEdit, ...]:
        """A fix's edits (``edits`` or ``import_edits``), moved to cells when they are read
        (fixes render lazily)."""
        return tuple(self._edit_to_cells(e) for e in getattr(fix, which))

    def _edit_to_cells(self, e: TextEdit) -> TextEdit:
        at_marker = next((c for c in self.cells[:-1] if e.line == c.start + c.lines), None)
        if at_marker is not None and (e.line, e.column) == (e.end_line, e.end_column):
            return self._append_to_cell(at_marker, e.content)
        cell, line = self.locate(e.line)
        _, end_line = self.locate(e.end_line)
        return replace(e, line=line, end_line=end_line, cell=cell)

    @staticmethod
    def _append_to_cell(cell: Cell, content: str) -> TextEdit:
        """An insertion before a cell's marker line (an import added after the cell's own) as an
        insertion at the end of the cell, without the blank lines that would trail it."""
        content = content.rstrip("\r\n")
        if cell.added_newline:  # the cell's last line has no line break: add one first
            last = _LINE.findall(cell.source)[-1]
            return TextEdit(cell.lines, len(last) + 1, cell.lines, len(last) + 1, "\n" + content, cell.number)
        return TextEdit(cell.lines + 1, 1, cell.lines + 1, 1, content + "\n", cell.number)

    def to_module(self, f: Finding) -> Finding:
        """A finding on a cell as a finding on the module (what ``--verify`` runs)."""
        if f.cell is None:
            return f
        end = self.module_line(f.cell, f.end_line) if f.end_line else 0
        return replace(f, line=self.module_line(f.cell, f.line), end_line=end, cell=None)

    def name_cells(self, text: str) -> str:
        """``line 22`` of the module, in a message, as ``cell 4, line 3``."""
        if not self.cells:
            return text

        def cell_line(m: re.Match) -> str:
            cell, line = self.locate(int(m.group(1)))
            return f"cell {cell}, line {line}"

        return re.sub(r"\bline (\d+)\b", cell_line, text)

    def split(self, module: str) -> dict[int, str]:
        """The cells' sources (unmasked, as the notebook holds them) in an edited module."""
        parts: list[list[str]] = [[]]
        numbers = [self.cells[0].number] if self.cells else []
        for line in _LINE.findall(module):
            m = _CELL_MARKER.fullmatch(line.rstrip("\r\n"))
            if m:
                numbers.append(int(m.group(1)))
                parts.append([])
            else:
                parts[-1].append(line)
        if numbers != [c.number for c in self.cells]:
            raise NotebookError("a fix moved the boundary between two cells")
        out = {}
        for cell, lines in zip(self.cells, parts):
            text = "".join(lines)
            if cell.added_newline and text.endswith("\n"):
                text = text[:-1]
            out[cell.number] = unmask(text, cell.originals)
        return out

    def with_sources(self, sources: dict[int, str]) -> str:
        """The notebook's text with the given cells' sources replaced, nothing else changed."""
        text = self.text
        ascii_only = _writes_ascii(text)
        for number in sorted(sources, key=lambda n: self.spans[n].start, reverse=True):
            old = next(c.source for c in self.cells if c.number == number)
            if sources[number] == old:
                continue
            span = self.spans[number]
            value = _source_json(text, span, sources[number], ascii_only)
            text = text[: span.start] + value + text[span.end:]
        return ("\ufeff" if self.bom else "") + text

    def to_file(self, f: Finding) -> Finding:
        """A finding on a cell located in the notebook's JSON text instead (for an editor showing
        that text): no fix, the cell named in the message."""
        if f.cell is None or f.cell not in self.spans:
            return f
        line, column = self.json_position(f.cell, f.line, f.column)
        end_line, end_column = self.json_position(f.cell, f.end_line or f.line, f.end_column or f.column + 1)
        return replace(f, line=line, column=column, end_line=end_line, end_column=end_column, fix=None, cell=None, message=cell_prefix(f) + f.message)

    def json_position(self, cell: int, line: int, column: int) -> tuple[int, int]:
        """The line and column (1-based) in the notebook's file of a cell's line and column (the
        source's strings may split it anywhere, not only at line ends)."""
        span = self.spans[cell]
        source = next(c.source for c in self.cells if c.number == cell)
        lines = _LINE.findall(source)
        wanted = sum(len(text) for text in lines[: line - 1]) + column - 1  # offset in the source
        offset = span.start
        ascii_only = _writes_ascii(self.text)
        for start, end in span.items if span.items is not None else [(span.start, span.end)]:
            value = json.loads(self.text[start:end])
            offset = start + len(json.dumps(value[: max(wanted, 0)], ensure_ascii=ascii_only)) - 1
            if wanted < len(value):
                break
            wanted -= len(value)
        head = self.text[:offset]
        return head.count("\n") + 1, offset - (head.rfind("\n") + 1) + 1


def _writes_ascii(text: str) -> bool:
    """Whether the file spells non-ASCII characters as ``\\uXXXX`` (Jupyter writes them as they are)."""
    if any(ord(c) > 127 for c in text):
        return False
    return re.search(r"\\u(?:00[89a-f]|0[1-9a-f]|[1-9a-f])", text, re.I) is not None


def _source_json(text: str, span: Span, source: str, ascii_only: bool) -> str:
    """A cell's new ``source`` value in the layout of the old one: the same form (list or string),
    the same separators, and the old spelling of each line that did not change."""
    if span.items is None:
        return json.dumps(source, ensure_ascii=ascii_only)
    new = _SOURCE_LINE.findall(source)
    if not new:
        return "[]"
    raw = [text[s:e] for s, e in span.items]
    old = [json.loads(r) for r in raw]
    if span.items:
        first, close = text[span.start + 1: span.items[0][0]], text[span.items[-1][1]: span.end - 1]
        sep = text[span.items[0][1]: span.items[1][0]] if len(span.items) > 1 else "," + first
    else:  # "source": [] : one level deeper than the line of its key
        line_start = text.rfind("\n", 0, span.start) + 1
        indent = re.match(r"[ \t]*", text[line_start:]).group(0)
        unit = re.match(r"\{\s*?\n([ \t]*)", text)
        step = unit.group(1) if unit else " "
        first, close, sep = "\n" + indent + step, "\n" + indent, ",\n" + indent + step
    tokens: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        tokens += raw[i1:i2] if tag == "equal" else [json.dumps(s, ensure_ascii=ascii_only) for s in new[j1:j2]]
    return "[" + first + sep.join(tokens) + close + "]"


# --- reading ---------------------------------------------------------------------------------


def _ws(text: str, i: int) -> int:
    return WHITESPACE.match(text, i).end()


_DECODER = json.JSONDecoder()


def _skip(text: str, i: int) -> int:
    return _DECODER.raw_decode(text, i)[1]


def _object(text: str, i: int, on: Callable[[str, int], int | None]) -> int:
    """Walk the object at ``i`` (the text is valid JSON): ``on(key, offset of its value)`` returns
    the value's end, or None to skip it. The object's end."""
    i = _ws(text, i + 1)
    if text[i] == "}":
        return i + 1
    while True:
        key, i = scanstring(text, i + 1)
        i = _ws(text, _ws(text, i) + 1)  # past the colon
        end = on(key, i)
        i = _ws(text, _skip(text, i) if end is None else end)
        if text[i] == "}":
            return i + 1
        i = _ws(text, i + 1)  # past the comma


def _items(text: str, i: int, each: Callable[[int], int]) -> int:
    """Walk the array at ``i``, ``each(offset) -> end`` for each element; the array's end."""
    i = _ws(text, i + 1)
    if text[i] == "]":
        return i + 1
    while True:
        i = _ws(text, each(i))
        if text[i] == "]":
            return i + 1
        i = _ws(text, i + 1)


def source_spans(text: str) -> list[Span | None]:
    """For each cell, where its ``source`` value is in the text (None when it has none)."""
    spans: list[Span | None] = []

    def cell(at: int) -> int:
        spans.append(None)
        if text[at] != "{":
            return _skip(text, at)

        def member(key: str, v: int) -> int | None:
            if key != "source":
                return None
            if text[v] == "[":
                items: list[tuple[int, int]] = []

                def item(j: int) -> int:
                    end = _skip(text, j)
                    items.append((j, end))
                    return end

                end = _items(text, v, item)
                spans[-1] = Span(v, end, items)
                return end
            end = _skip(text, v)
            spans[-1] = Span(v, end)
            return end

        return _object(text, at, member)

    def top(key: str, v: int) -> int | None:
        if key == "cells" and text[v] == "[":
            spans.clear()  # a repeated key: json.loads keeps the last one, and so does this
            return _items(text, v, cell)
        return None

    _object(text, _ws(text, 0), top)
    return spans


def load(text: str) -> Notebook:
    """The notebook in ``text``; NotebookError when it is not JSON or not an nbformat 4 notebook."""
    bom = text.startswith("\ufeff")
    text = text[1:] if bom else text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise NotebookError(f"cannot parse notebook: {e.msg} (not valid JSON)", e.lineno, e.colno) from None
    except RecursionError:
        raise NotebookError("cannot parse notebook: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        if isinstance(data, dict) and "worksheets" in data:
            raise NotebookError("not an nbformat 4 notebook (nbformat 3: convert it with `jupyter nbconvert --to notebook`)")
        raise NotebookError('not a Jupyter notebook: no "cells" list')
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    language = (metadata.get("language_info") or {}).get("name") or (metadata.get("kernelspec") or {}).get("language")
    spans_list = source_spans(text)
    cells: list[Cell] = []
    spans: dict[int, Span] = {}
    for number, (cell, span) in enumerate(zip(data["cells"], spans_list), 1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise NotebookError(f"not a Jupyter notebook: cell {number} has no cell_type")
        if cell["cell_type"] != "code":
            continue
        source = cell.get("source")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str) or span is None:
            raise NotebookError(f"not a Jupyter notebook: code cell {number} has no source")
        cells.append(Cell(number, source, *mask(source)))
        spans[number] = span
    if isinstance(language, str) and language.lower() != "python":
        cells = []  # an R or Julia notebook: nothing here is Python
    return Notebook(text, cells, spans, bom, _join(cells))


def from_cells(sources: Iterable[tuple[int, str]]) -> Notebook:
    """A notebook of code cells given as (number, source), as an editor sends them (no JSON)."""
    cells = [Cell(number, source, *mask(source)) for number, source in sources]
    return Notebook("", cells, {}, False, _join(cells))


def _join(cells: Sequence[Cell]) -> str:
    parts: list[str] = []
    line = 1
    for i, cell in enumerate(cells):
        if i:
            parts.append(CELL_MARKER.format(cell.number) + "\n")
            line += 1
        text = cell.masked
        if text and not text.endswith(("\n", "\r")):
            text += "\n"
            cell.added_newline = True
        cell.start, cell.lines = line, len(_LINE.findall(text))
        line += cell.lines
        parts.append(text)
    return "".join(parts)


def read_text(path: Path) -> str:
    """A notebook file's text (JSON is UTF-8)."""
    return decode(path.read_bytes())


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise NotebookError(f"cannot decode notebook as utf-8: invalid byte {data[e.start]:#04x}", line) from None


def read(path: Path) -> Notebook:
    return load(read_text(path))


def file_region(f: Finding, cache: dict[str, Notebook | None] | None = None) -> tuple[int, int, int, int]:
    """Where a finding on a cell is in the notebook's file (line, column, end line, end column,
    1-based): the machine formats (SARIF, GitHub) point into the file. The finding's own
    numbers when the notebook cannot be read again."""
    end = (f.end_line or f.line, f.end_column or f.column + 1)
    if f.cell is None:
        return (f.line, f.column, *end)
    cache = {} if cache is None else cache
    if f.path not in cache:
        try:
            cache[f.path] = read(Path(f.path))
        except (OSError, NotebookError):
            cache[f.path] = None
    notebook = cache[f.path]
    if notebook is None or f.cell not in notebook.spans:
        return (f.line, f.column, *end)
    g = notebook.to_file(f)
    return g.line, g.column, g.end_line, g.end_column


def cell_prefix(f: Finding) -> str:
    """``cell 4, line 3: `` for a finding on a cell (the machine formats' message names it)."""
    return f"cell {f.cell}, line {f.line}: " if f.cell is not None else ""


def split_first_cell(module: str) -> tuple[str, str]:
    """A joined module as its first cell's lines and the rest (from the second cell's marker)."""
    lines = _LINE.findall(module)
    cut = next((i for i, line in enumerate(lines) if _CELL_MARKER.fullmatch(line.rstrip("\r\n"))), len(lines))
    return "".join(lines[:cut]), "".join(lines[cut:])
