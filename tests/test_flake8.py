"""The flake8 plugin gives the CLI's findings; flake8 owns selection and ``# noqa``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from test_cli import BAD

FIXTURE = ROOT / "tests" / "fixtures" / "TL201.py"
# the CLI marks fixable findings with "[*] " (as ruff does); flake8 has no such marker
LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<code>TL\d{3}) (?:\[\*\] )?(?P<message>.+)$")


def flake8(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "TL", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def parsed(output: str) -> list[tuple[int, int, str, str]]:
    return [(int(m["line"]), int(m["col"]), m["code"], m["message"]) for m in map(LINE.match, output.splitlines()) if m]


def test_same_findings_as_the_cli(cli, tmp_path):
    (tmp_path / "fixture.py").write_bytes(FIXTURE.read_bytes())
    ours = parsed(cli("check", "--isolated", "--output-format", "concise", "--select", "TL201", "fixture.py", cwd=tmp_path).stdout)
    theirs = flake8("fixture.py", cwd=tmp_path)
    assert theirs.returncode == 1, theirs.stderr
    assert ours and parsed(theirs.stdout) == ours


def test_same_columns_with_bom_crlf_and_wide_characters(cli, tmp_path):
    source = BAD.replace("x = F.dropout(x, 0.5)", "s = '\u00e9\U0001f600'; x = F.dropout(x, 0.5)").replace("\n", "\r\n")
    (tmp_path / "m.py").write_bytes(b"\xef\xbb\xbf" + source.encode("utf-8"))
    ours = parsed(cli("check", "--isolated", "--output-format", "concise", "--select", "TL201", "m.py", cwd=tmp_path).stdout)
    assert [(line, col) for line, col, _, _ in ours] == [(7, 23), (8, 16)]
    assert parsed(flake8("m.py", cwd=tmp_path).stdout) == ours


def test_stdin(cli, tmp_path):
    (tmp_path / "fixture.py").write_bytes(FIXTURE.read_bytes())
    ours = parsed(cli("check", "--isolated", "--output-format", "concise", "--select", "TL201", "fixture.py", cwd=tmp_path).stdout)
    result = flake8("-", cwd=tmp_path, stdin=FIXTURE.read_text(encoding="utf-8"))
    assert result.stdout.startswith("stdin:")
    assert parsed(result.stdout) == ours


NOQA = BAD.replace("x = F.dropout(x, 0.5)", "x = F.dropout(x, 0.5)  # noqa: TL201").replace(
    "return F.dropout(x)", "return F.dropout(x)  # noqa"
)


def test_flake8_noqa_silences(tmp_path):
    (tmp_path / "m.py").write_text(NOQA, encoding="utf-8")
    result = flake8("m.py", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "")


def test_flake8_disable_noqa_shows_everything(tmp_path):
    (tmp_path / "m.py").write_text(NOQA, encoding="utf-8")
    result = flake8("--disable-noqa", "m.py", cwd=tmp_path)
    assert [(line, code) for line, _, code, _ in parsed(result.stdout)] == [(7, "TL201"), (8, "TL201")]


def test_other_code_in_noqa_does_not_silence(tmp_path):
    (tmp_path / "m.py").write_text(BAD.replace("return F.dropout(x)", "return F.dropout(x)  # noqa: E501"), encoding="utf-8")
    assert [line for line, _, _, _ in parsed(flake8("m.py", cwd=tmp_path).stdout)] == [7, 8]


def test_syntax_error_is_flake8s(tmp_path):
    (tmp_path / "m.py").write_text("import torch\ndef f(:\n", encoding="utf-8")
    result = flake8("--select", "TL,E999", "m.py", cwd=tmp_path)
    assert "E999" in result.stdout and "TL000" not in result.stdout


NO_LIBCST = """
import ast, sys
from torchlint.flake8 import Plugin
lines = ["import numpy as np\\n", "x = np.zeros(3)\\n"]
assert list(Plugin(ast.parse("".join(lines)), lines, "m.py").run()) == []
print("libcst" in sys.modules, any(m.startswith("torchlint.") and m != "torchlint.flake8" for m in sys.modules))
"""


def test_plugin_skips_libcst_on_files_without_torch():
    result = subprocess.run([sys.executable, "-c", NO_LIBCST], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_plugin_is_registered():
    result = subprocess.run([sys.executable, "-m", "flake8", "--version"], capture_output=True, text=True, timeout=60)
    assert "torchlint" in result.stdout


@pytest.mark.parametrize("name", ["m.py", "pkg/m.py"])
def test_plugin_directly(tmp_path, name):
    import ast

    from torchlint.flake8 import Plugin

    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(BAD, encoding="utf-8")
    lines = BAD.splitlines(keepends=True)
    found = [(line, col, text.split()[0]) for line, col, text, _ in Plugin(ast.parse(BAD), lines, str(path)).run()]
    assert found == [(7, 12, "TL201"), (8, 15, "TL201")]  # flake8 adds 1 to the column


def test_plugin_screens_with_flake8s_tree(tmp_path, monkeypatch):
    """The screen reads the ``ast`` flake8 parsed: CPython's parser is not run again, and a
    file no screen passes is not given to LibCST."""
    import ast

    import libcst

    from torchlint.flake8 import Plugin

    quiet = "import torch\nimport torch.nn as nn\n\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return torch.relu(x)\n"
    trees = [ast.parse(text) for text in (BAD, quiet)]

    def unexpected(*args, **kwargs):
        raise AssertionError("parsed again")

    class NoParse:
        """CPython's ``ast`` module as torchlint's modules see it, without ``parse``."""

        parse = staticmethod(unexpected)

        def __getattr__(self, name):
            return getattr(ast, name)

    from torchlint import facts, screen

    monkeypatch.setattr(screen, "ast", NoParse())
    monkeypatch.setattr(facts, "ast", NoParse())
    found = [text.split()[0] for _, _, text, _ in Plugin(trees[0], BAD.splitlines(True), "m.py").run()]
    assert found == ["TL201", "TL201"]
    monkeypatch.setattr(libcst, "parse_module", unexpected)
    assert list(Plugin(trees[1], quiet.splitlines(True), "m.py").run()) == []


def test_plugin_reports_what_libcst_cannot_parse(tmp_path, monkeypatch):
    import ast

    import libcst

    from torchlint.flake8 import Plugin

    def fail(*args, **kwargs):
        raise libcst.ParserSyntaxError("parser error: boom", lines=["x"], raw_line=1, raw_column=0)

    monkeypatch.setattr(libcst, "parse_module", fail)
    found = [text.split()[0] for _, _, text, _ in Plugin(ast.parse(BAD), BAD.splitlines(True), "m.py").run()]
    assert found == ["TL000"]


# --- the plugin's settings: flake8 options, [tool.torchlint], both ---------------------------

# TL503 and TL702 are off by default; torch.cuda.amp.GradScaler's advice (TL702) applies from torch 2.4.
SETTINGS_SOURCE = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.scaler = torch.cuda.amp.GradScaler()

    def forward(self, x):
        return self.head.forward(F.dropout(x))
"""


