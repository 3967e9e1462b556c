"""``--verify`` on the research-style model files of tests/verify_set: written as research code
is (helpers imported from local modules that are not there, optional packages that are not
installed, LSTMs, literal views, Lightning modules, annotated constructors, factories and
module-level Sequentials). One verify run over the whole set serves every test here."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

pytest.importorskip("torch")

SET = ROOT / "tests" / "verify_set"
MISSION = {"TL101", "TL102", "TL201", "TL202", "TL301", "TL302", "TL304"}
RATE = 0.8


@pytest.fixture(scope="module")
def verified() -> list[dict]:
    result = run_cli("check", "--verify", "--verify-device", "cpu", "--output-format", "json", "--isolated", str(SET))
    assert result.returncode == 1, result.stderr
    return json.loads(result.stdout)


def missing_imports(path: Path) -> set[str]:
    """The modules the file imports that this interpreter lacks (relative ones as ``.name``)."""
    missing = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            if not (path.parent / f"{node.module}.py").exists():
                missing.add(f".{node.module}")
            continue
        names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in getattr(node, "names", [])] if isinstance(node, ast.Import) else []
        for name in names:
            top = name.split(".")[0]
            if importlib.util.find_spec(top) is None:
                missing.add(top)
    return missing


def test_most_mission_findings_are_confirmed(verified):
    mission = [f for f in verified if f["code"] in MISSION]
    confirmed = [f for f in mission if f["verification"]["verdict"] == "confirmed"]
    assert len(mission) >= 25
    shown = "\n".join(f"{Path(f['filename']).name}:{f['location']['row']} {f['code']} {f['verification']}" for f in mission)
    assert len(confirmed) / len(mission) >= RATE, shown


def test_no_finding_of_the_set_is_refuted(verified):
    """Every finding in the set is a real bug."""
    assert [f for f in verified if f["verification"]["verdict"] == "refuted"] == []


def test_each_verdict_names_what_was_stubbed(verified):
    for f in verified:
        missing = missing_imports(Path(f["filename"]))
        evidence = f["verification"]["evidence"]
        if missing:
            stubbed = evidence.rsplit("stubbed: ", 1)[-1]
            assert set(stubbed.split(", ")) >= missing, (f["filename"], evidence)
        else:
            assert "stubbed" not in evidence


def test_what_stays_inconclusive_says_which_piece_is_missing(verified):
    for f in verified:
        verification = f["verification"]
        if verification["verdict"] != "inconclusive":
            continue
        evidence = verification["evidence"]
        assert "\n" not in evidence
        assert any(reason in evidence for reason in ("needs ", "cannot choose a value for", "did not run")), evidence
