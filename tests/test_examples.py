"""``torchlint check examples/`` reports each wrong example with the codes its docstring names
(those that are implemented) and is silent on every right one."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT
from torchlint.engine import check_source
from torchlint.rules import ALL_RULES

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example(path):
    source = path.read_text(encoding="utf-8")
    found = {f.code for f in check_source(source, str(path))}
    if path.stem.endswith("_right"):
        assert found == set()
    else:
        docstring = source.split('"""')[1]
        named = set(re.findall(r"\bTL\d{3}\b", docstring))
        assert named, f"{path.name}: the docstring names no rule"
        assert found == named & set(ALL_RULES)


def test_examples_come_in_pairs():
    stems = {p.stem for p in EXAMPLES}
    for stem in stems:
        kind = stem.rsplit("_", 1)[1]
        assert kind in ("wrong", "right"), stem
        twin = stem.rsplit("_", 1)[0] + ("_right" if kind == "wrong" else "_wrong")
        assert twin in stems, f"{stem} has no twin"


def test_cli_on_examples(cli):
    result = cli("check", str(ROOT / "examples"))
    assert result.returncode == 1
    reported = {line.split(":")[0] for line in result.stdout.splitlines() if ": TL" in line}
    assert all(p.endswith("_wrong.py") for p in reported)
