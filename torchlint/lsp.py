"""The language server (``torchlint lsp``, stdio): an adapter over the engine.

Documents in, ``check_source`` on their text, findings out as diagnostics; fixes out as code
actions. Settings come from the configuration nearest each document (torchlint.toml or
pyproject.toml, ``extend`` followed), as ``torchlint check`` reads them. Positions are converted from the engine's 1-based character columns to the code
units of the position encoding negotiated at ``initialize`` (UTF-16 unless the client offers
UTF-8 or UTF-32 first).

Notebooks: an editor that syncs notebooks (LSP 3.17 ``notebookDocument/*``, as VS Code does)
sends each cell as a text document; the code cells of a notebook are checked together as one
module (``torchlint.notebook``) and each cell gets its own diagnostics. A ``.ipynb`` file opened
as plain text (its JSON) gets diagnostics at the cells' lines in that JSON, without code actions.

A fix is sent as one text edit: the fixed document (the fix's edits plus the imports it needs,
``fixes.apply_edits`` and ``fixes.with_imports``) compared with the current one, with their common
beginning and end left out. It is right wherever the import lands, and small when the fix is. In
a notebook cell, a fix is one edit of each cell it changes: its own, and the cell its imports go
to (``TextFix.import_edits``, located by cell).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import libcst as cst
from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from torchlint import __version__, config, engine, fixes, index, notebook
from torchlint.config import ConfigError
from torchlint.incremental import DocumentTree
from torchlint.rules import ALL_RULES, DOCS_URL, PARSE_ERROR_CODE, PARSE_ERROR_NAME

SOURCE = "torchlint"
DEBOUNCE_SECONDS = 0.3
FIX_ALL_KIND = "source.fixAll.torchlint"
FIX_ALL_TITLE = "Fix all safe torchlint problems"
NOTEBOOK_SYNC = types.NotebookDocumentSyncOptions(
    notebook_selector=[
        types.NotebookDocumentFilterWithCells(cells=[types.NotebookCellLanguage(language="python")], notebook="jupyter-notebook")
    ]
)

# The length of a piece of text in the code units of the negotiated position encoding.
Units = Callable[[str], int]

_LINE_BREAK = re.compile(r"\r\n?|\n")
_NOQA_CODES = re.compile(r"#\s*noqa:\s?[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*", re.I)


class TorchlintServer(LanguageServer):
    """The server, with the findings of the text each open document was last checked with."""

    def __init__(self) -> None:
        super().__init__(
            "torchlint", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            notebook_document_sync=NOTEBOOK_SYNC,
        )
        self.checked: dict[str, tuple[str, list[engine.Finding]]] = {}
        self.trees: dict[str, DocumentTree] = {}  # each open document's tree, parsed again where edited
        self.checked_cells: dict[str, tuple[tuple, list[engine.Finding]]] = {}  # by notebook URI
        self.published: dict[str, set[str]] = {}  # notebook URI -> the cell URIs given diagnostics
        self.pending: dict[str, asyncio.Task] = {}
        self.config_errors: set[str] = set()

    def findings(self, document: TextDocument) -> list[engine.Finding]:
        """The findings of the document's current text (computed again only when it changed); for
        a notebook cell, that cell's findings from its notebook's code cells checked together."""
        nb = self.workspace.get_notebook_document(cell_uri=document.uri)
        if nb is not None:
            return self.cell_findings(nb).get(document.uri, [])
        text = document.source
        cached = self.checked.get(document.uri)
        if cached is None or cached[0] != text:
            tree = self.trees.setdefault(document.uri, DocumentTree())
            cached = (text, check_document(text, file_path(document), tree))
            self.checked[document.uri] = cached
        return cached[1]

    def cell_findings(self, nb: types.NotebookDocument) -> dict[str, list[engine.Finding]]:
        """The findings of each Python code cell of an open notebook, by the cell's URI. Cells are
        numbered as in ``torchlint check``: from 1, among all the notebook's cells."""
        cells = []
        for number, cell in enumerate(nb.cells, 1):
            if cell.kind != types.NotebookCellKind.Code:
                continue
            document = self.workspace.get_text_document(cell.document)
            if document.language_id in (None, "python"):
                cells.append((number, cell.document, document.source))
        key = tuple((number, text) for number, _, text in cells)
        cached = self.checked_cells.get(nb.uri)
        if cached is None or cached[0] != key:
            path = to_fs_path(nb.uri) if nb.uri.startswith("file:") else None
            cached = (key, check_cells(key, path))
            self.checked_cells[nb.uri] = cached
        return {uri: [f for f in cached[1] if f.cell == number] for number, uri, _ in cells}

    def _checked(self, check: Callable[[], object]) -> object | None:
        """``check()``, or None after saying why it failed: a configuration error once, not at
        every keystroke; a bug in torchlint in the log, and the server goes on."""
        try:
            return check()
        except ConfigError as e:
            if str(e) not in self.config_errors:
                self.config_errors.add(str(e))
                self.window_show_message(types.ShowMessageParams(types.MessageType.Error, f"torchlint: {e}"))
        except Exception as e:
            self.window_log_message(types.LogMessageParams(types.MessageType.Error, f"torchlint: internal error: {type(e).__name__}: {e}"))
        return None

    def lint(self, uri: str) -> None:
        """Check the document (or notebook) and publish its diagnostics."""
        if self.workspace.get_notebook_document(notebook_uri=uri) is not None:
            return self.lint_notebook(uri)
        document = self.workspace.get_text_document(uri)
        findings = self._checked(lambda: self.findings(document))
        if findings is None:
            return
        diagnostics = to_diagnostics(findings, document.source, self.workspace.position_codec.client_num_units)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=document.version)
        )

    def lint_notebook(self, uri: str) -> None:
        """Check a notebook's code cells together and publish each cell's diagnostics (empty ones
        for the cells that no longer have any)."""
        nb = self.workspace.get_notebook_document(notebook_uri=uri)
        if nb is None:
            return
        by_cell = self._checked(lambda: self.cell_findings(nb))
        if by_cell is None:
            return
        units = self.workspace.position_codec.client_num_units
        for cell_uri in self.published.get(uri, set()) - set(by_cell):
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=cell_uri, diagnostics=[]))
        for cell_uri, findings in by_cell.items():
            document = self.workspace.get_text_document(cell_uri)
            diagnostics = to_diagnostics(findings, document.source, units)
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=cell_uri, diagnostics=diagnostics, version=document.version)
            )
        self.published[uri] = set(by_cell)

    def resolves_edits(self) -> bool:
        """Whether the client asks for a code action's edit only when the action is chosen."""
        support = self.client_capabilities.text_document
        support = support and support.code_action and support.code_action.resolve_support
        return bool(support and "edit" in support.properties)

    def forget(self, uri: str) -> None:
        """Drop a document's (or notebook's) pending check and its last findings."""
        self.cancel_pending(uri)
        self.checked.pop(uri, None)
        self.checked_cells.pop(uri, None)

    def lint_now(self, uri: str) -> None:
        """Check a document (or notebook) afresh, now: it was opened, or saved (the settings or
        the project may have changed)."""
        self.forget(uri)
        self.lint(uri)

    def cancel_pending(self, uri: str) -> None:
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()

    def lint_later(self, uri: str) -> None:
        """Check the document after a pause in typing; a newer change restarts the pause."""
        self.cancel_pending(uri)

        async def debounced() -> None:
            await asyncio.sleep(DEBOUNCE_SECONDS)
            self.pending.pop(uri, None)
            self.lint(uri)

        self.pending[uri] = asyncio.get_running_loop().create_task(debounced())


