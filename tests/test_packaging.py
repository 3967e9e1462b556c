"""What an installed (non-editable) torchlint contains: every subpackage, and the rule pages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from conftest import ROOT, RULE_PAGES


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "torchlint").rglob("__init__.py")
    }
    assert on_disk | {"torchlint.rule_docs"} == listed, "list every torchlint package in pyproject.toml"


def test_built_package_ships_the_rule_pages(tmp_path):
    """setuptools' build_py (what a wheel holds) on a copy of the tree, then ``torchlint rule`` from it."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "torchlint", source / "torchlint", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "rules", source / "rules")
    shutil.copy(ROOT / "pyproject.toml", source)
    build = ["-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib", str(tmp_path / "lib")]
    subprocess.run([sys.executable, *build], cwd=source, check=True, capture_output=True, timeout=120)
    shipped = sorted(p.name for p in (tmp_path / "lib" / "torchlint" / "rule_docs").glob("*.md"))
    assert shipped == [p.name for p in RULE_PAGES]
    tables = sorted(p.name for p in (tmp_path / "lib" / "torchlint" / "data").glob("*.toml"))
    assert tables == sorted(p.name for p in (ROOT / "torchlint" / "data").glob("*.toml"))
    assert "deprecated.toml" in tables

    env = {**os.environ, "PYTHONPATH": str(tmp_path / "lib")}
    show = (
        "import torchlint, torchlint.cli as c, torchlint.deprecations as d; print(torchlint.__file__); "
        "assert 'torch.solve' in d.table(); c.main(['rule', 'TL201'])"
    )
    result = subprocess.run([sys.executable, "-c", show], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    where, page = result.stdout.split("\n", 1)
    assert where.startswith(str(tmp_path / "lib"))
    assert page == (ROOT / "rules" / "TL201-dropout-ignores-eval.md").read_text(encoding="utf-8")
