"""TL704 private-data-loading-api: ``default_collate``/``default_convert`` from the private
``torch.utils.data._utils`` modules instead of ``torch.utils.data``."""

from __future__ import annotations

from collections.abc import Iterator

from torchlint import deprecations
from torchlint.facts import ModuleFacts
from torchlint.rules import Hit, Rule
from torchlint.screen import TreeInfo

# The private names and the public ones (the same function objects, since PyTorch 1.11).
PRIVATE = {
    f"torch.utils.data._utils.collate.{name}": deprecations.Entry(
        name=f"torch.utils.data._utils.collate.{name}",
        deprecated=(1, 11),
        removed=None,
        use=f"torch.utils.data.{name}",
        fix="rename",
        replacement=f"torch.utils.data.{name}",
        safe=True,
    )
    for name in ("default_collate", "default_convert")
}


class PrivateDataLoadingApi(Rule):
    code = "TL704"
    name = "private-data-loading-api"
    summary = "default_collate/default_convert from torch.utils.data._utils: use the public torch.utils.data"
    needles = ("_utils",)

    @staticmethod
    def screen(info: TreeInfo) -> bool:
        return info.mentions(PRIVATE)

    def check(self, facts: ModuleFacts) -> Iterator[Hit]:
        private = {q: e for q, e in PRIVATE.items() if e.applies(self.target_version)}
        for use in deprecations.uses(facts, private, references=True):
            e = use.entry
            yield Hit(
                use.node,
                f"{e.name} is private (it may move or change without notice); use {e.use}, the same function",
                fix=deprecations.fix_for(facts, use, private),
            )
