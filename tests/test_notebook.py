"""Jupyter notebooks: checked, fixed and verified as scripts are, located by cell.

The notebooks are built here (nbformat 4 JSON, written as Jupyter writes them unless a test says
otherwise); expected cells, lines and columns are computed from the cells' sources, not typed in.
"""

from __future__ import annotations

import difflib
import json
import textwrap
from pathlib import Path

import pytest

from torchlint import fixes, notebook
from torchlint.engine import Selection, check_source

IMPORTS = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F"
BLOCK = textwrap.dedent(
    """\
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)"""
)
# Net is a module only through Block, two cells up; F comes from the first cell.
NET = textwrap.dedent(
    """\
    class Net(Block):
        def forward(self, x):
            h = self.fc(x)
            return F.dropout(h, p=0.5)"""
)
CALL = "F.dropout(h, p=0.5)"


def code(source: str, **extra) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source.splitlines(True), **extra}


def markdown(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source.splitlines(True)}


def notebook_json(*cells: dict, language: str = "python") -> dict:
    return {
        "cells": list(cells),
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": language, "name": "python3"}, "language_info": {"name": language}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write(path: Path, nb: dict, indent: int = 1) -> Path:
    path.write_text(json.dumps(nb, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def where(source: str, needle: str) -> tuple[int, int]:
    """The 1-based line and column of ``needle`` in a cell's source."""
    for number, line in enumerate(source.splitlines(), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


def standard(tmp_path: Path, name: str = "nb.ipynb", indent: int = 1) -> Path:
    """Markdown, imports, Block, markdown, Net: the finding is in cell 5, line 4."""
    return write(tmp_path / name, notebook_json(markdown("# Model"), code(IMPORTS), code(BLOCK), markdown("Now the net:"), code(NET)), indent)


# --- checking --------------------------------------------------------------------------------


def test_a_class_in_one_cell_misused_in_another(tmp_path, cli):
    standard(tmp_path)
    line, column = where(NET, CALL)
    result = cli("check", "--output-format", "concise", "--isolated", "nb.ipynb", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith(f"nb.ipynb:cell 5:{line}:{column}: TL201 ")
    # the cells alone say nothing: the finding needs Block and F from the other cells
    assert check_source(NET) == []


def test_magics_are_masked_and_lines_still_count(tmp_path, cli):
    magics = textwrap.dedent(
        """\
        %matplotlib inline
        !pip install torch \\
            torchvision
        files = !ls
        ?torch.nn
        torch.nn.Module?
        pip install einops
        y = (3
             % 2)
        for i in range(2):
            %time torch.zeros(1)
        %timeit -n1 torch.zeros(1)"""
    )
    bash = "%%bash\necho $((1 +\nfor x in ; do"
    timed = "%%time\n" + NET
    write(tmp_path / "nb.ipynb", notebook_json(code(IMPORTS + "\n" + magics), code(BLOCK), code(bash), code(timed)))
    result = cli("check", "--isolated", "--output-format", "json", "nb.ipynb", cwd=tmp_path)
    items = json.loads(result.stdout)
    assert [(i["code"], i["cell"], i["location"]["row"]) for i in items] == [("TL201", 4, where(timed, CALL)[0])]


@pytest.mark.parametrize(
    "line",
    ["%load_ext autoreload", "!nvidia-smi", "x = %env HOME", "a, b = !echo 1 2", "obj??", "??obj", "/print 1 2", "pip install einops"],
)
def test_each_ipython_line_is_masked_to_python(line):
    masked, originals = notebook.mask(f"import torch\n{line}\nz = 1\n")
    compile(masked, "<cell>", "exec")
    assert masked.count("\n") == 3 and list(originals.values()) == [line]
    assert notebook.unmask(masked, originals) == f"import torch\n{line}\nz = 1\n"


@pytest.mark.parametrize("source", ["ls -la", "x = a % b", "if a != b:\n    pass", "s = '''\n!not a command\n'''", "total = (1 +\n         -2)"])
def test_python_is_left_alone(source):
    assert notebook.mask(source) == (source, {})


def test_invalid_json_is_tl000_and_other_files_still_run(tmp_path, cli):
    broken = '  {"cell_type": "code",,}'
    (tmp_path / "broken.ipynb").write_text('{"cells": [\n' + broken + '\n]}\n', encoding="utf-8")
    (tmp_path / "list.ipynb").write_text("[1, 2]\n", encoding="utf-8")
    standard(tmp_path, "good.ipynb")
    result = cli("check", "--output-format", "concise", "--isolated", ".", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    column = broken.index(",,") + 2  # the second comma
    assert lines[0].startswith(f"broken.ipynb:2:{column}: TL000 cannot parse notebook: Expecting property name")
    assert any(line.startswith("good.ipynb:cell 5:") and " TL201 " in line for line in lines)
    assert any(line.startswith('list.ipynb:1:1: TL000 not a Jupyter notebook: no "cells" list') for line in lines)


def test_a_syntax_error_is_tl000_in_its_cell(tmp_path, cli):
    broken = "x = 1\ndef f(:\n    pass"
    write(tmp_path / "nb.ipynb", notebook_json(markdown("# a"), code(IMPORTS), code(broken), code(NET)))
    result = cli("check", "--output-format", "concise", "--isolated", "nb.ipynb", cwd=tmp_path)
    line, column = where(broken, "(:")
    assert result.stdout.startswith(f"nb.ipynb:cell 3:{line}:{column + 1}: TL000 cannot parse: ")


def test_a_repeated_cells_key_counts_as_json_reads_it(tmp_path, cli):
    text = json.dumps(notebook_json(code(IMPORTS), code(BLOCK), code(NET)), indent=1)
    text = text.replace('{\n "cells": [', '{\n "cells": [{"cell_type": "code", "source": ["x"]}],\n "cells": [', 1)
    (tmp_path / "nb.ipynb").write_text(text, encoding="utf-8")
    assert cli("check", "--output-format", "concise", "--isolated", "--fix", "nb.ipynb", cwd=tmp_path).returncode == 0
    fixed = (tmp_path / "nb.ipynb").read_text(encoding="utf-8")
    assert fixed.startswith('{\n "cells": [{"cell_type": "code", "source": ["x"]}],')
    assert "training=self.training" in "".join(json.loads(fixed)["cells"][2]["source"])


def test_empty_and_markdown_only_notebooks_are_clean(tmp_path, cli):
    write(tmp_path / "empty.ipynb", notebook_json())
    write(tmp_path / "blank.ipynb", notebook_json(code(""), code("\n\n")))
    write(tmp_path / "prose.ipynb", notebook_json(markdown("```python\n" + IMPORTS + "\n" + BLOCK + "\n" + NET + "\n```")))
    result = cli("check", "--output-format", "concise", "--isolated", ".", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "All checks passed!\n")


def test_a_notebook_in_another_language_is_not_python(tmp_path, cli):
    write(tmp_path / "r.ipynb", notebook_json(code(IMPORTS), code(BLOCK), code(NET), language="R"))
    assert cli("check", "--output-format", "concise", "--isolated", "r.ipynb", cwd=tmp_path).returncode == 0


def test_noqa_in_a_cell(tmp_path, cli):
    silenced = NET.replace(CALL, CALL + "  # noqa: TL201")
    other = "class Other(Block):\n    def forward(self, x):\n        return F.dropout(x, p=0.1)"
    write(tmp_path / "nb.ipynb", notebook_json(code(IMPORTS), code(BLOCK), code(silenced), code(other)))
    result = cli("check", "--output-format", "concise", "--isolated", "nb.ipynb", cwd=tmp_path)
    line, column = where(other, "F.dropout")
    assert [line.split(": ")[0] for line in result.stdout.splitlines()[:-2]] == [f"nb.ipynb:cell 4:{line}:{column}"]


def test_per_file_ignores_match_a_notebook_path(tmp_path, cli):
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint.per-file-ignores]\n"notebooks/*.ipynb" = ["TL201"]\n', encoding="utf-8")
    (tmp_path / "notebooks").mkdir()
    standard(tmp_path / "notebooks")
    (tmp_path / "notebooks" / "model.py").write_text(IMPORTS + "\n" + BLOCK + "\n" + NET + "\n", encoding="utf-8")
    result = cli("check", "--output-format", "concise", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()[:-2]] == ["notebooks/model.py"]


def test_extension_option_and_exclude(tmp_path, cli):
    standard(tmp_path)
    assert cli("check", "--output-format", "concise", "--isolated", ".", cwd=tmp_path).returncode == 1
    # read as Python, a notebook's JSON is one dict display: nothing to report
    assert cli("check", "--output-format", "concise", "--isolated", "--extension", "ipynb:python", ".", cwd=tmp_path).returncode == 0
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nextend-exclude = ["*.ipynb"]\n', encoding="utf-8")
    assert cli("check", "--output-format", "concise", ".", cwd=tmp_path).stdout == "All checks passed!\n"
    (tmp_path / "pyproject.toml").write_text('[tool.torchlint]\nextension = { nb = "ipynb" }\n', encoding="utf-8")
    (tmp_path / "nb.ipynb").rename(tmp_path / "model.nb")
    assert cli("check", "--output-format", "concise", ".", cwd=tmp_path).stdout.startswith("model.nb:cell 5:")
    bad = cli("check", "--output-format", "concise", "--extension", "nb:ruby", ".", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown language 'ruby'" in bad.stderr


# --- output formats --------------------------------------------------------------------------


def json_line_of(path: Path, source_line: str) -> tuple[int, int]:
    """The line of the notebook's file holding a cell's source line, and the column of its text."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if json.dumps(source_line)[:-1] in line:
            return number, line.index('"') + 2
    raise AssertionError(source_line)


def test_json_sarif_and_github_carry_the_cell(tmp_path, cli):
    path = standard(tmp_path)
    (tmp_path / "model.py").write_text(IMPORTS + "\n" + BLOCK + "\n" + NET + "\n", encoding="utf-8")
    line, column = where(NET, CALL)

    items = json.loads(cli("check", "--isolated", "--output-format", "json", ".", cwd=tmp_path).stdout)
    by_file = {Path(i["filename"]).name: i for i in items}
    assert by_file["model.py"]["cell"] is None
    item = by_file["nb.ipynb"]
    assert (item["cell"], item["location"], item["noqa_row"]) == (5, {"row": line, "column": column}, line)
    assert item["end_location"] == {"row": line, "column": column + len(CALL)}
    assert item["fix"]["edits"][0]["location"]["row"] == line and item["fix"]["edits"][0]["cell"] == 5

    file_line, text_column = json_line_of(path, NET.splitlines()[line - 1])
    log = json.loads(cli("check", "--isolated", "--output-format", "sarif", "nb.ipynb", cwd=tmp_path).stdout)
    (result,) = log["runs"][0]["results"]
    assert result["message"]["text"].startswith(f"cell 5, line {line}: F.dropout()")
    region = result["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (file_line, text_column + column - 1)
    assert region["endColumn"] - region["startColumn"] == len(CALL)
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("nb.ipynb")

    (annotation,) = cli("check", "--isolated", "--output-format", "github", "nb.ipynb", cwd=tmp_path).stdout.splitlines()
    assert f"file=nb.ipynb,line={file_line},col={text_column + column - 1}," in annotation
    assert f"::TL201 cell 5, line {line}: F.dropout()" in annotation


# --- fixing ----------------------------------------------------------------------------------


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    matcher = difflib.SequenceMatcher(a=before.splitlines(True), b=after.splitlines(True), autojunk=False)
    out = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            out.append(("".join(matcher.a[i1:i2]), "".join(matcher.b[j1:j2])))
    return out


@pytest.mark.parametrize("indent", [1, 2, 4])
def test_fix_changes_only_the_fixed_line_and_a_second_run_nothing(tmp_path, cli, indent):
    outputs = [{"name": "stdout", "output_type": "stream", "text": ["loss 0.5 — done\n"]}]
    net = code(NET, execution_count=7, outputs=outputs, metadata={"tags": ["model"], "collapsed": False})
    nb = notebook_json(markdown("# Modèle"), code(IMPORTS), code(BLOCK), markdown("Now the net:"), net)
    nb["metadata"]["custom"] = {"z": 1, "a": [1.5e-05, True, None]}
    path = write(tmp_path / "nb.ipynb", nb, indent)
    before = path.read_text(encoding="utf-8")

    result = cli("check", "--output-format", "concise", "--isolated", "--fix", "nb.ipynb", cwd=tmp_path)
    assert result.returncode == 0 and "1 fixed, 0 remaining" in result.stdout
    after = path.read_text(encoding="utf-8")
    ((old, new),) = _changed_lines(before, after)
    assert json.dumps("        return " + CALL)[:-1] in old
    assert new == old.replace(CALL, "F.dropout(h, p=0.5, training=self.training)")
    expected = json.loads(before)
    expected["cells"][4]["source"][-1] = expected["cells"][4]["source"][-1].replace(CALL, "F.dropout(h, p=0.5, training=self.training)")
    assert json.loads(after) == expected

    again = cli("check", "--output-format", "concise", "--isolated", "--fix", "nb.ipynb", cwd=tmp_path)
    assert (again.returncode, again.stdout) == (0, "All checks passed!\n")
    assert path.read_text(encoding="utf-8") == after


def test_fix_keeps_a_string_source_and_a_file_without_final_newline(tmp_path, cli):
    nb = notebook_json(markdown("# Modèle"), code(IMPORTS), code(BLOCK), {**code(""), "source": "%%time\n" + NET})
    nb["metadata"]["lr"] = 1.5e-05
    path = tmp_path / "nb.ipynb"
    # as another writer may write it: no final newline, non-ASCII escaped, numbers as JavaScript
    # prints them; json.dumps would spell the number 1.5e-05
    text = json.dumps(nb, indent=1).replace("1.5e-05", "0.000015")
    path.write_text(text, encoding="utf-8")
    before = path.read_text(encoding="utf-8")
    assert cli("check", "--output-format", "concise", "--isolated", "--fix", "nb.ipynb", cwd=tmp_path).returncode == 0
    after = path.read_text(encoding="utf-8")
    ((old, new),) = _changed_lines(before, after)
    assert '"source": "%%time\\nclass Net' in old and "training=self.training" in new
    assert not after.endswith("\n") and json.loads(after)["cells"][3]["source"].startswith("%%time\n")
    assert '"lr": 0.000015' in after and "Mod\\u00e8le" in after


def test_diff_shows_the_change_per_cell_and_writes_nothing(tmp_path, cli):
    path = standard(tmp_path)
    before = path.read_bytes()
    result = cli("check", "--output-format", "concise", "--isolated", "--diff", "nb.ipynb", cwd=tmp_path)
    assert result.returncode == 1
    line = where(NET, CALL)[0]
    assert result.stdout.splitlines()[:3] == ["--- a/nb.ipynb:cell 5", "+++ b/nb.ipynb:cell 5", f"@@ -1,{line} +1,{line} @@"]
    assert f"-        return {CALL}" in result.stdout
    assert "+        return F.dropout(h, p=0.5, training=self.training)" in result.stdout
    assert path.read_bytes() == before


def test_an_import_a_fix_needs_goes_to_the_first_code_cell(tmp_path, cli):
    head = "%matplotlib inline\nimport torch.nn.functional as F"
    more = "from torch.nn import Module\nfrom torch import randn"
    head_net = textwrap.dedent(
        """\
        class Head(Module):
            def __init__(self):
                super().__init__()
                self.w = randn(3, 3, requires_grad=True)

            def forward(self, x):
                return x @ self.w"""
    )
    path = write(tmp_path / "nb.ipynb", notebook_json(markdown("# Head"), code(head), code(more), code(head_net)))
    result = cli("check", "--output-format", "concise", "--isolated", "--fix", "--unsafe-fixes", "nb.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    cells = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    assert cells[1] == head + "\nfrom torch import nn"
    assert cells[2] == more
    assert "self.w = nn.Parameter(randn(3, 3, requires_grad=True))" in cells[3]


def test_fix_keeps_magics_and_cell_boundaries(tmp_path):
    net = "!echo start\n" + NET + "\n%time Net()"
    path = write(tmp_path / "nb.ipynb", notebook_json(code("%load_ext autoreload\n" + IMPORTS), code(BLOCK), code(net)))
    result = fixes.fix_notebook(path, Selection(), None, unsafe=False, write=True)
    assert result.fixed == 1 and result.remaining == []
    cells = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    assert cells[0] == "%load_ext autoreload\n" + IMPORTS and cells[1] == BLOCK
    assert cells[2] == net.replace(CALL, "F.dropout(h, p=0.5, training=self.training)")


# --- verify ----------------------------------------------------------------------------------


def test_verify_runs_a_notebooks_definitions(tmp_path, cli):
    pytest.importorskip("torch")
    training = "model = Net()\nfor step in range(10 ** 9):\n    pass"  # not a definition: never runs
    write(tmp_path / "nb.ipynb", notebook_json(code(IMPORTS), code(BLOCK), markdown("net"), code(NET), code(training)))
    result = cli("check", "--output-format", "concise", "--isolated", "--verify", "--verify-device", "cpu", "nb.ipynb", cwd=tmp_path)
    line, column = where(NET, CALL)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"nb.ipynb:cell 4:{line}:{column}: TL201")
    assert lines[1].startswith("  confirmed: F.dropout ran with training=True")
    assert lines[1].endswith(f"at cell 4, line {line} (input: a (2, 8) tensor)")


@pytest.mark.parametrize("ascii_only", [False, True])
@pytest.mark.parametrize("split", ["lines", "string", "anywhere"])
def test_file_positions_point_at_the_code_in_the_json(split, ascii_only):
    source = "s = 'é'\n" + NET
    cut = source.index(CALL)
    layout = {"lines": source.splitlines(True), "string": source, "anywhere": [source[:9], source[9:cut], source[cut:]]}[split]
    nb = notebook_json(markdown("# é"), {**code(""), "source": layout})
    text = json.dumps(nb, indent=1, ensure_ascii=ascii_only)
    line, column = where(source, CALL)
    file_line, file_column = notebook.load(text).json_position(2, line, column)
    assert text.splitlines()[file_line - 1][file_column - 1:].startswith(CALL)
