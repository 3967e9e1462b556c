"""The screen is a necessary condition: findings with it equal findings without it
(``TORCHLINT_NO_SCREEN=1``), every rule selected, on generated programs, on every fixture and
rule page block, and on fixtures with a line taken out (near misses of every rule's pattern)."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from unittest import mock

import hypothesmith
import pytest
from conftest import FIXTURES, RULE_PAGES, page_blocks
from hypothesis import HealthCheck, example, given, settings

from torchlint import screen
from torchlint.engine import check_source
from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE

EVERY_CODE = frozenset([*ALL_RULES, PARSE_ERROR_CODE])
EVERY_RULE = "# " + " ".join(sorted({n for rule in ALL_RULES.values() for n in rule.needles})) + "\n"


def both_ways(source: str, path: str = "module.py") -> None:
    """Findings with every file screened, whatever its length, equal findings without the screen."""
    with mock.patch.dict(os.environ, {"TORCHLINT_NO_SCREEN": ""}), mock.patch.object(screen, "MAX_CHARS", 10**9):
        on = check_source(source, path, EVERY_CODE, "pkg.module")
    with mock.patch.dict(os.environ, {"TORCHLINT_NO_SCREEN": "1"}):
        off = check_source(source, path, EVERY_CODE, "pkg.module")
    if screen.read(source) is not None:
        # a file CPython parses and LibCST does not (``importA\n\\\r\n``): LibCST's TL000
        # comes only when some screen passes, so it is not compared
        on = [f for f in on if f.code != PARSE_ERROR_CODE]
        off = [f for f in off if f.code != PARSE_ERROR_CODE]
    assert [(f.line, f.column, f.code, f.message) for f in on] == [(f.line, f.column, f.code, f.message) for f in off]


def test_switch():
    with mock.patch.dict(os.environ, {"TORCHLINT_NO_SCREEN": "1"}):
        assert not screen.enabled()
    with mock.patch.dict(os.environ, {"TORCHLINT_NO_SCREEN": ""}):
        assert screen.enabled()


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_fixtures(fixture):
    both_ways(fixture.read_text(encoding="utf-8"), fixture.name)


@pytest.mark.parametrize("page", RULE_PAGES, ids=lambda p: p.stem)
def test_rule_pages(page):
    for blocks in page_blocks(page).values():
        for block in blocks:
            both_ways(block)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_fixtures_with_a_statement_taken_out(fixture):
    """Each simple statement of the fixture replaced by ``pass``, a few at a time: every
    finding the full rule gives on what is left, the screen lets through."""
    text = fixture.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    statements = [
        n for n in ast.walk(ast.parse(text))
        if isinstance(n, (ast.Assign, ast.AugAssign, ast.Expr, ast.Return)) and n.lineno == n.end_lineno
    ]
    for node in statements[:: max(1, len(statements) // 6)]:
        line = lines[node.lineno - 1]
        indent = line[: len(line) - len(line.lstrip())]
        both_ways("".join([*lines[: node.lineno - 1], indent + "pass\n", *lines[node.lineno :]]), fixture.name)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_grammar())
@example("importA\n\\\r\n")  # CPython parses it, LibCST does not
def test_generated_programs(source):
    both_ways(EVERY_RULE + source)


def test_index_built_in_processes_is_the_same(tmp_path):
    from torchlint import index

    root = Path(__file__).resolve().parent.parent
    one = index.build(root, tmp_path / "one", jobs=1)
    two = index.build(root, tmp_path / "two", jobs=2)
    assert len(one.files) > index._FILES_PER_POOL
    assert one.files == two.files


def test_index_scanned_on_demand_is_the_same(tmp_path, monkeypatch):
    """Without the cache, a file is scanned when the index is first asked about it: asking
    about one class scans its file alone, and the whole mapping is the full scan's."""
    from torchlint import index

    root = Path(__file__).resolve().parent.parent
    full = index.build(root, tmp_path, jobs=1)
    scanned = []
    real = index.scan
    monkeypatch.setattr(index, "scan", lambda source, module, *args: scanned.append(module) or real(source, module, *args))
    lazy = index.build(root, use_cache=False)
    assert lazy.is_module("torchlint.engine.Selection") == full.is_module("torchlint.engine.Selection") == (False, "")
    assert scanned == ["torchlint.engine"]
    assert "torchlint.engine" in lazy.files and "no.such.module" not in lazy.files
    assert dict(lazy.files) == full.files
    assert (lazy.digest, lazy.branch_classes) == (full.digest, full.branch_classes)
