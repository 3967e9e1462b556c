"""The flake8 plugin: an adapter over the engine. flake8 owns ``--select``, ``--ignore``,
``--per-file-ignores`` and ``# noqa``; the plugin decides which rules run.

The rules that run on a file are those of its nearest torchlint configuration (``[tool.torchlint]``
in pyproject.toml, or torchlint.toml, as the CLI reads it), with the plugin's own flake8 options
over it, where they are set (as flake8-bugbear's, they are read from the command line and from
``.flake8``/``setup.cfg``/``tox.ini``):

    --torchlint-target-version X.Y     the oldest PyTorch the project supports
    --torchlint-extend-select CODES    rules to run besides the default ones (off-by-default rules)

Importing this module is cheap (no LibCST): the engine is imported only for files whose text
could hold a finding, so flake8 pays nothing on files that do not mention torch.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from torchlint import __version__

_NN = re.compile(r"(?<![\w.])nn\.")  # ``nn.Module``, not ``conn.close()``


class Plugin:
    name = "torchlint"
    version = __version__
    target_version: str | None = None  # --torchlint-target-version, as given
    extend_select: list[str] | None = None  # --torchlint-extend-select, as given

    def __init__(self, tree: ast.AST, lines: Sequence[str], filename: str = "stdin") -> None:
        self.tree = tree
        self.lines = lines
        self.filename = filename

    @classmethod
    def add_options(cls, option_manager) -> None:
        option_manager.add_option(
            "--torchlint-target-version", metavar="X.Y", parse_from_config=True,
            help="torchlint: the oldest PyTorch the project supports (default: target-version of "
            "[tool.torchlint], else the latest)",
        )
        option_manager.add_option(
            "--torchlint-extend-select", metavar="CODES", parse_from_config=True, comma_separated_list=True,
            help="torchlint: rules to run besides the default ones, e.g. TL503,TL709 (default: "
            "extend-select of [tool.torchlint])",
        )

    @classmethod
    def parse_options(cls, options) -> None:
        from torchlint import config

        cls.target_version = options.torchlint_target_version or None
        cls.extend_select = options.torchlint_extend_select or None
        try:  # a bad value stops flake8 once, with one line, rather than failing on every file
            if cls.target_version is not None:
                config.parse_target_version(cls.target_version, "--torchlint-target-version")
            for code in cls.extend_select or ():
                config.validate_code(code, "--torchlint-extend-select")
        except config.ConfigError as e:
            raise SystemExit(f"torchlint: error: {e}") from None

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        text = "".join(self.lines)
        if "torch" not in text and not _NN.search(text):
            return
        from torchlint import engine, index
        from torchlint.rules import PARSE_ERROR_CODE

        path = Path(self.filename)
        on_disk = path.is_file()
        directory = (path if on_disk else Path.cwd() / "stdin").resolve().parent
        settings, selection = _selection(directory, self.target_version, tuple(self.extend_select) if self.extend_select else None)
        module_name = engine.module_name_for(path) if on_disk else None
        project = index.loader_for(path) if on_disk and settings.project_index else None
        # TL000 only when LibCST fails on what flake8 could parse: the file was not checked.
        codes = selection.codes_for(self.filename) | {PARSE_ERROR_CODE}
        tree = self.tree if isinstance(self.tree, ast.Module) else None  # flake8's parse of the same text
        found = engine.check_source(
            text, self.filename, codes, module_name, False, project, target_version=selection.target_version, syntax_tree=tree
        )
        for f in found:
            # flake8 adds one to the column a plugin yields
            yield f.line, f.column - 1, f"{f.code} {f.message}", type(self)


@functools.cache
def _selection(directory: Path, target_version: str | None, extend_select: tuple[str, ...] | None):
    """The settings of the configuration nearest ``directory``, and the selection they give with
    the plugin's options over them (once per directory: flake8 checks many files of one)."""
    from torchlint import config

    settings = config.load(config.find_config(directory))
    if extend_select is not None:  # the flake8 option wins over [tool.torchlint]
        settings.extend_select = []
    target = config.parse_target_version(target_version) if target_version else None
    return settings, config.selection(settings, extend_select=extend_select or (), target_version=target)
