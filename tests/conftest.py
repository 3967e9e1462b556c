"""Shared helpers: rule pages as fixtures, inline-expectation files, running the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULE_PAGES = sorted((ROOT / "rules").glob("TL*.md"))
FIXTURES = sorted((ROOT / "tests" / "fixtures").rglob("*.py"))

_FENCE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
_SECTION = re.compile(r"^## (.+)$", re.M)
_EXPECT = re.compile(r"#\s*expect:\s*(TL\d{3}(?:\s*,\s*TL\d{3})*)")


def page_blocks(page: Path) -> dict[str, list[str]]:
    """The ```python blocks of a rule page, by the ``## Section`` they sit under."""
    text = page.read_text(encoding="utf-8")
    heads = [(m.start(), m.group(1).strip()) for m in _SECTION.finditer(text)]
    out: dict[str, list[str]] = {}
    for m in _FENCE.finditer(text):
        section = [name for start, name in heads if start < m.start()]
        out.setdefault(section[-1] if section else "", []).append(m.group(1))
    return out


def expectations(source: str) -> list[tuple[int, str]]:
    """``(line, code)`` for every ``# expect: TL201[, TL302]`` comment."""
    out = []
    for lineno, line in enumerate(source.splitlines(), 1):
        m = _EXPECT.search(line)
        if m:
            out.extend((lineno, c.strip()) for c in m.group(1).split(","))
    return sorted(out)


def default_codes(*also: str) -> set[str]:
    """The codes a user gets without configuration (every rule on by default, and TL000), plus
    ``also``: rules that are off by default are tested in their own page and fixture."""
    from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE

    return {PARSE_ERROR_CODE, *also, *(c for c, r in ALL_RULES.items() if r.default_enabled)}


def run_cli(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchlint", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli():
    return run_cli
