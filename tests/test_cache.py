"""The results cache and ``--jobs`` as a user meets them: a second run gives the same output
without checking unchanged files again; a change to a file, to the settings or to a base class in
another file is seen; ``--no-cache``, ``--cache-dir``, ``torchlint clean``; the same findings in
any number of processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from torchlint import cli, engine

BAD = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def forward(self, x):
        return F.dropout(x)
"""
BASE = "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n"
CHILD = """\
import torch.nn.functional as F

from pkg.base import Base


class Child(Base):
    def forward(self, x):
        return F.dropout(x)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "bad.py").write_text(BAD)
    (tmp_path / "pkg" / "base.py").write_text(BASE)
    (tmp_path / "pkg" / "child.py").write_text(CHILD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TORCHLINT_CACHE_DIR", raising=False)
    return tmp_path


@pytest.fixture
def checked(monkeypatch) -> list[str]:
    """The paths ``torchlint check`` really checks (not served from the cache), in process."""
    paths: list[str] = []
    real = engine.check_bytes

    def spy(path, *args, **kwargs):
        paths.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(engine, "check_bytes", spy)
    return paths


def run(capsys, *args: str) -> tuple[int, str]:
    status = cli.main(["check", "--jobs", "1", "--output-format", "concise", *args])
    return status, capsys.readouterr().out


def test_second_run_reuses_the_results(project, checked, capsys):
    first = run(capsys, ".")
    assert sorted(checked) == ["__init__.py", "bad.py", "base.py", "child.py"]
    checked.clear()
    second = run(capsys, ".")
    assert checked == []
    assert second == first
    assert first[0] == 1 and "bad.py:7:16: TL201" in first[1] and "child.py:8:16: TL201" in first[1]


def test_a_changed_file_is_checked_again(project, checked, capsys):
    run(capsys, ".")
    checked.clear()
    (project / "pkg" / "bad.py").write_text(BAD.replace("F.dropout(x)", "F.dropout(x, training=self.training)"))
    status, out = run(capsys, ".")
    assert "bad.py" in checked and "bad.py" not in out


def test_other_settings_are_not_served_from_the_cache(project, checked, capsys):
    run(capsys, ".")
    checked.clear()
    status, out = run(capsys, "--ignore", "TL201", ".")
    assert status == 0 and "TL201" not in out
    assert "bad.py" in checked


def test_a_change_to_a_base_class_in_another_file_is_seen(project, checked, capsys):
    assert "child.py:8:16: TL201" in run(capsys, ".")[1]
    (project / "pkg" / "base.py").write_text("class Base:\n    pass\n")  # no longer a module
    status, out = run(capsys, ".")
    assert "child.py" not in out


def test_an_edit_the_index_does_not_see_keeps_the_other_files_results(project, checked, capsys):
    first = run(capsys, ".")
    checked.clear()
    (project / "pkg" / "base.py").write_text(BASE + "\n\ndef helper(x):\n    return x + 1\n")
    assert run(capsys, ".") == first
    assert checked == ["base.py"]


def test_no_cache_writes_nothing(project, capsys):
    run(capsys, "--no-cache", ".")
    assert not (project / ".torchlint_cache").exists()


def test_cache_dir_is_marked_and_ignored_by_git(project, capsys, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "cache"
    run(capsys, "--cache-dir", str(elsewhere), ".")
    assert (elsewhere / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (elsewhere / ".gitignore").read_text() == "*\n"
    assert not (project / ".torchlint_cache").exists()


def test_a_damaged_cache_is_ignored(project, capsys):
    first = run(capsys, ".")
    for f in (project / ".torchlint_cache").glob("*.json"):
        f.write_text("{not json")
    assert run(capsys, ".") == first
    json.loads(next((project / ".torchlint_cache").glob("results-*.json")).read_text())


def test_clean_removes_the_cache(project, capsys):
    run(capsys, ".")
    assert (project / ".torchlint_cache").is_dir()
    assert cli.main(["clean"]) == 0
    assert not (project / ".torchlint_cache").exists()
    assert "Removing cache at: .torchlint_cache" in capsys.readouterr().err


def test_two_runs_at_once_both_succeed(project):
    command = [sys.executable, "-m", "torchlint", "check", "--jobs", "1", "."]
    runs = [subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=120)[0] for r in runs]
    assert [r.returncode for r in runs] == [1, 1]
    assert outputs[0] == outputs[1]
    json.loads(next((project / ".torchlint_cache").glob("results-*.json")).read_text())


def test_jobs_give_the_same_findings():
    targets = [str(ROOT / "examples"), str(ROOT / "tests" / "fixtures")]
    results = [
        subprocess.run(
            [sys.executable, "-m", "torchlint", "check", "--no-cache", "--select", "ALL", "--jobs", jobs, *targets],
            capture_output=True, text=True, timeout=300,
        )
        for jobs in ("1", "3")
    ]
    assert results[0].returncode == results[1].returncode == 1
    assert results[0].stdout == results[1].stdout
    assert results[0].stdout.count("\n") > 50


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_bad_jobs_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "--jobs", value, "."])
    assert e.value.code == 2
    assert "expected a number of processes" in capsys.readouterr().err