def project_flake8(*args: str, cwd: Path) -> list[tuple[int, str]]:
    """flake8 as a user runs it in the project (its configuration files read), TL codes only."""
    result = subprocess.run(
        [sys.executable, "-m", "flake8", "--select", "TL", *args, "m.py"], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode in (0, 1), result.stderr
    return sorted({(line, code) for line, _, code, _ in parsed(result.stdout)})


@pytest.fixture
def settings_project(tmp_path: Path) -> Path:
    (tmp_path / "m.py").write_text(SETTINGS_SOURCE, encoding="utf-8")
    return tmp_path


def test_defaults_without_settings(settings_project):
    assert {code for _, code in project_flake8(cwd=settings_project)} == {"TL201"}


@pytest.mark.parametrize(
    ("name", "section"), [(".flake8", "flake8"), ("setup.cfg", "flake8"), ("tox.ini", "flake8")]
)
def test_options_from_flake8_configuration_files(settings_project, name, section):
    (settings_project / name).write_text(
        f"[{section}]\ntorchlint-target-version = 2.1\ntorchlint-extend-select = TL503,TL702\n", encoding="utf-8"
    )
    assert {code for _, code in project_flake8(cwd=settings_project)} == {"TL201", "TL503"}


def test_options_on_the_command_line(settings_project):
    found = project_flake8("--torchlint-extend-select", "TL503,TL702", "--torchlint-target-version", "2.1", cwd=settings_project)
    assert {code for _, code in found} == {"TL201", "TL503"}
    found = project_flake8("--torchlint-extend-select", "TL702", cwd=settings_project)
    assert {code for _, code in found} == {"TL201", "TL702"}


def test_tool_torchlint_in_pyproject(settings_project):
    (settings_project / "pyproject.toml").write_text(
        '[tool.torchlint]\ntarget-version = "2.1"\nextend-select = ["TL503", "TL702"]\nignore = ["TL201"]\n', encoding="utf-8"
    )
    assert {code for _, code in project_flake8(cwd=settings_project)} == {"TL503"}


def test_a_flake8_option_wins_over_tool_torchlint(settings_project):
    (settings_project / "pyproject.toml").write_text(
        '[tool.torchlint]\ntarget-version = "2.1"\nextend-select = ["TL503"]\n', encoding="utf-8"
    )
    (settings_project / "setup.cfg").write_text("[flake8]\ntorchlint-target-version = 2.4\ntorchlint-extend-select = TL702\n", encoding="utf-8")
    assert {code for _, code in project_flake8(cwd=settings_project)} == {"TL201", "TL702"}


def test_flake8_selection_still_applies(settings_project):
    (settings_project / ".flake8").write_text("[flake8]\ntorchlint-extend-select = TL503,TL702\nper-file-ignores = m.py:TL201\n", encoding="utf-8")
    assert {code for _, code in project_flake8(cwd=settings_project)} == {"TL503", "TL702"}
    assert {code for _, code in project_flake8("--extend-ignore", "TL5", cwd=settings_project)} == {"TL702"}
    (settings_project / "m.py").write_text(SETTINGS_SOURCE.replace("F.dropout(x))", "F.dropout(x))  # noqa: TL503"), encoding="utf-8")
    assert {code for _, code in project_flake8(cwd=settings_project)} == {"TL702"}


def test_a_bad_option_is_one_error(settings_project):
    result = subprocess.run(
        [sys.executable, "-m", "flake8", "--torchlint-target-version", "two", "m.py"], cwd=settings_project, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "torchlint: error: --torchlint-target-version" in result.stderr