def file_path(document: TextDocument) -> str | None:
    """The path of a document that is a file; None for an unsaved buffer."""
    return document.path if document.uri.startswith("file:") else None


def _settings(path: str | None) -> tuple[str, engine.Selection, frozenset[str], Callable[[], object] | None] | None:
    """The name to report, selection, codes and project index for a document, from its
    workspace's settings (the defaults for a document that is not a file); None for a file they
    exclude."""
    if path is None:
        selection = config.selection(config.Settings())
        return "<untitled>", selection, selection.codes, None
    file = Path(path)
    settings = config.load(config.find_config(file))
    selection = config.selection(settings)
    if selection.excluded(file):
        return None
    project = index.loader_for(file) if settings.project_index and file.is_file() else None
    return path, selection, selection.codes_for(path), project


def check_document(text: str, path: str | None, tree: DocumentTree | None = None) -> list[engine.Finding]:
    """The engine's findings for a document's text, with the settings of its workspace; none
    for a file the settings exclude. A notebook's JSON gets findings at the lines of that JSON.
    ``tree``: the document's tree from its last check, parsed again only where it changed."""
    found = _settings(path)
    if found is None:
        return []
    name, selection, codes, project = found
    file = Path(name)
    if path is not None and selection.language(file) == "ipynb":
        nb, findings = engine.check_notebook(text, path, codes, project=project, target_version=selection.target_version)
        return findings if nb is None else sorted(nb.to_file(f) for f in findings)
    module_name = engine.module_name_for(file) if path is not None and file.is_file() else None
    return engine.check_source(text, name, codes, module_name, project=project, tree=tree, lazy_fixes=True, target_version=selection.target_version)


