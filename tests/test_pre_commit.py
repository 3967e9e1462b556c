"""The pre-commit hooks as a user meets them: ``pre-commit try-repo`` on this repository, run in a
temporary git repository. try-repo only carries over uncommitted changes to tracked files, so the
hooks are tried from a temporary repository holding a commit of this working tree."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pre_commit") is None or shutil.which("git") is None,
    reason="pre-commit (the `test` extra) or git is not installed",
)

BUGGY = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def forward(self, x):
        return F.dropout(x, p=0.5)
"""
HOOK_REPO_FILES = ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml", "rules", "torchlint")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=git_env(), check=True, capture_output=True)


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t"}
    return env | identity | {"GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_EMAIL": "t@example.com"}


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with one commit of this working tree's package and hooks file."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in HOOK_REPO_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, repo / name)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hooks under test")
    return repo


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's repository with a buggy Python file and a README staged."""
    (tmp_path / "buggy.py").write_text(BUGGY, encoding="utf-8")
    (tmp_path / "README.md").write_text("# a project\n", encoding="utf-8")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    return tmp_path


def try_repo(hook_repo: Path, project: Path, *files: str) -> subprocess.CompletedProcess:
    """Both hooks (torchlint, then torchlint-fix) on ``files``; each call installs the hooks'
    environment afresh in try-repo's own temporary store."""
    env = git_env() | {"PRE_COMMIT_HOME": str(project / ".pre-commit-home"), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "--files", *files],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )


def test_hooks_fail_on_a_buggy_file_and_fix_it(hook_repo: Path, project: Path):
    done = try_repo(hook_repo, project, "buggy.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    check, fix = out.split("- hook id: torchlint-fix")
    assert "- hook id: torchlint\n" in check and "Failed" in check
    # the hooks print ruff's default, the full format
    assert "TL201 [*] F.dropout() without training=" in check and "--> buggy.py:7:16\n" in check
    assert "files were modified by this hook" in fix and "1 fixed, 0 remaining" in fix
    assert "F.dropout(x, p=0.5, training=self.training)" in (project / "buggy.py").read_text(encoding="utf-8")


def test_hooks_pass_with_no_python_file(hook_repo: Path, project: Path):
    done = try_repo(hook_repo, project, "README.md")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("(no files to check)Skipped") == 2
    assert "F.dropout(x, p=0.5)\n" in (project / "buggy.py").read_text(encoding="utf-8")


def test_hooks_check_a_notebook(hook_repo: Path, project: Path):
    import json

    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": BUGGY.splitlines(True)}
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# nb"]}, cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (project / "nb.ipynb").write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")
    git(project, "add", "nb.ipynb")
    done = try_repo(hook_repo, project, "nb.ipynb")
    assert done.returncode == 1, done.stdout + done.stderr
    line = BUGGY.splitlines().index("        return F.dropout(x, p=0.5)") + 1
    assert "TL201 [*] F.dropout() without training=" in done.stdout and f"--> nb.ipynb:cell 2:{line}:16\n" in done.stdout
    assert "training=self.training" in "".join(json.loads((project / "nb.ipynb").read_text(encoding="utf-8"))["cells"][1]["source"])
