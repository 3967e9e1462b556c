"""--fix and --diff run as ``check`` does: the results cache, the screen and the worker processes.

What a user sees does not depend on them: the same fixes, output and exit status with and
without the cache and in one process or two. What they save: a warm ``--fix`` parses only the
files with a fix to apply, a file no screen passes is never parsed by LibCST, and a fixed file's
cache entry is for its new content. ``--diff`` writes nothing, the cache included.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import libcst
import pytest

from torchlint import cli, engine

HEAD = "import torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
SAFE = HEAD + "class Net(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n"
# TL201's safe fix and TL204's unsafe one in one file
MIXED = HEAD + (
    "class Block(nn.Module):\n    def forward(self, x):\n"
    "        y = F.dropout(x, 0.5, training=True)\n        return F.dropout(y, 0.1)\n"
)
CLEAN = HEAD + "class Fine(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5, training=self.training)\n"
CHILD = "import torch.nn.functional as F\n\nfrom pkg.base import Base\n\n\nclass Child(Base):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n"
SCREENED_OUT = "import torch\n\nSCREENED_OUT_MARKER = torch.zeros(3)\n"
NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "source": HEAD.splitlines(True), "metadata": {}, "outputs": [], "execution_count": None},
        {"cell_type": "code", "source": SAFE[len(HEAD):].splitlines(True), "metadata": {}, "outputs": [], "execution_count": None},
    ],
    "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
}


def make_project(root: Path) -> Path:
    """A small project: fixable files (one latin-1 with CRLF line ends, one with a BOM, one whose
    class is a module through another file), a clean one, one no screen passes, one that does not
    parse, a notebook."""
    pkg = root / "pkg"
    pkg.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "safe.py").write_text(SAFE)
    (pkg / "mixed.py").write_text(MIXED)
    (pkg / "crlf.py").write_bytes(b"# -*- coding: latin-1 -*-\r\n# caf\xe9\r\n" + SAFE.replace("\n", "\r\n").encode("latin-1"))
    (pkg / "bom.py").write_bytes(b"\xef\xbb\xbf" + SAFE.encode())
    (pkg / "clean.py").write_text(CLEAN)
    (pkg / "base.py").write_text("import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n")
    (pkg / "child.py").write_text(CHILD)  # a module through the project index only
    (pkg / "plain.py").write_text(SCREENED_OUT)
    (pkg / "broken.py").write_text("def f(:\n")
    (root / "nb.ipynb").write_text(json.dumps(NOTEBOOK, indent=1))
    return root


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".torchlint_cache" not in p.parts}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("TORCHLINT_CACHE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path / "p")


@pytest.fixture
def pool_for_any_size(monkeypatch):
    """A pool after the first file whatever is left, so that ``--jobs 2`` really runs workers here."""
    monkeypatch.setattr(engine, "_POOL_AFTER_SECONDS", 0)
    monkeypatch.setattr(engine, "_MEASURE_SECONDS", 0)


def run(capsys, root: Path, *args: str) -> tuple[int, str, str]:
    status = cli.main(["check", "--output-format", "concise", "--extend-select", "TL204", *args, str(root)])
    out, err = capsys.readouterr()
    return status, out.replace(str(root), "ROOT"), err.replace(str(root), "ROOT")


def cache_files(root: Path) -> dict[str, bytes]:
    directory = root / ".torchlint_cache"
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*"))} if directory.is_dir() else {}


@pytest.mark.parametrize("flags", [["--fix"], ["--fix", "--unsafe-fixes"], ["--fix", "--show-fixes"], ["--diff"]])
def test_same_fixes_and_output_with_or_without_cache_in_one_or_two_processes(tmp_path, monkeypatch, capsys, pool_for_any_size, flags):
    monkeypatch.delenv("TORCHLINT_CACHE_DIR", raising=False)
    variants = {
        "no cache, 1 job": ["--no-cache", "--jobs", "1"],
        "no cache, 2 jobs": ["--no-cache", "--jobs", "2"],
        "cold cache, 2 jobs": ["--jobs", "2"],
        "warm cache, 1 job": ["--jobs", "1"],  # the same run has filled the cache, then the files were restored
        "checked first, 2 jobs": ["--jobs", "2"],  # a plain check has filled the cache
    }
    outcomes = []
    for n, (name, options) in enumerate(variants.items()):
        root = make_project(tmp_path / str(n))
        if name.startswith("warm"):
            run(capsys, root, *flags, *options)
            restore(root)
        elif name.startswith("checked first"):
            run(capsys, root, *options)
        status, out, err = run(capsys, root, *flags, *options)
        outcomes.append((name, status, out, err, files(root)))
    for outcome in outcomes[1:]:
        assert outcome[1:] == outcomes[0][1:], outcome[0]
    status, out, err, after = outcomes[0][1:]
    assert "SCREENED_OUT" not in out
    if flags == ["--diff"]:
        assert status == 1 and "training=self.training" in out and after == files(make_project(tmp_path / "original"))
        return
    assert "TL000" in out
    assert after["pkg/crlf.py"].startswith(b"# -*- coding: latin-1 -*-\r\n# caf\xe9\r\n")
    assert after["pkg/crlf.py"].endswith(b"F.dropout(x, 0.5, training=self.training)\r\n")
    assert after["pkg/bom.py"].startswith(b"\xef\xbb\xbf")
    assert b"training=self.training" in after["nb.ipynb"] and b"training=self.training" in after["pkg/child.py"]
    assert ("training=True" in after["pkg/mixed.py"].decode()) == ("--unsafe-fixes" not in flags)


def restore(root: Path) -> None:
    """Put the project's original files back, keeping its cache."""
    for p in root.iterdir():
        if p.name != ".torchlint_cache":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    make_project(root)


