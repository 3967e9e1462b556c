"""The language server end to end: ``python -m torchlint lsp`` in a subprocess, driven by
pytest-lsp's client (and by headless Neovim where it is installed)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the lsp extra is not installed")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is not installed")

from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

from torchlint import lsp  # noqa: E402

DROPOUT = textwrap.dedent(
    """\
    import torch.nn as nn
    import torch.nn.functional as F


    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            # {comment}
            return F.dropout(self.fc(x), p=0.5)
    """
)
FINDING_LINE = 11  # 0-based line of the F.dropout call
CALL = "F.dropout(self.fc(x), p=0.5)"

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "torchlint", "lsp"])


def _capabilities(encodings: list[str] | None = None) -> types.ClientCapabilities:
    capabilities = client_capabilities("visual-studio-code")
    capabilities.general.position_encodings = encodings
    return capabilities


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, tmp_path: Path):
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=_capabilities(), root_uri=tmp_path.as_uri())
    )
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=SERVER)
async def utf8_client(lsp_client: LanguageClient, tmp_path: Path):
    result = await lsp_client.initialize_session(
        types.InitializeParams(capabilities=_capabilities(["utf-8", "utf-16"]), root_uri=tmp_path.as_uri())
    )
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
    yield
    await lsp_client.shutdown_session()


def _open(client: LanguageClient, path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    )
    return uri


def _change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def _diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri])


def _apply(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP edits (UTF-16 positions) to a text, as an editor does."""
    lines = text.splitlines(keepends=True)

    def offset(p: types.Position) -> int:
        line = lines[p.line] if p.line < len(lines) else ""
        units = line.encode("utf-16-le")[: 2 * p.character].decode("utf-16-le")
        return sum(len(x) for x in lines[: p.line]) + len(units)

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(e.range.start)] + e.new_text + text[offset(e.range.end) :]
    return text


async def _actions(client: LanguageClient, uri: str, diagnostic: types.Diagnostic, only=None) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic], only=only),
        )
    )
    return list(result or [])


@pytest.mark.asyncio
async def test_quick_fix_removes_the_finding(client: LanguageClient, tmp_path: Path):
    text = DROPOUT.format(comment="drop")
    uri = _open(client, tmp_path / "model.py", text)
    (diagnostic,) = await _diagnostics(client, uri)
    assert diagnostic.code == "TL201"
    assert diagnostic.severity == types.DiagnosticSeverity.Warning
    assert diagnostic.source == "torchlint"
    assert diagnostic.code_description.href.endswith("/rules/TL201-dropout-ignores-eval.md")
    column = text.splitlines()[FINDING_LINE].index(CALL)
    assert (diagnostic.range.start.line, diagnostic.range.start.character) == (FINDING_LINE, column)
    assert (diagnostic.range.end.line, diagnostic.range.end.character) == (FINDING_LINE, column + len(CALL))

    actions = await _actions(client, uri, diagnostic)
    titles = [a.title for a in actions]
    assert "Disable TL201 for this line" in titles
    (fix,) = [a for a in actions if a.is_preferred]
    assert fix.kind == types.CodeActionKind.QuickFix and fix.title.startswith("TL201: ") and "unsafe" not in fix.title
    fixed = _apply(text, fix.edit.changes[uri])
    assert "training=self.training" in fixed

    _change(client, uri, 2, fixed)
    assert await _diagnostics(client, uri) == []


@pytest.mark.asyncio
async def test_noqa_action_and_fix_all(client: LanguageClient, tmp_path: Path):
    text = DROPOUT.format(comment="drop")
    uri = _open(client, tmp_path / "model.py", text)
    (diagnostic,) = await _diagnostics(client, uri)
    (noqa,) = [a for a in await _actions(client, uri, diagnostic) if a.title == "Disable TL201 for this line"]
    silenced = _apply(text, noqa.edit.changes[uri])
    assert silenced.splitlines()[FINDING_LINE].endswith(f"{CALL}  # noqa: TL201")

    whole = types.Diagnostic(range=types.Range(types.Position(0, 0), types.Position(0, 0)), message="")
    (fix_all,) = await _actions(client, uri, whole, only=[types.CodeActionKind.SourceFixAll])
    assert fix_all.kind == "source.fixAll.torchlint" and fix_all.title == "Fix all safe torchlint problems"
    assert fix_all.edit is None  # the client can resolve it: the edit is computed when it is chosen
    fix_all = await client.code_action_resolve_async(fix_all)
    assert "training=self.training" in _apply(text, fix_all.edit.changes[uri])

    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    assert await _diagnostics(client, uri) == []


