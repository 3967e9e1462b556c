"""``torchlint check --add-noqa``, as ruff's: a ``# noqa: CODE`` on each line with a finding, merged
with the line's own ``# noqa``, written with --fix's guarantees; a second run changes nothing and
``torchlint check`` then passes."""

from __future__ import annotations

import json
from pathlib import Path

from torchlint import cli

HEAD = "import torch.nn as nn\nimport torch.nn.functional as F\n\n\nclass Net(nn.Module):\n    def forward(self, x):\n"


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(["check", "--isolated", "--no-cache", "--output-format", "concise", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_adds_merges_and_keeps_comments(tmp_path: Path, capsys):
    path = tmp_path / "m.py"
    path.write_text(
        HEAD
        + "        x = F.dropout(x)  # noqa: E501\n"
        + "        x = F.dropout(x)  # keep this\n"
        + "        y = F.dropout(x)   \n"
        + "        return F.dropout(y)  # type: ignore  # noqa:E731\n",
        encoding="utf-8",
    )
    status, _, err = run(capsys, "--add-noqa", str(path))
    assert status == 0 and err.endswith("Added 4 noqa directives.\n")
    assert path.read_text(encoding="utf-8").splitlines()[6:] == [
        "        x = F.dropout(x)  # noqa: E501, TL201",
        "        x = F.dropout(x)  # keep this  # noqa: TL201",
        "        y = F.dropout(x)  # noqa: TL201",
        "        return F.dropout(y)  # type: ignore  # noqa: E731, TL201",
    ]
    once = path.read_bytes()
    status, _, err = run(capsys, "--add-noqa", str(path))
    assert (status, err, path.read_bytes()) == (0, "Added 0 noqa directives.\n", once)
    assert run(capsys, str(path))[0] == 0


def test_keeps_encoding_bom_and_line_endings(tmp_path: Path, capsys):
    latin = tmp_path / "latin.py"
    latin.write_bytes(("# -*- coding: latin-1 -*-\n" + HEAD + "        return F.dropout(x)  # café\n").replace("\n", "\r\n").encode("latin-1"))
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEAD + "        return F.dropout(x)\n").encode())
    assert run(capsys, "--add-noqa", str(latin), str(bom))[2].endswith("Added 2 noqa directives.\n")
    assert latin.read_bytes().endswith("        return F.dropout(x)  # café  # noqa: TL201\r\n".encode("latin-1"))
    assert latin.read_bytes().count(b"\r\n") == latin.read_bytes().count(b"\n")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf") and bom.read_bytes().endswith(b"F.dropout(x)  # noqa: TL201\n")
    assert run(capsys, str(latin), str(bom))[0] == 0


def test_a_line_ending_inside_a_string_or_a_continuation_gets_it_where_that_ends(tmp_path: Path, capsys):
    path = tmp_path / "m.py"
    source = HEAD + '        y = F.dropout(x, p=float("""0.5\n"""))\n        return F.dropout(y) + \\\n            0\n'
    path.write_text(source, encoding="utf-8")
    status, _, err = run(capsys, "--add-noqa", str(path))
    assert status == 0 and err == "Added 2 noqa directives.\n"
    assert path.read_text(encoding="utf-8").splitlines()[-4:] == [
        '        y = F.dropout(x, p=float("""0.5',
        '"""))  # noqa: TL201',
        "        return F.dropout(y) + \\",
        "            0  # noqa: TL201",
    ]
    assert run(capsys, str(path))[0] == 0


def test_a_notebook(tmp_path: Path, capsys):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ["%matplotlib inline\n", *HEAD.splitlines(True), "        return F.dropout(x)"]},
    ]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n", encoding="utf-8")
    assert run(capsys, "--add-noqa", str(path))[2].endswith("Added 1 noqa directive.\n")
    source = json.loads(path.read_text(encoding="utf-8"))["cells"][1]["source"]
    assert source[0] == "%matplotlib inline\n" and source[-1] == "        return F.dropout(x)  # noqa: TL201"
    assert run(capsys, str(path))[0] == 0


def test_not_with_fix(tmp_path: Path, capsys):
    (tmp_path / "m.py").write_text("x = 1\n", encoding="utf-8")
    status, _, err = run(capsys, "--add-noqa", "--fix", str(tmp_path / "m.py"))
    assert status == 2 and "--add-noqa cannot be used with --fix" in err


def test_show_fixes_lists_the_fixes_per_file_and_rule(tmp_path: Path, capsys):
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(HEAD + "        x = F.dropout(x)\n        return F.dropout(x)\n", encoding="utf-8")
    status, out, _ = run(capsys, "--fix", "--show-fixes", str(tmp_path))
    assert status == 0
    assert out == (
        "Fixed 4 findings:\n"
        f"- {tmp_path / 'a.py'}:\n    2 × TL201 (dropout-ignores-eval)\n"
        f"- {tmp_path / 'b.py'}:\n    2 × TL201 (dropout-ignores-eval)\n"
        "\nFound 4 findings (4 fixed, 0 remaining).\n"
    )


def test_no_show_fixes_wins_over_the_configuration(tmp_path: Path, capsys, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.torchlint]\nshow-fixes = true\n", encoding="utf-8")
    (tmp_path / "a.py").write_text(HEAD + "        return F.dropout(x)\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    cli.main(["check", "--no-cache", "--output-format", "concise", "--fix", "--no-show-fixes", "a.py"])
    assert "Fixed" not in capsys.readouterr().out
    (tmp_path / "a.py").write_text(HEAD + "        return F.dropout(x)\n", encoding="utf-8")
    cli.main(["check", "--no-cache", "--output-format", "concise", "--fix", "a.py"])
    assert capsys.readouterr().out.startswith("Fixed 1 finding:\n- a.py:\n    1 × TL201")
