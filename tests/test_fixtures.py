"""Inline-expectation fixtures: every finding must be announced on its line by ``# expect: CODE``,
and every announced finding must be reported (all rules run, so a stray finding fails too)."""

from __future__ import annotations

import pytest

from conftest import FIXTURES, ROOT, default_codes, expectations
from torchlint.engine import check_source


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(ROOT / "tests" / "fixtures")))
def test_fixture(path):
    source = path.read_text(encoding="utf-8")
    own = path.stem.split("-")[0]
    found = sorted((f.line, f.code) for f in check_source(source, str(path), default_codes(own)))
    assert found == expectations(source)