@pytest.mark.asyncio
async def test_an_unsafe_fix_is_titled_unsafe(client: LanguageClient, tmp_path: Path):
    text = DROPOUT.format(comment="drop").replace("F.dropout", "F.alpha_dropout")
    uri = _open(client, tmp_path / "model.py", text)
    (diagnostic,) = await _diagnostics(client, uri)
    (fix,) = [a for a in await _actions(client, uri, diagnostic) if a.title != "Disable TL201 for this line"]
    assert fix.title == "TL201: Pass training=self.training (unsafe)" and not fix.is_preferred
    assert "F.alpha_dropout(self.fc(x), p=0.5, training=self.training)" in _apply(text, fix.edit.changes[uri])


@pytest.mark.asyncio
async def test_non_ascii_before_the_finding_counts_utf16_units(client: LanguageClient, tmp_path: Path):
    text = DROPOUT.format(comment="drop").replace(f"return {CALL}", f"s = '😀é'; return {CALL}")
    uri = _open(client, tmp_path / "model.py", text)
    (diagnostic,) = await _diagnostics(client, uri)
    line = text.splitlines()[FINDING_LINE]
    utf16 = len(line[: line.index(CALL)].encode("utf-16-le")) // 2
    assert utf16 == line.index(CALL) + 1  # the emoji is two UTF-16 units
    assert (diagnostic.range.start.character, diagnostic.range.end.character) == (utf16, utf16 + len(CALL))
    (fix,) = [a for a in await _actions(client, uri, diagnostic) if a.is_preferred]
    assert "return F.dropout(self.fc(x), p=0.5, training=self.training)" in _apply(text, fix.edit.changes[uri])


@pytest.mark.asyncio
async def test_utf8_when_the_client_prefers_it(utf8_client: LanguageClient, tmp_path: Path):
    text = DROPOUT.format(comment="drop").replace(f"return {CALL}", f"s = '😀é'; return {CALL}")
    uri = _open(utf8_client, tmp_path / "model.py", text)
    (diagnostic,) = await _diagnostics(utf8_client, uri)
    line = text.splitlines()[FINDING_LINE]
    assert diagnostic.range.start.character == len(line[: line.index(CALL)].encode("utf-8"))


@pytest.mark.asyncio
async def test_syntax_error_mid_edit_then_recovery(client: LanguageClient, tmp_path: Path):
    text = DROPOUT.format(comment="drop")
    uri = _open(client, tmp_path / "model.py", text)
    assert [d.code for d in await _diagnostics(client, uri)] == ["TL201"]

    broken = text.replace("return F.dropout(self.fc(x), p=0.5)", "return F.dropout(self.fc(x), p=")
    _change(client, uri, 2, broken)
    (error,) = await _diagnostics(client, uri)
    assert error.code == "TL000" and error.severity == types.DiagnosticSeverity.Error
    assert error.message.startswith("cannot parse")

    _change(client, uri, 3, text)
    assert [d.code for d in await _diagnostics(client, uri)] == ["TL201"]


@pytest.mark.asyncio
async def test_changes_are_debounced_and_the_latest_text_wins(client: LanguageClient, tmp_path: Path):
    text = DROPOUT.format(comment="drop")
    uri = _open(client, tmp_path / "model.py", text)
    await _diagnostics(client, uri)
    fixed = text.replace("p=0.5)", "p=0.5, training=self.training)")
    for version in range(2, 6):
        _change(client, uri, version, text if version % 2 else fixed)
    _change(client, uri, 6, fixed)
    assert await _diagnostics(client, uri) == []
    client.diagnostics.pop(uri)
    await asyncio.sleep(lsp.DEBOUNCE_SECONDS + 0.2)
    assert uri not in client.diagnostics  # one publication for the burst of changes


@pytest.mark.asyncio
async def test_settings_come_from_the_workspace_pyproject(client: LanguageClient, tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nignore = ["TL201"]\n', encoding="utf-8")
    uri = _open(client, tmp_path / "model.py", DROPOUT.format(comment="drop"))
    assert await _diagnostics(client, uri) == []
    (tmp_path / "pyproject.toml").write_text("[tool.torchlint]\n", encoding="utf-8")
    client.text_document_did_save(types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    assert [d.code for d in await _diagnostics(client, uri)] == ["TL201"]


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    return F.dropout(x)", "    return F.dropout(x)  # noqa: TL201"),
        ("    return F.dropout(x)   ", "    return F.dropout(x)  # noqa: TL201   "),
        ("    return F.dropout(x)  # noqa: E501 long", "    return F.dropout(x)  # noqa: E501, TL201 long"),
    ],
)
def test_noqa_edit(line: str, expected: str):
    finding = lsp.engine.Finding("m.py", 1, 12, "TL201", "", 1, 24)
    edit = lsp.noqa_edit([line], finding, _utf16)
    assert _apply(line, [edit]) == expected


