"""No input crashes the engine: generated source (hypothesmith), and real code (LibCST's own)."""

from __future__ import annotations

from pathlib import Path

import hypothesmith
import libcst
from hypothesis import HealthCheck, given, settings

from torchlint.engine import Finding, check_source
from torchlint.rules import ALL_RULES

# A comment holding every rule's needles, so that every rule runs on whatever follows it.
EVERY_RULE = "# " + " ".join(sorted({n for rule in ALL_RULES.values() for n in rule.needles})) + "\n"
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
FUZZ_NODES = settings(FUZZ, max_examples=25)  # from_node() is slow to generate


def check(source: str) -> list[Finding]:
    findings = check_source(EVERY_RULE + source, "fuzz.py")
    assert all(isinstance(f, Finding) and f.line >= 1 and f.column >= 1 for f in findings)
    return findings


@FUZZ
@given(hypothesmith.from_grammar())
def test_grammar_never_raises(source):
    check(source)


@FUZZ_NODES
@given(hypothesmith.from_node())
def test_nodes_never_raise(source):
    check(source)


def test_libcst_sources_never_raise():
    """Every sixth file of the installed LibCST (sorted, so the sample is stable), every rule on."""
    files = sorted(Path(libcst.__file__).parent.rglob("*.py"))[::6]
    assert len(files) > 30
    for path in files:
        check(path.read_text(encoding="utf-8"))