def check_cells(cells: Sequence[tuple[int, str]], path: str | None) -> list[engine.Finding]:
    """The findings of a notebook's code cells (number, text), checked as one module."""
    found = _settings(path)
    if found is None:
        return []
    name, selection, codes, project = found
    return engine.check_cells(notebook.from_cells(cells), name, codes, project=project, target_version=selection.target_version)


# --- positions -------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """The text's lines as the engine counts them."""
    return _LINE_BREAK.split(text)


def to_position(lines: Sequence[str], line: int, column: int, units: Units) -> types.Position:
    """A 1-based line and character column as an LSP position in the client's code units."""
    index_ = min(max(line, 1), len(lines)) - 1
    text = lines[index_]
    return types.Position(line=index_, character=units(text[: max(column, 1) - 1]))


def finding_range(f: engine.Finding, lines: Sequence[str], units: Units) -> types.Range:
    start = to_position(lines, f.line, f.column, units)
    if f.end_line:
        end = to_position(lines, f.end_line, f.end_column, units)
    else:  # TL000: from where the parser stopped to the end of that line
        line = lines[start.line] if start.line < len(lines) else ""
        end = types.Position(line=start.line, character=max(units(line), start.character))
    return types.Range(start=start, end=end)


def rule_url(code: str) -> str:
    rule = ALL_RULES.get(code)
    return rule.url() if rule else DOCS_URL.format(code=PARSE_ERROR_CODE, name=PARSE_ERROR_NAME)


def to_diagnostics(findings: Sequence[engine.Finding], text: str, units: Units) -> list[types.Diagnostic]:
    lines = _lines(text)
    return [
        types.Diagnostic(
            range=finding_range(f, lines, units),
            message=f.message,
            severity=types.DiagnosticSeverity.Error if f.code == PARSE_ERROR_CODE else types.DiagnosticSeverity.Warning,
            code=f.code,
            code_description=types.CodeDescription(href=rule_url(f.code)),
            source=SOURCE,
        )
        for f in findings
    ]


# --- code actions ----------------------------------------------------------------------------


def edit_between(before: str, after: str, units: Units) -> types.TextEdit:
    """One edit turning ``before`` into ``after``: the span between their common beginning and
    end, never splitting a ``\\r\\n``."""
    start = 0
    limit = min(len(before), len(after))
    while start < limit and before[start] == after[start]:
        start += 1
    end = 0
    while end < limit - start and before[-1 - end] == after[-1 - end]:
        end += 1
    if 0 < start < len(before) and before[start - 1 : start + 1] == "\r\n":
        start -= 1
    suffix = len(before) - end
    if 0 < suffix < len(before) and before[suffix - 1 : suffix + 1] == "\r\n":
        end -= 1
    return types.TextEdit(
        range=types.Range(start=_offset_position(before, start, units), end=_offset_position(before, len(before) - end, units)),
        new_text=after[start : len(after) - end],
    )


def _offset_position(text: str, offset: int, units: Units) -> types.Position:
    head = text[:offset]
    lines = _lines(head)
    return types.Position(line=len(lines) - 1, character=units(lines[-1]))


def fixed_text(text: str, chosen: Sequence[engine.Finding]) -> str | None:
    """The text with the chosen fixes and their imports; None when the result does not parse."""
    try:
        edited = fixes.apply_edits(text, [e for f in chosen for e in f.fix.edits])
        result = fixes.with_imports(edited, [i for f in chosen for i in f.fix.imports])
        cst.parse_module(result)
    except (cst.ParserSyntaxError, RecursionError):
        return None
    return result