def test_noqa_edit_skips_a_continued_line():
    finding = lsp.engine.Finding("m.py", 1, 1, "TL201", "", 1, 2)
    assert lsp.noqa_edit(["x = F.dropout(y) + \\"], finding, _utf16) is None


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("a\r\nb\r\n", "a\r\nimport x\r\nb\r\n"),
        ("é = 1\nf(x)\n", "é = 1\nf(x, y)\n"),
        ("same\n", "same\n"),
        ("😀 f(x)\n", "😀 g(x)\n"),
    ],
)
def test_edit_between_turns_one_text_into_the_other(before: str, after: str):
    edit = lsp.edit_between(before, after, _utf16)
    assert _apply(before, [edit]) == after


def test_lsp_without_pygls_exits_2():
    code = "import sys; sys.modules['pygls'] = None; from torchlint.cli import main; sys.exit(main(['lsp']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "torchlint: error: the language server needs pygls: pip install 'torchlint[lsp]'\n"


# Written for Debian's Neovim (0.7) and later: start_client/buf_attach_client, options from the
# environment, ``--headless -c luafile`` (``vim.lsp.start`` and ``nvim -l`` came later).
NVIM_SCRIPT = """
local file, python = vim.env.TORCHLINT_FILE, vim.env.TORCHLINT_PYTHON
vim.cmd("edit " .. vim.fn.fnameescape(file))
local bufnr = vim.api.nvim_get_current_buf()
local client_id = vim.lsp.start_client({ name = "torchlint", cmd = { python, "-m", "torchlint", "lsp" },
  root_dir = vim.fn.fnamemodify(file, ":h") })
vim.lsp.buf_attach_client(bufnr, client_id)
local ok = vim.wait(30000, function() return #vim.diagnostic.get(bufnr) > 0 end, 50)
if not ok then io.stderr:write("no diagnostics\\n"); vim.cmd("cquit 3") end
local d = vim.diagnostic.get(bufnr)[1]
local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code)
if code ~= "TL201" then io.stderr:write("unexpected " .. tostring(code) .. "\\n"); vim.cmd("cquit 4") end
local client = vim.lsp.get_client_by_id(client_id)
local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) },
  range = { start = { line = d.lnum, character = d.col }, ["end"] = { line = d.end_lnum, character = d.end_col } },
  context = { diagnostics = {} } }
local result = client.request_sync("textDocument/codeAction", params, 20000, bufnr)
if not result or result.err then io.stderr:write("codeAction failed\\n"); vim.cmd("cquit 6") end
local fix
for _, action in ipairs(result.result or {}) do if action.isPreferred then fix = action end end
if not fix then io.stderr:write("no quick fix\\n"); vim.cmd("cquit 5") end
if not fix.edit then
  local resolved = client.request_sync("codeAction/resolve", fix, 20000, bufnr)
  fix = resolved and resolved.result or fix
end
vim.lsp.util.apply_workspace_edit(fix.edit, client.offset_encoding)
vim.cmd("write")
vim.cmd("qall!")
"""