def test_a_second_fix_changes_nothing_and_reads_no_file_through_libcst(project, capsys, monkeypatch):
    first = run(capsys, project, "--fix", "--jobs", "1")
    assert first[0] == 1 and "(6 fixed, 2 remaining)" in first[1]
    fixed = files(project)
    parsed = spy_parse(monkeypatch)
    second = run(capsys, project, "--fix", "--jobs", "1")
    assert parsed == []
    assert files(project) == fixed
    assert second[0] == 1 and "Found 2 findings.\n" in second[1]


def test_a_warm_fix_checks_only_the_files_with_a_fix_to_apply(project, capsys, monkeypatch):
    run(capsys, project, "--fix", "--jobs", "1")
    (project / "pkg" / "safe.py").write_text(SAFE)  # the fix undone: a fixable finding again
    checked = spy_checks(monkeypatch)
    parsed = spy_parse(monkeypatch)
    status, out, _ = run(capsys, project, "--fix", "--jobs", "1")
    assert set(checked) == {"safe.py"}
    assert parsed and all("class Net" in text for text in parsed)
    assert "Found 3 findings (1 fixed, 2 remaining)." in out
    assert "training=self.training" in (project / "pkg" / "safe.py").read_text()


def test_a_cached_fixable_script_is_not_checked_again_before_its_fix(project, capsys, monkeypatch):
    run(capsys, project, "--jobs", "1")  # a plain check: the cache holds the fixable findings
    checked = spy_checks(monkeypatch)
    status, out, _ = run(capsys, project, "--fix", "--jobs", "1")
    # each script: one check, of its fixed text; a notebook is checked before its fix too
    assert Counter(checked) == {"safe.py": 1, "mixed.py": 1, "crlf.py": 1, "bom.py": 1, "child.py": 1, "nb.ipynb": 2}
    assert "(6 fixed, 2 remaining)" in out


def test_a_file_no_screen_passes_is_not_parsed(project, capsys, monkeypatch):
    parsed = spy_parse(monkeypatch)
    run(capsys, project, "--fix", "--jobs", "1", "--no-cache")
    assert parsed and not any("SCREENED_OUT_MARKER" in text for text in parsed)


def test_after_a_fix_the_cache_holds_the_new_contents_findings(project, capsys, monkeypatch):
    run(capsys, project, "--fix", "--jobs", "1")
    checked = spy_checks(monkeypatch)
    cached = run(capsys, project, "--jobs", "1")
    assert checked == []
    assert cached == run(capsys, project, "--jobs", "1", "--no-cache")


def test_diff_leaves_files_and_cache_untouched(project, capsys):
    before = files(project)
    status, out, err = run(capsys, project, "--diff")
    assert status == 1 and "+        return F.dropout(x, 0.5, training=self.training)" in out
    assert files(project) == before and cache_files(project) == {}
    run(capsys, project)  # a check fills the cache
    cache = cache_files(project)
    mtimes = {p: p.stat().st_mtime_ns for p in (project / ".torchlint_cache").iterdir()}
    assert run(capsys, project, "--diff") == (status, out, err)
    assert files(project) == before and cache_files(project) == cache
    assert {p: p.stat().st_mtime_ns for p in (project / ".torchlint_cache").iterdir()} == mtimes


def spy_parse(monkeypatch) -> list[str]:
    """The texts LibCST parses from now on, in process."""
    texts: list[str] = []
    real = libcst.parse_module

    def spy(source, *args, **kwargs):
        texts.append(source if isinstance(source, str) else source.decode("utf-8", "replace"))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(libcst, "parse_module", spy)
    return texts


def spy_checks(monkeypatch) -> list[str]:
    """The names of the files checked from now on (not served from the cache), in process."""
    names: list[str] = []
    real = engine.check_source

    def spy(text, path="<stdin>", *args, **kwargs):
        names.append(Path(path).name)
        return real(text, path, *args, **kwargs)

    monkeypatch.setattr(engine, "check_source", spy)
    from torchlint import fixes

    monkeypatch.setattr(fixes, "check_source", spy)
    return names
