"""Every rule page is a test: its Example blocks yield its code, its Use-instead blocks nothing."""

from __future__ import annotations

import pytest

from conftest import RULE_PAGES, default_codes, page_blocks
from torchlint.rules import rule_doc
from torchlint.engine import check_source
from torchlint.rules import ALL_RULES

SECTIONS = ["What it finds", "Why it is a bug", "Example", "Use instead", "Known traps", "Fix", "Verification"]


def test_every_rule_has_a_page():
    for code, rule in ALL_RULES.items():
        page = rule_doc(code)
        assert page is not None, f"{code} has no page in rules/"
        assert page.name == f"{code}-{rule.name}.md"


@pytest.mark.parametrize("page", RULE_PAGES, ids=lambda p: p.stem)
def test_page_has_every_section(page):
    text = page.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"\n## {section}\n" in text, f"{page.name} lacks '## {section}'"


@pytest.mark.parametrize("page", RULE_PAGES, ids=lambda p: p.stem)
def test_example_blocks_are_reported(page):
    code = page.name.split("-")[0]
    blocks = page_blocks(page)
    assert blocks.get("Example"), f"{page.name} has no Example code block"
    for block in blocks["Example"]:
        found = {f.code for f in check_source(block, codes=default_codes(code))}
        assert code in found, f"{page.name}: Example block not reported as {code}:\n{block}"


@pytest.mark.parametrize("page", RULE_PAGES, ids=lambda p: p.stem)
def test_use_instead_blocks_are_clean(page):
    blocks = page_blocks(page)
    assert blocks.get("Use instead"), f"{page.name} has no Use-instead code block"
    for block in blocks["Use instead"]:
        found = check_source(block, codes=default_codes(page.name.split("-")[0]))
        assert not found, f"{page.name}: Use-instead block reported: {found}\n{block}"
