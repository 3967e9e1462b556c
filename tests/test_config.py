"""``[tool.torchlint]`` in pyproject.toml: discovery, keys, and the command line on top."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_cli import BAD, one_line_error


def findings(cli, *args: str, cwd: Path) -> list[tuple[str, int, str]]:
    result = cli("check", "--output-format", "json", *args, cwd=cwd)
    assert result.returncode in (0, 1), result.stderr
    return [(Path(f["filename"]).relative_to(cwd).as_posix(), f["location"]["row"], f["code"]) for f in json.loads(result.stdout)]


def files(cli, *args: str, cwd: Path) -> set[str]:
    return {path for path, _, _ in findings(cli, *args, cwd=cwd)}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("src/model.py", "src/gen/auto.py", "tests/test_model.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(BAD, encoding="utf-8")
    return tmp_path


def configure(root: Path, table: str, header: str = "[tool.torchlint]\n") -> None:
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n\n" + header + table, encoding="utf-8")


ALL_FILES = {"src/model.py", "src/gen/auto.py", "tests/test_model.py"}


def test_no_config(cli, project):
    assert files(cli, cwd=project) == ALL_FILES


def test_ignore(cli, project):
    configure(project, 'ignore = ["TL2"]\n')
    assert findings(cli, cwd=project) == []


def test_select(cli, project):
    configure(project, 'select = ["TL000"]\n')
    assert findings(cli, cwd=project) == []
    configure(project, 'select = ["TL000"]\nextend-select = ["TL201"]\n')
    assert files(cli, cwd=project) == ALL_FILES


def test_exclude_is_relative_to_the_config(cli, project):
    configure(project, 'exclude = ["src/gen", "tests/*.py"]\n')
    assert files(cli, cwd=project) == {"src/model.py"}
    assert files(cli, "src", cwd=project) == {"src/model.py"}


def test_exclude_from_a_subdirectory(cli, project):
    configure(project, 'exclude = ["src/gen"]\n')
    result = cli("check", "--output-format", "json", ".", cwd=project / "src")
    names = {Path(f["filename"]).name for f in json.loads(result.stdout)}
    assert names == {"model.py"}


def test_explicit_file_is_checked_even_if_excluded(cli, project):
    configure(project, 'exclude = ["src/gen"]\n')
    assert files(cli, "src/gen/auto.py", cwd=project) == {"src/gen/auto.py"}


def test_per_file_ignores(cli, project):
    configure(project, '[tool.torchlint.per-file-ignores]\n"tests/*" = ["TL201"]\n"**/gen/*.py" = ["TL2"]\n')
    assert files(cli, cwd=project) == {"src/model.py"}


def test_per_file_ignores_from_a_subdirectory(cli, project):
    configure(project, '[tool.torchlint.per-file-ignores]\n"src/model.py" = ["TL201"]\n')
    result = cli("check", "--output-format", "json", ".", cwd=project / "src")
    names = {Path(f["filename"]).name for f in json.loads(result.stdout)}
    assert names == {"auto.py"}


def test_nearest_pyproject_wins_and_one_without_table_is_skipped(cli, project):
    configure(project, 'ignore = ["TL201"]\n')
    (project / "src" / "pyproject.toml").write_text("[project]\nname = 'inner'\n", encoding="utf-8")
    assert findings(cli, "src", cwd=project) == []
    (project / "src" / "pyproject.toml").write_text("[tool.torchlint]\nselect = ['TL']\n", encoding="utf-8")
    assert files(cli, "src", cwd=project) == {"src/model.py", "src/gen/auto.py"}


def test_config_found_from_the_checked_path_not_the_cwd(cli, project, tmp_path_factory):
    configure(project, 'ignore = ["TL201"]\n')
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    result = cli("check", str(project / "src" / "model.py"), cwd=elsewhere)
    assert result.returncode == 0, result.stdout


def test_command_line_overrides_config(cli, project):
    configure(project, 'select = ["TL000"]\n')
    assert files(cli, "--select", "TL201", cwd=project) == ALL_FILES
    configure(project, 'ignore = ["TL201"]\n')
    assert files(cli, "--extend-select", "TL201", cwd=project) == set()  # ignore still applies, as ruff
    assert files(cli, "--isolated", cwd=project) == ALL_FILES


def test_config_flag(cli, project, tmp_path_factory):
    other = tmp_path_factory.mktemp("cfg")
    configure(other, 'ignore = ["TL2"]\n')
    assert findings(cli, "--config", str(other / "pyproject.toml"), cwd=project) == []


def test_isolated_ignores_a_broken_config(cli, project):
    configure(project, "selct = 1\n")
    assert files(cli, "--isolated", cwd=project) == ALL_FILES


@pytest.mark.parametrize(
    "table, fragment",
    [
        ('selct = ["TL201"]\n', "selct"),
        ('select = ["TL999"]\n', "TL999"),
        ('ignore = ["XX1"]\n', "XX1"),
        ('extend-select = ["TL9"]\n', "TL9"),
        ('select = "TL201"\n', "select"),
        ('exclude = "build"\n', "exclude"),
        ('per-file-ignores = {"a.py" = ["TL999"]}\n', "TL999"),
        ('per-file-ignores = ["a.py"]\n', "per-file-ignores"),
        ("select = [\n", "pyproject.toml"),
    ],
)
def test_bad_config_exits_2(cli, project, table, fragment):
    configure(project, table)
    line = one_line_error(cli("check", cwd=project))
    assert fragment in line
    assert "pyproject.toml" in line


def test_bad_config_via_flag_exits_2(cli, project):
    (project / "custom.toml").write_text("[tool.torchlint]\nfoo = 1\n", encoding="utf-8")
    assert "foo" in one_line_error(cli("check", "--config", "custom.toml", cwd=project))


# --- each file's nearest configuration, as ruff's --------------------------------------------


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    """Two packages, each with its own configuration, under a root with another."""
    for name in ("a/model.py", "b/model.py", "b/sub/deep.py", "top.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(BAD, encoding="utf-8")
    configure(tmp_path, 'extend-select = []\n')
    configure(tmp_path / "a", 'ignore = ["TL201"]\n')
    (tmp_path / "b" / "torchlint.toml").write_text('per-file-ignores = { "sub/*" = ["TL2"] }\n', encoding="utf-8")
    return tmp_path


def test_each_file_takes_its_nearest_configuration(cli, monorepo):
    assert files(cli, cwd=monorepo) == {"b/model.py", "top.py"}
    assert files(cli, "b", "a", "top.py", cwd=monorepo) == {"b/model.py", "top.py"}
    assert files(cli, "--isolated", cwd=monorepo) == {"a/model.py", "b/model.py", "b/sub/deep.py", "top.py"}
    assert files(cli, "--config", "pyproject.toml", cwd=monorepo) == {"a/model.py", "b/model.py", "b/sub/deep.py", "top.py"}


def test_the_command_line_is_over_every_configuration(cli, monorepo):
    assert files(cli, "--select", "TL000", cwd=monorepo) == set()
    assert files(cli, "--ignore", "TL2", cwd=monorepo) == set()
    assert files(cli, "--target-version", "2.0", cwd=monorepo) == {"b/model.py", "top.py"}


def test_extend_inherits_from_a_parent(cli, monorepo):
    configure(monorepo, 'ignore = ["TL201"]\n')
    configure(monorepo / "a", 'extend = "../pyproject.toml"\nper-file-ignores = { "x.py" = ["TL3"] }\n')
    (monorepo / "b" / "torchlint.toml").write_text('extend = "../pyproject.toml"\nselect = ["TL2"]\n', encoding="utf-8")
    assert files(cli, cwd=monorepo) == {"b/model.py", "b/sub/deep.py"}  # b's select resets the parent's ignore


def test_extend_errors(cli, monorepo):
    configure(monorepo / "a", 'extend = "missing.toml"\n')
    assert "extend: no such file" in one_line_error(cli("check", "a", cwd=monorepo))
    configure(monorepo / "a", 'extend = "../pyproject.toml"\n')
    configure(monorepo, 'extend = "a/pyproject.toml"\n')
    assert "extend makes a cycle" in one_line_error(cli("check", "a", cwd=monorepo))


def test_the_cache_key_holds_each_files_settings(cli, monorepo):
    first = files(cli, "--cache-dir", "cache", cwd=monorepo)
    assert first == {"b/model.py", "top.py"}
    configure(monorepo / "a", 'ignore = ["TL3"]\n')
    assert files(cli, "--cache-dir", "cache", cwd=monorepo) == {"a/model.py", "b/model.py", "top.py"}


def test_the_language_server_reads_each_files_nearest_configuration(monorepo):
    pytest.importorskip("pygls")
    from torchlint import lsp

    assert lsp.check_document(BAD, str(monorepo / "a" / "model.py")) == []
    assert lsp.check_document(BAD, str(monorepo / "b" / "sub" / "deep.py")) == []
    assert {f.code for f in lsp.check_document(BAD, str(monorepo / "b" / "model.py"))} == {"TL201"}
