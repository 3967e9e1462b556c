"""TL701 removed-torch-api: a call or import of a PyTorch function that has been removed."""

from __future__ import annotations

from collections.abc import Iterator

from torchlint import deprecations
from torchlint.facts import ModuleFacts
from torchlint.rules import Hit, Rule
from torchlint.screen import TreeInfo


def _what(use: deprecations.Use) -> str:
    return {"call": "calling", "import": "importing", "decorator": "decorating with", "reference": "using"}[use.kind]


class RemovedTorchApi(Rule):
    code = "TL701"
    name = "removed-torch-api"
    summary = "a call or import of a PyTorch function that has been removed (torch.solve, torch.symeig, ...)"
    needles = deprecations.needles()

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(deprecations.table())

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        removed = {q: e for q, e in deprecations.table().items() if e.is_removed(self.target_version)}
        for use in deprecations.uses(facts, removed):
            e = use.entry
            major, minor = e.removed
            yield Hit(
                use.node,
                f"{_what(use)} {e.name}, which was removed in PyTorch {major}.{minor} (deprecated since "
                f"{e.deprecated[0]}.{e.deprecated[1]}): it raises an error; use {e.use}",
            )