def test_neovim_applies_the_quick_fix(tmp_path: Path):
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.skip("neovim is not installed (.ci/run installs Debian's)")
    version = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30).stdout.split()[1]
    if tuple(int(n) for n in version.lstrip("v").split(".")[:2]) < (0, 7):
        pytest.skip(f"neovim {version} is older than 0.7")
    path = tmp_path / "model.py"
    path.write_text(DROPOUT.format(comment="drop"), encoding="utf-8")
    script = tmp_path / "attach.lua"
    script.write_text(NVIM_SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [nvim, "--headless", "--clean", "-c", f"luafile {script}"],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
        env={**os.environ, "TORCHLINT_FILE": str(path), "TORCHLINT_PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr
    assert "training=self.training" in path.read_text(encoding="utf-8")


# --- notebooks -------------------------------------------------------------------------------

NOTEBOOK_CELLS = [
    (types.NotebookCellKind.Code, "import torch.nn as nn\nimport torch.nn.functional as F\n%matplotlib inline"),
    (types.NotebookCellKind.Markup, "# The head"),
    (types.NotebookCellKind.Code, "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 4)"),
    (types.NotebookCellKind.Code, f"class Head(Block):\n    def forward(self, x):\n        !echo hi\n        return {CALL}"),
]


async def _diagnostics_of(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """Wait until ``uri`` has diagnostics published (a notebook publishes one set per cell)."""
    client.diagnostics.pop(uri, None)
    while uri not in client.diagnostics:
        await asyncio.wait_for(client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 20)
    return list(client.diagnostics[uri])


def _open_notebook(client: LanguageClient, path: Path, cells) -> list[str]:
    uris = [f"vscode-notebook-cell:{path.as_posix()}#cell{i}" for i in range(len(cells))]
    language = {types.NotebookCellKind.Code: "python", types.NotebookCellKind.Markup: "markdown"}
    client.notebook_document_did_open(
        types.DidOpenNotebookDocumentParams(
            notebook_document=types.NotebookDocument(
                uri=path.as_uri(), notebook_type="jupyter-notebook", version=1,
                cells=[types.NotebookCell(kind=kind, document=uri) for (kind, _), uri in zip(cells, uris)],
            ),
            cell_text_documents=[
                types.TextDocumentItem(uri=uri, language_id=language[kind], version=1, text=text)
                for (kind, text), uri in zip(cells, uris)
            ],
        )
    )
    return uris


@pytest.mark.asyncio
async def test_notebook_cells_are_checked_together(client: LanguageClient, tmp_path: Path):
    uris = _open_notebook(client, tmp_path / "nb.ipynb", NOTEBOOK_CELLS)
    (diagnostic,) = await _diagnostics_of(client, uris[3])
    assert diagnostic.code == "TL201"
    head = NOTEBOOK_CELLS[3][1].splitlines()
    line = next(i for i, text in enumerate(head) if CALL in text)
    assert (diagnostic.range.start.line, diagnostic.range.start.character) == (line, head[line].index(CALL))
    assert list(client.diagnostics[uris[0]]) == [] and uris[1] not in client.diagnostics  # published before cell 4's

    actions = await _actions(client, uris[3], diagnostic)
    (fix,) = [a for a in actions if a.is_preferred]
    fixed = _apply(NOTEBOOK_CELLS[3][1], fix.edit.changes[uris[3]])
    assert "!echo hi" in fixed and "training=self.training" in fixed

    client.notebook_document_did_change(
        types.DidChangeNotebookDocumentParams(
            notebook_document=types.VersionedNotebookDocumentIdentifier(uri=(tmp_path / "nb.ipynb").as_uri(), version=2),
            change=types.NotebookDocumentChangeEvent(
                cells=types.NotebookDocumentCellChanges(
                    text_content=[
                        types.NotebookDocumentCellContentChanges(
                            document=types.VersionedTextDocumentIdentifier(uri=uris[3], version=2),
                            changes=[types.TextDocumentContentChangeWholeDocument(text=fixed)],
                        )
                    ]
                )
            ),
        )
    )
    assert await _diagnostics_of(client, uris[3]) == []

    client.notebook_document_did_close(
        types.DidCloseNotebookDocumentParams(
            notebook_document=types.NotebookDocumentIdentifier(uri=(tmp_path / "nb.ipynb").as_uri()),
            cell_text_documents=[types.TextDocumentIdentifier(uri=u) for u in uris],
        )
    )
    assert await _diagnostics_of(client, uris[3]) == []


@pytest.mark.asyncio
async def test_a_notebook_opened_as_json_text(client: LanguageClient, tmp_path: Path):
    import json

    cells = [
        {"cell_type": "code" if kind == types.NotebookCellKind.Code else "markdown", "metadata": {}, "source": text.splitlines(True)}
        for kind, text in NOTEBOOK_CELLS
    ]
    text = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"
    path = tmp_path / "nb.ipynb"
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="json", version=1, text=text))
    )
    (diagnostic,) = await _diagnostics(client, uri)
    json_line = next(i for i, line in enumerate(text.splitlines()) if CALL in line)
    assert diagnostic.code == "TL201" and diagnostic.range.start.line == json_line
    assert text.splitlines()[json_line][diagnostic.range.start.character:].startswith(CALL)
    assert diagnostic.message.startswith("cell 4, line 4: ")
    assert await _actions(client, uri, diagnostic) == []
