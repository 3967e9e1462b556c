"""Which files a run checks: Python sources and stubs, not tool, build or environment directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchlint.engine import Selection, discover

CHECKED = ["a.py", "stubs/b.pyi", "pkg/sub/c.py", "build_utils/d.py", "environment/e.py"]
SKIPPED = [
    ".git/hooks/x.py",
    ".venv/lib/x.py",
    "myenv/lib/x.py",  # a venv under any name: it has pyvenv.cfg
    "venv/x.py",
    "build/lib/x.py",
    "dist/x.py",
    "pkg/__pycache__/x.py",
    ".hidden/x.py",
    "node_modules/pkg/x.py",
    "demo.egg-info/x.py",
    ".tox/py311/x.py",
    "notes.txt",
    "script",
    "a.pyc",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in CHECKED + SKIPPED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("import torch\n", encoding="utf-8")
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("home = /usr\n", encoding="utf-8")
    return tmp_path


def found(root: Path, paths=(".",), **selection) -> list[str]:
    found = discover([str(root / p) for p in paths], Selection(root=root, **selection))
    return [p.resolve().relative_to(root).as_posix() for p in found]


def test_default_skips(tree):
    assert sorted(found(tree)) == sorted(CHECKED)


def test_order_is_sorted_per_directory(tree):
    assert found(tree) == ["a.py", "build_utils/d.py", "environment/e.py", "pkg/sub/c.py", "stubs/b.pyi"]


def test_configured_exclude(tree):
    assert sorted(found(tree, exclude=("pkg", "stubs/*.pyi"))) == ["a.py", "build_utils/d.py", "environment/e.py"]


@pytest.mark.parametrize("name", ["build/lib/x.py", ".venv/lib/x.py", "pkg/__pycache__/x.py", "notes.txt"])
def test_a_file_named_explicitly_is_checked(tree, name):
    assert found(tree, [name]) == [name]


def test_a_file_named_explicitly_is_checked_even_if_excluded(tree):
    assert found(tree, ["pkg/sub/c.py"], exclude=("pkg",)) == ["pkg/sub/c.py"]


def test_a_skipped_directory_named_explicitly_is_walked(tree):
    assert found(tree, ["build"]) == ["build/lib/x.py"]


def test_each_file_once(tree):
    assert found(tree, ["a.py", ".", "a.py"]).count("a.py") == 1


def test_missing_path_raises_before_anything(tree):
    with pytest.raises(FileNotFoundError):
        discover([str(tree), str(tree / "missing.py")], Selection(root=tree))


def test_cli_checks_pyi(cli, tmp_path):
    (tmp_path / "m.pyi").write_text("def f(:\n", encoding="utf-8")
    result = cli("check", "--output-format", "concise", cwd=tmp_path)
    assert result.stdout.startswith("m.pyi:1:")
