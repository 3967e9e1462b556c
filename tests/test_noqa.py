"""``# noqa`` on the reported line, as flake8 and ruff read it; ``# torchlint: noqa`` for a file."""

from __future__ import annotations

import pytest

from torchlint.engine import check_source

HEAD = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def forward(self, x):
"""


def lines_reported(body: str) -> list[int]:
    return [f.line - HEAD.count("\n") for f in check_source(HEAD + body) if f.code == "TL201"]


@pytest.mark.parametrize(
    "comment",
    [
        "# noqa",
        "#noqa",
        "# NOQA",
        "# noqa: TL201",
        "# noqa:TL201",
        "# noqa:TL201,TL302",
        "# noqa: TL302, TL201",
        "# noqa: TL302 TL201",
        "# noqa: TL2",
        "# noqa: TL",
        "# noqa: tl201",
        "# NoQA: Tl201",
        "# type: ignore  # noqa: TL201",
        "# noqa - F.dropout on purpose",
    ],
)
def test_silences(comment):
    assert lines_reported(f"        return F.dropout(x)  {comment}\n") == []


@pytest.mark.parametrize(
    "comment",
    [
        "# noqa: TL302",
        "# noqa: E501",
        "# noqa: TL3",
        "# noqa: TL2011",
        "# no qa",
        "# this is not noqa",
    ],
)
def test_does_not_silence(comment):
    assert lines_reported(f"        return F.dropout(x)  {comment}\n") == [1]


def test_only_its_own_line():
    body = "        # noqa\n        y = F.dropout(x)  \n        z = F.dropout(x)  # noqa\n        return F.dropout(y)\n"
    assert lines_reported(body) == [2, 4]


def test_noqa_on_the_first_line_of_a_multiline_call():
    assert lines_reported("        return F.dropout(  # noqa: TL201\n            x,\n        )\n") == []
    assert lines_reported("        return F.dropout(\n            x,\n        )  # noqa: TL201\n") == [1]


def test_noqa_inside_a_string_does_not_silence():
    assert lines_reported('        s = "# noqa"; return F.dropout(x)\n') == [1]
    assert lines_reported('        s = f"{x} # noqa"; return F.dropout(x)\n') == [1]


@pytest.mark.parametrize("directive", ["# torchlint: noqa", "#torchlint:noqa", "# TORCHLINT: NOQA", "# torchlint: noqa: TL2"])
def test_file_level(directive):
    assert check_source(directive + "\n" + HEAD + "        return F.dropout(x)\n") == []
    assert check_source(HEAD + "        y = F.dropout(x)\n" + directive + "\n        return y\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "# torchlint: noqa: TL3\n",
        'doc = """\n# torchlint: noqa\n"""\n',
        "x = 1  # torchlint: noqa\n",
        "# ruff: noqa\n",
    ],
)
def test_not_file_level(text):
    assert lines_reported_file(text) == 1


def lines_reported_file(prefix: str) -> int:
    return len([f for f in check_source(prefix + HEAD + "        return F.dropout(x)\n") if f.code == "TL201"])


def test_apply_noqa_false_keeps_everything():
    source = HEAD + "        return F.dropout(x)  # noqa\n"
    assert len(check_source(source, apply_noqa=False)) == 1


def test_cli_honours_noqa(cli, tmp_path):
    (tmp_path / "m.py").write_text(HEAD + "        y = F.dropout(x)  # noqa: TL201\n        return F.dropout(y)\n")
    result = cli("check", "--output-format", "concise", "m.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("m.py:8:16: TL201 ")
    assert "Found 1 finding." in result.stdout


def test_noqa_at_the_end_of_a_multiline_string_or_continuation_covers_its_lines():
    source = HEAD + '        y = F.dropout(x, p=float("""0.5\n"""))  # noqa: TL201\n        return F.dropout(y) + \\\n            0  # noqa\n'
    assert check_source(source) == []
    loud = source.replace('"""))  # noqa: TL201', '"""))').replace("0  # noqa", "0\n        # noqa")
    assert [f.line for f in check_source(loud)] == [7, 9]
