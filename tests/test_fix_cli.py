"""--fix, --unsafe-fixes and --diff: the pipeline of fixes.py and what the user sees.

The pipeline is tested with a stand-in for the rules (``fake_rules``): ``check_source`` replaced
by one that reports every occurrence of a needle with a fix replacing it, so that these tests do
not depend on which rules have fixes. One end-to-end test runs TL201's real fix.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from torchlint import cli, engine, fixes
from torchlint.engine import Finding, Selection, TextEdit, TextFix
from torchlint.report import json_format, text

Needle = tuple[str, str, str, tuple]  # needle, replacement, applicability, imports


def fake_check(needles: list[Needle]):
    """A ``check_source`` reporting TL900 at each needle, with a fix replacing it."""

    def check_source(source: str, path: str = "<stdin>", *args, **kwargs) -> list[Finding]:
        found = []
        for lineno, line in enumerate(re.split(r"\r\n?|\n", source), 1):
            for needle, replacement, applicability, imports in needles:
                for m in re.finditer(re.escape(needle), line):
                    start, end = m.start() + 1, m.end() + 1
                    fix = TextFix(f"use {replacement}", applicability, (TextEdit(lineno, start, lineno, end, replacement),), imports)
                    found.append(Finding(path, lineno, start, "TL900", f"found {needle}", lineno, end, "fake", fix))
        return sorted(found)

    return check_source


@pytest.fixture
def fake_rules(monkeypatch):
    def install(*needles: Needle):
        check = fake_check(list(needles))
        monkeypatch.setattr(fixes, "check_source", check)
        monkeypatch.setattr(engine, "check_source", check)

    return install


SAFE = ("old_call()", "new_call()", "safe", ())


def fix(path: Path, unsafe: bool = False, write: bool = True) -> fixes.FixResult:
    return fixes.fix_file(path, Selection(), unsafe=unsafe, write=write)


# --- fixes.fix_file --------------------------------------------------------------------------


def test_all_fixes_of_a_file_in_one_pass(tmp_path, fake_rules):
    fake_rules(SAFE)
    path = tmp_path / "m.py"
    path.write_text("a = old_call()\nb = [old_call(), old_call()]\n")
    result = fix(path)
    assert path.read_text() == "a = new_call()\nb = [new_call(), new_call()]\n"
    assert (result.fixed, result.remaining, result.problem) == (3, [], None)


def test_overlapping_fixes_one_now_the_other_next_pass(tmp_path, fake_rules):
    fake_rules(("old(1)", "new(1)", "safe", ()), ("(1)", "(2)", "safe", ()))
    path = tmp_path / "m.py"
    path.write_text("x = old(1)\n")
    first = fake_check([("old(1)", "new(1)", "safe", ()), ("(1)", "(2)", "safe", ())])("x = old(1)\n")
    chosen, deferred = fixes.choose(first, unsafe=False)
    assert [f.message for f in chosen] == ["found old(1)"]
    assert [f.message for f in deferred] == ["found (1)"]
    result = fix(path)
    assert path.read_text() == "x = new(2)\n"
    assert result.fixed == 2


def test_unsafe_fixes_only_with_unsafe(tmp_path, fake_rules):
    fake_rules(SAFE, ("risky()", "changed()", "unsafe", ()))
    path = tmp_path / "m.py"
    path.write_text("old_call()\nrisky()\n")
    result = fix(path)
    assert path.read_text() == "new_call()\nrisky()\n"
    assert result.fixed == 1 and [f.message for f in result.remaining] == ["found risky()"]
    result = fix(path, unsafe=True)
    assert path.read_text() == "new_call()\nchanged()\n"
    assert result.fixed == 1 and result.remaining == []


def test_fix_adds_the_import_it_needs(tmp_path, fake_rules):
    fake_rules(("old_pi", "math.pi", "safe", (("math", None),)), ("old_sqrt", "sqrt(2)", "safe", (("math", "sqrt"),)))
    path = tmp_path / "m.py"
    path.write_text('"""Doc."""\nimport os\n\nx = old_pi + old_sqrt + old_pi\n')
    fix(path)
    assert path.read_text() == '"""Doc."""\nimport os\nimport math\nfrom math import sqrt\n\nx = math.pi + sqrt(2) + math.pi\n'


def test_bom_and_crlf_kept_byte_for_byte(tmp_path, fake_rules):
    fake_rules(("old_pi", "math.pi", "safe", (("math", None),)))
    path = tmp_path / "m.py"
    path.write_bytes(b"\xef\xbb\xbfimport os\r\n\r\ny = 'caf\xc3\xa9'  \r\nx = old_pi\r\n\r\n")
    fix(path)
    assert path.read_bytes() == b"\xef\xbb\xbfimport os\r\nimport math\r\n\r\ny = 'caf\xc3\xa9'  \r\nx = math.pi\r\n\r\n"


def test_latin1_file_stays_latin1(tmp_path, fake_rules):
    fake_rules(SAFE)
    path = tmp_path / "m.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\ns = '\xe9'\nold_call()\n")
    fix(path)
    assert path.read_bytes() == b"# -*- coding: latin-1 -*-\ns = '\xe9'\nnew_call()\n"


def test_fix_that_cannot_be_encoded_leaves_the_file(tmp_path, fake_rules):
    fake_rules(("old_call()", "'caf\u2615'", "safe", ()))
    path = tmp_path / "m.py"
    data = b"# -*- coding: latin-1 -*-\nold_call()\n"
    path.write_bytes(data)
    result = fix(path)
    assert path.read_bytes() == data
    assert "cannot be encoded as iso-8859-1" in result.problem and result.fixed == 0


def test_fix_that_does_not_parse_leaves_the_file(tmp_path, fake_rules):
    fake_rules(SAFE, ("broken", "(", "safe", ()))
    path = tmp_path / "m.py"
    data = b"old_call()\nbroken = 1\n"
    path.write_bytes(data)
    result = fix(path)
    assert path.read_bytes() == data
    assert result.fixed == 0 and not result.changed
    assert len(result.remaining) == 2
    assert result.problem.startswith("the fixed code does not parse (line ")
    assert "fixes of TL900" in result.problem


def test_atomic_write_keeps_permissions_and_leaves_no_temporary(tmp_path, fake_rules):
    fake_rules(SAFE)
    path = tmp_path / "m.py"
    path.write_text("old_call()\n")
    path.chmod(0o751)
    fix(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


def test_symlink_stays_a_symlink(tmp_path, fake_rules):
    fake_rules(SAFE)
    target = tmp_path / "real.py"
    target.write_text("old_call()\n")
    link = tmp_path / "link.py"
    link.symlink_to(target)
    fix(link)
    assert link.is_symlink() and target.read_text() == "new_call()\n"


def test_second_run_changes_nothing(tmp_path, fake_rules):
    fake_rules(SAFE, ("old_pi", "math.pi", "safe", (("math", None),)))
    path = tmp_path / "m.py"
    path.write_text("x = old_call() + old_pi\n")
    fix(path)
    once = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    result = fix(path)
    assert (result.fixed, result.changed, path.read_bytes(), path.stat().st_mtime_ns) == (0, False, once, mtime)


def test_fixes_that_never_settle_stop(tmp_path, fake_rules):
    fake_rules(("a", "aa", "safe", ()))
    path = tmp_path / "m.py"
    path.write_text("a\n")
    result = fix(path)
    assert path.read_text() == "a" * 2**fixes.MAX_PASSES + "\n"
    assert "run --fix again" in result.problem


def test_no_write_for_diff(tmp_path, fake_rules):
    fake_rules(SAFE)
    path = tmp_path / "m.py"
    path.write_text("old_call()\nx = 1")
    result = fix(path, write=False)
    assert path.read_text() == "old_call()\nx = 1"
    name = path.as_posix()
    assert result.diff() == (
        f"--- a/{name}\n+++ b/{name}\n@@ -1,2 +1,2 @@\n-old_call()\n+new_call()\n x = 1\n\\ No newline at end of file\n"
    )


def test_unreadable_file_reports_parse_error(tmp_path, fake_rules):
    fake_rules(SAFE)
    path = tmp_path / "m.py"
    path.write_bytes(b"old_call()\n\xff\n")
    result = fix(path)
    assert [f.code for f in result.remaining] == ["TL000"] and not result.changed


# --- the command line, in process ------------------------------------------------------------


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(["check", "--isolated", "--no-project", "--output-format", "concise", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_fix_reports_what_remains(tmp_path, fake_rules, capsys):
    fake_rules(SAFE, ("risky()", "changed()", "unsafe", ()))
    path = tmp_path / "m.py"
    path.write_text("old_call()\nrisky()\n")
    status, out, err = run(capsys, "--fix", str(path))
    assert status == 1 and err == ""
    assert out.splitlines() == [
        f"{path}:2:1: TL900 found risky()",
        "Found 2 findings (1 fixed, 1 remaining).",
        "No fixes available (1 hidden fix can be enabled with the `--unsafe-fixes` option).",
    ]


def test_fix_exits_0_when_everything_is_fixed(tmp_path, fake_rules, capsys):
    fake_rules(SAFE)
    path = tmp_path / "m.py"
    path.write_text("old_call()\nold_call()\n")
    status, out, _ = run(capsys, "--fix", str(path))
    assert (status, out) == (0, "Found 2 findings (2 fixed, 0 remaining).\n")
    assert run(capsys, "--fix", str(path))[:2] == (0, "All checks passed!\n")


def test_unsafe_fixes_with_fix_applies_them(tmp_path, fake_rules, capsys):
    fake_rules(("risky()", "changed()", "unsafe", ()))
    path = tmp_path / "m.py"
    path.write_text("risky()\n")
    assert run(capsys, "--fix", "--unsafe-fixes", str(path))[0] == 0
    assert path.read_text() == "changed()\n"


def test_markers_and_hints_without_fix(tmp_path, fake_rules, capsys):
    fake_rules(SAFE, ("risky()", "changed()", "unsafe", ()))
    path = tmp_path / "m.py"
    path.write_text("old_call()\nrisky()\n")
    status, out, _ = run(capsys, str(path))
    assert status == 1
    assert out.splitlines() == [
        f"{path}:1:1: TL900 [*] found old_call()",
        f"{path}:2:1: TL900 found risky()",
        "Found 2 findings.",
        "[*] 1 fixable with the `--fix` option (1 hidden fix can be enabled with the `--unsafe-fixes` option).",
    ]
    out = run(capsys, "--unsafe-fixes", str(path))[1]
    assert out.splitlines()[1:] == [
        f"{path}:2:1: TL900 [*] found risky()",
        "Found 2 findings.",
        "[*] 2 fixable with the `--fix` option.",
    ]
    assert path.read_text() == "old_call()\nrisky()\n"


def test_diff_writes_nothing_and_exits_1(tmp_path, fake_rules, capsys):
    fake_rules(SAFE)
    path = tmp_path / "m.py"
    path.write_text("old_call()\n")
    status, out, err = run(capsys, "--diff", str(path))
    assert status == 1
    assert out.startswith(f"--- a/{path.as_posix()}\n+++ b/{path.as_posix()}\n")
    assert "-old_call()\n+new_call()\n" in out
    assert err == "Would fix 1 finding.\n"
    assert path.read_text() == "old_call()\n"
    assert run(capsys, "--diff", "--fix", "--exit-zero", str(path))[0] == 1
    assert path.read_text() == "old_call()\n"


def test_diff_exits_0_without_a_diff(tmp_path, fake_rules, capsys):
    fake_rules(("risky()", "changed()", "unsafe", ()))
    path = tmp_path / "m.py"
    path.write_text("risky()\n")
    status, out, err = run(capsys, "--diff", str(path))
    assert (status, out) == (0, "")
    assert err == "No findings would be fixed (1 hidden fix can be enabled with the `--unsafe-fixes` option).\n"


def test_refused_fix_says_so_on_one_line(tmp_path, fake_rules, capsys):
    fake_rules(("broken", "(", "safe", ()))
    path = tmp_path / "m.py"
    path.write_text("broken = 1\n")
    status, out, err = run(capsys, "--fix", str(path))
    assert status == 1 and path.read_text() == "broken = 1\n"
    assert len(err.splitlines()) == 1
    assert err.startswith(f"torchlint: not fixing {path}: the fixed code does not parse (")
    assert out.endswith("Found 1 finding.\n[*] 1 fixable with the `--fix` option.\n")


def test_json_carries_the_fix(tmp_path, fake_rules, capsys):
    fake_rules(SAFE, ("risky()", "changed()", "unsafe", ()))
    path = tmp_path / "m.py"
    path.write_text("x = old_call()\nrisky()\n")
    items = json.loads(run(capsys, "--output-format", "json", str(path))[1])
    assert [i["fix"] for i in items] == [
        {
            "applicability": "safe",
            "message": "use new_call()",
            "edits": [{"content": "new_call()", "location": {"row": 1, "column": 5}, "end_location": {"row": 1, "column": 15}}],
        },
        {
            "applicability": "unsafe",
            "message": "use changed()",
            "edits": [{"content": "changed()", "location": {"row": 2, "column": 1}, "end_location": {"row": 2, "column": 8}}],
        },
    ]


def test_statistics_mark_fixable_rules():
    fixed = TextFix("m", "safe", ())
    findings = [Finding("a.py", 1, 1, "TL201", "m", name="one", fix=fixed), Finding("a.py", 2, 1, "TL301", "m", name="two")]
    assert text.render_statistics(findings) == "1\tTL201\t[*] one\n1\tTL301\t[ ] two\n"
    assert text.render_statistics(findings[1:]) == "1\tTL301\ttwo\n"
    unsafe = [Finding("a.py", 1, 1, "TL201", "m", name="one", fix=TextFix("m", "unsafe", ()))]
    assert text.render_statistics(unsafe) == "1\tTL201\tone\n"
    assert text.render_statistics(unsafe, unsafe=True) == "1\tTL201\t[*] one\n"
    assert json_format.fix_dict(None) is None


# --- end to end: TL201's fix -----------------------------------------------------------------

TL201_BAD = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.5)
"""


def test_tl201_fix_end_to_end(cli, tmp_path):
    if not any(f.fix for f in engine.check_source(TL201_BAD, codes={"TL201"})):
        pytest.skip("TL201 has no fix yet")
    path = tmp_path / "model.py"
    path.write_text(TL201_BAD)
    diff = cli("check", "--isolated", "--diff", "model.py", cwd=tmp_path)
    assert diff.returncode == 1 and "+        return F.dropout(x, 0.5, training=self.training)\n" in diff.stdout
    assert path.read_text() == TL201_BAD
    fixed = cli("check", "--isolated", "--fix", "model.py", cwd=tmp_path)
    assert (fixed.returncode, fixed.stderr) == (0, "")
    assert fixed.stdout == "Found 1 finding (1 fixed, 0 remaining).\n"
    assert path.read_text() == TL201_BAD.replace("F.dropout(x, 0.5)", "F.dropout(x, 0.5, training=self.training)")
    again = cli("check", "--isolated", "--fix", "model.py", cwd=tmp_path)
    assert (again.returncode, again.stdout) == (0, "All checks passed!\n")
    assert os.path.exists(path)