def fixed_cells(cells: dict[int, str], f: engine.Finding) -> dict[int, str] | None:
    """The cells (by number, of the notebook's code ``cells``) one finding's fix changes, with
    the fix applied, the cell its imports go to included (a cell alone need not parse: it may
    hold magics); None when the fix touches a cell that is not there."""
    by_cell: dict[int, list[engine.TextEdit]] = {}
    for e in f.fix.all_edits:
        by_cell.setdefault(f.cell if e.cell is None else e.cell, []).append(e)
    if not set(by_cell) <= set(cells):
        return None
    return {number: fixes.apply_edits(cells[number], edits) for number, edits in by_cell.items()}


def fix_all(text: str, path: str | None) -> str:
    """The text with every safe fix applied, pass after pass, as ``torchlint check --fix`` does."""
    for _ in range(fixes.MAX_PASSES):
        chosen, _deferred = fixes.choose(check_document(text, path), unsafe=False)
        result = fixed_text(text, chosen) if chosen else None
        if result is None or result == text:
            break
        text = result
    return text


def noqa_edit(lines: Sequence[str], f: engine.Finding, units: Units) -> types.TextEdit | None:
    """``  # noqa: TLxxx`` at the end of the finding's line, or the code added to the line's
    ``# noqa:`` list; None on a line continued with a backslash."""
    line = lines[f.line - 1]
    if line.rstrip().endswith("\\"):
        return None
    existing = _NOQA_CODES.search(line)
    column, insert = (existing.end() + 1, f", {f.code}") if existing else (len(line.rstrip()) + 1, f"  # noqa: {f.code}")
    at = to_position(lines, f.line, column, units)
    return types.TextEdit(range=types.Range(start=at, end=at), new_text=insert)


def _overlaps(a: types.Range, b: types.Range) -> bool:
    def at(p: types.Position) -> tuple[int, int]:
        return p.line, p.character

    return at(a.start) <= at(b.end) and at(b.start) <= at(a.end)


def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    return not only or any(kind == k or kind.startswith(k + ".") for k in only)


