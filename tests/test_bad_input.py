"""Files that are broken, odd or new: TL000 with the reason and the line, or the right findings;
never a traceback, and the other files of the run are still checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from test_cli import BAD
from torchlint.engine import Selection, check_file, check_source

DROPOUT_AT_LINE_5 = (
    "import torch.nn.functional as F{nl}import torch.nn as nn{nl}class M(nn.Module):{nl}"
    "    def forward(self, x):{nl}        y = '{text}'; return F.dropout(x){nl}"
)


def check_bytes(tmp_path: Path, data: bytes, name: str = "m.py"):
    path = tmp_path / name
    path.write_bytes(data)
    return [(f.line, f.column, f.code, f.message) for f in check_file(path, Selection())]


@pytest.mark.parametrize(
    "source, line, reason",
    [
        ("import torch\ndef f(:\n    pass\n", 2, "invalid syntax"),
        ("import torch\nx = (\n", 2, "never closed"),
        ("import torch\n  x = 1\n", 2, "unexpected indent"),
        ("import torch\nif x:\n    y = 1\n  z = 2\n", 4, "unindent"),
        ("import torch\n\n\nx = 'abc\n", 4, "unterminated string"),
        ("import torch\nx = 1 +\n", 2, "invalid syntax"),
        ("import torch\nx = $\n", 2, "invalid syntax"),
        ("import torch\ndef f():\nreturn 1\n", 3, "indented block"),
    ],
)
def test_syntax_error(source, line, reason):
    [finding] = check_source(source, "m.py")
    assert (finding.code, finding.line) == ("TL000", line)
    assert finding.message.startswith("cannot parse: ")
    assert reason in finding.message


def test_syntax_error_column():
    [finding] = check_source("import torch\nx = 1 + $\n")
    assert (finding.line, finding.column) == (2, 9)


def test_syntax_error_even_without_torch():
    [finding] = check_source("def f(:\n")
    assert finding.code == "TL000"


def test_syntax_error_only_when_selected():
    assert check_source("import torch.nn.functional as F\nF.dropout(\n", codes=["TL201"]) == []


def test_invalid_utf8(tmp_path):
    assert check_bytes(tmp_path, b"import torch\n\nx = '\xff'\n") == [
        (3, 1, "TL000", "cannot decode as utf-8: invalid byte 0xff")
    ]


def test_null_byte(tmp_path):
    [(line, _, code, message)] = check_bytes(tmp_path, b"import torch\nx = 1\x00\n")
    assert (line, code) == (2, "TL000")
    assert "null byte" in message


def test_binary_file(tmp_path):
    [(_, _, code, _)] = check_bytes(tmp_path, bytes(range(256)) * 4)
    assert code == "TL000"


def test_unknown_coding_cookie(tmp_path):
    [(line, _, code, message)] = check_bytes(tmp_path, b"# -*- coding: klingon -*-\nimport torch\n")
    assert (line, code) == (1, "TL000")
    assert "klingon" in message


def test_bom_and_crlf(tmp_path):
    data = b"\xef\xbb\xbf" + DROPOUT_AT_LINE_5.format(nl="\r\n", text="\u00e9\u00e9").encode("utf-8")
    [finding] = check_bytes(tmp_path, data)
    assert finding[:3] == (5, 26, "TL201")


def test_latin1_cookie(tmp_path):
    source = "# -*- coding: latin-1 -*-\n" + DROPOUT_AT_LINE_5.format(nl="\n", text="\u00e9\u00e9")
    [finding] = check_bytes(tmp_path, source.encode("latin-1"))
    assert finding[:3] == (6, 26, "TL201")


def test_wide_characters_count_as_one_column():
    [finding] = check_source(DROPOUT_AT_LINE_5.format(nl="\n", text="\U0001f600\u4e2d"))
    assert (finding.line, finding.column) == (5, 26)


@pytest.mark.parametrize("data", [b"", b"\n", b"\xef\xbb\xbf", b"# torch dropout\n# only comments\n", b"   \n\t\n"])
def test_empty_and_comment_only(tmp_path, data):
    assert check_bytes(tmp_path, data) == []


@pytest.mark.parametrize(
    "source",
    [
        "import torch\nclass A[T]:\n    pass\n",
        "import torch\ndef first[T](xs: list[T]) -> T:\n    return xs[0]\n",
        "import torch\ntype Vector = list[float]\n",
        'import torch\nname = "x"\nprint(f"{"nested"}: {name!r:>{10}}")\n',
        "import torch\nprint(f\"{'\\n'.join(['a', 'b'])}\")\n",
    ],
)
def test_python_312_syntax_is_not_an_error(source):
    assert check_source(source) == []


def test_python_312_syntax_with_a_finding():
    source = "import torch.nn as nn\nimport torch.nn.functional as F\nclass M[T](nn.Module):\n" \
             "    def forward(self, x):\n        return F.dropout(x, p=f\"{\"0.5\"}\")\n"
    assert [(f.line, f.code) for f in check_source(source)] == [(5, "TL201")]


def test_deep_nesting_does_not_crash():
    source = "import torch.nn.functional as F\nx = " + "(" * 500 + "F.dropout(x)" + ")" * 500 + "\n"
    assert {f.code for f in check_source(source)} <= {"TL000"}
    chain = "import torch.nn as nn\nimport torch.nn.functional as F\nclass M(nn.Module):\n" \
            "    def forward(self, x):\n        return x" + " + F.dropout(x)" * 2000 + "\n"
    assert {f.code for f in check_source(chain)} <= {"TL000", "TL201"}


def test_other_files_still_checked(cli, tmp_path):
    (tmp_path / "a_broken.py").write_text("import torch\ndef f(:\n", encoding="utf-8")
    (tmp_path / "b_binary.py").write_bytes(b"\x00\x01\x02torch")
    (tmp_path / "c_latin.py").write_bytes(b"x = '\xe9'\n")
    (tmp_path / "d_good.py").write_text(BAD, encoding="utf-8")
    result = cli("check", "--output-format", "json", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    found = [(Path(f["filename"]).name, f["location"]["row"], f["code"]) for f in json.loads(result.stdout)]
    assert found == [
        ("a_broken.py", 2, "TL000"),
        ("b_binary.py", 1, "TL000"),
        ("c_latin.py", 1, "TL000"),
        ("d_good.py", 7, "TL201"),
        ("d_good.py", 8, "TL201"),
    ]


def test_parse_error_can_be_ignored(cli, tmp_path):
    (tmp_path / "broken.py").write_text("def f(:\n", encoding="utf-8")
    assert cli("check", "--ignore", "TL000", ".", cwd=tmp_path).returncode == 0


def test_unreadable_file(cli, tmp_path):
    secret = tmp_path / "secret.py"
    secret.write_text(BAD, encoding="utf-8")
    (tmp_path / "good.py").write_text(BAD, encoding="utf-8")
    secret.chmod(0)
    try:
        if os.access(secret, os.R_OK):
            pytest.skip("running as root: the file is still readable")
        result = cli("check", ".", cwd=tmp_path)
    finally:
        secret.chmod(0o644)
    assert result.returncode == 1
    assert "secret.py:1:1: TL000 cannot read: Permission denied" in result.stdout
    assert "good.py:7:13: TL201" in result.stdout


def test_unreadable_file_reported(tmp_path, monkeypatch):
    path = tmp_path / "m.py"
    path.write_text(BAD, encoding="utf-8")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert [(f.line, f.code, f.message) for f in check_file(path, Selection())] == [
        (1, "TL000", "cannot read: Permission denied")
    ]
