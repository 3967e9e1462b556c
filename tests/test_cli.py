"""The command line as a user sees it: exit codes, output formats, selection, order, subcommands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from torchlint.rules import ALL_RULES

BAD = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def forward(self, x):
        x = F.dropout(x, 0.5)
        return F.dropout(x)
"""
CLEAN = "import torch\n\nx = torch.zeros(3)\n"
TEXT_LINE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<code>TL\d{3}) (?P<fixable>\[\*\] )?(?P<message>.+)$"
)


def finding_lines(stdout: str) -> list[re.Match]:
    return [m for m in map(TEXT_LINE.match, stdout.splitlines()) if m]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "b.py").write_text(BAD, encoding="utf-8")
    (tmp_path / "pkg" / "a.py").write_text(BAD, encoding="utf-8")
    (tmp_path / "clean.py").write_text(CLEAN, encoding="utf-8")
    return tmp_path


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("torchlint: error: ")
    return lines[0]


# --- exit codes ------------------------------------------------------------------------------


def test_clean_file_exits_0(cli, tree):
    result = cli("check", "clean.py", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "All checks passed!\n"


def test_findings_exit_1(cli, tree):
    result = cli("check", "pkg/a.py", cwd=tree)
    assert result.returncode == 1
    assert "Found 2 findings.\n" in result.stdout
    assert result.stdout.endswith("[*] 2 fixable with the `--fix` option.\n")
    assert result.stderr == ""


def test_exit_zero(cli, tree):
    result = cli("check", "--exit-zero", "pkg", cwd=tree)
    assert result.returncode == 0
    assert "TL201" in result.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["check", "--bogus"], "--bogus"),
        ([], "COMMAND"),
        (["frobnicate"], "frobnicate"),
        (["check", "--select", "TL999"], "TL999"),
        (["check", "--ignore", "XYZ"], "XYZ"),
        (["check", "--extend-select", "TL9"], "TL9"),
        (["check", "--output-format", "xml"], "xml"),
        (["check", "missing.py"], "missing.py"),
        (["check", "clean.py", "missing_dir"], "missing_dir"),
        (["check", "--config", "nowhere.toml"], "nowhere.toml"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, tree, args, fragment):
    line = one_line_error(cli(*args, cwd=tree))
    assert fragment in line
    assert "--select/--ignore" not in line


def test_missing_path_checks_nothing(cli, tree):
    result = cli("check", "pkg", "missing.py", cwd=tree)
    assert result.returncode == 2
    assert result.stdout == ""


# --- text output -----------------------------------------------------------------------------


def test_text_format(cli, tree):
    result = cli("check", "--output-format", "concise", "pkg/a.py", cwd=tree)
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "pkg/a.py:7:13: TL201 [*] " + lines[0].split(" TL201 [*] ", 1)[1],
        "pkg/a.py:8:16: TL201 [*] " + lines[1].split(" TL201 [*] ", 1)[1],
    ]
    assert lines[2:] == ["Found 2 findings.", "[*] 2 fixable with the `--fix` option."]


def test_default_path_is_cwd(cli, tree):
    result = cli("check", "--output-format", "concise", cwd=tree)
    paths = {m["path"] for m in finding_lines(result.stdout)}
    assert paths == {"pkg/a.py", "pkg/b.py"}


def test_statistics(cli, tree):
    result = cli("check", "--statistics", "pkg", cwd=tree)
    assert result.returncode == 1
    assert result.stdout == "4\tTL201\t[*] dropout-ignores-eval\n"


# --- selection -------------------------------------------------------------------------------


@pytest.mark.parametrize("select", ["TL201", "TL2", "TL", "ALL", "tl201", "TL201,TL000"])
def test_select_codes_and_prefixes(cli, tree, select):
    result = cli("check", "--select", select, "pkg/a.py", cwd=tree)
    assert result.returncode == 1
    assert result.stdout.count("TL201") == 2


@pytest.mark.parametrize("ignore", ["TL201", "TL2", "TL"])
def test_ignore_codes_and_prefixes(cli, tree, ignore):
    result = cli("check", "--ignore", ignore, "pkg/a.py", cwd=tree)
    assert result.returncode == 0
    assert "TL201" not in result.stdout


def test_select_other_rules_only(cli, tree):
    other = next((c for c in ALL_RULES if not c.startswith("TL2")), None)
    if other is None:
        pytest.skip("no rule outside TL2 yet")
    result = cli("check", "--select", other, "pkg/a.py", cwd=tree)
    assert "TL201" not in result.stdout


def test_extend_select_adds_to_select(cli, tree):
    result = cli("check", "--select", "TL000", "--extend-select", "TL201", "pkg/a.py", cwd=tree)
    assert result.stdout.count("TL201") == 2


def test_ignore_beats_select(cli, tree):
    result = cli("check", "--select", "TL2", "--ignore", "TL201", "pkg/a.py", cwd=tree)
    assert result.returncode == 0


# --- JSON output -----------------------------------------------------------------------------

RUFF_FIELDS = {"code", "message", "filename", "location", "end_location", "fix", "url", "noqa_row"}