def code_actions(server: TorchlintServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """Quick fixes, noqa and fix-all for a document. In a notebook cell: its fixes (editing the
    cell its imports go to as well) and noqa; none in a notebook's JSON."""
    document = server.workspace.get_text_document(params.text_document.uri)
    text, units = document.source, server.workspace.position_codec.client_num_units
    path = file_path(document)
    if path is not None and engine.Selection().language(Path(path)) == "ipynb":
        return []
    nb = server.workspace.get_notebook_document(cell_uri=document.uri)
    in_cell = nb is not None
    cell_uris = {number: cell.document for number, cell in enumerate(nb.cells, 1)} if nb is not None else {}
    try:
        findings = server.findings(document)
    except ConfigError:  # already shown when the document was checked
        return []
    lines = _lines(text)
    only = params.context.only
    actions: list[types.CodeAction] = []

    def action(
        title: str, kind: str, edit: types.TextEdit | dict[str, list[types.TextEdit]], f: engine.Finding | None, preferred: bool = False
    ) -> types.CodeAction:
        diagnostics = to_diagnostics([f], text, units) if f else None
        changes = edit if isinstance(edit, dict) else {document.uri: [edit]}
        return types.CodeAction(
            title=title, kind=kind, diagnostics=diagnostics, is_preferred=preferred or None,
            edit=types.WorkspaceEdit(changes=changes),
        )

    if _wanted(types.CodeActionKind.QuickFix, only):
        for f in findings:
            if not _overlaps(finding_range(f, lines, units), params.range):
                continue
            changes = None
            if f.fix is not None and in_cell:
                changes = _cell_changes(server, cell_uris, f, units)
            elif f.fix is not None and (after := fixed_text(text, [f])) is not None and after != text:
                changes = {document.uri: [edit_between(text, after, units)]}
            if changes:
                safe = f.fix.applicability == "safe"
                title = f"{f.code}: {f.fix.message}" + ("" if safe else " (unsafe)")
                actions.append(action(title, types.CodeActionKind.QuickFix, changes, f, safe))
            if f.code != PARSE_ERROR_CODE and (edit := noqa_edit(lines, f, units)) is not None:
                actions.append(action(f"Disable {f.code} for this line", types.CodeActionKind.QuickFix, edit, f))
    if not in_cell and _wanted(FIX_ALL_KIND, only) and any(f.fix and f.fix.applicability == "safe" for f in findings):
        fix_all_action = types.CodeAction(title=FIX_ALL_TITLE, kind=FIX_ALL_KIND, data={"uri": document.uri})
        actions.append(fix_all_action if server.resolves_edits() else resolve_fix_all(server, fix_all_action))
    return actions


def _cell_changes(server: TorchlintServer, cell_uris: dict[int, str], f: engine.Finding, units: Units) -> dict[str, list[types.TextEdit]] | None:
    """A fix in a notebook cell as an edit of each cell it changes (its imports' cell too)."""
    cells = {number: server.workspace.get_text_document(uri).source for number, uri in cell_uris.items()}
    after = fixed_cells(cells, f)
    if after is None:
        return None
    return {cell_uris[n]: [edit_between(cells[n], new, units)] for n, new in after.items() if new != cells[n]}


def resolve_fix_all(server: TorchlintServer, action: types.CodeAction) -> types.CodeAction:
    """Give the fix-all action its edit (done only when it is chosen, where the client can
    resolve actions: it checks the file once per pass)."""
    document = server.workspace.get_text_document(action.data["uri"])
    text = document.source
    after = fix_all(text, file_path(document))
    edit = edit_between(text, after, server.workspace.position_codec.client_num_units)
    action.edit = types.WorkspaceEdit(changes={document.uri: [edit]})
    return action


# --- the server ------------------------------------------------------------------------------


def build_server() -> TorchlintServer:
    server = TorchlintServer()

    # Opened or saved (the settings or the project may have changed): check now; changed: after a
    # pause in typing. A notebook's cells come with the notebook's own notifications.
    def text_uri(params) -> str:
        return params.text_document.uri

    def notebook_uri(params) -> str:
        return params.notebook_document.uri

    for opened, changed, saved, uri_of in (
        (types.TEXT_DOCUMENT_DID_OPEN, types.TEXT_DOCUMENT_DID_CHANGE, types.TEXT_DOCUMENT_DID_SAVE, text_uri),
        (types.NOTEBOOK_DOCUMENT_DID_OPEN, types.NOTEBOOK_DOCUMENT_DID_CHANGE, types.NOTEBOOK_DOCUMENT_DID_SAVE, notebook_uri),
    ):
        for method, check in ((opened, TorchlintServer.lint_now), (changed, TorchlintServer.lint_later), (saved, TorchlintServer.lint_now)):
            # pygls passes the server to a handler whose first parameter is named ``ls``
            server.feature(method)(lambda ls, params, check=check, uri_of=uri_of: check(ls, uri_of(params)))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TorchlintServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.forget(uri)
        ls.trees.pop(uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_did_close(ls: TorchlintServer, params: types.DidCloseNotebookDocumentParams) -> None:
        uri = params.notebook_document.uri
        ls.forget(uri)
        for cell_uri in ls.published.pop(uri, set()) | {c.uri for c in params.cell_text_documents}:
            ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=cell_uri, diagnostics=[]))

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND], resolve_provider=True),
    )
    def code_action(ls: TorchlintServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return code_actions(ls, params)

    @server.feature(types.CODE_ACTION_RESOLVE)
    def code_action_resolve(ls: TorchlintServer, action: types.CodeAction) -> types.CodeAction:
        return resolve_fix_all(ls, action) if action.kind == FIX_ALL_KIND and action.edit is None else action

    return server


def serve() -> None:
    """Serve on stdin and stdout until the client says exit. The server gets its own copies of
    the two streams (it closes them when it stops), and a stray print goes to stderr, not into
    the protocol."""
    with os.fdopen(os.dup(sys.stdin.fileno()), "rb") as stdin, os.fdopen(os.dup(sys.stdout.fileno()), "wb") as stdout:
        with contextlib.redirect_stdout(sys.stderr):
            build_server().start_io(stdin, stdout)
