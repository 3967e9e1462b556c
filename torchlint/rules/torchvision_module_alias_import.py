"""TL708 torchvision-module-alias-import: ``import torchvision.models as models``, which is
``from torchvision import models`` said the long way."""

from __future__ import annotations

import ast
from collections.abc import Iterator

import libcst as cst

from torchlint.facts import ModuleFacts, Walker, dotted_name
from torchlint.rules import Fix, Hit, NodeEdit, Rule
from torchlint.screen import TreeInfo


class TorchvisionModuleAliasImport(Rule):
    code = "TL708"
    name = "torchvision-module-alias-import"
    summary = "import torchvision.models as models: write from torchvision import models"
    needles = ("torchvision.",)
    default_enabled = False
    off_reason = "style only: the alias works the same"

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        """An ``import a.b as b`` statement."""
        return any(isinstance(n, ast.Import) and any(a.asname for a in n.names) for n in info.nodes)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        walker = _Imports()
        walker.walk(facts.module)
        for statement in walker.found:
            for alias in statement.names:
                dotted = dotted_name(alias.name)
                package, _, leaf = (dotted or "").rpartition(".")
                if not (
                    package.split(".")[0] == "torchvision"
                    and alias.asname is not None
                    and isinstance(alias.asname.name, cst.Name)
                    and alias.asname.name.value == leaf
                ):
                    continue
                fix = None
                if len(statement.names) == 1:
                    fix = Fix(f"Write from {package} import {leaf}", (NodeEdit(statement, f"from {package} import {leaf}"),))
                yield Hit(alias, f"import {dotted} as {leaf} is from {package} import {leaf} said the long way; write the latter", fix=fix)


class _Imports(Walker):
    """Every ``import`` statement, in every scope."""

    def __init__(self) -> None:
        self.found: list[cst.Import] = []

    def visit_Import(self, node: cst.Import) -> bool:
        self.found.append(node)
        return False
