"""``--output-format sarif`` and ``--output-format github`` as CI reads them: the SARIF log checked
against the fields SARIF 2.1.0 requires and GitHub code scanning uses; the annotations parsed back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from torchlint import __version__, cli
from torchlint.engine import Finding
from torchlint.report import github, sarif
from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE

BAD = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def forward(self, x):
        return F.dropout(x, p=0.5)
"""
SARIF_LEVELS = {"none", "note", "warning", "error"}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with a finding in ``my pkg/model.py`` and a broken ``my pkg/broken.py``; the
    cwd is ``my pkg``, below the root, so that paths must be made relative to the root."""
    (tmp_path / ".git").mkdir()
    package = tmp_path / "my pkg"
    package.mkdir()
    (package / "model.py").write_text(BAD, encoding="utf-8")
    (package / "broken.py").write_text("def f(:\n", encoding="utf-8")
    monkeypatch.chdir(package)
    return tmp_path


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    status = cli.main(["check", "--isolated", "--no-project", *args])
    return status, capsys.readouterr().out


def test_sarif_log_has_the_required_fields(repo: Path, capsys):
    status, out = run(capsys, "--output-format", "sarif", "model.py", "broken.py")
    assert status == 1
    log = json.loads(out)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    assert len(log["runs"]) == 1
    run_ = log["runs"][0]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "torchlint" and driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"] == repo.resolve().as_uri() + "/"

    rules = driver["rules"]
    assert [r["id"] for r in rules] == [PARSE_ERROR_CODE, *ALL_RULES]
    for rule in rules:
        assert set(rule) >= {"id", "name", "shortDescription", "fullDescription", "helpUri", "defaultConfiguration"}
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in SARIF_LEVELS
        assert rule["helpUri"].endswith(f"/rules/{rule['id']}-{rule['name']}.md")
    by_id = {r["id"]: r for r in rules}
    tl201 = by_id["TL201"]
    assert tl201["name"] == ALL_RULES["TL201"].name and tl201["helpUri"] == ALL_RULES["TL201"].url()
    assert tl201["shortDescription"]["text"] == ALL_RULES["TL201"].summary
    assert tl201["fullDescription"]["text"].startswith("A call of the functional dropout family")
    assert "##" not in tl201["fullDescription"]["text"]
    assert by_id["TL000"]["defaultConfiguration"]["level"] == "error"
    assert by_id["TL201"]["defaultConfiguration"]["enabled"] is True and by_id["TL702"]["defaultConfiguration"]["enabled"] is False

    results = run_["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("TL000", "error"), ("TL201", "warning")]
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["message"]["text"]
        (location,) = r["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%"
        assert artifact["uri"] in {"my%20pkg/broken.py", "my%20pkg/model.py"}
        region = location["physicalLocation"]["region"]
        assert all(region[k] >= 1 for k in ("startLine", "startColumn", "endLine", "endColumn"))
        assert (region["endLine"], region["endColumn"]) > (region["startLine"], region["startColumn"])

    region = results[1]["locations"][0]["physicalLocation"]["region"]
    line = BAD.splitlines()[region["startLine"] - 1]
    assert region["startLine"] == region["endLine"] == 7
    assert line[region["startColumn"] - 1 : region["endColumn"] - 1] == "F.dropout(x, p=0.5)"


def test_sarif_with_no_findings_is_a_log_with_no_results(repo: Path, capsys):
    (repo / "clean.py").write_text("x = 1\n", encoding="utf-8")
    status, out = run(capsys, "--output-format", "sarif", str(repo / "clean.py"))
    assert status == 0
    assert json.loads(out)["runs"][0]["results"] == []


def test_sarif_outside_the_repository_is_an_absolute_uri(tmp_path: Path):
    outside = tmp_path / "elsewhere" / "m.py"
    finding = Finding(str(outside), 3, 5, "TL201", "m", 3, 9)
    log = json.loads(sarif.render([finding], root=tmp_path / "repo"))
    artifact = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": outside.resolve().as_uri()}


def test_sarif_carries_a_verification_in_properties(tmp_path: Path):
    finding = Finding(str(tmp_path / "m.py"), 3, 5, "TL201", "m", 3, 9)
    verification = SimpleNamespace(verdict="confirmed", evidence="outputs differ", device="cpu", seconds=0.5)
    log = json.loads(sarif.render([finding], verifications={finding: verification}, root=tmp_path))
    properties = log["runs"][0]["results"][0]["properties"]
    assert properties["verification"]["verdict"] == "confirmed"


ANNOTATION = re.compile(r"^::(?P<level>warning|error) (?P<properties>[^:]*)::(?P<message>.*)$")


def unescape(value: str) -> str:
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def parse_annotation(line: str) -> tuple[str, dict[str, str], str]:
    """A workflow command line back into its level, properties and message, as the runner does."""
    m = ANNOTATION.match(line)
    assert m, line
    properties = dict(p.split("=", 1) for p in m["properties"].split(","))
    return m["level"], {k: unescape(v) for k, v in properties.items()}, unescape(m["message"])


def test_github_annotations(repo: Path, capsys):
    status, out = run(capsys, "--output-format", "github", "model.py", "broken.py")
    assert status == 1
    lines = out.splitlines()
    assert len(lines) == 2
    parsed = [parse_annotation(line) for line in lines]
    (error, broken, broken_message), (warning, model, message) = parsed
    assert error == "error" and broken["file"] == "my pkg/broken.py" and broken["title"] == "TL000"
    assert broken_message.startswith("TL000 cannot parse")
    assert warning == "warning"
    assert model == {"file": "my pkg/model.py", "line": "7", "col": "16", "endLine": "7", "endColumn": "35", "title": "TL201"}
    assert message.startswith("TL201 F.dropout() without training=")


def test_github_with_no_findings_prints_nothing(repo: Path, capsys):
    (repo / "clean.py").write_text("x = 1\n", encoding="utf-8")
    assert run(capsys, "--output-format", "github", str(repo / "clean.py")) == (0, "")


def test_github_escapes_properties_and_message(tmp_path: Path):
    path = tmp_path / "a,b:c%d.py"
    message = "100% wrong: a, b\r\nnext line"
    (line,) = github.render([Finding(str(path), 2, 3, "TL201", message, 2, 8)], root=tmp_path).splitlines()
    assert "\n" not in line and "\r" not in line
    assert "file=a%2Cb%3Ac%25d.py," in line
    assert line.endswith("::TL201 100%25 wrong: a, b%0D%0Anext line")
    level, properties, parsed_message = parse_annotation(line)
    assert level == "warning" and properties["file"] == "a,b:c%d.py"
    assert parsed_message == f"TL201 {message}"


# --- full (the default) and concise ----------------------------------------------------------


def test_full_is_the_default_and_shows_the_source(repo: Path, capsys, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    status, out = run(capsys, "model.py")
    assert status == 1
    assert out == (
        "TL201 [*] F.dropout() without training=: it defaults to True, so dropout stays on after model.eval(); pass training=self.training\n"
        " --> model.py:7:16\n"
        "  |\n"
        "5 | class Net(nn.Module):\n"
        "6 |     def forward(self, x):\n"
        "7 |         return F.dropout(x, p=0.5)\n"
        "  |                ^^^^^^^^^^^^^^^^^^^\n"
        "  |\n"
        "help: Pass training=self.training\n"
        "\n"
        "Found 1 finding.\n"
        "[*] 1 fixable with the `--fix` option.\n"
    )


def test_concise_and_its_old_name_text(repo: Path, capsys):
    expected = run(capsys, "--output-format", "concise", "model.py")
    assert expected[1].startswith("model.py:7:16: TL201 [*] F.dropout() without training=")
    assert run(capsys, "--output-format", "text", "model.py") == expected


def test_output_format_from_the_configuration(repo: Path, capsys):
    (repo / "my pkg" / "pyproject.toml").write_text('[tool.torchlint]\noutput-format = "concise"\n', encoding="utf-8")
    status = cli.main(["check", "--no-cache", "--no-project", "model.py"])
    assert status == 1 and capsys.readouterr().out.startswith("model.py:7:16: TL201")
    cli.main(["check", "--no-cache", "--no-project", "--output-format", "full", "model.py"])
    assert capsys.readouterr().out.startswith("TL201 [*] ")


def test_full_without_an_end_marks_one_character_and_a_long_range_is_cut(tmp_path: Path):
    from torchlint.report import full

    lines = [f"x{n} = 1" for n in range(1, 21)]
    (tmp_path / "m.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    one = full.render([Finding(str(tmp_path / "m.py"), 3, 2, "TL000", "cannot parse")], color=False)
    assert "3 | x3 = 1\n  |  ^\n4 | x4 = 1\n" in one
    long = full.render([Finding(str(tmp_path / "m.py"), 4, 1, "TL201", "long", 15, 7)], color=False)
    assert "..." in long and "x9 = 1" not in long and "x4 = 1" in long and "x15 = 1" in long


def test_full_in_a_notebook_labels_the_cell(tmp_path: Path, capsys):
    source = BAD.splitlines(True)
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# a"]},
             {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}]
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    cli.main(["check", "--isolated", "--no-cache", str(tmp_path / "nb.ipynb")])
    out = capsys.readouterr().out
    assert f" --> {tmp_path / 'nb.ipynb'}:cell 2:7:16\n" in out
    assert "7 |         return F.dropout(x, p=0.5)\n" in out


@pytest.mark.parametrize(
    ("env", "tty", "colored"),
    [({}, False, False), ({}, True, True), ({"NO_COLOR": "1"}, True, False), ({"FORCE_COLOR": "1"}, False, True),
     ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False, False), ({"TERM": "dumb"}, True, False)],
)
def test_colour_only_on_a_terminal(monkeypatch, env, tty, colored):
    from torchlint.report import full

    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert full.use_color(SimpleNamespace(isatty=lambda: tty)) is colored
    out = full.render([Finding("<none>", 1, 1, "TL201", "m", 1, 2)], color=full.use_color(SimpleNamespace(isatty=lambda: tty)))
    assert ("\x1b[" in out) is colored


# --- fixes complete in every output: the imports a fix needs are edits too --------------------

NEEDS_IMPORT = "import torchvision\n\nmodel = torchvision.models.resnet50(pretrained=True)\n"


def test_json_edits_hold_the_import_a_fix_needs(tmp_path: Path, capsys):
    from torchlint.fixes import apply_edits

    path = tmp_path / "m.py"
    path.write_text(NEEDS_IMPORT, encoding="utf-8")
    cli.main(["check", "--isolated", "--no-cache", "--output-format", "json", str(path)])
    (item,) = json.loads(capsys.readouterr().out)
    edits = item["fix"]["edits"]
    assert {"content": "from torchvision.models import ResNet50_Weights\n", "location": {"row": 2, "column": 1}, "end_location": {"row": 2, "column": 1}} in edits
    applied = apply_edits(NEEDS_IMPORT, [Finding_edit(e) for e in edits])
    cli.main(["check", "--isolated", "--no-cache", "--fix", str(path)])
    capsys.readouterr()
    assert applied == path.read_text(encoding="utf-8")


def Finding_edit(e: dict):
    from torchlint.finding import TextEdit

    return TextEdit(e["location"]["row"], e["location"]["column"], e["end_location"]["row"], e["end_location"]["column"], e["content"], e.get("cell"))


def test_json_edits_in_a_notebook_put_the_import_in_the_first_code_cell(tmp_path: Path, capsys):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# a"]},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ["import torchvision\n"]},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ["model = torchvision.models.resnet50(pretrained=True)\n"]},
    ]
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    cli.main(["check", "--isolated", "--no-cache", "--output-format", "json", str(tmp_path / "nb.ipynb")])
    (item,) = json.loads(capsys.readouterr().out)
    assert item["cell"] == 3
    by_cell = {e["cell"]: e["content"] for e in item["fix"]["edits"]}
    assert by_cell[3].startswith("torchvision.models.resnet50(weights=ResNet50_Weights.")
    assert by_cell[2] == "from torchvision.models import ResNet50_Weights\n"


@pytest.mark.parametrize("first_cell", ["import torchvision\n", "import torchvision"])
def test_the_language_server_quick_fix_in_a_cell_edits_the_import_cell_too(first_cell):
    pytest.importorskip("pygls")
    from torchlint import engine, lsp, notebook

    cells = {1: "# title", 2: first_cell, 3: "model = torchvision.models.resnet50(pretrained=True)\n"}
    (f,) = engine.check_cells(notebook.from_cells([(2, cells[2]), (3, cells[3])]), "<nb>", {"TL706"})
    after = lsp.fixed_cells(cells, f)
    assert after[2] == "import torchvision\nfrom torchvision.models import ResNet50_Weights" + ("\n" if first_cell.endswith("\n") else "")
    assert after[3].startswith("model = torchvision.models.resnet50(weights=ResNet50_Weights.")
    joined = after[2] + ("" if after[2].endswith("\n") else "\n") + after[3]
    compile(joined, "<nb>", "exec")