def test_json_has_ruffs_fields_and_matches_text(cli, tree):
    as_json = cli("check", "--output-format", "json", "pkg", cwd=tree)
    as_text = cli("check", "--output-format", "concise", "pkg", cwd=tree)
    assert as_json.returncode == 1
    items = json.loads(as_json.stdout)
    assert len(items) == 4
    for item in items:
        assert RUFF_FIELDS | {"verification"} <= set(item)
        assert set(item["location"]) == {"row", "column"} == set(item["end_location"])
        assert Path(item["filename"]).is_absolute()
        assert item["noqa_row"] == item["location"]["row"]
        assert item["fix"]["applicability"] == "safe" and item["verification"] is None
        assert {"content", "location", "end_location"} <= set(item["fix"]["edits"][0])
        assert item["url"].endswith(f"{item['code']}-dropout-ignores-eval.md")
        assert (item["end_location"]["row"], item["end_location"]["column"]) > (
            item["location"]["row"],
            item["location"]["column"],
        )
    from_json = [
        (os.path.relpath(i["filename"], tree), i["location"]["row"], i["location"]["column"], i["code"], i["message"])
        for i in items
    ]
    from_text = [
        (m["path"], int(m["line"]), int(m["col"]), m["code"], m["message"])
        for m in finding_lines(as_text.stdout)
    ]
    assert from_json == from_text


def test_json_when_clean(cli, tree):
    result = cli("check", "--output-format", "json", "clean.py", cwd=tree)
    assert result.returncode == 0
    assert json.loads(result.stdout) == []


def test_json_end_location_of_a_call(cli, tree):
    items = json.loads(cli("check", "--output-format", "json", "pkg/a.py", cwd=tree).stdout)
    first = items[0]
    assert first["location"] == {"row": 7, "column": 13}
    assert first["end_location"] == {"row": 7, "column": 13 + len("F.dropout(x, 0.5)")}


# --- order -----------------------------------------------------------------------------------


def run_with_seed(tree: Path, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    args = [sys.executable, "-m", "torchlint", "check", "--output-format", "json", "."]
    return subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, timeout=120).stdout


def test_order_is_sorted_and_deterministic(tree):
    (tree / "pkg" / "mixed.py").write_text(
        BAD + "\n\nclass Two(nn.Module):\n    def forward(self, x):\n        return F.dropout(x) + F.dropout(x)\n"
        "def broken(:\n",
        encoding="utf-8",
    )
    runs = [run_with_seed(tree, seed) for seed in ("0", "1", "12345")]
    assert runs[0] == runs[1] == runs[2]
    items = json.loads(runs[0])
    keys = [(i["filename"], i["location"]["row"], i["location"]["column"], i["code"]) for i in items]
    assert keys == sorted(keys)
    assert [Path(k[0]).name for k in keys] == ["a.py"] * 2 + ["b.py"] * 2 + ["mixed.py"]


def test_a_file_named_twice_is_checked_once(cli, tree):
    result = cli("check", "--output-format", "concise", "pkg/a.py", "pkg", "./pkg/a.py", cwd=tree)
    assert result.stdout.count("pkg/a.py:7:13:") == 1


# --- other subcommands -----------------------------------------------------------------------


def test_rules_lists_every_code(cli):
    result = cli("rules")
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == ["TL000", *ALL_RULES]


def test_rule_prints_the_page(cli):
    result = cli("rule", "TL201")
    assert result.returncode == 0
    assert result.stdout == (ROOT / "rules" / "TL201-dropout-ignores-eval.md").read_text(encoding="utf-8")
    assert cli("rule", "tl201").stdout == result.stdout


def test_rule_parse_error_has_a_page(cli):
    result = cli("rule", "TL000")
    assert result.returncode == 0
    assert result.stdout.startswith("# TL000 parse-error")


def test_unknown_rule_exits_2(cli):
    assert "TL999" in one_line_error(cli("rule", "TL999"))


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("torchlint ")


def test_console_script_and_module_agree(tree):
    script = Path(sys.executable).with_name("torchlint")
    if not script.exists():
        pytest.skip("console script not installed next to the interpreter")
    a = subprocess.run([str(script), "check", "pkg"], cwd=tree, capture_output=True, text=True, timeout=120)
    b = subprocess.run([sys.executable, "-m", "torchlint", "check", "pkg"], cwd=tree, capture_output=True, text=True)
    assert (a.returncode, a.stdout) == (b.returncode, b.stdout) == (1, b.stdout)


def test_internal_error_is_one_line_with_the_file(tree, monkeypatch, capsys):
    from torchlint import cli, engine

    def boom(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(engine, "check_source", boom)
    assert cli.main(["check", "--isolated", str(tree / "pkg" / "a.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "a.py" in err and "ValueError: boom" in err


def test_rules_says_why_a_rule_is_off(cli):
    lines = {line.split()[0]: line for line in cli("rules").stdout.splitlines()}
    for code, rule in ALL_RULES.items():
        assert bool(rule.off_reason) == (not rule.default_enabled), code
        assert ("[off by default: " in lines[code]) == (not rule.default_enabled), code
        assert "\n" not in rule.off_reason


def test_select_all_and_extend_select_reach_the_off_rules(tree):
    from torchlint import config

    off = {code for code, rule in ALL_RULES.items() if not rule.default_enabled}
    assert off and off <= config.selection(config.Settings(), select=["ALL"]).codes
    assert off.isdisjoint(config.selection(config.Settings()).codes)
    assert off <= config.selection(config.Settings(), extend_select=sorted(off)).codes
