"""The flake8 plugin: an adapter over the engine. flake8 owns selection and ``# noqa``.

Importing this module is cheap (no LibCST): the engine is imported only for files whose text
could hold a finding, so flake8 pays nothing on files that do not mention torch.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from torchlint import __version__

_NN = re.compile(r"(?<![\w.])nn\.")  # ``nn.Module``, not ``conn.close()``


class Plugin:
    name = "torchlint"
    version = __version__

    def __init__(self, tree: ast.AST, lines: Sequence[str], filename: str = "stdin") -> None:
        self.lines = lines
        self.filename = filename

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        text = "".join(self.lines)
        if "torch" not in text and not _NN.search(text):
            return
        from torchlint import engine, index
        from torchlint.rules import ALL_RULES, PARSE_ERROR_CODE

        path = Path(self.filename)
        on_disk = path.is_file()
        module_name = engine.module_name_for(path) if on_disk else None
        project = index.loader_for(path) if on_disk else None
        # TL000 only when LibCST fails on what flake8 could parse: the file was not checked.
        codes = [PARSE_ERROR_CODE, *(c for c, r in ALL_RULES.items() if r.default_enabled)]
        for f in engine.check_source(text, self.filename, codes, module_name, False, project):
            # flake8 adds one to the column a plugin yields
            yield f.line, f.column - 1, f"{f.code} {f.message}", type(self)
